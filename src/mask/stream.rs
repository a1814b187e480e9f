//! Masking a byte stream whose chunks may split a value anywhere, down to a byte at a time.
//! Only bytes that could still be the start of a value are held back: at most the longest
//! pattern less one, and nothing before a line end, since no pattern holds a newline (a
//! multi-line value is masked line by line).

use std::sync::Arc;

use super::{Patterns, MASK};

pub struct Masker {
    patterns: Arc<Patterns>,
    /// Bytes received but not yet passed on: they may begin a value.
    pending: Vec<u8>,
}

impl Masker {
    pub(super) fn new(patterns: Arc<Patterns>) -> Masker {
        Masker {
            patterns,
            pending: Vec::new(),
        }
    }

    /// Masks `input` onto `out`, holding back what could still turn out to start a value.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let Some(matcher) = &self.patterns.matcher else {
            out.extend_from_slice(input);
            return;
        };
        self.pending.extend_from_slice(input);
        let len = self.pending.len();
        // A match starting before `cut` ends within what is here: every pattern starting
        // there is wholly known. Past the last newline nothing can span it.
        let by_length = len.saturating_sub(self.patterns.longest - 1);
        let by_line = self
            .pending
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let cut = by_length.max(by_line);
        let mut done = 0;
        for m in matcher.find_iter(&self.pending) {
            if m.start() >= cut {
                break;
            }
            out.extend_from_slice(&self.pending[done..m.start()]);
            out.extend_from_slice(MASK.as_bytes());
            done = m.end();
        }
        let keep_from = done.max(cut);
        out.extend_from_slice(&self.pending[done..keep_from]);
        self.pending.drain(..keep_from);
    }

    /// Masks what was held back: the stream has ended.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let pending = std::mem::take(&mut self.pending);
        out.extend_from_slice(&self.patterns.bytes(&pending));
    }
}

#[cfg(test)]
mod tests {
    use super::super::Masks;

    /// A small seeded generator: the same cases on every run, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn through(masks: &Masks, chunks: &[&[u8]]) -> Vec<u8> {
        let mut masker = masks.current().stream();
        let mut out = Vec::new();
        for chunk in chunks {
            masker.push(chunk, &mut out);
        }
        masker.finish(&mut out);
        out
    }

    #[test]
    fn a_value_split_across_chunks_or_sent_a_byte_at_a_time() {
        let masks = Masks::default();
        masks.add(["hunter2-password"]);
        let text = b"login hunter2-password ok\n";
        for at in 0..text.len() {
            let (a, b) = text.split_at(at);
            assert_eq!(through(&masks, &[a, b]), b"login *** ok\n", "split at {at}");
        }
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(through(&masks, &bytes), b"login *** ok\n");
    }

    #[test]
    fn a_finished_line_is_passed_on_at_once_and_only_a_possible_start_is_held() {
        let masks = Masks::default();
        masks.add(["hunter2-password"]);
        let mut masker = masks.current().stream();
        let mut out = Vec::new();
        masker.push(b"one line\nhunter2-pass", &mut out);
        assert_eq!(out, b"one line\n");
        masker.push(b"word and more text that is long enough", &mut out);
        assert!(out.starts_with(b"one line\n*** and more"), "{out:?}");
    }

    #[test]
    fn nothing_to_hide_passes_through() {
        let masks = Masks::default();
        assert_eq!(through(&masks, &[b"abc", b"def"]), b"abcdef");
    }

    /// Random text with values at random places, cut into random chunks: no value survives,
    /// and every other byte does, in order.
    #[test]
    fn no_value_survives_random_chunking_and_every_other_byte_does() {
        let secrets = [
            "s3cr3t-token",
            "p@ss word/with %chars",
            "-----BEGIN KEY-----\nMIIEowIBAAKCAQEA\n-----END KEY-----",
        ];
        let masks = Masks::default();
        masks.add(secrets);
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        // Filler that cannot form a value or part of one: no letter the values or their
        // encodings share with it would matter, as the expected text is built the same way.
        let filler = b"0123456789 .,;:\n";
        for case in 0..500 {
            let mut input = Vec::new();
            let mut expected = Vec::new();
            for _ in 0..rng.below(20) {
                let n = rng.below(40);
                for _ in 0..n {
                    let b = filler[rng.below(filler.len())];
                    input.push(b);
                    expected.push(b);
                }
                let secret = secrets[rng.below(secrets.len())];
                input.extend_from_slice(secret.as_bytes());
                // A multi-line value is hidden line by line; its newlines stay.
                let lines: Vec<&str> = secret.split('\n').collect();
                expected.extend_from_slice(vec!["***"; lines.len()].join("\n").as_bytes());
            }
            let mut chunks = Vec::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let n = (1 + rng.below(24)).min(rest.len());
                chunks.push(&rest[..n]);
                rest = &rest[n..];
            }
            let out = through(&masks, &chunks);
            for secret in secrets {
                for line in secret.split('\n') {
                    assert!(
                        !out.windows(line.len()).any(|w| w == line.as_bytes()),
                        "case {case}: `{line}` survived"
                    );
                }
            }
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&expected),
                "case {case}"
            );
        }
    }
}

//! One output stream of a job on its way to the log: masked as the bytes come (a secret split
//! across chunks included), then cut into lines.

use super::{LineSplitter, LogSink};
use crate::event::Stream;
use crate::mask::Masker;

pub struct Output {
    log: LogSink,
    stream: Stream,
    masker: Masker,
    lines: LineSplitter,
    masked: Vec<u8>,
}

impl Output {
    pub(super) fn new(log: LogSink, stream: Stream, masker: Masker) -> Output {
        Output {
            log,
            stream,
            masker,
            lines: LineSplitter::default(),
            masked: Vec::new(),
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.masked.clear();
        self.masker.push(bytes, &mut self.masked);
        let (log, stream) = (&self.log, self.stream);
        self.lines.push(&self.masked, |l| log.send(stream, l));
    }

    /// The stream has ended: passes on what was held back.
    pub fn finish(mut self) {
        self.masked.clear();
        self.masker.finish(&mut self.masked);
        let (log, stream) = (&self.log, self.stream);
        self.lines.push(&self.masked, |l| log.send(stream, l));
        self.lines.finish(|l| log.send(stream, l));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use crate::mask::Masks;

    #[test]
    fn a_secret_written_a_byte_at_a_time_reaches_the_log_masked() {
        let masks = Masks::default();
        masks.add(["s3cr3t-token"]);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let log = LogSink::new("job".into(), tx).masking(masks.current());
        let mut out = log.output(Stream::Stderr);
        for b in b"token=s3cr3t-token\ntail s3cr3t-tok" {
            out.push(&[*b]);
        }
        out.finish();
        log.line(Stream::Stdout, "said s3cr3t-token".into());
        let mut lines = Vec::new();
        while let Ok(event) = rx.try_recv() {
            if let EventKind::JobOutput { line, .. } = event.kind {
                lines.push(line);
            }
        }
        assert_eq!(lines, ["token=***", "tail s3cr3t-tok", "said ***"]);
    }
}

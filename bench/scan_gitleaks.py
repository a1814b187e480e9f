#!/usr/bin/env python3
"""pipe's secrets scanner against gitleaks' own rule test cases.

usage: scan_gitleaks.py GITLEAKS_GIT_DIR [--pipe PIPE] [--work DIR] [--seed N] [--write-corpus DIR]

GITLEAKS_GIT_DIR is a git directory of https://github.com/gitleaks/gitleaks (MIT); nothing of it
is copied into this repository. For each rule below (the credential kinds pipe claims), the
script reads the rule's test cases from `cmd/generate/config/rules/<file>.go` as gitleaks'
`utils.Validate(r, tps, fps)` receives them:

- true positives: literal strings, and `utils.GenerateSampleSecrets(id, secret)`, which lays one
  secret in the 26 contexts of gitleaks' `cmd/generate/config/utils/generate.go` (ini, json,
  xml, yaml, C#, Go, Java, Kotlin, PHP, Python, logstash, Make …), secrets drawn like gitleaks'
  `secrets.NewSecret(regex)` does (a random string matching the regex, `{n,}` as n or n+1);
- false positives: the rule's `fps` strings.

Each case becomes one file (named for its context: `.ini`, `.json`, `.go`, `Makefile` …; a literal
case is `.txt`), `pipe scan --output json` scans them all, and a case counts as found when pipe
reports anything in its file at any severity (gitleaks' own test: at least one finding), and as
a false alarm when pipe reports something at high or critical in a false-positive file.

--write-corpus DIR writes the same cases, drawn with --seed, as a corpus with EXPECTED.json (for
tests/fixtures/secrets/gitleaks-contexts, whose secrets are thus generated, not gitleaks').
"""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys

try:
    import re._parser as sre_parse
    import re._constants as sre_c
except ImportError:  # Python < 3.11
    import sre_parse
    import sre_constants as sre_c

RULES_DIR = "cmd/generate/config/rules"
# gitleaks rule ids of the kinds pipe has rules for (src/scan/secrets), by file.
CLAIMED = {
    "aws.go": ["aws-access-token"],
    "github.go": ["github-pat", "github-fine-grained-pat", "github-oauth", "github-app-token",
                  "github-refresh-token"],
    "gitlab.go": None,  # every GitLab token kind
    "slack.go": None,
    "stripe.go": None,
    "gcp.go": ["gcp-api-key"],
    "npm.go": None,
    "pypi.go": None,
    "privatekey.go": ["private-key"],
    "jwt.go": ["jwt"],
}
# Where each of gitleaks' sample contexts is found in a repository.
CONTEXT_FILES = [
    ("ini", "settings.ini"), ("json", "config.json"), ("xml", "app.xml"),
    ("yaml", "values.yaml"), ("C#", "Settings.cs"), ("go", "main.go"), ("java", "App.java"),
    ("kotlin", "App.kt"), ("php", "index.php"), ("python", "app.py"),
    ("misc - comma operator", "Main.java"), ("logstash", "logstash.conf"), ("make", "Makefile"),
]


def git_show(git_dir, path):
    return subprocess.run(["git", "--git-dir", git_dir, "show", f"HEAD:{path}"],
                          check=True, capture_output=True, text=True).stdout


# --- random strings matching a regex, like gitleaks' secrets.NewSecret (lucasjones/reggen)

CATEGORY = {
    sre_c.CATEGORY_DIGIT: "0123456789",
    sre_c.CATEGORY_WORD: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_",
    sre_c.CATEGORY_SPACE: " ",
}


def gen(pattern, rng):
    return "".join(_gen(sre_parse.parse(pattern), rng))


def _gen(parsed, rng):
    out = []
    for op, av in parsed:
        if op == sre_c.LITERAL:
            out.append(chr(av))
        elif op == sre_c.IN:
            chars = []
            for iop, iav in av:
                if iop == sre_c.LITERAL:
                    chars.append(chr(iav))
                elif iop == sre_c.RANGE:
                    chars.extend(chr(c) for c in range(iav[0], iav[1] + 1))
                elif iop == sre_c.CATEGORY:
                    chars.extend(CATEGORY[iav])
            out.append(rng.choice(chars))
        elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT):
            lo, hi, sub = av
            if hi == sre_c.MAXREPEAT:
                hi = lo + 1
            for _ in range(rng.randint(lo, hi)):
                out.extend(_gen(sub, rng))
        elif op == sre_c.SUBPATTERN:
            out.extend(_gen(av[-1], rng))
        elif op == sre_c.BRANCH:
            out.extend(_gen(rng.choice(av[1]), rng))
        elif op == sre_c.ANY:
            out.append(rng.choice("abcdefghijklmnopqrstuvwxyz"))
        elif op in (sre_c.AT, sre_c.ASSERT_NOT):
            pass
        else:
            raise ValueError(f"regex operation {op} not supported")
    return out


# --- a tiny evaluator for the Go expressions gitleaks' test cases are written in

TOKEN = re.compile(r'''\s+|//[^\n]*|/\*.*?\*/|(?P<raw>`[^`]*`)|(?P<str>"(?:\\.|[^"\\])*")|(?P<op>\.\.\.|:=|[-+(){}\[\],:=.])|(?P<id>[A-Za-z_][A-Za-z0-9_]*)|(?P<num>[0-9]+)''', re.S)


def tokenize(src):
    toks, pos = [], 0
    while pos < len(src):
        m = TOKEN.match(src, pos)
        if not m:
            toks.append(("other", src[pos]))
            pos += 1
            continue
        pos = m.end()
        for kind in ("raw", "str", "op", "id", "num"):
            if m.group(kind) is not None:
                toks.append((kind, m.group(kind)))
    return toks


def go_string(tok):
    kind, text = tok
    if kind == "raw":
        return text[1:-1]
    return json.loads(text) if "\\x" not in text else text[1:-1].encode().decode("unicode_escape")


class Eval:
    def __init__(self, toks, rng, samples):
        self.t, self.i, self.rng, self.samples = toks, 0, rng, samples
        self.vars = {}

    def peek(self, k=0):
        return self.t[self.i + k] if self.i + k < len(self.t) else ("eof", "")

    def take(self, text=None):
        tok = self.peek()
        if text is not None and tok[1] != text:
            raise SyntaxError(f"expected {text!r}, got {tok!r}")
        self.i += 1
        return tok

    def expr(self):
        value = self.term()
        while self.peek()[1] == "+":
            self.take()
            value = value + self.term()
        return value

    def term(self):
        kind, text = self.peek()
        if kind in ("raw", "str"):
            self.take()
            return go_string((kind, text))
        if text == "[":  # []string{...}
            self.take("[")
            self.take("]")
            self.take()
            return self.items("{", "}")
        if text == "map":  # map[string]string{k: v, ...}: the values
            while self.take()[1] != "{":
                pass
            self.i -= 1
            return [v for k, v in self.pairs()]
        if kind == "id":
            name = self.dotted()
            if self.peek()[1] == "(":
                args = self.items("(", ")")
                return self.call(name, args)
            if name == "nil":
                return []
            return self.vars[name]
        raise SyntaxError(f"unexpected {text!r}")

    def dotted(self):
        name = self.take()[1]
        while self.peek()[1] == "." and self.peek(1)[0] == "id":
            self.take()
            name += "." + self.take()[1]
        return name

    def items(self, open_, close):
        self.take(open_)
        out = []
        while self.peek()[1] != close:
            value = self.expr()
            if self.peek()[1] == "...":
                self.take()
                out.extend(value)
            else:
                out.append(value)
            if self.peek()[1] == ",":
                self.take()
        self.take(close)
        return out

    def pairs(self):
        self.take("{")
        out = []
        while self.peek()[1] != "}":
            k = self.expr()
            self.take(":")
            out.append((k, self.expr()))
            if self.peek()[1] == ",":
                self.take()
        self.take("}")
        return out

    def call(self, name, args):
        sizes = {
            "utils.Numeric": "[0-9]{%s}", "utils.Hex": "[a-f0-9]{%s}",
            "utils.AlphaNumeric": "[a-z0-9]{%s}", "utils.AlphaNumericExtendedShort": "[a-z0-9_-]{%s}",
            "utils.AlphaNumericExtended": "[a-z0-9=_\\-]{%s}",
            "utils.AlphaNumericExtendedLong": "[a-z0-9\\/=_\\+\\-]{%s}",
        }
        if name in sizes:
            return sizes[name] % args[0]
        if name == "utils.Hex8_4_4_4_12":
            return "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
        if name == "secrets.NewSecret":
            return gen(args[0], self.rng)
        if name == "fmt.Sprintf":
            return re.sub(r"%[sd]", "{}", args[0].replace("{", "{{").replace("}", "}}")).format(*args[1:])
        if name == "utils.GenerateSampleSecret":
            return Case(f'{args[0]}_api_token = "{args[1]}"', "")
        if name == "utils.GenerateSampleSecrets":
            ident, secret = args
            return [Case(t.replace("{i}", ident).replace("{I}", ident.upper()).replace("{s}", secret), ctx)
                    for ctx, t in self.samples]
        if name == "append":
            return args[0] + args[1:]
        if name == "strings.Repeat":
            return args[0] * int(args[1])
        raise NameError(name)


class Case(str):
    """A test case and the context gitleaks laid it in ('' for a literal case)."""

    def __new__(cls, text, context):
        obj = super().__new__(cls, text)
        obj.context = context
        return obj


def sample_templates(git_dir):
    """(context name, template) of gitleaks' GenerateSampleSecrets, commented-out ones left out."""
    src = git_show(git_dir, "cmd/generate/config/utils/generate.go")
    body = src[src.index("samples := map[string]string{"):]
    body = body[:body.index("\n\t}\n")]
    toks = tokenize(body[body.index("{"):] + "\n}")
    ev = Eval(toks, None, None)
    return [(k, v) for k, v in ev.pairs()]


def rule_cases(git_dir, rng, samples):
    """[(rule id, true positives, false positives)] for the claimed rules."""
    out = []
    for file, wanted in CLAIMED.items():
        src = git_show(git_dir, f"{RULES_DIR}/{file}")
        for func in re.split(r"\nfunc ", src)[1:]:
            rid = re.search(r'RuleID:\s*"([^"]+)"', func)
            if not rid or (wanted is not None and rid.group(1) not in wanted):
                continue
            toks = tokenize(func[func.index("{"):])
            ev = Eval(toks, rng, samples)
            while ev.i < len(toks):
                kind, text = ev.peek()
                if kind == "id" and text in ("tps", "fps") and ev.peek(1)[1] in (":=", "="):
                    ev.take()
                    ev.take()
                    ev.vars[text] = ev.expr()
                else:
                    ev.i += 1
            tps = ev.vars.get("tps", [])
            fps = ev.vars.get("fps", [])
            out.append((rid.group(1), [t if isinstance(t, Case) else Case(t, "") for t in tps],
                        [Case(f, "") for f in fps]))
    return out


def file_name(case):
    for prefix, name in CONTEXT_FILES:
        if case.context.startswith(prefix):
            return name
    return "case.txt"


def lay_out(cases, root):
    """Writes one directory per case; returns [(dir, rule, kind, context, line of the secret)]."""
    if os.path.exists(root):
        shutil.rmtree(root)
    laid = []
    for rule, tps, fps in cases:
        for kind, items in (("tp", tps), ("fp", fps)):
            for n, case in enumerate(items):
                d = f"{rule}/{kind}{n:03d}"
                os.makedirs(os.path.join(root, d))
                name = file_name(case)
                with open(os.path.join(root, d, name), "w") as f:
                    f.write(case + "\n")
                laid.append({"path": f"{d}/{name}", "rule": rule, "kind": kind,
                             "context": case.context or "literal"})
    return laid


def scan(pipe, root):
    res = subprocess.run([pipe, "scan", "--scanner", "secrets", "--output", "json", "."],
                         cwd=root, capture_output=True, text=True)
    if res.returncode not in (0, 1):
        sys.exit(f"pipe scan failed: {res.stderr}")
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


def score(laid, findings, label, verbose):
    by_path = {}
    for f in findings:
        by_path.setdefault(f["path"], []).append(f)
    tps = [c for c in laid if c["kind"] == "tp"]
    fps = [c for c in laid if c["kind"] == "fp"]
    missed = [c for c in tps if c["path"] not in by_path]
    alarms = [c for c in fps if any(f["severity"] in ("high", "critical") for f in by_path.get(c["path"], []))]
    found = len(tps) - len(missed)
    print(f"{label}: recall {found}/{len(tps)} = {100 * found / len(tps):.1f}%, "
          f"false positives at high/critical {len(alarms)}/{len(fps)}")
    if verbose:
        for c in missed:
            print(f"  missed {c['path']} ({c['context']})")
        for c in alarms:
            print(f"  alarm  {c['path']}: {[f['rule_id'] for f in by_path[c['path']]]}")
    return found, len(tps), len(alarms), len(fps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("git_dir")
    ap.add_argument("--pipe", default="target/release/pipe")
    ap.add_argument("--work", default="/tmp/pipe-scan-gitleaks")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--write-corpus")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    cases = rule_cases(args.git_dir, rng, sample_templates(args.git_dir))
    if args.write_corpus:
        laid = lay_out(cases, args.write_corpus)
        with open(os.path.join(args.write_corpus, "EXPECTED.json"), "w") as f:
            json.dump({"cases": laid}, f, indent=1)
            f.write("\n")
        print(f"wrote {len(laid)} cases to {args.write_corpus}")
        return
    laid = lay_out(cases, args.work)
    score(laid, scan(os.path.abspath(args.pipe), args.work), "gitleaks' cases, pipe", args.verbose)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Generates a deterministic source-like tree for benchmarking secret scanners.

usage: scan_gen.py OUT_DIR --files N --megabytes M [--seed S]

Filler files mix Rust, Python, JS, Go, YAML, JSON, TOML, shell and Markdown lines, including
the words scanners key on (token, secret, password, key) in harmless contexts, digests, UUIDs
and URLs, so that prefilters and entropy checks are exercised as on a real repository.
The fake-credential corpus (tests/fixtures/secrets) is planted twice: whole files copied to
random directories (decoys included), and single-line credentials inserted into filler files.
OUT_DIR/../<name>.planted.json lists every planted credential (path, line, rule) and decoy,
in the format of tests/fixtures/secrets/EXPECTED.json, for recall measurements.
"""

import argparse
import json
import os
import random
import shutil
import string

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "tests", "fixtures", "secrets")
CORPUS = os.path.join(FIXTURES, "fake-corpus")

WORDS = (
    "build cache config deploy event graph job log node output pipeline plan queue run "
    "schedule stage step target task worker agent artifact backend branch commit container "
    "docker engine image layer manifest matrix runner service shell status timeout trigger "
    "volume workspace token secret password key auth credential session user client server"
).split()
SECRET_WORDS = {"token", "secret", "password", "key", "auth", "credential"}
# Harmless uses of the secret words: they may start or sit inside a name, never end one that
# is assigned a literal (that would be a real, if weak, credential).
KEY_ENDINGS = [w for w in WORDS if w not in SECRET_WORDS] + ["ttl", "url", "path", "policy", "file"]
TYPES = "Config Plan Event Graph Job Runner Stage Step Task Workspace Error Result Output".split()
EXTENSIONS = ["rs", "py", "js", "ts", "go", "yaml", "json", "toml", "sh", "md", "txt"]
# Multi-line credentials are only planted as whole files.
WHOLE_FILE_ONLY = {"private-key", "openssh-private-key", "putty-private-key"}
# Rules that depend on the file type (bare `name = value` only counts in config files):
# their lines are planted into filler files of the same extension only.
SAME_EXTENSION = {"password-assignment", "high-entropy-secret"}


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def ident(self):
        return "_".join(self.r.choice(WORDS) for _ in range(self.r.randint(1, 3)))

    def key(self):
        words = [self.r.choice(WORDS) for _ in range(self.r.randint(0, 2))] + [self.r.choice(KEY_ENDINGS)]
        return "_".join(words)

    def camel(self):
        parts = [self.r.choice(WORDS) for _ in range(self.r.randint(1, 3))]
        return parts[0] + "".join(p.title() for p in parts[1:])

    def sentence(self):
        return " ".join(self.r.choice(WORDS) for _ in range(self.r.randint(4, 12))).capitalize()

    def hexstr(self, n):
        return "".join(self.r.choice("0123456789abcdef") for _ in range(n))

    def uuid(self):
        return "-".join(self.hexstr(n) for n in (8, 4, 4, 4, 12))

    def url(self):
        host = self.r.choice(["api.github.com", "registry.npmjs.org", "example.com", "ci.internal", "docs.rs"])
        return f"https://{host}/{self.ident()}/{self.r.randint(1, 9999)}"

    def num(self):
        return self.r.randint(0, 100000)

    def line(self, ext):
        r = self.r
        t = self.r.choice
        if ext == "rs":
            return t([
                f"    let {self.ident()} = {self.ident()}.{self.ident()}(&{self.ident()}, {self.num()})?;",
                f"pub fn {self.ident()}(&self, {self.ident()}: &str) -> Result<{t(TYPES)}, Error> {{",
                f"    // {self.sentence()}.",
                f"    pub {self.ident()}: Option<String>,",
                f"use crate::{self.ident()}::{t(TYPES)};",
                f'        .context("{self.sentence()}")?;',
                f'const {self.ident().upper()}_SHA: &str = "{self.hexstr(40)}";',
                "    }",
            ])
        if ext == "py":
            return t([
                f"def {self.ident()}(self, {self.ident()}={self.num()}):",
                f'    return {self.ident()}.get("{self.ident()}", None)',
                f"    # {self.sentence()}",
                f'    {self.ident()} = os.environ.get("{self.ident().upper()}")',
                f"import {self.ident()}",
                f'    request_id = "{self.uuid()}"',
                f"    if not {self.ident()}:\n        raise ValueError(\"{self.sentence()}\")",
            ])
        if ext in ("js", "ts"):
            return t([
                f"const {self.camel()} = await fetch(`${{base}}/{self.ident()}`);",
                f"export function {self.camel()}({self.camel()}) {{",
                f'  if (!{self.camel()}) throw new Error("{self.sentence()}");',
                f"  // {self.sentence()}",
                f"  const {self.camel()} = {self.camel()}.map((x) => x.{self.camel()});",
                f"  return {{ {self.camel()}: {self.num()}, {self.camel()}: '{self.ident()}' }};",
                "}",
            ])
        if ext == "go":
            return t([
                f"func {self.camel().title()}(ctx context.Context, {self.camel()} string) error {{",
                f"\t{self.camel()}, err := {self.camel()}.{self.camel().title()}(ctx)",
                f'\t\treturn fmt.Errorf("{self.sentence()}: %w", err)',
                f"\t// {self.sentence()}",
                "\t}",
            ])
        if ext == "yaml":
            return t([
                f"  {self.key()}: {self.r.choice(WORDS)}",
                f"- name: {self.sentence()}",
                f"    image: {self.ident()}:{r.randint(1, 20)}.{r.randint(0, 9)}",
                f"    token: ${{{{ secrets.{self.ident().upper()} }}}}",
                f"    run: make {self.ident()}",
                f"    password: ${{{self.ident().upper()}}}",
            ])
        if ext == "json":
            return t([
                f'  "{self.key()}": "{self.ident()}",',
                f'  "version": "{r.randint(0, 9)}.{r.randint(0, 20)}.{r.randint(0, 50)}",',
                f'  "resolved": "{self.url()}",',
                f'  "sha": "{self.hexstr(40)}",',
                f'  "{self.key()}": {self.num()},',
            ])
        if ext == "toml":
            return t([
                f'{self.key()} = "{self.ident()}"',
                f"[{self.ident()}]",
                f'checksum = "{self.hexstr(64)}"',
                f"{self.key()} = {self.num()}",
            ])
        if ext == "sh":
            return t([
                f'{self.ident().upper()}="${{{self.ident().upper()}:-{self.ident()}}}"',
                f"curl -fsSL {self.url()} -o /tmp/{self.ident()}",
                f"# {self.sentence()}",
                f'if [ -z "${self.ident().upper()}" ]; then exit 1; fi',
            ])
        return t([
            f"{self.sentence()}.",
            f"See {self.url()} for the {self.ident()} settings.",
            f"- `{self.ident()}`: {self.sentence()}",
            "",
            f"Set the API token in `{self.ident().upper()}` before running `pipe {self.ident()}`.",
        ])


def corpus_plantings():
    with open(os.path.join(FIXTURES, "EXPECTED.json")) as f:
        exp = json.load(f)
    return exp["expected"], exp["decoys"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--megabytes", type=float, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--corpus-copies", type=int, default=2)
    ap.add_argument("--inline-plants", type=int, default=60)
    args = ap.parse_args()

    g = Gen(args.seed)
    shutil.rmtree(args.out, ignore_errors=True)
    expected_all, decoys_all = corpus_plantings()
    planted, decoys = [], []

    # Directory skeleton.
    dirs = [""]
    for _ in range(max(1, args.files // 12)):
        parent = g.r.choice(dirs)
        dirs.append(os.path.join(parent, g.ident()) if parent.count(os.sep) < 4 else parent)
    dirs = sorted(set(dirs))

    # Whole corpus copies (planted credentials and decoys in their own files).
    for copy in range(args.corpus_copies):
        base = os.path.join(g.r.choice(dirs), f"vendor_{copy}")
        shutil.copytree(CORPUS, os.path.join(args.out, base))
        for e in expected_all:
            planted.append({"path": os.path.join(base, e["path"]), "line": e["line"], "rule": e["rule"]})
        for d in decoys_all:
            decoys.append({"path": os.path.join(base, d["path"]), "line": d["line"], "what": d["what"]})

    # Filler: sample lines from a pool so that generating a large tree stays fast.
    pools = {ext: [g.line(ext) for _ in range(4000)] for ext in EXTENSIONS}
    budget = int(args.megabytes * 1e6)
    per_file = budget // args.files
    files = []
    for i in range(args.files):
        ext = g.r.choice(EXTENSIONS)
        rel = os.path.join(g.r.choice(dirs), f"{g.ident()}_{i}.{ext}")
        size = int(per_file * g.r.uniform(0.2, 1.8))
        lines, total = [], 0
        while total < size:
            line = g.r.choice(pools[ext])
            lines.append(line)
            total += len(line) + 1
        files.append([rel, ext, lines])

    # Single-line credentials inserted into filler files.
    def ext_of(path):
        return path.rsplit(".", 1)[-1] if "." in os.path.basename(path) else None

    candidates = [
        e
        for e in expected_all
        if e["rule"] not in WHOLE_FILE_ONLY
        and (e["rule"] not in SAME_EXTENSION or ext_of(e["path"]) in EXTENSIONS)
    ]
    for _ in range(args.inline_plants):
        e = g.r.choice(candidates)
        with open(os.path.join(CORPUS, e["path"])) as f:
            text = f.read().split("\n")[e["line"] - 1]
        targets = files
        if e["rule"] in SAME_EXTENSION:
            targets = [f for f in files if f[1] == ext_of(e["path"])]
        target = g.r.choice(targets)
        at = g.r.randint(0, len(target[2]))
        target[2].insert(at, text)
        # Later insertions above this one shift it: record the line object, resolve later.
        planted.append({"file": target, "text": text, "rule": e["rule"]})

    for rel, _, lines in files:
        full = os.path.join(args.out, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write("\n".join(lines) + "\n")

    resolved = []
    for p in planted:
        if "file" in p:
            rel, _, lines = p["file"]
            idx = lines.index(p["text"])
            # Some pool entries span two lines.
            line = 1 + sum(l.count("\n") + 1 for l in lines[:idx])
            resolved.append({"path": rel, "line": line, "rule": p["rule"]})
        else:
            resolved.append(p)
    # The same credential planted twice in one file is found at its first line; keep unique.
    uniq = {(p["path"], p["line"], p["rule"]): p for p in resolved}
    manifest = os.path.join(os.path.dirname(os.path.abspath(args.out)), os.path.basename(args.out) + ".planted.json")
    with open(manifest, "w") as f:
        json.dump({"expected": sorted(uniq.values(), key=lambda p: (p["path"], p["line"])), "decoys": decoys}, f, indent=1)
    total = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(args.out) for fn in fns)
    count = sum(len(fns) for _, _, fns in os.walk(args.out))
    print(f"{args.out}: {count} files, {total / 1e6:.1f} MB, {len(uniq)} planted credentials, {len(decoys)} decoys")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Recall and false positives of a secret scanner against planted credentials.

usage: scan_recall.py EXPECTATIONS.json (--pipe FINDINGS.jsonl | --detect-secrets REPORT.json) [--label NAME]
                     [--serious medium|high] [--quiet]

EXPECTATIONS is tests/fixtures/secrets/EXPECTED.json, tests/fixtures/secrets/contexts.json or a
tree's .planted.json from scan_gen.py. A planted credential counts as found when the scanner reports anything on its
line (rule names differ between tools), at any severity. For false positives, pipe's low
findings do not count (they are informational and never fail a build); detect-secrets has no
severities, so all of its reports count. --serious high counts only pipe's high and critical
findings as false positives (the bar of tests/fixtures/secrets/contexts).
"""

import argparse
import json


def load_pipe(path, serious_from="medium"):
    """(all reported lines, lines reported at `serious_from` or above)"""
    levels = ["low", "medium", "high", "critical"]
    reports, serious = set(), set()
    with open(path) as f:
        for line in f:
            if line.strip():
                rec = json.loads(line)
                reports.add((rec["path"], rec["line"]))
                if levels.index(rec["severity"]) >= levels.index(serious_from):
                    serious.add((rec["path"], rec["line"]))
    return reports, serious


def load_detect_secrets(path):
    with open(path) as f:
        data = json.load(f)
    reports = {
        (name[2:] if name.startswith("./") else name, r["line_number"])
        for name, results in data["results"].items()
        for r in results
    }
    return reports, reports


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("expectations")
    ap.add_argument("--pipe")
    ap.add_argument("--detect-secrets")
    ap.add_argument("--label")
    ap.add_argument("--serious", default="medium", choices=["medium", "high"])
    ap.add_argument("--quiet", action="store_true", help="the figures only, not each miss")
    args = ap.parse_args()
    with open(args.expectations) as f:
        exp = json.load(f)
    if args.pipe:
        (reports, serious), label = load_pipe(args.pipe, args.serious), args.label or "pipe"
    else:
        (reports, serious), label = load_detect_secrets(args.detect_secrets), args.label or "detect-secrets"
    expected = {(e["path"], e["line"]) for e in exp["expected"]}
    decoys = {(d["path"], d["line"]) for d in exp["decoys"]}
    found = expected & reports
    decoys_hit = decoys & serious
    other = serious - expected - decoys
    print(
        f"{label}: recall {len(found)}/{len(expected)} = {100 * len(found) / len(expected):.1f}%, "
        f"decoys reported {len(decoys_hit)}/{len(decoys)}, other reports {len(other)}"
    )
    for path, line in sorted(expected - reports) if not args.quiet else []:
        rule = next(e["rule"] for e in exp["expected"] if (e["path"], e["line"]) == (path, line))
        print(f"  missed {path}:{line} ({rule})")


if __name__ == "__main__":
    main()

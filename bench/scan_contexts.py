#!/usr/bin/env python3
"""Generates tests/fixtures/secrets/contexts: fake credentials in 26 assignment contexts.

usage: scan_contexts.py [OUT_DIR] [--seed N]      (default: tests/fixtures/secrets/contexts)

Builds the in-repository counterpart of gitleaks' rule tests (bench/scan_gitleaks.py): every
credential kind pipe claims, as a random token of the provider's real alphabet and length
(nothing here was ever issued), laid in the same 26 contexts gitleaks lays its samples in
(ini, json, xml, yaml, C#, Go, Java, Kotlin, PHP, Python, logstash, Make), plus false-positive
samples (placeholders, published examples, out-of-format look-alikes) laid in the same contexts.
Writes one file per language or format and OUT_DIR.json next to OUT_DIR, in the format of
tests/fixtures/secrets/EXPECTED.json (`expected`: path, line, rule; `decoys`: path, line, what).
Deterministic for a seed: rerunning it rewrites the same files.
"""

import argparse
import base64
import json
import os
import random
import shutil
import string

UPPER, LOWER, DIGITS = string.ascii_uppercase, string.ascii_lowercase, string.digits
ALNUM = UPPER + LOWER + DIGITS
HEX = "0123456789abcdef"

# (context, file, template): {i} identifier, {I} its upper case, {s} the secret.
CONTEXTS = [
    ("ini, quoted", "settings.ini", '{i}Token="{s}"'),
    ("ini, quoted, spaced", "settings.ini", '{i}Token = "{s}"'),
    ("ini, bare", "settings.ini", "{i}Token={s}"),
    ("ini, bare, spaced", "settings.ini", "{i}Token = {s}"),
    ("json, string", "config.json", '{{\n    "{i}_token": "{s}"\n}}'),
    ("json, env file in a string", "config.json", '{{"app.env": "{I}_TOKEN={s}\\nDEBUG=false"}}'),
    ("xml, element on its own lines", "app.xml", "<{i}Token>\n    {s}\n</{i}Token>"),
    ("yaml, bare", "values.yaml", "{i}_token: {s}"),
    ("yaml, single-quoted", "values.yaml", "{i}_token: '{s}'"),
    ("yaml, double-quoted", "values.yaml", '{i}_token: "{s}"'),
    ("C#", "Settings.cs", 'string {i}Token = "{s}";'),
    ("Go, var with type", "main.go", 'var {i}Token string = "{s}"'),
    ("Go, short", "main.go", '{i}Token := "{s}"'),
    ("Go, backquoted", "main.go", "{i}Token := `{s}`"),
    ("Java", "App.java", 'String {i}Token = "{s}";'),
    ("Kotlin", "App.kt", 'var {i}Token = "{s}"'),
    ("PHP, concatenation", "index.php", '${i}Token .= "{s}";'),
    ("Python, single-quoted", "app.py", "{i}Token = '{s}'"),
    ("Python, double-quoted", "app.py", '{i}Token = "{s}"'),
    ("Java, setProperty", "Main.java", 'System.setProperty("{I}_TOKEN", "{s}");'),
    ("logstash", "logstash.conf", '  "{i}Token" => "{s}"'),
    ("Make, recursive", "Makefile", '{I}_TOKEN = "{s}"'),
    ("Make, simple", "Makefile", '{I}_TOKEN := "{s}"'),
    ("Make, POSIX simple", "Makefile", '{I}_TOKEN ::= "{s}"'),
    ("Make, immediate", "Makefile", '{I}_TOKEN :::= "{s}"'),
    ("Make, conditional", "Makefile", '{I}_TOKEN ?= "{s}"'),
]


def pick(rng, alphabet, n):
    return "".join(rng.choice(alphabet) for _ in range(n))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(rng):
    header = {"alg": rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}
    payload = {"sub": pick(rng, HEX, 12), "iss": "https://auth.internal.invalid",
               "exp": rng.randint(1_700_000_000, 1_900_000_000)}
    sig = bytes(rng.randrange(256) for _ in range(32))
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode()), b64url(sig)])


# (identifier, rule that must report it, generator)
KINDS = [
    ("aws", "aws-access-key-id", lambda r: rng_choice(r, ["AKIA", "ASIA"]) + pick(r, UPPER + "234567", 16)),
    ("github", "github-token", lambda r: rng_choice(r, ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]) + pick(r, ALNUM, 36)),
    ("github", "github-token", lambda r: "github_pat_" + pick(r, ALNUM, 22) + "_" + pick(r, ALNUM, 59)),
    ("gitlab", "gitlab-token", lambda r: "glpat-" + pick(r, ALNUM + "_-", 20)),
    ("gitlab", "gitlab-token", lambda r: "glpat-" + pick(r, ALNUM, 27) + "." + pick(r, LOWER + DIGITS, 2) + "." + pick(r, LOWER + DIGITS, 9)),
    ("gitlab", "gitlab-token", lambda r: "gldt-" + pick(r, ALNUM, 20)),
    ("gitlab", "gitlab-token", lambda r: "glrt-" + pick(r, ALNUM, 20)),
    ("gitlab", "gitlab-token", lambda r: "glcbt-" + pick(r, ALNUM, 5) + "_" + pick(r, ALNUM, 20)),
    ("gitlab", "gitlab-token", lambda r: "glft-" + pick(r, ALNUM, 20)),
    ("gitlab", "gitlab-token", lambda r: "glimt-" + pick(r, ALNUM, 25)),
    ("gitlab", "gitlab-token", lambda r: "glsoat-" + pick(r, ALNUM, 20)),
    ("gitlab", "gitlab-token", lambda r: "gloas-" + pick(r, ALNUM, 64)),
    ("gitlab", "gitlab-token", lambda r: "glffct-" + pick(r, ALNUM, 20)),
    ("gitlab", "gitlab-token", lambda r: "glagent-" + pick(r, ALNUM, 50)),
    ("gitlab", "gitlab-token", lambda r: "glptt-" + pick(r, HEX, 40)),
    ("gitlab", "gitlab-token", lambda r: "GR1348941" + pick(r, ALNUM, 20)),
    ("gitlab", "gitlab-token", lambda r: "_gitlab_session=" + pick(r, LOWER + DIGITS, 32)),
    ("bot", "slack-token", lambda r: f"xoxb-{pick(r, DIGITS, 12)}-{pick(r, DIGITS, 13)}-{pick(r, ALNUM, 24)}"),
    ("user", "slack-token", lambda r: f"xoxp-{pick(r, DIGITS, 12)}-{pick(r, DIGITS, 12)}-{pick(r, DIGITS, 13)}-{pick(r, HEX, 32)}"),
    ("refresh", "slack-token", lambda r: "xoxe-1-" + pick(r, ALNUM, 146)),
    ("config", "slack-token", lambda r: "xoxe.xoxp-1-" + pick(r, ALNUM, 164)),
    ("app", "slack-token", lambda r: f"xapp-1-A{pick(r, UPPER + DIGITS, 10)}-{pick(r, DIGITS, 13)}-{pick(r, HEX, 64)}"),
    ("legacy", "slack-token", lambda r: f"xoxs-{pick(r, DIGITS, 10)}-{pick(r, DIGITS, 10)}-{pick(r, DIGITS, 10)}-{pick(r, HEX, 10)}"),
    ("workspace", "slack-token", lambda r: f"xoxa-2-{pick(r, DIGITS, 9)}-{pick(r, DIGITS, 11)}-{pick(r, HEX, 18)}"),
    ("slackHook", "slack-webhook", lambda r: f"https://hooks.slack.com/services/T{pick(r, UPPER + DIGITS, 8)}/B{pick(r, UPPER + DIGITS, 10)}/{pick(r, ALNUM, 24)}"),
    ("stripe", "stripe-secret-key", lambda r: rng_choice(r, ["sk_live_", "rk_live_", "sk_prod_"]) + pick(r, ALNUM, 99)),
    ("stripe", "stripe-test-key", lambda r: "sk_test_" + pick(r, ALNUM, 30)),
    ("gcp", "google-api-key", lambda r: "AIza" + pick(r, ALNUM + "_-", 35)),
    ("npm", "npm-token", lambda r: "npm_" + pick(r, ALNUM, 36)),
    ("pypi", "pypi-token", lambda r: "pypi-AgEIcHlwaS5vcmc" + pick(r, ALNUM + "_-", 70)),
    ("jwt", "jwt", jwt),
    ("service", "high-entropy-secret", lambda r: pick(r, ALNUM + "+/", 40)),
]

# Look-alikes that must never be reported at high or critical: (what, value).
DECOYS = [
    ("GitLab placeholder", "glpat-XXXXXXXXXXXXXXXXXXXX"),
    ("GitLab routable placeholder", "glpat-xxxxxxxx-xxxxxxxxxxxxxxxxxx.xxxxxxxxx"),
    ("GitLab runner registration placeholder", "GR1348941XXXXXXXXXXXXXXXXXXXX"),
    ("GitLab trigger placeholder", "glptt-" + "x" * 40),
    ("GitHub placeholder", "ghp_" + "x" * 36),
    ("GitHub placeholder", "ghp_YOUR_GITHUB_TOKEN_HERE"),
    ("Slack masked bot token", "xoxb-xxxxxxxxx-xxxxxxxxxx-xxxxxxxxxxxx"),
    ("Slack masked user token", "xoxp-XXXXXXXXXX-XXXXXXXXXX-XXXXXXXXXXX-XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
    ("Slack token with out-of-format ids", "xoxp-1234-1234-1234-4ddbc191d40ee098cbaae6f3523ada2d"),
    ("Slack placeholder", "xoxe.xoxp-1-SlackAppConfigurationAccessTokenHere"),
    ("Slack placeholder", "xoxe.xoxp-1-RANDOMSTRINGHERE"),
    ("Slack placeholder", "xoxb-Slack_BOT_TOKEN"),
    ("AWS documentation example", "AKIAIOSFODNN7EXAMPLE"),
    ("Firebase SDK example key", "AIzaSyAnLA7NfeLquW1tJFpx_eQCxoX-oo6YyIs"),
    ("Firebase SDK example key", "AIzaSyDMAScliyLx7F0NPDEJi1QmyCgHIAODrlU"),
    ("Firebase SDK example key", "AIzaSyBcE-OOIbhjyR83gm4r2MFCu4MJmprNXsw"),
    ("Google key filler", "AIza" + "a" * 35),
    ("Google key, typed sequence", "AIzaSyabcdefghijklmnopqrstuvwxyz1234567"),
    ("Google key in upper case", "AIZASYCO2CXRMC9ELSKLHLHRMBSWDEVEDZTLO2O"),
    ("Stripe placeholder", "sk_live_" + "x" * 24),
    ("Stripe look-alike prefix", "task_test_" + "k3j9x8d7f6g5h4j3k2l1m0n9b8v7c6"),
    ("npm filler", "npm_" + "0" * 36),
    ("variable reference", "${API_TOKEN}"),
    ("template", "{{ .Values.apiToken }}"),
    ("placeholder", "<your-api-token>"),
    ("placeholder", "your_api_token_here"),
    ("placeholder", "REPLACE_WITH_YOUR_TOKEN"),
    ("placeholder", "changeme"),
    ("jwt.io example", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"),
    ("UUID", "123e4567-e89b-12d3-a456-426614174000"),
]
# Look-alikes outside an assignment (token-shaped text inside longer text).
LOOSE_DECOYS = [
    ("Google key inside a longer string", "GWw4hjABFzZCGiRpmlDyDdo87Jn9BN9THUA47muVRNunLxsa82tMAdvmrhOqNkRKiYMEAFbTJAIzaTesb6Tscfcni8vIpWZqNCXFDFslJtVSvFDq"),
    ("Google key followed by more text", "AIzaTesb6Tscfcni8vIpWZqNCXFDFslJtVSvFDqabcd123"),
    ("Slack word in a URL", "https://github.com/xoxa-nyc/xoxa-nyc.github.io/blob/master/README.md"),
    ("Slack word in a file name", "https://indieweb.org/images/3/35/2018-250-xoxo-indieweb-1.jpg"),
    ("Slack placeholder", "xoxb-xoxb-my-bot-token"),
    ("Slack refresh placeholder", "xoxe-1-xxx"),
    ("GitHub token in an identifier", "const ghp_prefix_length = 4"),
]


def rng_choice(r, items):
    return r.choice(items)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default="tests/fixtures/secrets/contexts")
    ap.add_argument("--seed", type=int, default=16)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    files = {}  # name -> lines
    expected, decoys = [], []

    def lay(file, template, ident, value):
        """Appends a case; returns the line (1-based) of the value."""
        lines = files.setdefault(file, [])
        template = template.replace("{{", "{").replace("}}", "}")
        text = template.replace("{i}", ident).replace("{I}", ident.upper()).replace("{s}", value)
        new = text.split("\n")
        at = next(n for n, line in enumerate(new) if value in line)
        line = len(lines) + at + 1
        lines.extend(new)
        lines.append("")
        return line

    for context, file, template in CONTEXTS:
        for ident, rule, make in KINDS:
            line = lay(file, template, ident, make(rng))
            expected.append({"path": file, "line": line, "rule": rule, "context": context})
        for what, value in DECOYS:
            line = lay(file, template, "api", value)
            decoys.append({"path": file, "line": line, "what": what, "context": context})
    for what, value in LOOSE_DECOYS:
        line = lay("notes.txt", "{s}", "", value)
        decoys.append({"path": "notes.txt", "line": line, "what": what, "context": "text"})

    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    for name, lines in files.items():
        with open(os.path.join(args.out, name), "w") as f:
            f.write("\n".join(lines))
    about = ("Generated by bench/scan_contexts.py: every credential is random and FAKE; "
             "decoys must not be reported at high or critical.")
    with open(args.out.rstrip("/") + ".json", "w") as f:
        json.dump({"about": about, "expected": expected, "decoys": decoys}, f, indent=1)
        f.write("\n")
    print(f"{args.out}: {len(files)} files, {len(expected)} credentials, {len(decoys)} decoys")


if __name__ == "__main__":
    main()

//! The rule table: which credential formats the scanner knows, with their regexes and checks.

use regex::Regex;

// Token formats (prefixes, alphabets, lengths) follow the providers' documentation and the rules
// of gitleaks (https://github.com/gitleaks/gitleaks, MIT licence, cmd/generate/config/rules),
// whose test cases bench/scan_gitleaks.py runs pipe against.

use super::{Check, Rule, RuleInfo, Scope, Severity};

/// A rule as written in the table below.
struct RuleDef {
    id: &'static str,
    severity: Severity,
    title: &'static str,
    message: &'static str,
    fix: &'static str,
    keywords: &'static [&'static str],
    patterns: &'static [&'static str],
    check: Check,
    scope: Scope,
}

impl RuleDef {
    fn build(self) -> Rule {
        Rule {
            info: RuleInfo {
                id: self.id,
                severity: self.severity,
                title: self.title,
                fix: self.fix,
            },
            message: self.message,
            scope: self.scope,
            keywords: self.keywords,
            patterns: self
                .patterns
                .iter()
                .map(|p| Regex::new(p).expect("built-in pattern"))
                .collect(),
            check: self.check,
        }
    }
}

/// "name = value" in the common languages and configuration formats: the name, an optional type
/// (`: &str`, `: String`, Go's `name string`), an assignment operator (`=`, `:`, `:=`, `=>`,
/// Make's `::=`, `:::=` and `?=`, PHP's `.=` and `??=`), then a double-quoted, single-quoted,
/// backquoted or bare value. `$also` adds other forms between name and value (the comma of
/// `set("NAME", "value")`).
macro_rules! assignment {
    ($key:expr, $bare:literal) => {
        assignment!($key, $bare, "")
    };
    ($key:expr, $bare:literal, $also:literal) => {
        concat!(
            r#"(?i)(?P<key>"#,
            $key,
            r#")(?:"#,
            $also,
            r#"["']?(?:\s*:\s*&?(?:'static\s+)?[a-z_][a-z0-9_:<>]*|[ \t]+[a-z_][a-z0-9_.<>\[\]]*)?"#,
            r#"\s*(?::{1,3}=|\?\??=|\.=|=>|[:=]))[ \t]*"#,
            r#"(?:"(?P<dq>[^"\r\n]*)"|'(?P<sq>[^'\r\n]*)'|`(?P<bq>[^`\r\n]*)`|(?P<secret>"#,
            $bare,
            r#"))"#
        )
    };
}

/// Names the entropy rule reads values of.
macro_rules! secret_name {
    () => {
        r"[a-z0-9_.\-]*(?:api[_.\-]?key|access[_.\-]?key|private[_.\-]?key|auth[_.\-]?key|secret|token|credential|passw(?:or)?d|auth|creds?)[a-z0-9_.\-]*"
    };
}

pub(super) fn builtin_rules() -> Vec<Rule> {
    use Check::*;
    use Scope::*;
    use Severity::*;
    [
        RuleDef {
            id: "aws-access-key-id",
            severity: Critical,
            title: "AWS access key ID",
            message: "An AWS access key ID is committed; its secret key is usually nearby.",
            fix: "Deactivate the key in AWS IAM, create a new one, and load it from the CI secret store or the environment instead.",
            keywords: &["akia", "asia", "abia", "acca"],
            patterns: &[r"(?P<secret>(?:AKIA|ASIA|ABIA|ACCA)(?P<body>[A-Z2-7]{16}))"],
            check: Token,
            scope: All,
        },
        RuleDef {
            id: "aws-secret-access-key",
            severity: Critical,
            title: "AWS secret access key",
            message: "An AWS secret access key is committed.",
            fix: "Deactivate the key pair in AWS IAM, create a new one, and load it from the CI secret store or the environment instead.",
            keywords: &["secret"],
            patterns: &[concat!(
                r#"(?i)(?P<key>[a-z0-9_.\-]*(?:aws[_.\-]?secret|secret[_.\-]?access)[a-z0-9_.\-]*)"#,
                r#"["']?\s*(?::=|=>|[:=])\s*["']?(?P<secret>[a-z0-9/+]{40})"#
            )],
            check: AwsSecret,
            scope: All,
        },
        RuleDef {
            id: "github-token",
            severity: Critical,
            title: "GitHub token",
            message: "A GitHub token is committed.",
            fix: "Revoke the token in GitHub's developer settings, create a new one, and load it from the CI secret store or the environment instead.",
            keywords: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
            patterns: &[
                r"(?P<secret>gh[pousr]_(?P<body>[A-Za-z0-9]{36,251}))",
                r"(?P<secret>github_pat_(?P<body>[A-Za-z0-9_]{82}))",
            ],
            check: Token,
            scope: All,
        },
        RuleDef {
            id: "gitlab-token",
            severity: Critical,
            title: "GitLab token",
            message: "A GitLab access, deploy, runner or agent token, or a session cookie, is committed.",
            fix: "Revoke the token in GitLab, create a new one, and load it from the CI secret store or the environment instead.",
            keywords: &["glpat-", "gldt-", "glrt-", "glcbt-", "glft-", "glimt-", "glsoat-", "gloas-", "glptt-", "gr1348941", "glffct-", "glagent-", "_gitlab_session="],
            patterns: &[
                // Routable tokens end in `.<2-char version><7-char checksum>` (with or without a dot between).
                r"(?P<secret>(?:glpat|gldt|glrt|glcbt|glft|glimt|glsoat|gloas|glffct|glagent)-(?P<body>[A-Za-z0-9_\-]{20,300}(?:\.[0-9a-z]{2}\.?[0-9a-z]{7,9})?))",
                r"(?P<secret>glptt-(?P<body>[0-9a-f]{40}))",
                r"(?P<secret>GR1348941(?P<body>[A-Za-z0-9_\-]{20}))",
                r"_gitlab_session=(?P<secret>[0-9a-z]{32})",
            ],
            check: Token,
            scope: All,
        },
        RuleDef {
            id: "slack-token",
            severity: High,
            title: "Slack token",
            message: "A Slack API token is committed.",
            fix: "Revoke the token in the Slack app settings, create a new one, and load it from the CI secret store or the environment instead.",
            keywords: &["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxo-", "xoxs-", "xoxe-", "xoxe.", "xapp-"],
            patterns: &[
                // Bot, user and refresh tokens: team, user and token ids of 8 to 14 digits.
                r"(?P<secret>xox[bpe]-(?P<body>(?:[0-9]{8,14}-){1,3}[0-9A-Za-z]{16,64}))",
                // Legacy workspace and session tokens: shorter ids and tails (`xoxs-…-e708ba56e1`).
                r"(?P<secret>xox[aors]-(?P<body>(?:[0-9]{1,16}-){1,4}[0-9A-Za-z]{8,64}))",
                // Legacy workspace tokens without ids.
                r"(?P<secret>xox[ar]-(?P<body>[0-9A-Za-z]{8,48}))",
                // Configuration refresh tokens (`xoxe-1-…`, 146 characters).
                r"(?P<secret>xoxe-[0-9]-(?P<body>[0-9A-Za-z]{140,160}))",
                // Refresh tokens (`xoxe.xoxp-1-…`) and app-level tokens (`xapp-1-A…-…-…`).
                r"(?P<secret>xoxe\.xox[bp]-[0-9]-(?P<body>[0-9A-Za-z]{30,180}))",
                r"(?P<secret>xapp-[0-9]-[A-Z0-9]{8,12}-[0-9]{10,14}-(?P<body>[0-9a-f]{40,80}))",
            ],
            check: DigitToken,
            scope: All,
        },
        RuleDef {
            id: "slack-webhook",
            severity: Medium,
            title: "Slack incoming webhook",
            message: "A Slack incoming webhook URL is committed; anyone holding it can post to the channel.",
            fix: "Regenerate the webhook in the Slack app settings and load its URL from the CI secret store or the environment instead.",
            keywords: &["hooks.slack.com"],
            patterns: &[
                r"https?://hooks\.slack\.com/services/T[A-Z0-9]{6,12}/B[A-Z0-9]{6,12}/(?P<secret>[A-Za-z0-9]{20,32})",
                r"https?://hooks\.slack\.com/(?:workflows|triggers)/T[A-Z0-9]{6,12}/[A-Z0-9]{6,14}/[0-9]{6,24}/(?P<secret>[A-Za-z0-9]{20,48})",
                // Any other path of a hook's length, with or without a scheme.
                r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[A-Za-z0-9+/]{43,56})",
            ],
            check: Token,
            scope: All,
        },
        RuleDef {
            id: "stripe-secret-key",
            severity: Critical,
            title: "Stripe live secret key",
            message: "A Stripe live secret or restricted key is committed.",
            fix: "Roll the key in the Stripe dashboard and load it from the CI secret store or the environment instead.",
            keywords: &["sk_live_", "rk_live_", "sk_prod_", "rk_prod_"],
            patterns: &[r"(?P<secret>[sr]k_(?:live|prod)_(?P<body>[0-9A-Za-z]{24,247}))"],
            check: Token,
            scope: All,
        },
        RuleDef {
            id: "stripe-test-key",
            severity: Low,
            title: "Stripe test secret key",
            message: "A Stripe test-mode secret key is committed; it only reaches test data.",
            fix: "Roll the key in the Stripe dashboard (test mode) and load it from the environment instead.",
            keywords: &["sk_test_", "rk_test_"],
            patterns: &[r"(?P<secret>[sr]k_test_(?P<body>[0-9A-Za-z]{24,247}))"],
            check: Token,
            scope: All,
        },
        RuleDef {
            id: "google-api-key",
            severity: High,
            title: "Google API key",
            message: "A Google API key is committed.",
            fix: "Delete or restrict the key in the Google Cloud console, create a new one, and load it from the CI secret store or the environment instead.",
            keywords: &["aiza"],
            patterns: &[r"(?P<secret>AIza(?P<body>[0-9A-Za-z_\-]{35}))"],
            check: Token,
            scope: All,
        },
        RuleDef {
            id: "npm-token",
            severity: Critical,
            title: "npm access token",
            message: "An npm access token is committed.",
            fix: "Revoke the token with `npm token revoke` and read it from NPM_TOKEN in .npmrc (`${NPM_TOKEN}`) instead.",
            keywords: &["npm_", "_authtoken"],
            patterns: &[
                r"(?P<secret>npm_(?P<body>[A-Za-z0-9]{36}))",
                r":_authToken=(?P<secret>[A-Za-z0-9_\-.+/=]{20,})",
            ],
            check: Token,
            scope: All,
        },
        RuleDef {
            id: "pypi-token",
            severity: Critical,
            title: "PyPI API token",
            message: "A PyPI upload token is committed.",
            fix: "Remove the token in the PyPI account settings, create a new one (or use trusted publishing), and load it from the CI secret store instead.",
            keywords: &["pypi-ageichlwas5vcmc", "pypi-agendgvzdc5wexbplm9yzw"],
            patterns: &[r"(?P<secret>pypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)(?P<body>[A-Za-z0-9_\-]{50,}))"],
            check: Token,
            scope: All,
        },
        RuleDef {
            id: "private-key",
            severity: Critical,
            title: "Private key",
            message: "A PEM private key is committed.",
            fix: "Treat the key as compromised: replace it, revoke what it signed, and mount it from the CI secret store at run time instead.",
            keywords: &["private key"],
            patterns: &[r"-----BEGIN (?:RSA |DSA |EC |ENCRYPTED |PGP |SSH2 ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----"],
            check: PemBody,
            scope: All,
        },
        RuleDef {
            id: "openssh-private-key",
            severity: Critical,
            title: "OpenSSH private key",
            message: "An OpenSSH private key is committed.",
            fix: "Replace the key pair, remove the public key from every authorized_keys and deploy-key list, and mount the new key from the CI secret store instead.",
            keywords: &["private key"],
            patterns: &[r"-----BEGIN OPENSSH PRIVATE KEY-----"],
            check: PemBody,
            scope: All,
        },
        RuleDef {
            id: "putty-private-key",
            severity: Critical,
            title: "PuTTY private key",
            message: "A PuTTY private key file is committed.",
            fix: "Replace the key pair, remove the public key wherever it is authorised, and keep the new key out of the repository.",
            keywords: &["putty-user-key-file-"],
            patterns: &[r"PuTTY-User-Key-File-[23]: [A-Za-z0-9@.\-]+"],
            check: PuttyBody,
            scope: All,
        },
        RuleDef {
            id: "jwt",
            severity: Medium,
            title: "JSON Web Token",
            message: "A signed JSON Web Token is committed; it grants access until it expires.",
            fix: "Invalidate the token (rotate the signing key if it does not expire) and obtain tokens at run time instead.",
            keywords: &["eyj"],
            patterns: &[r"(?P<secret>eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.(?P<body>[A-Za-z0-9_\-]{16,}))"],
            check: Jwt,
            scope: All,
        },
        RuleDef {
            id: "url-credentials",
            severity: High,
            title: "Credentials in a URL",
            message: "A URL embeds a user name and password.",
            fix: "Change the password and pass it separately (environment variable or secret store) instead of in the URL.",
            keywords: &["://"],
            patterns: &[concat!(
                r#"(?i)\b[a-z][a-z0-9+.\-]{1,19}://(?P<user>[^\s:/@'"<>]{0,64}):(?P<secret>[^\s@/'"<>]{3,128})"#,
                r#"@(?P<host>[a-z0-9][a-z0-9.\-]*|\[[0-9a-f:.]+\])"#
            )],
            check: UrlCredentials,
            scope: All,
        },
        RuleDef {
            id: "password-assignment",
            severity: High,
            title: "Password in a configuration file",
            message: "A configuration file sets a literal password.",
            fix: "Change the password and reference it from the environment or a secret store (e.g. `${DB_PASSWORD}`) instead.",
            keywords: &["pass", "pwd"],
            patterns: &[
                assignment!(r"[a-z0-9_.\-]*(?:pass(?:word|wd|phrase)?|pwd)", r#"[^\s"',;]*"#),
                r"(?i)<(?P<key>[a-z0-9_.\-:]*(?:password|passwd|pwd))>(?P<secret>[^<\s]{1,200})</",
            ],
            check: Password,
            scope: ConfigFiles,
        },
        RuleDef {
            id: "high-entropy-secret",
            severity: Medium,
            title: "High-entropy secret",
            message: "A random-looking value is assigned to a secret-like name.",
            fix: "If this is a credential, rotate it and load it from the CI secret store or the environment instead.",
            keywords: &[
                "apikey", "api_key", "api-key", "api.key", "accesskey", "access_key", "access-key",
                "access.key", "privatekey", "private_key", "private-key", "private.key", "authkey",
                "auth_key", "auth-key", "secret", "token", "credential", "passw",
                // `auth` and `creds` as whole names, followed by what ends a name: plain `auth`
                // would send every `author` and `oauth` line to the regex.
                "auth=", "auth:", "auth\"", "auth'", "auth ", "auth\t", "creds=", "creds:",
                "creds\"", "creds'", "creds ", "creds\t", "cred=", "cred:", "cred\"", "cred'",
                "cred ", "cred\t",
            ],
            patterns: &[
                assignment!(secret_name!(), r"[A-Za-z0-9+/=_\-.~]{20,256}", r#"["']\s*,|"#),
                // An XML element whose value stands on the next line.
                concat!(r"(?i)^\s*(?P<xml><(?P<key>", secret_name!(), r")>)\s*$"),
            ],
            check: Entropy,
            scope: All,
        },
    ]
    .into_iter()
    .map(RuleDef::build)
    .collect()
}

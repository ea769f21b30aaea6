//! Secrets in command lines: what `list_processes` hides before a command line
//! reaches a caller (and from there a model's context or a transcript).
//!
//! `PROCESS_CMDLINE` chooses: `redacted` (the default) applies the rules below,
//! `full` shows command lines as they are, `none` shows no command line at all.
//!
//! The rules, applied to each argument (`/proc/<pid>/cmdline` keeps them apart);
//! the hidden part becomes `***`:
//! 1. `key=value` anywhere in an argument (`--password=x`, `-Dtoken=x`,
//!    `PGPASSWORD=x`, `?api_key=x&...`) when the key names a secret: it contains
//!    `pass`, `pwd`, `secret`, `token`, `apikey` / `api-key` / `api_key`,
//!    `credential`, `private-key` / `private_key`, `access-key` / `access_key` /
//!    `accesskey`, `basic-auth`, `session`, `cookie`, `signature` or ends in `key`
//!    (case-insensitive); except keys ending in `file`, `path` or `dir`, whose
//!    value is a path, not the secret;
//! 2. `--password value`: an option (leading `-`) whose name names a secret, as in
//!    rule 1, hides the next argument;
//! 3. URLs with a password: `scheme://user:pass@host` becomes `scheme://user:***@host`;
//! 4. `Bearer x` / `Basic x` (an `Authorization:` header given to curl, say) hide `x`,
//!    in the same argument or the next one;
//! 5. well-known token shapes anywhere: AWS access key ids (`AKIA…`, `ASIA…`),
//!    GitHub (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`), GitLab
//!    (`glpat-`), Slack (`xoxb-`, `xoxp-`, `xoxa-`, `xoxs-`, `xoxr-`), OpenAI-style
//!    `sk-…` keys and JWTs (`eyJ….eyJ….…`).
//!
//! Rules err on hiding too much. They cannot know every secret (a password passed
//! as a bare positional argument looks like any other word): use `none` on nodes
//! where that matters.

use std::borrow::Cow;

/// How `list_processes` shows command lines (`PROCESS_CMDLINE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CmdlineMode {
    /// Likely secrets replaced by `***` (the default).
    #[default]
    Redacted,
    /// As the kernel has them.
    Full,
    /// No command lines at all.
    None,
}

impl CmdlineMode {
    /// Parses `redacted`, `full` or `none`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "redacted" => Ok(CmdlineMode::Redacted),
            "full" => Ok(CmdlineMode::Full),
            "none" => Ok(CmdlineMode::None),
            other => Err(format!("{other:?}: use redacted, full or none")),
        }
    }
}

/// What replaces a secret.
pub const MASK: &str = "***";

/// Words that make a key or option name a secret's.
const SECRET_WORDS: &[&str] = &[
    "pass",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api-key",
    "api_key",
    "credential",
    "private-key",
    "private_key",
    "access-key",
    "access_key",
    "accesskey",
    "basic-auth",
    "basic_auth",
    "basicauth",
    "session",
    "cookie",
    "signature",
];

/// Name endings whose values are paths, not secrets.
const PATH_SUFFIXES: &[&str] = &["file", "path", "dir"];

/// Whether an option / key name (dashes and all) names a secret.
fn is_secret_name(name: &str) -> bool {
    let n = name.trim_start_matches('-').to_ascii_lowercase();
    if n.is_empty() || PATH_SUFFIXES.iter().any(|s| n.ends_with(s)) {
        return false;
    }
    SECRET_WORDS.iter().any(|w| n.contains(w)) || n.ends_with("key")
}

/// A raw `/proc/<pid>/cmdline` (NUL-separated arguments; a process that rewrote its
/// title may use spaces instead) with the secrets of the rules above hidden.
pub fn redact_cmdline(raw: &[u8]) -> String {
    let end = raw.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let text = String::from_utf8_lossy(&raw[..end]);
    let args: Vec<&str> = if text.contains('\0') {
        text.split('\0').collect()
    } else {
        text.split(' ').collect()
    };
    redact_args(&args)
}

/// The arguments of a raw `/proc/<pid>/cmdline` (NUL-separated), with the secrets
/// of the rules above hidden, joined with spaces.
pub fn redact_args(args: &[&str]) -> String {
    let mut out: Vec<Cow<'_, str>> = Vec::with_capacity(args.len());
    let mut hide_next = false;
    for arg in args {
        if hide_next && !arg.is_empty() && !arg.starts_with('-') {
            hide_next = false;
            out.push(Cow::Borrowed(MASK));
            continue;
        }
        hide_next = false;
        let trimmed = arg.trim();
        // Rule 2: `--password value`.
        if trimmed.starts_with('-') && !trimmed.contains('=') && is_secret_name(trimmed) {
            hide_next = true;
        }
        // Rule 4, split: `... Bearer` `token`.
        let lower = trimmed.to_ascii_lowercase();
        if lower == "bearer" || lower == "basic" || lower.ends_with(" bearer") {
            hide_next = true;
        }
        out.push(redact_one(arg));
    }
    out.join(" ")
}

/// Rules 1, 3, 4 and 5 within one argument.
pub fn redact_one(arg: &str) -> Cow<'_, str> {
    let mut s = Cow::Borrowed(arg);
    if s.contains('=') {
        s = Cow::Owned(redact_key_values(&s));
    }
    if s.contains("://") {
        s = Cow::Owned(redact_url_passwords(&s));
    }
    let lower = s.to_ascii_lowercase();
    if lower.contains("bearer ") || lower.contains("basic ") {
        s = Cow::Owned(redact_after_scheme(&s));
    }
    if has_token_shape(&s) {
        s = Cow::Owned(redact_token_shapes(&s));
    }
    s
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Where a value in `key=value` ends.
fn is_value_end(c: char) -> bool {
    matches!(c, '&' | ' ' | ';' | '"' | '\'')
}

/// Rule 1: `key=value` with a secret key.
fn redact_key_values(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(eq) = rest.find('=') {
        let (before, after) = rest.split_at(eq);
        let key_start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| is_key_char(*c))
            .last()
            .map_or(before.len(), |(i, _)| i);
        let key = &before[key_start..];
        out.push_str(before);
        out.push('=');
        let value = &after[1..];
        if is_secret_name(key) {
            let end = value.find(is_value_end).unwrap_or(value.len());
            if end > 0 {
                out.push_str(MASK);
            }
            rest = &value[end..];
        } else {
            rest = value;
        }
    }
    out.push_str(rest);
    out
}

/// Rule 3: `scheme://user:password@host`.
fn redact_url_passwords(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (before, after) = rest.split_at(i + 3);
        out.push_str(before);
        // The authority ends at the first '/', '?', '#' or space.
        let auth_end = after.find(['/', '?', '#', ' ']).unwrap_or(after.len());
        let authority = &after[..auth_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, pass)) if !pass.is_empty() => {
                        out.push_str(user);
                        out.push(':');
                        out.push_str(MASK);
                    }
                    _ => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[auth_end..];
    }
    out.push_str(rest);
    out
}

/// Rule 4: the credential after `Bearer ` / `Basic `.
fn redact_after_scheme(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    loop {
        let lower = rest.to_ascii_lowercase();
        let found = ["bearer ", "basic "]
            .iter()
            .filter_map(|w| lower.find(w).map(|i| (i, w.len())))
            .min();
        let Some((i, len)) = found else { break };
        out.push_str(&rest[..i + len]);
        let after = &rest[i + len..];
        let skipped = after.len() - after.trim_start().len();
        out.push_str(&after[..skipped]);
        let after = &after[skipped..];
        let end = after
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(after.len());
        if end > 0 {
            out.push_str(MASK);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Token prefixes of rule 5 and the least length of a whole token with them.
const TOKEN_PREFIXES: &[(&str, usize)] = &[
    ("AKIA", 20),
    ("ASIA", 20),
    ("ghp_", 20),
    ("gho_", 20),
    ("ghu_", 20),
    ("ghs_", 20),
    ("ghr_", 20),
    ("github_pat_", 30),
    ("glpat-", 20),
    ("xoxb-", 15),
    ("xoxp-", 15),
    ("xoxa-", 15),
    ("xoxs-", 15),
    ("xoxr-", 15),
    ("sk-", 20),
];

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+' | '/')
}

fn looks_like_token(word: &str) -> bool {
    if let Some(rest) = word.strip_prefix("eyJ")
        && let Some((_, payload)) = rest.split_once('.')
        && payload.starts_with("eyJ")
        && word.matches('.').count() >= 2
    {
        return true;
    }
    TOKEN_PREFIXES.iter().any(|(p, min)| {
        if !word.starts_with(p) || word.len() < *min {
            return false;
        }
        let aws = *p == "AKIA" || *p == "ASIA";
        !aws || word[p.len()..]
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    })
}

fn words(s: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut start = None;
    let mut out = Vec::new();
    for (i, c) in s.char_indices() {
        match (is_token_char(c), start) {
            (true, None) => start = Some(i),
            (false, Some(b)) => {
                out.push((b, &s[b..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(b) = start {
        out.push((b, &s[b..]));
    }
    out.into_iter()
}

fn has_token_shape(s: &str) -> bool {
    words(s).any(|(_, w)| looks_like_token(w))
}

/// Rule 5: well-known token shapes.
fn redact_token_shapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for (i, w) in words(s) {
        if looks_like_token(w) {
            out.push_str(&s[last..i]);
            out.push_str(MASK);
            last = i + w.len();
        }
    }
    out.push_str(&s[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(args: &[&str]) -> String {
        redact_args(args)
    }

    #[test]
    fn options_with_secret_names_hide_their_values() {
        assert_eq!(
            r(&["mysqld", "--password=hunter2", "--port=3306"]),
            "mysqld --password=*** --port=3306"
        );
        assert_eq!(
            r(&["app", "--token", "abc123", "--verbose"]),
            "app --token *** --verbose"
        );
        assert_eq!(r(&["app", "-p", "x"]), "app -p x", "too short to be a name");
        assert_eq!(
            r(&[
                "java",
                "-Djavax.net.ssl.keyStorePassword=changeit",
                "-jar",
                "a.jar"
            ]),
            "java -Djavax.net.ssl.keyStorePassword=*** -jar a.jar"
        );
        assert_eq!(r(&["x", "--client-secret=s3"]), "x --client-secret=***");
        assert_eq!(r(&["x", "--api-key", "k"]), "x --api-key ***");
    }

    #[test]
    fn paths_are_not_secrets() {
        let line = r(&[
            "kube-apiserver",
            "--service-account-key-file=/etc/kubernetes/pki/sa.pub",
            "--token-auth-file=/etc/tokens.csv",
            "--secure-port=6443",
        ]);
        assert_eq!(
            line,
            "kube-apiserver --service-account-key-file=/etc/kubernetes/pki/sa.pub --token-auth-file=/etc/tokens.csv --secure-port=6443"
        );
    }

    #[test]
    fn environment_style_arguments() {
        assert_eq!(
            r(&[
                "env",
                "PGPASSWORD=pw",
                "AWS_SECRET_ACCESS_KEY=abc/def",
                "HOME=/root",
                "psql"
            ]),
            "env PGPASSWORD=*** AWS_SECRET_ACCESS_KEY=*** HOME=/root psql"
        );
        assert_eq!(r(&["x", "DB_KEY=v"]), "x DB_KEY=***");
    }

    #[test]
    fn urls_with_passwords_and_secret_query_parameters() {
        assert_eq!(
            r(&["git", "clone", "https://bob:pa55@git.example.com/repo.git"]),
            "git clone https://bob:***@git.example.com/repo.git"
        );
        assert_eq!(
            r(&["redis-cli", "-u", "redis://:pw@10.0.0.1:6379/0"]),
            "redis-cli -u redis://:***@10.0.0.1:6379/0"
        );
        assert_eq!(
            r(&["curl", "https://h/x?access_token=abc&page=2"]),
            "curl https://h/x?access_token=***&page=2"
        );
        assert_eq!(
            r(&["curl", "https://user@h/x"]),
            "curl https://user@h/x",
            "no password, nothing to hide"
        );
    }

    #[test]
    fn authorization_headers() {
        assert_eq!(
            r(&["curl", "-H", "Authorization: Bearer abc.def", "https://h"]),
            "curl -H Authorization: Bearer *** https://h"
        );
        assert_eq!(
            r(&["curl", "-H", "authorization: basic dXNlcjpwdw==", "h"]),
            "curl -H authorization: basic *** h"
        );
        assert_eq!(r(&["tool", "Bearer", "tok"]), "tool Bearer ***");
    }

    #[test]
    fn well_known_token_shapes() {
        assert_eq!(r(&["aws", "AKIAIOSFODNN7EXAMPLE"]), "aws ***");
        assert_eq!(
            r(&["x", "--header=X-Gh: ghp_abcdefghijklmnopqrstuvwxyz0123"]),
            "x --header=X-Gh: ***"
        );
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        assert_eq!(r(&["agent", jwt]), "agent ***");
        assert_eq!(r(&["x", "xoxb-1234-5678-abcdef"]), "x ***");
        assert_eq!(
            r(&["sleep", "AKIA"]),
            "sleep AKIA",
            "a prefix alone is not a token"
        );
    }

    #[test]
    fn ordinary_command_lines_are_untouched() {
        let args = [
            "/usr/bin/kubelet",
            "--config=/var/lib/kubelet/config.yaml",
            "--node-ip=10.0.0.5",
            "--v=2",
        ];
        assert_eq!(r(&args), args.join(" "));
        assert_eq!(
            r(&["sshd:", "/usr/sbin/sshd -D"]),
            "sshd: /usr/sbin/sshd -D"
        );
    }

    #[test]
    fn raw_command_lines() {
        assert_eq!(
            redact_cmdline(b"psql\0--password\0pw\0db\0\0"),
            "psql --password *** db"
        );
        assert_eq!(
            redact_cmdline(b"worker: --token abc (rewritten title)"),
            "worker: --token *** (rewritten title)"
        );
        assert_eq!(redact_cmdline(b""), "");
    }

    #[test]
    fn modes_parse() {
        assert_eq!(CmdlineMode::parse("Redacted"), Ok(CmdlineMode::Redacted));
        assert_eq!(CmdlineMode::parse("full"), Ok(CmdlineMode::Full));
        assert_eq!(CmdlineMode::parse("none"), Ok(CmdlineMode::None));
        assert!(CmdlineMode::parse("some").is_err());
        assert_eq!(CmdlineMode::default(), CmdlineMode::Redacted);
    }
}

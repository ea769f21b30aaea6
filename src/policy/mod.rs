//! Authorization: which caller may see and call which tool on which node.
//!
//! The policy comes from `POLICY_FILE` (YAML, or JSON, which is YAML too):
//!
//! ```yaml
//! default: deny                 # what callers no rule names get: deny | allow
//! rules:
//!   - name: ops-agent           # optional, shown in refusals and logs
//!     subjects:                 # any one matching is enough
//!       - serviceAccount: ops/agent        # namespace/name (Kubernetes mode)
//!       - group: "platform-admins"         # Kubernetes or OAuth groups
//!       - user: "alice@example.com"        # Kubernetes user name or OAuth `sub`
//!       - scope: "mcp:node-tools"          # an OAuth scope of the token
//!     tools: ["*"]              # tool name globs, or the built-in set: read-only
//!     nodes: ["worker-*"]       # node name globs (default: every node)
//! ```
//!
//! Every value is a glob (`*` any run of characters, `?` one). A caller may call a tool
//! on a node when any rule naming it allows both; tools/list shows the tools it may
//! call on at least one node. `tools: read-only` allows exactly the tools whose backend
//! definition says `annotations.readOnlyHint: true`. A caller no rule names gets the
//! `default`. Without a `POLICY_FILE` everything is allowed ([`Policy::allow_all`]).
//!
//! [`PolicyStore`] holds the policy in force and re-reads the file when its content
//! changes (a ConfigMap update swaps a symlink, so the content is compared, not the
//! modification time); a file that does not parse keeps the previous policy and logs
//! an error.

mod store;

use serde::Deserialize;
use std::path::PathBuf;

use crate::auth::{Caller, CallerSource};

pub use store::{PolicyStore, Reload, follow_file};

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read POLICY_FILE {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file is not a valid policy.
    #[error("POLICY_FILE {path} is not a valid policy: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

/// The file format, as written by operators.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    /// What callers no rule names get.
    default: Decision,
    /// The rules, any of which may grant.
    #[serde(default)]
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Decision {
    Allow,
    Deny,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    /// Shown in refusals ("rule N" when absent).
    #[serde(default)]
    name: Option<String>,
    /// Who the rule is for (any one matching).
    subjects: Vec<SubjectSpec>,
    /// Which tools: globs or the built-in set.
    tools: ToolsSpec,
    /// Which nodes (globs); every node when absent.
    #[serde(default)]
    nodes: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
enum SubjectSpec {
    User(String),
    Group(String),
    ServiceAccount(String),
    Scope(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ToolsSpec {
    List(Vec<String>),
    Builtin(String),
}

/// The name of the built-in rule set of read-only tools.
pub const READ_ONLY: &str = "read-only";

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `default: allow`.
    default_allow: bool,
    /// The compiled rules, in file order.
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    /// For messages.
    name: String,
    /// Who it applies to.
    subjects: Vec<Subject>,
    /// What it allows.
    tools: Tools,
    /// Where it allows it.
    nodes: Vec<Glob>,
}

#[derive(Debug, Clone)]
enum Subject {
    User(Glob),
    Group(Glob),
    ServiceAccount { namespace: Glob, name: Glob },
    Scope(Glob),
}

#[derive(Debug, Clone)]
enum Tools {
    ReadOnly,
    Globs(Vec<Glob>),
}

/// What a tool is, for the policy: its name and whether its backend says it only reads.
#[derive(Debug, Clone, Copy)]
pub struct ToolFacts<'a> {
    /// Tool name.
    pub name: &'a str,
    /// `annotations.readOnlyHint == true` in the backend definition.
    pub read_only: bool,
}

/// Why a call is refused, in words for the model and the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial(pub String);

impl Policy {
    /// Everything allowed to everyone (no POLICY_FILE).
    pub fn allow_all() -> Self {
        Policy {
            default_allow: true,
            rules: Vec::new(),
        }
    }

    /// Parses a policy document (YAML or JSON).
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: PolicyFile = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        let mut rules = Vec::with_capacity(file.rules.len());
        for (i, spec) in file.rules.into_iter().enumerate() {
            let name = spec.name.unwrap_or_else(|| format!("rule {}", i + 1));
            if spec.subjects.is_empty() {
                return Err(format!(
                    "{name}: `subjects` is empty (it would match nobody)"
                ));
            }
            let subjects = spec
                .subjects
                .into_iter()
                .map(|s| compile_subject(s).map_err(|e| format!("{name}: {e}")))
                .collect::<Result<_, _>>()?;
            let tools = match spec.tools {
                ToolsSpec::Builtin(s) if s == READ_ONLY => Tools::ReadOnly,
                ToolsSpec::Builtin(s) => {
                    return Err(format!(
                        "{name}: tools must be a list of tool name globs (e.g. [\"*\"]) or the built-in set `{READ_ONLY}`, not {s:?}"
                    ));
                }
                ToolsSpec::List(l) => Tools::Globs(l.iter().map(|p| Glob::new(p)).collect()),
            };
            let nodes = match spec.nodes {
                None => vec![Glob::new("*")],
                Some(n) => n.iter().map(|p| Glob::new(p)).collect(),
            };
            rules.push(Rule {
                name,
                subjects,
                tools,
                nodes,
            });
        }
        Ok(Policy {
            default_allow: file.default == Decision::Allow,
            rules,
        })
    }

    /// What `caller` is granted: the rules naming it (or the default).
    pub fn grants<'p>(&'p self, caller: &Caller) -> Grants<'p> {
        let rules: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| r.subjects.iter().any(|s| s.matches(caller)))
            .collect();
        let all = rules.is_empty() && self.default_allow;
        Grants {
            rules,
            all,
            default_allow: self.default_allow,
        }
    }

    /// Whether this policy lets everyone do everything.
    pub fn is_allow_all(&self) -> bool {
        self.default_allow && self.rules.is_empty()
    }

    /// Number of rules.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }
}

/// The part of the policy that applies to one caller.
#[derive(Debug)]
pub struct Grants<'p> {
    rules: Vec<&'p Rule>,
    /// No rule names the caller and the default is allow.
    all: bool,
    default_allow: bool,
}

impl Grants<'_> {
    /// Whether the caller may call `tool` on at least one node (so tools/list shows it).
    pub fn may_see(&self, tool: ToolFacts<'_>) -> bool {
        self.all
            || self
                .rules
                .iter()
                .any(|r| r.tools.allows(tool) && !r.nodes.is_empty())
    }

    /// Whether the caller may call everything (the unfiltered list can be served).
    pub fn sees_everything(&self) -> bool {
        self.all
    }

    /// May the caller call `tool` on `node`? Err says what is missing.
    pub fn check(&self, subject: &str, tool: ToolFacts<'_>, node: &str) -> Result<(), Denial> {
        if self.all {
            return Ok(());
        }
        if self.rules.is_empty() {
            debug_assert!(!self.default_allow);
            return Err(Denial(format!(
                "Not allowed: the gateway's policy grants \"{subject}\" nothing (no rule names it and the default is deny). Ask the operator to add a rule for it to the policy file."
            )));
        }
        let for_tool: Vec<&&Rule> = self.rules.iter().filter(|r| r.tools.allows(tool)).collect();
        if for_tool.is_empty() {
            return Err(Denial(format!(
                "Not allowed: \"{subject}\" may not call tool \"{}\" (policy rules {} do not include it{}).",
                tool.name,
                names(&self.rules),
                if tool.read_only {
                    ""
                } else {
                    "; the tool is not read-only"
                }
            )));
        }
        if for_tool
            .iter()
            .any(|r| r.nodes.iter().any(|g| g.matches(node)))
        {
            return Ok(());
        }
        let allowed: Vec<&str> = for_tool
            .iter()
            .flat_map(|r| r.nodes.iter().map(|g| g.0.as_str()))
            .collect();
        Err(Denial(format!(
            "Not allowed: \"{subject}\" may call tool \"{}\" only on nodes matching {}, not on node \"{node}\".",
            tool.name,
            if allowed.is_empty() {
                "nothing".to_string()
            } else {
                allowed.join(", ")
            }
        )))
    }
}

fn names(rules: &[&Rule]) -> String {
    rules
        .iter()
        .map(|r| format!("\"{}\"", r.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn compile_subject(s: SubjectSpec) -> Result<Subject, String> {
    let nonempty = |kind: &str, v: &str| {
        if v.trim().is_empty() {
            Err(format!("subject {kind} is empty"))
        } else {
            Ok(())
        }
    };
    Ok(match s {
        SubjectSpec::User(u) => {
            nonempty("user", &u)?;
            Subject::User(Glob::new(&u))
        }
        SubjectSpec::Group(g) => {
            nonempty("group", &g)?;
            Subject::Group(Glob::new(&g))
        }
        SubjectSpec::Scope(s) => {
            nonempty("scope", &s)?;
            Subject::Scope(Glob::new(&s))
        }
        SubjectSpec::ServiceAccount(sa) => {
            let (ns, name) = sa
                .split_once('/')
                .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
                .ok_or_else(|| {
                    format!("serviceAccount {sa:?} must be namespace/name (e.g. ops/agent)")
                })?;
            Subject::ServiceAccount {
                namespace: Glob::new(ns),
                name: Glob::new(name),
            }
        }
    })
}

/// The user-name prefix of Kubernetes ServiceAccounts.
const SA_PREFIX: &str = "system:serviceaccount:";

impl Subject {
    fn matches(&self, caller: &Caller) -> bool {
        if caller.source == CallerSource::Anonymous {
            return false;
        }
        match self {
            Subject::User(g) => g.matches(&caller.subject),
            Subject::Group(g) => caller.groups.iter().any(|x| g.matches(x)),
            Subject::Scope(g) => caller.scopes.iter().any(|x| g.matches(x)),
            Subject::ServiceAccount { namespace, name } => {
                caller.source == CallerSource::Kubernetes
                    && caller
                        .subject
                        .strip_prefix(SA_PREFIX)
                        .and_then(|rest| rest.split_once(':'))
                        .is_some_and(|(ns, n)| namespace.matches(ns) && name.matches(n))
            }
        }
    }
}

impl Tools {
    fn allows(&self, tool: ToolFacts<'_>) -> bool {
        match self {
            Tools::ReadOnly => tool.read_only,
            Tools::Globs(g) => g.iter().any(|g| g.matches(tool.name)),
        }
    }
}

/// A name pattern: `*` matches any run of characters, `?` exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    /// A glob for `pattern`.
    pub fn new(pattern: &str) -> Self {
        Glob(pattern.to_string())
    }

    /// Whether `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let p: Vec<char> = self.0.chars().collect();
        if !self.0.contains(['*', '?']) {
            return self.0 == text;
        }
        let t: Vec<char> = text.chars().collect();
        // Iterative wildcard matching with one backtrack point (linear-ish, no recursion).
        let (mut pi, mut ti) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
                pi += 1;
                ti += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some((pi, ti));
                pi += 1;
            } else if let Some((sp, st)) = star {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        while pi < p.len() && p[pi] == '*' {
            pi += 1;
        }
        pi == p.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(ns: &str, name: &str) -> Caller {
        Caller {
            source: CallerSource::Kubernetes,
            subject: format!("system:serviceaccount:{ns}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
            ],
            scopes: vec![],
        }
    }

    fn oauth(sub: &str, scopes: &[&str]) -> Caller {
        Caller {
            source: CallerSource::OAuth,
            subject: sub.into(),
            groups: vec!["devs".into()],
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    const RO: ToolFacts<'static> = ToolFacts {
        name: "list_processes",
        read_only: true,
    };
    const RW: ToolFacts<'static> = ToolFacts {
        name: "kill_process",
        read_only: false,
    };

    const POLICY: &str = r#"
default: deny
rules:
  - name: agents
    subjects:
      - serviceAccount: ops/agent
      - scope: "mcp:read"
    tools: read-only
  - name: admins
    subjects: [{group: "platform-*"}, {user: "alice"}]
    tools: ["*"]
    nodes: ["worker-*"]
"#;

    #[test]
    fn globs() {
        let g = Glob::new("worker-*");
        assert!(g.matches("worker-1") && g.matches("worker-"));
        assert!(!g.matches("master-1"));
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("a?c").matches("abc") && !Glob::new("a?c").matches("ac"));
        assert!(Glob::new("*-x-*").matches("a-x-b-x-c"));
        assert!(Glob::new("exact").matches("exact") && !Glob::new("exact").matches("exac"));
        assert!(!Glob::new("a*b").matches("acbd"));
    }

    #[test]
    fn rules_match_subjects_tools_and_nodes() {
        let p = Policy::parse(POLICY).unwrap();
        let g = p.grants(&sa("ops", "agent"));
        assert!(g.may_see(RO) && !g.may_see(RW));
        assert!(g.check("x", RO, "any-node").is_ok());
        let d = g.check("x", RW, "n").unwrap_err();
        assert!(d.0.contains("tool \"kill_process\""), "{d:?}");
        // Same name in another namespace: nothing.
        let g = p.grants(&sa("dev", "agent"));
        assert!(!g.may_see(RO));
        assert!(
            g.check("x", RO, "n")
                .unwrap_err()
                .0
                .contains("no rule names it")
        );
        // OAuth scope.
        assert!(p.grants(&oauth("bob", &["mcp:read"])).may_see(RO));
        // A ServiceAccount rule never matches an OAuth subject that looks like one.
        let fake = Caller {
            source: CallerSource::OAuth,
            ..sa("ops", "agent")
        };
        assert!(!p.grants(&fake).may_see(RO));
        // Admins: every tool, worker nodes only.
        let g = p.grants(&oauth("alice", &[]));
        assert!(g.may_see(RW));
        assert!(g.check("alice", RW, "worker-3").is_ok());
        let d = g.check("alice", RW, "master-0").unwrap_err();
        assert!(
            d.0.contains("only on nodes matching worker-*") && d.0.contains("master-0"),
            "{d:?}"
        );
        // Anonymous callers only ever get the default.
        assert!(!p.grants(&Caller::anonymous()).may_see(RO));
    }

    #[test]
    fn defaults_and_allow_all() {
        let open = Policy::allow_all();
        assert!(open.is_allow_all());
        let g = open.grants(&Caller::anonymous());
        assert!(g.sees_everything() && g.check("a", RW, "n").is_ok());
        let p = Policy::parse("default: allow\nrules: []\n").unwrap();
        assert!(p.grants(&Caller::anonymous()).sees_everything());
        let p = Policy::parse(r#"{"default":"deny"}"#).unwrap();
        assert!(!p.grants(&sa("a", "b")).may_see(RO));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        for (text, needle) in [
            ("default: maybe\n", "maybe"),
            ("rules: []\n", "default"),
            (
                "default: deny\nrules:\n  - subjects: []\n    tools: ['*']\n",
                "empty",
            ),
            (
                "default: deny\nrules:\n  - subjects: [{serviceAccount: agent}]\n    tools: ['*']\n",
                "namespace/name",
            ),
            (
                "default: deny\nrules:\n  - subjects: [{user: a}]\n    tools: everything\n",
                "read-only",
            ),
            (
                "default: deny\nrules:\n  - subjects: [{colour: a}]\n    tools: ['*']\n",
                "colour",
            ),
            ("default: deny\nextra: 1\n", "extra"),
        ] {
            let e = Policy::parse(text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}

//! The policy in force: loaded from POLICY_FILE, re-read when its content changes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::{Policy, PolicyError};

/// The policy in force, and where it comes from.
pub struct PolicyStore {
    /// The policy in force, swapped whole on reload.
    current: RwLock<Arc<Policy>>,
    /// POLICY_FILE (None: allow-all, never reloaded).
    file: Option<PathBuf>,
    /// The content the current policy was parsed from (or last failed to parse).
    last_text: Mutex<Option<Vec<u8>>>,
}

/// What a reload found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// Same content as before (or no file).
    Unchanged,
    /// A new policy is in force.
    Changed,
    /// The file changed but could not be read or parsed; the previous policy stays.
    Failed,
}

impl PolicyStore {
    /// No file: everything allowed.
    pub fn allow_all() -> Self {
        PolicyStore {
            current: RwLock::new(Arc::new(Policy::allow_all())),
            file: None,
            last_text: Mutex::new(None),
        }
    }

    /// Loads `path`; an unreadable or invalid file is an error (the gateway does not
    /// start with a policy it cannot read).
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read(path).map_err(|error| PolicyError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let policy = parse_bytes(&text).map_err(|problem| PolicyError::Invalid {
            path: path.to_path_buf(),
            problem,
        })?;
        Ok(PolicyStore {
            current: RwLock::new(Arc::new(policy)),
            file: Some(path.to_path_buf()),
            last_text: Mutex::new(Some(text)),
        })
    }

    /// The policy in force (one `Arc` clone).
    pub fn current(&self) -> Arc<Policy> {
        match self.current.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The policy file, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Re-reads the file; swaps the policy when the content changed and parses.
    pub fn reload(&self) -> Reload {
        let Some(path) = &self.file else {
            return Reload::Unchanged;
        };
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(error) => {
                // A ConfigMap update swaps symlinks; a missing file for a moment is normal.
                tracing::debug!(path = %path.display(), %error, "cannot read POLICY_FILE now; keeping the policy in force");
                return Reload::Unchanged;
            }
        };
        let mut last = self.last_text.lock().unwrap_or_else(|e| e.into_inner());
        if last.as_deref() == Some(text.as_slice()) {
            return Reload::Unchanged;
        }
        let parsed = parse_bytes(&text);
        *last = Some(text);
        drop(last);
        match parsed {
            Ok(policy) => {
                tracing::info!(path = %path.display(), rules = policy.rule_count(), default_allow = policy.default_allow, "policy reloaded");
                if let Ok(mut cur) = self.current.write() {
                    *cur = Arc::new(policy);
                }
                Reload::Changed
            }
            Err(problem) => {
                tracing::error!(path = %path.display(), %problem, "POLICY_FILE changed but is not a valid policy; keeping the previous policy");
                Reload::Failed
            }
        }
    }
}

fn parse_bytes(text: &[u8]) -> Result<Policy, String> {
    let text = std::str::from_utf8(text).map_err(|_| "the file is not UTF-8".to_string())?;
    Policy::parse(text)
}

/// Polls the policy file every `every` and calls `on_change` after each swap; runs
/// until the task is aborted. Does nothing without a file.
pub async fn follow_file(store: Arc<PolicyStore>, every: Duration, on_change: impl Fn()) {
    if store.file().is_none() {
        return;
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let s = store.clone();
        let outcome = tokio::task::spawn_blocking(move || s.reload())
            .await
            .unwrap_or(Reload::Unchanged);
        if outcome == Reload::Changed {
            on_change();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Caller, CallerSource};
    use crate::policy::ToolFacts;

    fn sa(ns: &str, name: &str) -> Caller {
        Caller {
            source: CallerSource::Kubernetes,
            subject: format!("system:serviceaccount:{ns}:{name}"),
            groups: vec![],
            scopes: vec![],
        }
    }

    const RO: ToolFacts<'static> = ToolFacts {
        name: "list_processes",
        read_only: true,
    };

    #[test]
    fn the_store_reloads_changed_content_and_keeps_the_last_good_policy() {
        let dir = std::env::temp_dir().join(format!("policy-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policy.yaml");
        std::fs::write(&path, "default: deny\n").unwrap();
        let store = PolicyStore::load(&path).unwrap();
        assert!(!store.current().grants(&sa("a", "b")).may_see(RO));
        assert_eq!(store.reload(), Reload::Unchanged);
        std::fs::write(&path, "default: allow\n").unwrap();
        assert_eq!(store.reload(), Reload::Changed);
        assert!(store.current().grants(&sa("a", "b")).may_see(RO));
        std::fs::write(&path, "default: [broken\n").unwrap();
        assert_eq!(store.reload(), Reload::Failed);
        assert!(store.current().grants(&sa("a", "b")).may_see(RO));
        assert_eq!(
            store.reload(),
            Reload::Unchanged,
            "a bad file is reported once"
        );
        std::fs::remove_file(&path).unwrap();
        assert_eq!(store.reload(), Reload::Unchanged);
        assert!(store.current().grants(&sa("a", "b")).may_see(RO));
        assert!(PolicyStore::load(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

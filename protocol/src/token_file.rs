//! A credential kept in a file that changes under a running process: a projected
//! ServiceAccount token the kubelet rotates (by swapping the `..data` symlink), or a
//! Secret-mounted static token.
//!
//! The file is read once at start and then polled by a background task every few
//! seconds (contents compared, so symlink swaps, in-place writes and mtime-less
//! filesystems all count). The request path only reads the cached value. A missing or
//! unreadable file is logged (once per change of state, without the token) and
//! yields no token. The token never appears in a log line or a `Debug` output.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How often a token file is checked for a new token.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Largest token file read (a JWT is a few KiB).
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// The current token of a file.
pub struct TokenFile {
    path: PathBuf,
    /// The trimmed contents, when the file was readable and held a usable token.
    current: RwLock<Option<Arc<str>>>,
    /// The last read problem (logged once per change).
    problem: RwLock<Option<String>>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFile")
            .field("path", &self.path)
            .field("loaded", &self.current().is_some())
            .finish()
    }
}

impl TokenFile {
    /// Reads `path` now (a warning, not an error, when it cannot be read).
    pub fn load(path: impl Into<PathBuf>) -> Arc<Self> {
        let path = path.into();
        let first = read_token(&path);
        let tf = Arc::new(TokenFile {
            path,
            current: RwLock::new(None),
            problem: RwLock::new(None),
        });
        tf.apply(first);
        tf
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current token, if the file held one at the last read.
    pub fn current(&self) -> Option<Arc<str>> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the file again; true when the token changed.
    pub async fn reload(&self) -> bool {
        let path = self.path.clone();
        let read = tokio::task::spawn_blocking(move || read_token(&path))
            .await
            .unwrap_or_else(|_| Err("the read task failed".into()));
        self.apply(read)
    }

    /// Polls the file every `every` and calls `on_change` with the new token (or
    /// `None`) after each change, until the returned task is aborted.
    pub fn watch(
        self: &Arc<Self>,
        every: Duration,
        on_change: impl Fn(Option<Arc<str>>) + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if me.reload().await {
                    on_change(me.current());
                }
            }
        })
    }

    fn apply(&self, read: Result<Arc<str>, String>) -> bool {
        let (token, problem) = match read {
            Ok(t) => (Some(t), None),
            Err(p) => (None, Some(p)),
        };
        if let Ok(mut last) = self.problem.write()
            && *last != problem
        {
            match &problem {
                Some(p) => {
                    tracing::warn!(path = %self.path.display(), problem = %p, "token file unusable: requests go without this token")
                }
                None if last.is_some() => {
                    tracing::info!(path = %self.path.display(), "token file readable again")
                }
                None => {}
            }
            *last = problem;
        }
        let Ok(mut cur) = self.current.write() else {
            return false;
        };
        if *cur == token {
            return false;
        }
        if cur.is_some() && token.is_some() {
            tracing::info!(path = %self.path.display(), "token file changed: using the new token");
        }
        *cur = token;
        true
    }
}

/// The trimmed token in `path`, or why there is none.
fn read_token(path: &Path) -> Result<Arc<str>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let token = text.trim();
    if token.is_empty() {
        return Err("empty".into());
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("holds characters a bearer token cannot have".into());
    }
    Ok(Arc::from(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_rotated_file_is_picked_up_and_a_missing_one_yields_no_token() {
        let dir = std::env::temp_dir().join(format!(
            "mcp-token-file-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "first\n").unwrap();
        let tf = TokenFile::load(&path);
        assert_eq!(tf.current().as_deref(), Some("first"));
        assert!(!tf.reload().await, "unchanged");
        // The kubelet's way: a new file renamed over the old one.
        std::fs::write(dir.join("token.new"), "second").unwrap();
        std::fs::rename(dir.join("token.new"), &path).unwrap();
        assert!(tf.reload().await);
        assert_eq!(tf.current().as_deref(), Some("second"));
        std::fs::remove_file(&path).unwrap();
        assert!(tf.reload().await);
        assert_eq!(tf.current(), None);
        std::fs::write(&path, "bad token with spaces").unwrap();
        tf.reload().await;
        assert_eq!(tf.current(), None);
        assert!(!format!("{tf:?}").contains("spaces"));
        let missing = TokenFile::load(dir.join("absent"));
        assert_eq!(missing.current(), None);
    }
}

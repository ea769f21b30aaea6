//! Sealed tokens: small values a server hands a client and gets back later (a legacy
//! session id, a 2026-07-28 `requestState`, a task id), encrypted and authenticated so
//! that any replica holding the keys can open them and no client can read, forge or
//! alter them.
//!
//! A token is `base64url(version ‖ key id ‖ nonce ‖ ChaCha20-Poly1305(plaintext))`,
//! with the token's purpose as associated data, so a token minted for one purpose
//! (say a `requestState`) is refused as another (a session id). Keys are 32 random
//! bytes; the first key of a ring seals, every key opens, so keys rotate without
//! breaking tokens already handed out: add the new key first, keep the old one until
//! its tokens have expired, then drop it. The ring lives in a file (one key per line,
//! base64; a Kubernetes Secret mounted as a volume), re-read while the process runs.
//! Without a file a process seals with a random key of its own, so its tokens open
//! only there.
//!
//! Nonces are random (96 bits): safe for far more tokens than a key seals between
//! rotations. Opening is bounded: tokens longer than [`MAX_TOKEN_CHARS`] are refused
//! before any decoding.

use base64::Engine;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The format byte every token starts with.
const VERSION: u8 = 1;
/// Bytes of the key id (a digest prefix of the key) in a token.
const KEY_ID_LEN: usize = 4;
/// Longest token [`Sealer::open`] looks at.
pub const MAX_TOKEN_CHARS: usize = 4096;
/// Largest key file read.
const MAX_FILE_BYTES: u64 = 64 * 1024;
/// Most keys a ring holds.
const MAX_KEYS: usize = 16;
/// How often a key file is checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(10);

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Why a token did not open, or a key ring could not be loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// Not a token of ours: bad encoding, wrong length or format version.
    #[error("malformed token")]
    Malformed,
    /// Sealed with a key this ring does not hold (rotated out, or another cluster's).
    #[error("token sealed with an unknown key")]
    UnknownKey,
    /// The key is known but the token was altered, or minted for another purpose.
    #[error("token failed authentication")]
    Forged,
    /// The key file is unusable.
    #[error("{0}")]
    Keys(String),
}

/// One key of a ring.
struct Key {
    id: [u8; KEY_ID_LEN],
    key: LessSafeKey,
}

impl Key {
    fn new(bytes: &[u8]) -> Result<Key, SealError> {
        let unbound = UnboundKey::new(&aead::CHACHA20_POLY1305, bytes)
            .map_err(|_| SealError::Keys(format!("a key must be 32 bytes, not {}", bytes.len())))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest.as_ref()[..KEY_ID_LEN]);
        Ok(Key {
            id,
            key: LessSafeKey::new(unbound),
        })
    }
}

/// The keys in use: the first seals, all open.
struct KeyRing {
    keys: Vec<Key>,
}

impl KeyRing {
    fn parse(text: &str) -> Result<KeyRing, SealError> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(line)
                .or_else(|_| B64.decode(line.trim_end_matches('=')))
                .map_err(|_| SealError::Keys(format!("line {} is not base64", n + 1)))?;
            let key =
                Key::new(&bytes).map_err(|e| SealError::Keys(format!("line {}: {e}", n + 1)))?;
            if keys.iter().any(|k: &Key| k.id == key.id) {
                continue;
            }
            keys.push(key);
            if keys.len() > MAX_KEYS {
                return Err(SealError::Keys(format!("more than {MAX_KEYS} keys")));
            }
        }
        if keys.is_empty() {
            return Err(SealError::Keys("no key in the file".into()));
        }
        Ok(KeyRing { keys })
    }
}

/// Seals and opens tokens with a key ring that may be re-read from a file.
pub struct Sealer {
    ring: RwLock<Arc<KeyRing>>,
    /// The key file and the text the ring was last loaded from.
    file: Option<(PathBuf, String)>,
    random: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("file", &self.file.as_ref().map(|(p, _)| p))
            .field("keys", &self.current().keys.len())
            .finish()
    }
}

impl Sealer {
    /// A sealer with one random key of this process: its tokens open nowhere else.
    pub fn random() -> Arc<Sealer> {
        let random = SystemRandom::new();
        let mut bytes = [0u8; 32];
        random
            .fill(&mut bytes)
            .expect("the system random source is available");
        let key = Key::new(&bytes).expect("32 bytes make a key");
        Arc::new(Sealer {
            ring: RwLock::new(Arc::new(KeyRing { keys: vec![key] })),
            file: None,
            random,
        })
    }

    /// A sealer from key text (one base64 key of 32 bytes per line, the sealing key
    /// first; blank lines and `#` comments ignored).
    pub fn from_text(text: &str) -> Result<Arc<Sealer>, SealError> {
        Ok(Arc::new(Sealer {
            ring: RwLock::new(Arc::new(KeyRing::parse(text)?)),
            file: None,
            random: SystemRandom::new(),
        }))
    }

    /// A sealer from a key file, read now; [`Sealer::watch`] keeps it current.
    pub fn from_file(path: impl Into<PathBuf>) -> Result<Arc<Sealer>, SealError> {
        let path = path.into();
        let text = read_key_file(&path)?;
        let ring = KeyRing::parse(&text)?;
        Ok(Arc::new(Sealer {
            ring: RwLock::new(Arc::new(ring)),
            file: Some((path, text)),
            random: SystemRandom::new(),
        }))
    }

    /// Re-reads the key file every [`RELOAD_INTERVAL`] until `stop` fires (nothing to
    /// do without a file). A file that turns unusable keeps the last good ring, with a
    /// warning.
    pub fn watch(self: &Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        self.watch_every(RELOAD_INTERVAL, stop);
    }

    pub(crate) fn watch_every(
        self: &Arc<Self>,
        every: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let Some((path, loaded)) = self.file.clone() else {
            return;
        };
        let sealer = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut last = Some(loaded);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                let Some(sealer) = sealer.upgrade() else {
                    return;
                };
                let text = read_key_file(&path);
                if text.as_ref().ok() == last.as_ref() {
                    continue;
                }
                match text.and_then(|t| KeyRing::parse(&t).map(|r| (t, r))) {
                    Ok((t, ring)) => {
                        tracing::info!(path = %path.display(), keys = ring.keys.len(), "sealing keys reloaded");
                        *sealer.ring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
                        last = Some(t);
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "sealing key file unusable; keeping the keys in use");
                        last = None;
                    }
                }
            }
        });
    }

    fn current(&self) -> Arc<KeyRing> {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether `token` was sealed with a key this ring still holds, read from its
    /// first characters without opening it: a cache of tokens already opened uses it
    /// so that ids of a retired key stop working there too.
    pub fn holds_key_of(&self, token: &str) -> bool {
        // 8 characters decode to the format byte, the key id and one nonce byte.
        let Some(head) = token.get(..8) else {
            return false;
        };
        let mut bytes = [0u8; 6];
        if B64.decode_slice(head, &mut bytes) != Ok(6) || bytes[0] != VERSION {
            return false;
        }
        let id = &bytes[1..1 + KEY_ID_LEN];
        self.current().keys.iter().any(|k| k.id[..] == *id)
    }

    /// Seals `plaintext` for `purpose`.
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> String {
        let ring = self.current();
        let key = &ring.keys[0];
        let mut nonce = [0u8; aead::NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .expect("the system random source is available");
        let mut out = Vec::with_capacity(
            1 + KEY_ID_LEN + aead::NONCE_LEN + plaintext.len() + aead::CHACHA20_POLY1305.tag_len(),
        );
        out.push(VERSION);
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let mut body = out.split_off(start);
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.as_bytes()),
                &mut body,
            )
            .expect("a token is far below the AEAD's length limit");
        out.extend_from_slice(&body);
        B64.encode(out)
    }

    /// Opens a token sealed for `purpose`.
    pub fn open(&self, purpose: &str, token: &str) -> Result<Vec<u8>, SealError> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(SealError::Malformed);
        }
        let raw = B64.decode(token).map_err(|_| SealError::Malformed)?;
        let header = 1 + KEY_ID_LEN + aead::NONCE_LEN;
        if raw.len() < header + aead::CHACHA20_POLY1305.tag_len() || raw[0] != VERSION {
            return Err(SealError::Malformed);
        }
        let ring = self.current();
        let key = ring
            .keys
            .iter()
            .find(|k| k.id[..] == raw[1..1 + KEY_ID_LEN])
            .ok_or(SealError::UnknownKey)?;
        let nonce = Nonce::try_assume_unique_for_key(&raw[1 + KEY_ID_LEN..header])
            .map_err(|_| SealError::Malformed)?;
        let mut body = raw[header..].to_vec();
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut body)
            .map_err(|_| SealError::Forged)?;
        Ok(plain.to_vec())
    }
}

fn read_key_file(path: &Path) -> Result<String, SealError> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| SealError::Keys(format!("cannot read {}: {e}", path.display())))?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| SealError::Keys(format!("cannot read {}: {e}", path.display())))?;
    Ok(text)
}

/// A new random key in the key file's format (for tooling and tests).
pub fn new_key_line() -> String {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source is available");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_for_its_purpose_only_and_resists_tampering() {
        let s = Sealer::random();
        let t = s.seal("session", b"hello");
        assert_eq!(s.open("session", &t).unwrap(), b"hello");
        assert_eq!(s.open("request-state", &t), Err(SealError::Forged));
        // Two seals of one plaintext differ (random nonces).
        assert_ne!(t, s.seal("session", b"hello"));
        let mut raw = B64.decode(&t).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert_eq!(s.open("session", &B64.encode(&raw)), Err(SealError::Forged));
        assert_eq!(s.open("session", "not a token!"), Err(SealError::Malformed));
        assert_eq!(s.open("session", ""), Err(SealError::Malformed));
        assert_eq!(
            s.open("session", &"A".repeat(MAX_TOKEN_CHARS + 1)),
            Err(SealError::Malformed)
        );
        assert_eq!(
            Sealer::random().open("session", &t),
            Err(SealError::UnknownKey)
        );
        assert!(s.holds_key_of(&t));
        assert!(!Sealer::random().holds_key_of(&t));
        for bad in ["", "short", "not a token!", "é€€€€€€€€"] {
            assert!(!s.holds_key_of(bad), "{bad}");
        }
    }

    #[test]
    fn rotated_keys_still_open_old_tokens_and_seal_with_the_new_key() {
        let old = new_key_line();
        let new = new_key_line();
        let before = Sealer::from_text(&old).unwrap();
        let t_old = before.seal("s", b"1");
        let after = Sealer::from_text(&format!("# rotated\n{new}\n\n{old}\n")).unwrap();
        assert_eq!(after.open("s", &t_old).unwrap(), b"1");
        let t_new = after.seal("s", b"2");
        assert_eq!(
            Sealer::from_text(&new).unwrap().open("s", &t_new).unwrap(),
            b"2"
        );
        assert_eq!(before.open("s", &t_new), Err(SealError::UnknownKey));
    }

    #[test]
    fn bad_key_files_say_what_is_wrong() {
        for (text, want) in [
            ("", "no key"),
            ("# only a comment\n", "no key"),
            ("!!!\n", "line 1 is not base64"),
            ("c2hvcnQ=\n", "32 bytes"),
        ] {
            let e = Sealer::from_text(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let e = Sealer::from_file("/nonexistent/keys")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/keys"), "{e}");
    }

    #[tokio::test]
    async fn a_key_file_is_re_read_while_running() {
        let dir = std::env::temp_dir().join(format!("seal-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys");
        let first = new_key_line();
        std::fs::write(&path, &first).unwrap();
        let s = Sealer::from_file(&path).unwrap();
        let old = s.seal("s", b"x");
        let stop = tokio_util::sync::CancellationToken::new();
        s.watch_every(Duration::from_millis(20), stop.clone());
        let second = new_key_line();
        std::fs::write(&path, format!("{second}\n{first}\n")).unwrap();
        let only_second = Sealer::from_text(&second).unwrap();
        let mut rotated = false;
        for _ in 0..500 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if only_second.open("s", &s.seal("s", b"y")).is_ok() {
                rotated = true;
                break;
            }
        }
        stop.cancel();
        assert!(rotated, "the new first key seals");
        assert_eq!(s.open("s", &old).unwrap(), b"x");
        std::fs::remove_dir_all(&dir).ok();
    }
}

//! The sealed content of a session id, and how it is kept small.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest sealed payload: keeps an id well inside [`crate::seal::MAX_TOKEN_CHARS`] and
/// the header-size limits of proxies. Bigger client capabilities are reduced (see
/// [`Sealed::fit`]).
const MAX_PAYLOAD_BYTES: usize = 2048;

/// Longest owner kept as it is in an id; a longer one is kept as its SHA-256.
const MAX_OWNER_CHARS: usize = 128;

/// The sealed content of a session id (short keys: it travels on every request).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Sealed {
    /// A random id of the session (the key of the cache and of the ended record).
    pub(super) s: String,
    /// The negotiated revision.
    pub(super) v: String,
    /// The owner (or its SHA-256 when long).
    pub(super) o: String,
    /// Whether the owner is an authenticated caller, whom every request must match.
    pub(super) b: bool,
    /// Started, in Unix milliseconds.
    pub(super) t: u64,
    /// Expires, in Unix milliseconds.
    pub(super) e: u64,
    /// The client's capabilities.
    pub(super) c: Value,
    /// The client's info.
    pub(super) i: Value,
}

impl Sealed {
    /// Serializes, reducing what the client declared until it fits
    /// [`MAX_PAYLOAD_BYTES`]: first `clientInfo` to its name and version, then each
    /// capability to `{}` (its presence is what routing needs), then nothing.
    pub(super) fn fit(&mut self) -> Vec<u8> {
        for step in 0..4 {
            let bytes = serde_json::to_vec(self).unwrap_or_default();
            if bytes.len() <= MAX_PAYLOAD_BYTES {
                return bytes;
            }
            match step {
                0 => {
                    let short = |k: &str| {
                        self.i
                            .get(k)
                            .and_then(Value::as_str)
                            .map(|s| Value::from(s.chars().take(64).collect::<String>()))
                            .unwrap_or(Value::Null)
                    };
                    self.i =
                        serde_json::json!({ "name": short("name"), "version": short("version") });
                }
                1 => {
                    if let Some(caps) = self.c.as_object_mut() {
                        caps.values_mut()
                            .for_each(|v| *v = Value::Object(Default::default()));
                    }
                }
                _ => {
                    self.c = Value::Object(Default::default());
                    self.i = Value::Null;
                }
            }
        }
        serde_json::to_vec(self).unwrap_or_default()
    }
}

pub(super) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The owner as kept in an id: short ones as they are, long ones as their SHA-256.
pub(super) fn owner_key(owner: &str) -> String {
    if owner.len() <= MAX_OWNER_CHARS {
        return owner.to_string();
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, owner.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

//! Key sets: which JWKs are usable for verification and for which algorithms.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use std::time::Instant;

use super::{ALLOWED_ALGORITHMS, BearerError};

/// Most keys kept from one set (a larger set is cut, not refused).
const MAX_KEYS: usize = 100;

/// One usable verification key.
pub(super) struct KeyEntry {
    pub(super) kid: Option<String>,
    /// The key's own `alg`, when the set states it.
    pub(super) alg: Option<Algorithm>,
    pub(super) kind: KeyKind,
    pub(super) key: DecodingKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    pub(super) fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        matches!(
            (self, alg),
            (KeyKind::Rsa, RS256 | RS384 | RS512 | PS256 | PS384 | PS512)
                | (KeyKind::P256, ES256)
                | (KeyKind::P384, ES384)
                | (KeyKind::Ed25519, EdDSA)
        )
    }
}

/// A loaded key set.
pub(super) struct KeySet {
    pub(super) keys: Vec<KeyEntry>,
    pub(super) fetched: Instant,
}

/// A JWKS document into its usable signing keys.
pub(super) fn parse_jwks(doc: &[u8]) -> Result<KeySet, BearerError> {
    #[derive(serde::Deserialize)]
    struct Doc {
        keys: Vec<Value>,
    }
    let doc: Doc = serde_json::from_slice(doc)
        .map_err(|_| BearerError::KeysUnavailable("the document is not a JWK set".into()))?;
    let mut keys = Vec::new();
    for value in doc.keys.into_iter().take(MAX_KEYS) {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
        {
            continue;
        }
        if jwk
            .common
            .key_operations
            .as_ref()
            .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
        {
            continue;
        }
        let kind = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyKind::Rsa,
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => KeyKind::P256,
                EllipticCurve::P384 => KeyKind::P384,
                _ => continue,
            },
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                KeyKind::Ed25519
            }
            // Symmetric (`oct`) and unknown keys are never used.
            _ => continue,
        };
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(ka) => {
                let name = format!("{ka:?}");
                match ALLOWED_ALGORITHMS.iter().find(|a| format!("{a:?}") == name) {
                    Some(a) => Some(*a),
                    None => continue,
                }
            }
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        keys.push(KeyEntry {
            kid: jwk.common.key_id.clone(),
            alg,
            kind,
            key,
        });
    }
    if keys.is_empty() {
        return Err(BearerError::KeysUnavailable(
            "the key set holds no usable signing key".into(),
        ));
    }
    Ok(KeySet {
        keys,
        fetched: Instant::now(),
    })
}

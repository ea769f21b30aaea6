//! JWTs for the authentication tests: the test keys in tests/fixtures/jwt, tokens
//! signed with them, and a key-set server on 127.0.0.1:0 whose keys the test swaps
//! while the gateway runs (key rotation) and which counts its fetches.
#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Request, Response, StatusCode};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_protocol::body::{self, Body};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Test keys (PKCS#8 PEM).
pub const RSA_A: &str = include_str!("../fixtures/jwt/rsa-a.pem");
/// A second RSA key (the rotated-in one, or the wrong signer).
pub const RSA_B: &str = include_str!("../fixtures/jwt/rsa-b.pem");
/// The public half of RSA_A (the HS256 confusion attack's "secret").
pub const RSA_A_PUB: &str = include_str!("../fixtures/jwt/rsa-a.pub.pem");
/// An EC P-256 key.
pub const EC: &str = include_str!("../fixtures/jwt/ec-p256.pem");

/// A signing key with its id and algorithm.
#[derive(Clone, Copy)]
pub struct Key {
    /// PEM of the private key.
    pub pem: &'static str,
    /// Algorithm.
    pub alg: Algorithm,
    /// `kid`.
    pub kid: &'static str,
}

/// RSA_A as kid "rsa-a", RS256.
pub const KEY_RSA: Key = Key {
    pem: RSA_A,
    alg: Algorithm::RS256,
    kid: "rsa-a",
};
/// EC as kid "ec", ES256.
pub const KEY_EC: Key = Key {
    pem: EC,
    alg: Algorithm::ES256,
    kid: "ec",
};
/// RSA_B as kid "rsa-b", RS256 (not published at first).
pub const KEY_ROTATED: Key = Key {
    pem: RSA_B,
    alg: Algorithm::RS256,
    kid: "rsa-b",
};

fn encoding_key(pem: &str, alg: Algorithm) -> EncodingKey {
    match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .expect("test key")
}

/// The public JWK of `key`.
pub fn jwk(key: Key) -> Value {
    let mut j = Jwk::from_encoding_key(&encoding_key(key.pem, key.alg), key.alg).expect("jwk");
    j.common.key_id = Some(key.kid.into());
    serde_json::to_value(j).expect("jwk json")
}

/// A JWKS document of `keys`.
pub fn jwks(keys: &[Key]) -> String {
    json!({ "keys": keys.iter().map(|k| jwk(*k)).collect::<Vec<_>>() }).to_string()
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Claims valid for ten minutes.
pub fn claims(iss: &str, aud: &str, sub: &str, scope: &str) -> Value {
    json!({ "iss": iss, "aud": aud, "sub": sub, "scope": scope,
            "iat": now(), "exp": now() + 600 })
}

/// `claims` signed with `key` (its kid in the header).
pub fn sign(key: Key, claims: &Value) -> String {
    let mut h = Header::new(key.alg);
    h.kid = Some(key.kid.into());
    jsonwebtoken::encode(&h, claims, &encoding_key(key.pem, key.alg)).expect("sign")
}

/// An unsigned token (`alg: none`) naming `kid`.
pub fn unsigned(kid: &str, claims: &Value) -> String {
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
        b64(claims)
    )
}

/// HS256 keyed with the RSA public key's PEM bytes, under the RSA key's kid: the
/// algorithm-confusion attack.
pub fn hs256_with_rsa_public_key(kid: &str, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(
        &h,
        claims,
        &EncodingKey::from_secret(RSA_A_PUB.as_bytes()).expect("hmac key"),
    )
    .expect("sign")
}

/// A key-set server: `GET /jwks` answers the current set.
pub struct JwksServer {
    /// `http://127.0.0.1:PORT/jwks`.
    pub url: String,
    doc: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
    stop: tokio_util::sync::CancellationToken,
}

impl JwksServer {
    /// Serves a set of `keys`.
    pub async fn start(keys: &[Key]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let doc = Arc::new(Mutex::new(jwks(keys)));
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = tokio_util::sync::CancellationToken::new();
        let (d, h, s) = (doc.clone(), hits.clone(), stop.clone());
        tokio::spawn(mcp_protocol::serve::serve(
            listener,
            move |req: Request<hyper::body::Incoming>| {
                let (d, h) = (d.clone(), h.clone());
                async move {
                    let r: Response<Body> = if req.uri().path() == "/jwks" {
                        h.fetch_add(1, Ordering::SeqCst);
                        let doc = d.lock().expect("doc").clone();
                        body::json_response(StatusCode::OK, doc)
                    } else {
                        body::text_response(StatusCode::NOT_FOUND, "no\n")
                    };
                    r
                }
            },
            async move { s.cancelled().await },
            std::time::Duration::from_secs(1),
        ));
        JwksServer {
            url: format!("http://{addr}/jwks"),
            doc,
            hits,
            stop,
        }
    }

    /// Publishes `keys` instead.
    pub fn publish(&self, keys: &[Key]) {
        *self.doc.lock().expect("doc") = jwks(keys);
    }

    /// How many times the set was fetched.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

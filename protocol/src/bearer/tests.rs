//! Tokens signed here with the test keys in tests/fixtures/jwt, key sets served by a
//! throwaway HTTP server on 127.0.0.1:0 or read from a file.

use super::*;
use crate::body::{self, Body};
use http::{StatusCode, header};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

const RSA_A: &str = include_str!("../../../tests/fixtures/jwt/rsa-a.pem");
const RSA_B: &str = include_str!("../../../tests/fixtures/jwt/rsa-b.pem");
const RSA_A_PUB: &str = include_str!("../../../tests/fixtures/jwt/rsa-a.pub.pem");
const EC: &str = include_str!("../../../tests/fixtures/jwt/ec-p256.pem");
const ED: &str = include_str!("../../../tests/fixtures/jwt/ed25519.pem");
const ISS: &str = "https://issuer.test";
const AUD: &str = "https://gw.test/mcp";

fn enc(pem: &str, alg: Algorithm) -> EncodingKey {
    match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    }
}

fn jwk(pem: &str, alg: Algorithm, kid: &str) -> Value {
    let mut j = Jwk::from_encoding_key(&enc(pem, alg), alg).unwrap();
    j.common.key_id = Some(kid.into());
    serde_json::to_value(j).unwrap()
}

fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims() -> Value {
    json!({ "iss": ISS, "aud": AUD, "sub": "alice", "exp": now() + 600, "iat": now() })
}

fn sign(pem: &str, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, &enc(pem, alg)).unwrap()
}

fn file_with(contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("mcp-protocol-bearer-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!(
        "jwks-{}-{}.json",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::write(&path, contents).unwrap();
    path
}

fn verifier(keys: KeySource) -> BearerVerifier {
    let mut c = BearerConfig::new(ISS, AUD);
    c.keys = keys;
    BearerVerifier::new(c).unwrap()
}

fn standard_set() -> String {
    jwks(&[
        jwk(RSA_A, Algorithm::RS256, "rsa-a"),
        jwk(EC, Algorithm::ES256, "ec"),
        jwk(ED, Algorithm::EdDSA, "ed"),
    ])
}

#[tokio::test]
async fn rsa_ec_and_eddsa_tokens_verify_and_their_claims_come_back() {
    let v = verifier(KeySource::File(file_with(&standard_set())));
    for (pem, alg, kid) in [
        (RSA_A, Algorithm::RS256, "rsa-a"),
        (EC, Algorithm::ES256, "ec"),
        (ED, Algorithm::EdDSA, "ed"),
    ] {
        let mut c = claims();
        c["scope"] = "mcp:tools".into();
        let claims = v.verify(&sign(pem, alg, Some(kid), &c)).await;
        let claims = claims.unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["scope"], "mcp:tools");
    }
    // An audience array containing ours is fine; no kid: the fitting keys are tried.
    let mut c = claims();
    c["aud"] = json!(["other", AUD]);
    v.verify(&sign(RSA_A, Algorithm::RS256, None, &c))
        .await
        .unwrap();
    assert_eq!(v.fetch_count(), 1, "the key set is cached");
}

#[tokio::test]
async fn every_bad_token_is_refused_with_its_own_reason_and_never_echoed() {
    let v = verifier(KeySource::File(file_with(&standard_set())));
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        c
    };
    let rs = |c: &Value| sign(RSA_A, Algorithm::RS256, Some("rsa-a"), c);
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let cases: Vec<(&str, String, BearerError)> = vec![
        (
            "expired",
            rs(&with(&|c| c["exp"] = json!(now() - 120))),
            BearerError::Expired,
        ),
        (
            "not yet valid",
            rs(&with(&|c| c["nbf"] = json!(now() + 600))),
            BearerError::NotYetValid,
        ),
        (
            "wrong issuer",
            rs(&with(&|c| c["iss"] = json!("https://evil.test"))),
            BearerError::WrongIssuer {
                expected: ISS.into(),
            },
        ),
        (
            "wrong audience",
            rs(&with(&|c| c["aud"] = json!("https://other.test/mcp"))),
            BearerError::WrongAudience {
                expected: AUD.into(),
            },
        ),
        (
            "no exp",
            rs(&with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            })),
            BearerError::MissingClaim("exp".into()),
        ),
        (
            "no aud",
            rs(&with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            })),
            BearerError::MissingClaim("aud".into()),
        ),
        (
            "signed by another key under a known kid",
            sign(RSA_B, Algorithm::RS256, Some("rsa-a"), &claims()),
            BearerError::BadSignature,
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg":"none","kid":"rsa-a"})),
                b64(&claims())
            ),
            BearerError::AlgorithmNotAllowed("none".into()),
        ),
        (
            "HS256 keyed with the RSA public key",
            jsonwebtoken::encode(
                &Header {
                    kid: Some("rsa-a".into()),
                    ..Header::new(Algorithm::HS256)
                },
                &claims(),
                &EncodingKey::from_secret(RSA_A_PUB.as_bytes()).unwrap(),
            )
            .unwrap(),
            BearerError::AlgorithmNotAllowed("HS256".into()),
        ),
        (
            "EC token under the RSA key's kid",
            sign(EC, Algorithm::ES256, Some("rsa-a"), &claims()),
            BearerError::KeyMismatch {
                kid: "rsa-a".into(),
                alg: "ES256".into(),
            },
        ),
        (
            "RS384 where the key is bound to RS256",
            sign(RSA_A, Algorithm::RS384, Some("rsa-a"), &claims()),
            BearerError::KeyMismatch {
                kid: "rsa-a".into(),
                alg: "RS384".into(),
            },
        ),
        (
            "too long",
            format!("{}.{}.x", "a".repeat(9000), "b".repeat(9000)),
            BearerError::TooLong {
                max: MAX_TOKEN_BYTES,
            },
        ),
        (
            "not a JWT",
            "opaque-token-value".into(),
            BearerError::Malformed("not three dot-separated parts"),
        ),
        (
            "critical header",
            {
                let t = rs(&claims());
                let rest = t.split_once('.').unwrap().1.to_string();
                format!(
                    "{}.{rest}",
                    b64(&json!({"alg":"RS256","kid":"rsa-a","crit":["x"],"x":1}))
                )
            },
            BearerError::Malformed("critical header extensions are not supported"),
        ),
    ];
    for (what, token, want) in cases {
        let err = v.verify(&token).await.expect_err(what);
        assert_eq!(err, want, "{what}");
        let text = err.to_string();
        assert!(
            !text.contains(&token),
            "{what}: the message echoes the token"
        );
        if let Some(sig) = token.rsplit('.').next().filter(|s| s.len() > 8) {
            assert!(
                !text.contains(sig),
                "{what}: the message echoes the signature"
            );
        }
    }
    assert_eq!(v.fetch_count(), 1, "no refusal above needed a refresh");
}

#[test]
fn symmetric_and_encryption_keys_in_the_set_are_ignored() {
    let set = jwks(&[
        json!({"kty":"oct","kid":"h","k":"c2VjcmV0","alg":"HS256"}),
        {
            let mut j = jwk(RSA_A, Algorithm::RS256, "enc");
            j["use"] = "enc".into();
            j
        },
        jwk(EC, Algorithm::ES256, "ec"),
        json!({"kty":"weird"}),
    ]);
    let parsed = parse_jwks(set.as_bytes()).unwrap();
    let kids: Vec<_> = parsed.keys.iter().map(|k| k.kid.clone().unwrap()).collect();
    assert_eq!(kids, ["ec"]);
    assert!(matches!(
        parse_jwks(jwks(&[json!({"kty":"oct","k":"c2VjcmV0"})]).as_bytes()),
        Err(BearerError::KeysUnavailable(_))
    ));
}

/// A key-set server: counts requests, records Authorization, serves what the test
/// sets (by path), can hang.
#[derive(Default)]
struct Served {
    docs: Mutex<HashMap<String, String>>,
    hits: AtomicUsize,
    auth: Mutex<Vec<String>>,
}

use std::collections::HashMap;

async fn server(served: Arc<Served>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(crate::serve::serve(
        listener,
        move |req: http::Request<hyper::body::Incoming>| {
            let served = served.clone();
            async move {
                served.hits.fetch_add(1, Ordering::SeqCst);
                if let Some(a) = req.headers().get(header::AUTHORIZATION) {
                    served
                        .auth
                        .lock()
                        .unwrap()
                        .push(a.to_str().unwrap_or("").to_string());
                }
                let path = req.uri().path().to_string();
                if path == "/hang" {
                    std::future::pending::<()>().await;
                }
                let doc = served.docs.lock().unwrap().get(&path).cloned();
                let r: http::Response<Body> = match doc {
                    Some(d) => body::json_response(StatusCode::OK, d),
                    None => body::text_response(StatusCode::NOT_FOUND, "no\n"),
                };
                r
            }
        },
        std::future::pending::<()>(),
        Duration::from_secs(1),
    ));
    format!("http://{addr}")
}

#[tokio::test]
async fn unknown_kids_refresh_at_most_once_per_interval_and_a_rotated_key_is_found() {
    let served = Arc::new(Served::default());
    let base = server(served.clone()).await;
    served
        .docs
        .lock()
        .unwrap()
        .insert("/jwks".into(), jwks(&[jwk(RSA_A, Algorithm::RS256, "a")]));
    let mut c = BearerConfig::new(ISS, AUD);
    c.keys = KeySource::Url(format!("{base}/jwks"));
    c.min_refresh_interval = Duration::from_secs(3600);
    let v = BearerVerifier::new(c.clone()).unwrap();
    v.verify(&sign(RSA_A, Algorithm::RS256, Some("a"), &claims()))
        .await
        .unwrap();
    // A flood of made-up kids within the interval since the last fetch: refused
    // without fetching again.
    for i in 0..25 {
        let t = sign(
            RSA_B,
            Algorithm::RS256,
            Some(&format!("made-up-{i}")),
            &claims(),
        );
        assert!(matches!(
            v.verify(&t).await,
            Err(BearerError::UnknownKey(_))
        ));
    }
    assert_eq!(
        served.hits.load(Ordering::SeqCst),
        1,
        "only the initial load"
    );
    assert_eq!(v.fetch_count(), 1);

    // Rotation: the issuer now publishes b; a verifier whose refresh is due finds it.
    served
        .docs
        .lock()
        .unwrap()
        .insert("/jwks".into(), jwks(&[jwk(RSA_B, Algorithm::RS256, "b")]));
    c.min_refresh_interval = Duration::ZERO;
    let v = BearerVerifier::new(c).unwrap();
    let old = sign(RSA_A, Algorithm::RS256, Some("a"), &claims());
    assert_eq!(v.prefetch().await.unwrap(), 1);
    assert!(matches!(
        v.verify(&old).await,
        Err(BearerError::UnknownKey(_))
    ));
    let new = sign(RSA_B, Algorithm::RS256, Some("b"), &claims());
    v.verify(&new).await.unwrap();
}

#[tokio::test]
async fn keys_are_discovered_from_the_issuer_metadata_whose_issuer_must_match() {
    let served = Arc::new(Served::default());
    let base = server(served.clone()).await;
    let issuer = format!("{base}/tenant");
    served
        .docs
        .lock()
        .unwrap()
        .insert("/jwks".into(), jwks(&[jwk(EC, Algorithm::ES256, "ec")]));
    // RFC 8414 path-inserted form is missing; the OpenID one answers.
    served.docs.lock().unwrap().insert(
        "/.well-known/openid-configuration/tenant".into(),
        json!({"issuer": issuer, "jwks_uri": format!("{base}/jwks")}).to_string(),
    );
    let mut c = BearerConfig::new(&issuer, AUD);
    c.keys = KeySource::Discover;
    let v = BearerVerifier::new(c.clone()).unwrap();
    let mut cl = claims();
    cl["iss"] = issuer.clone().into();
    v.verify(&sign(EC, Algorithm::ES256, Some("ec"), &cl))
        .await
        .unwrap();

    // Metadata that names another issuer is not used.
    served.docs.lock().unwrap().insert(
        "/.well-known/openid-configuration/tenant".into(),
        json!({"issuer": "https://honest.test", "jwks_uri": format!("{base}/jwks")}).to_string(),
    );
    let v = BearerVerifier::new(c).unwrap();
    let err = v
        .verify(&sign(EC, Algorithm::ES256, Some("ec"), &cl))
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(err.to_string().contains("names another issuer"), "{err}");
}

#[tokio::test]
async fn fetches_carry_the_token_file_and_are_capped_in_size_and_time() {
    let served = Arc::new(Served::default());
    let base = server(served.clone()).await;
    served
        .docs
        .lock()
        .unwrap()
        .insert("/jwks".into(), jwks(&[jwk(RSA_A, Algorithm::RS256, "a")]));
    let token_file = file_with("sa-token-value\n");
    let mut c = BearerConfig::new(ISS, AUD);
    c.keys = KeySource::Url(format!("{base}/jwks"));
    c.fetch.token_file = Some(token_file);
    let v = BearerVerifier::new(c.clone()).unwrap();
    v.prefetch().await.unwrap();
    assert_eq!(*served.auth.lock().unwrap(), ["Bearer sa-token-value"]);

    c.fetch.token_file = None;
    c.fetch.max_bytes = 64;
    let err = BearerVerifier::new(c.clone())
        .unwrap()
        .prefetch()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("larger than 64 bytes"), "{err}");

    c.fetch.max_bytes = DEFAULT_MAX_DOCUMENT_BYTES;
    c.fetch.timeout = Duration::from_millis(300);
    c.keys = KeySource::Url(format!("{base}/hang"));
    let v = BearerVerifier::new(c).unwrap();
    let err = v.prefetch().await.unwrap_err();
    assert!(err.to_string().contains("no answer within"), "{err}");
    // Failing closed: a token cannot be checked while the keys are unavailable.
    let err = v
        .verify(&sign(RSA_A, Algorithm::RS256, Some("a"), &claims()))
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err}");
}

#[test]
fn urls_must_be_https_except_to_loopback_and_metadata_follows_the_spec_order() {
    assert!(check_fetch_url("https://kubernetes.default.svc/openid/v1/jwks").is_ok());
    assert!(check_fetch_url("http://127.0.0.1:8080/jwks").is_ok());
    assert!(check_fetch_url("http://[::1]:8080/jwks").is_ok());
    assert!(check_fetch_url("http://localhost/jwks").is_ok());
    assert!(check_fetch_url("http://10.0.0.1/jwks").is_err());
    assert!(check_fetch_url("ftp://x/jwks").is_err());
    assert_eq!(
        metadata_urls("https://auth.example.com").unwrap(),
        [
            "https://auth.example.com/.well-known/oauth-authorization-server",
            "https://auth.example.com/.well-known/openid-configuration"
        ]
    );
    assert_eq!(
        metadata_urls("https://auth.example.com/tenant1/").unwrap(),
        [
            "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
            "https://auth.example.com/.well-known/openid-configuration/tenant1",
            "https://auth.example.com/tenant1/.well-known/openid-configuration"
        ]
    );
    let t = sign(RSA_A, Algorithm::RS256, None, &claims());
    assert_eq!(unverified_issuer(&t).as_deref(), Some(ISS));
}

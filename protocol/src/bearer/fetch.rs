//! Fetching metadata and key-set documents: HTTPS (plain HTTP to loopback only), a
//! deadline, a size cap, no redirects, an optional private CA and bearer token file.

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{BearerError, FetchConfig};

/// HTTPS, or plain HTTP to a loopback host only.
pub(super) fn check_fetch_url(url: &str) -> Result<(), BearerError> {
    let uri: Uri = url
        .parse()
        .map_err(|_| BearerError::Config(format!("{url:?} is not a URL")))?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if uri.host().is_some_and(is_loopback_host) => Ok(()),
        Some("http") => Err(BearerError::Config(format!(
            "{url} must use https (plain http is only allowed to loopback addresses)"
        ))),
        _ => Err(BearerError::Config(format!(
            "{url:?} is not an http(s) URL"
        ))),
    }
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(super) async fn read_capped(path: &Path, max: usize) -> Result<Vec<u8>, BearerError> {
    let unavailable = |e: std::io::Error| {
        BearerError::KeysUnavailable(format!("cannot read {}: {e}", path.display()))
    };
    let meta = tokio::fs::metadata(path).await.map_err(unavailable)?;
    if meta.len() > max as u64 {
        return Err(BearerError::KeysUnavailable(format!(
            "{} is larger than {max} bytes",
            path.display()
        )));
    }
    tokio::fs::read(path).await.map_err(unavailable)
}

/// GETs small JSON documents over HTTPS with a deadline and a size cap.
pub(super) struct Fetcher {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
    token_file: Option<PathBuf>,
    timeout: Duration,
    max_bytes: usize,
}

impl Fetcher {
    pub(super) fn new(config: &FetchConfig) -> Result<Self, BearerError> {
        let tls = tls_config(config.ca_file.as_deref())?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.timeout));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Fetcher {
            client: Client::builder(TokioExecutor::new()).build(connector),
            token_file: config.token_file.clone(),
            timeout: config.timeout,
            max_bytes: config.max_bytes,
        })
    }

    pub(super) async fn get(&self, url: &str) -> Result<Vec<u8>, BearerError> {
        check_fetch_url(url)?;
        let unavailable = |what: String| BearerError::KeysUnavailable(format!("{url}: {what}"));
        let mut req = Request::get(url).header(header::ACCEPT, "application/json");
        if let Some(path) = &self.token_file {
            let token = tokio::fs::read_to_string(path).await.map_err(|e| {
                BearerError::KeysUnavailable(format!("cannot read {}: {e}", path.display()))
            })?;
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                .map_err(|_| unavailable(format!("{} is not a token", path.display())))?;
            value.set_sensitive(true);
            req = req.header(header::AUTHORIZATION, value);
        }
        let req = req
            .body(Empty::new())
            .map_err(|_| unavailable("not a valid request URL".into()))?;
        let work = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| unavailable(format!("cannot connect: {}", error_chain(&e))))?;
            let status = resp.status();
            if status != StatusCode::OK {
                return Err(unavailable(format!("answered HTTP {status}")));
            }
            let body = Limited::new(resp.into_body(), self.max_bytes)
                .collect()
                .await
                .map_err(|_| {
                    unavailable(format!(
                        "the answer could not be read or is larger than {} bytes",
                        self.max_bytes
                    ))
                })?;
            Ok(body.to_bytes().to_vec())
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(unavailable(format!("no answer within {:?}", self.timeout))),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// rustls with ring (the stack kube already uses), trusting `ca_file` only when given,
/// else the system roots.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, BearerError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                BearerError::Config(format!("cannot read the CA file {}: {e}", path.display()))
            })?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|_| {
                    BearerError::Config(format!(
                        "{} is not a PEM certificate bundle",
                        path.display()
                    ))
                })?;
                roots.add(cert).map_err(|e| {
                    BearerError::Config(format!("bad certificate in {}: {e}", path.display()))
                })?;
            }
            if roots.is_empty() {
                return Err(BearerError::Config(format!(
                    "{} holds no certificate",
                    path.display()
                )));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BearerError::Config(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

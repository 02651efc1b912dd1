//! A small client of the API (used by farmctl and the tests).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::{BucketOwner, Status};
use crate::lifecycle::Command;

/// Errors talking to farmd.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the address (farmd is not running, or another `--api`).
    #[error("cannot reach farmd at {base}: {message}")]
    Unreachable {
        /// The API base URL.
        base: String,
        /// Why.
        message: String,
    },
    /// farmd answered with an error status.
    #[error("{url}: HTTP {status}: {message}")]
    Http {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// The `error` of the JSON body (or the body).
        message: String,
    },
    /// The answer could not be understood.
    #[error("{url}: unexpected answer: {message}")]
    Decode {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
}

/// The API's base URL for a listen address: wildcard addresses become loopback.
pub fn base_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

/// A client of one farmd.
#[derive(Clone, Debug)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl ApiClient {
    /// A client of `base` (e.g. `http://127.0.0.1:9010`), with the token for commands.
    pub fn new(base: &str, token: Option<String>, timeout: Duration) -> ApiClient {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent("farmctl")
            .build()
            .into();
        ApiClient { base: base.trim_end_matches('/').to_string(), token, agent }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn finish(&self, url: &str, r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<String, ClientError> {
        let mut resp = r.map_err(|e| match e {
            ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::HostNotFound | ureq::Error::Timeout(_) => {
                ClientError::Unreachable { base: self.base.clone(), message: e.to_string() }
            }
            e => ClientError::Decode { url: url.to_string(), message: e.to_string() },
        })?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| ClientError::Decode { url: url.to_string(), message: e.to_string() })?;
        if !(200..300).contains(&status) {
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| body.trim().to_string());
            return Err(ClientError::Http { url: url.to_string(), status, message });
        }
        Ok(body)
    }

    /// `GET <path>` as text.
    pub fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let url = format!("{}{path}", self.base);
        self.finish(&url, self.agent.get(&url).call())
    }

    fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let body = self.get_text(path)?;
        serde_json::from_str(&body).map_err(|e| ClientError::Decode { url, message: e.to_string() })
    }

    /// `GET /api/v1/status`.
    pub fn status(&self) -> Result<Status, ClientError> {
        self.get_json("/api/v1/status")
    }

    /// `GET /api/v1/buckets/<n>`.
    pub fn bucket(&self, bucket: u32) -> Result<BucketOwner, ClientError> {
        self.get_json(&format!("/api/v1/buckets/{bucket}"))
    }

    /// `GET /metrics`.
    pub fn metrics(&self) -> Result<String, ClientError> {
        self.get_text("/metrics")
    }

    /// `POST /api/v1/<command>` with the token and an optional reason.
    pub fn command(&self, c: Command, reason: Option<&str>) -> Result<(), ClientError> {
        let url = format!("{}/api/v1/{}", self.base, c.as_str());
        let mut req = self.agent.post(&url).header("Content-Type", "application/json");
        if let Some(t) = &self.token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let body = serde_json::json!({ "reason": reason }).to_string();
        self.finish(&url, req.send(body.as_bytes())).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_becomes_loopback() {
        assert_eq!(base_url("0.0.0.0:9010".parse().unwrap()), "http://127.0.0.1:9010");
        assert_eq!(base_url("[::]:9010".parse().unwrap()), "http://[::1]:9010");
        assert_eq!(base_url("10.0.0.1:80".parse().unwrap()), "http://10.0.0.1:80");
    }
}

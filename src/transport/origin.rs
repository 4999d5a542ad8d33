//! The `Origin` allow-list (`--allowed-origins`), one policy for CORS and for
//! WebSocket upgrades.
//!
//! Browsers enforce CORS on HTTP reads, but a WebSocket upgrade is not
//! subject to it: without a server-side check any page could open a socket
//! with the visitor's token (cross-site WebSocket hijacking). So the same
//! list that answers CORS also guards `/ws` and `/socket.io/` (whose
//! WebSocket and polling requests both carry the page's origin). An empty
//! list means same origin only: the `Origin` must name the host the request
//! was sent to. Requests without `Origin` come from non-browser clients,
//! which can claim any origin anyway, and are let through.

use crate::{admission::Admission, api::ApiError};
use axum::{
    extract::{Request, State},
    http::{HeaderValue, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct OriginPolicy {
    /// Lower-case `scheme://host[:port]`, no trailing slash.
    allowed: Arc<[String]>,
    any: bool,
}

impl OriginPolicy {
    /// Validates the configured list; `*` allows every origin.
    pub fn new(origins: &[String]) -> Result<Self, String> {
        let mut allowed = Vec::new();
        let mut any = false;
        for origin in origins {
            let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
            if origin == "*" {
                any = true;
            } else if let Some((scheme, host)) = origin.split_once("://")
                && matches!(scheme, "http" | "https")
                && !host.is_empty()
                && !host.contains('/')
                && HeaderValue::from_str(&origin).is_ok()
            {
                allowed.push(origin);
            } else {
                return Err(format!(
                    "{origin:?} is not an origin (scheme://host[:port], or *)"
                ));
            }
        }
        Ok(OriginPolicy {
            allowed: allowed.into(),
            any,
        })
    }

    /// Whether a request from `origin` sent to `host` (the `Host` header) may proceed.
    pub fn allows(&self, origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if self.any || self.allowed.contains(&origin) {
            return true;
        }
        // Same origin: scheme aside (a TLS proxy may sit in front), the
        // origin's authority is the host the request was sent to.
        let authority = origin.split_once("://").map(|(_, a)| a);
        let host = host.and_then(|h| h.to_str().ok());
        matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
    }

    /// The CORS layer's predicate form of [`OriginPolicy::allows`].
    pub fn allows_cors(&self, origin: &HeaderValue, parts: &Parts) -> bool {
        self.allows(origin, parts.headers.get(header::HOST))
    }
}

/// Refuses WebSocket upgrades (`/ws`, or any request asking to upgrade) and
/// Socket.IO requests whose `Origin` the policy does not allow, with 403.
pub async fn guard(
    State((policy, admission)): State<(OriginPolicy, Arc<Admission>)>,
    request: Request,
    next: Next,
) -> Response {
    let guarded = request.uri().path() == "/ws"
        || request.uri().path().starts_with("/socket.io/")
        || request.headers().contains_key(header::UPGRADE);
    if guarded
        && let Some(origin) = request.headers().get(header::ORIGIN)
        && !policy.allows(origin, request.headers().get(header::HOST))
    {
        admission.refused(crate::disconnect::refused::ORIGIN);
        let shown = String::from_utf8_lossy(origin.as_bytes()).into_owned();
        tracing::info!(origin = %shown, path = %request.uri().path(), "connection refused: origin not allowed");
        return ApiError::forbidden(format!(
            "origin {shown:?} is not allowed (see --allowed-origins)"
        ))
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn empty_list_means_same_origin() {
        let p = OriginPolicy::new(&[]).unwrap();
        let host = hv("127.0.0.1:8080");
        assert!(p.allows(&hv("http://127.0.0.1:8080"), Some(&host)));
        assert!(!p.allows(&hv("http://evil.example"), Some(&host)));
        assert!(!p.allows(&hv("null"), Some(&host)));
        assert!(!p.allows(&hv("http://127.0.0.1:8080"), None));
    }

    #[test]
    fn listed_origins_match_exactly() {
        let p = OriginPolicy::new(&["https://App.example.com/".into()]).unwrap();
        assert!(p.allows(&hv("https://app.example.com"), None));
        assert!(!p.allows(&hv("http://app.example.com"), None));
        assert!(!p.allows(&hv("https://app.example.com.evil"), None));
        assert!(
            OriginPolicy::new(&["*".into()])
                .unwrap()
                .allows(&hv("http://x"), None)
        );
        assert!(OriginPolicy::new(&["app.example.com".into()]).is_err());
        assert!(OriginPolicy::new(&["https://a/b".into()]).is_err());
    }
}

//! One HTTP check of one monitor: send its request, time it, and name what
//! went wrong in the words users of Uptime Kuma and Gatus expect (timeout,
//! refused, DNS, TLS, unexpected status).
//!
//! Every check opens a fresh connection (no pooling): a monitor answers "can
//! a new client reach this endpoint now", which a kept-alive connection to a
//! server that has since stopped accepting would hide.

use super::{
    machine::{Check, ErrorKind},
    spec::MonitorSpec,
};
use crate::{event, outbound};
use reqwest::{Client, redirect};
use std::{error::Error as _, io, time::Duration};

/// Upper bound on opening a connection, whatever the monitor's timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Redirects followed by a monitor that asks for it.
pub const MAX_REDIRECTS: usize = 5;

pub struct Prober {
    direct: Client,
    following: Client,
    /// `--outbound-deny-private` (crate::outbound).
    deny_private: bool,
}

impl Prober {
    pub fn new(deny_private: bool) -> Result<Prober, reqwest::Error> {
        let build = |redirects| {
            let mut builder = Client::builder();
            if deny_private {
                builder = builder.dns_resolver(std::sync::Arc::new(outbound::PublicOnly));
            }
            builder
                .redirect(redirects)
                .connect_timeout(CONNECT_TIMEOUT)
                .pool_max_idle_per_host(0)
                .user_agent(concat!("statushub-heartbeat/", env!("CARGO_PKG_VERSION")))
                .build()
        };
        Ok(Prober {
            direct: build(redirect::Policy::none())?,
            following: build(redirect::Policy::limited(MAX_REDIRECTS))?,
            deny_private,
        })
    }

    /// Runs the monitor's request once. Latency is the time to the response
    /// headers (or to the failure); the body is not read.
    pub async fn check(&self, spec: &MonitorSpec) -> Check {
        let client = if spec.follow_redirects {
            &self.following
        } else {
            &self.direct
        };
        let mut request = client
            .request(spec.http_method(), &spec.url)
            .timeout(spec.timeout());
        for (name, value) in &spec.headers {
            request = request.header(name, value);
        }
        if self.deny_private && outbound::literal_refused(&spec.url) {
            return Check {
                latency_ms: 0,
                http_status: None,
                error: Some((ErrorKind::Connect, outbound::REFUSED.into())),
                checked_at: event::rfc3339(event::now()),
            };
        }
        let started = std::time::Instant::now();
        let result = request.send().await;
        let latency_ms = started.elapsed().as_millis() as u64;
        let checked_at = event::rfc3339(event::now());
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let error = (!spec.expects(status)).then(|| {
                    let expected = serde_json::to_string(&spec.expect_status).unwrap_or_default();
                    (
                        ErrorKind::UnexpectedStatus,
                        format!("HTTP {status}, expected {expected}"),
                    )
                });
                Check {
                    latency_ms,
                    http_status: Some(status),
                    error,
                    checked_at,
                }
            }
            Err(e) => Check {
                latency_ms,
                http_status: None,
                error: Some(classify(&e, spec.timeout_ms)),
                checked_at,
            },
        }
    }
}

/// Names a failed request by the first cause in its chain that says what
/// happened; the detail is the innermost message (the most specific one).
fn classify(e: &reqwest::Error, timeout_ms: u64) -> (ErrorKind, String) {
    if e.is_timeout() {
        return (
            ErrorKind::Timeout,
            format!("no response within {timeout_ms} ms"),
        );
    }
    let detail = innermost(e);
    let mut cause = e.source();
    while let Some(c) = cause {
        if let Some(kind) = kind_of(c) {
            return (kind, detail);
        }
        cause = c.source();
    }
    if e.is_connect() {
        (ErrorKind::Connect, detail)
    } else {
        (ErrorKind::Request, detail)
    }
}

/// What one cause in the chain says happened, if anything.
fn kind_of(cause: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    if cause.is::<rustls::Error>() {
        return Some(ErrorKind::Tls);
    }
    if let Some(io) = cause.downcast_ref::<io::Error>() {
        // io::Error hides its payload from `source()`, and TLS failures
        // arrive as an io::Error inside an io::Error: look inside.
        if let Some(kind) = io.get_ref().and_then(|inner| kind_of(inner)) {
            return Some(kind);
        }
        match io.kind() {
            io::ErrorKind::ConnectionRefused => return Some(ErrorKind::Refused),
            io::ErrorKind::TimedOut => return Some(ErrorKind::Timeout),
            _ => {}
        }
    }
    // hyper-util's connector marks resolver failures only by this message.
    (cause.to_string() == "dns error").then_some(ErrorKind::Dns)
}

fn innermost(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        message = c.to_string();
        cause = c.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heartbeat::spec::{SpecLimits, StatusRange};
    use std::collections::BTreeMap;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    fn spec(url: String, timeout_ms: u64) -> MonitorSpec {
        MonitorSpec {
            url,
            interval_ms: 10_000,
            timeout_ms,
            max_retries: 0,
            backoff_multiplier: 1.0,
            method: "GET".into(),
            expect_status: vec![StatusRange { lo: 200, hi: 399 }],
            headers: BTreeMap::new(),
            follow_redirects: false,
        }
        .validated(&SpecLimits {
            min_interval: Duration::from_millis(1),
        })
        .expect("valid spec")
    }

    /// A one-shot server on loopback answering every connection with `reply`
    /// (or holding it open forever when `reply` is `None`).
    async fn serve(reply: Option<&'static [u8]>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                match reply {
                    Some(bytes) => {
                        // Read the request first: closing on unread bytes resets the connection.
                        let _ = socket.read(&mut [0u8; 4096]).await;
                        let _ = socket.write_all(bytes).await;
                        let _ = socket.shutdown().await;
                    }
                    None => held.push(socket),
                }
            }
        });
        format!("{addr}")
    }

    fn kind(check: &Check) -> Option<ErrorKind> {
        check.error.as_ref().map(|(k, _)| *k)
    }

    #[tokio::test]
    async fn names_each_failure() {
        let prober = Prober::new(false).expect("client");
        let ok = serve(Some(
            b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n",
        ))
        .await;
        let check = prober.check(&spec(format!("http://{ok}/"), 2000)).await;
        assert_eq!(
            (check.http_status, kind(&check)),
            (Some(204), None),
            "{:?}",
            check.error
        );

        let moved = serve(Some(
            b"HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:1/\r\ncontent-length: 0\r\n\r\n",
        ))
        .await;
        let check = prober.check(&spec(format!("http://{moved}/"), 2000)).await;
        assert_eq!(
            (check.http_status, kind(&check)),
            (Some(302), None),
            "redirects are not followed"
        );

        // Followed only when asked.
        let hop: &'static str = Box::leak(
            format!("HTTP/1.1 301 Moved\r\nlocation: http://{ok}/\r\ncontent-length: 0\r\n\r\n")
                .into_boxed_str(),
        );
        let hop = serve(Some(hop.as_bytes())).await;
        let mut follow = spec(format!("http://{hop}/"), 2000);
        assert_eq!(prober.check(&follow).await.http_status, Some(301));
        follow.follow_redirects = true;
        let check = prober.check(&follow).await;
        assert_eq!(
            (check.http_status, kind(&check)),
            (Some(204), None),
            "{:?}",
            check.error
        );

        let broken = serve(Some(
            b"HTTP/1.1 503 Unavailable\r\ncontent-length: 0\r\n\r\n",
        ))
        .await;
        let check = prober.check(&spec(format!("http://{broken}/"), 2000)).await;
        assert_eq!(
            (check.http_status, kind(&check)),
            (Some(503), Some(ErrorKind::UnexpectedStatus))
        );

        let hung = serve(None).await;
        let check = prober.check(&spec(format!("http://{hung}/"), 100)).await;
        assert_eq!(kind(&check), Some(ErrorKind::Timeout));
        assert!(check.latency_ms >= 100, "a timeout takes the whole timeout");

        let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = closed.local_addr().expect("addr");
        drop(closed);
        let check = prober.check(&spec(format!("http://{addr}/"), 2000)).await;
        assert_eq!(kind(&check), Some(ErrorKind::Refused), "{:?}", check.error);

        // A plain-HTTP server does not speak TLS.
        let plain = serve(Some(
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
        ))
        .await;
        let check = prober.check(&spec(format!("https://{plain}/"), 2000)).await;
        assert_eq!(kind(&check), Some(ErrorKind::Tls), "{:?}", check.error);
    }
}

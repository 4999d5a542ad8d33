//! Who may hold a client connection, and when connections must go.
//!
//! Every transport asks here before it serves a connection: the node-wide and
//! per-IP connection limits are shared by Socket.IO, WebSocket and SSE, so no
//! transport can starve the others. The answer is a [`Permit`] that counts the
//! connection (in the limits and in [`Metrics`]) for exactly as long as it
//! lives. HTTP connections that have not (yet) become client connections are
//! bounded per IP too ([`Admission::admit_http`]), so half-sent requests and
//! idle keep-alives cannot pile up. Once the server's shutdown signal fires,
//! newcomers are refused; telling open connections to leave is the signal's
//! job (transports listen to it), and the server waits here until they have
//! (a connection with nobody to say goodbye to is marked quiet and not
//! waited for, see [`Permit::set_quiet`]).

use crate::{
    config::Limits,
    disconnect::{self, refused},
    metrics::{Metrics, Transport},
};
use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Why a connection was turned away; `code` is the stable word clients see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the server is at its connection limit ({0}); try again later")]
    OverCapacity(usize),
    #[error("too many connections from this address (at most {0})")]
    PerIp(usize),
    #[error("the server is shutting down; reconnect shortly")]
    ShuttingDown,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::OverCapacity(_) => refused::OVER_CAPACITY,
            Refusal::PerIp(_) => refused::TOO_MANY_CONNECTIONS,
            Refusal::ShuttingDown => refused::SHUTTING_DOWN,
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    /// HTTP connections per IP that are not upgraded (see [`HttpSlot`]).
    http_per_ip: HashMap<IpAddr, usize>,
    /// Of `total`, those shutdown does not wait for ([`Permit::set_quiet`]).
    quiet: usize,
}

pub struct Admission {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
    metrics: Arc<Metrics>,
    /// The server's shutdown signal: once cancelled, newcomers are refused.
    shutdown: CancellationToken,
    /// Woken whenever a permit is released.
    released: Notify,
}

impl Admission {
    /// `shutdown` is the server's signal; admission only reads it.
    pub fn new(limits: &Limits, metrics: Arc<Metrics>, shutdown: CancellationToken) -> Arc<Self> {
        Arc::new(Admission {
            max_total: limits.max_connections,
            max_per_ip: limits.max_connections_per_ip,
            counts: Mutex::default(),
            metrics,
            shutdown,
            released: Notify::new(),
        })
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        // Counts are updated in single steps; a panic elsewhere leaves them consistent.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits one connection from `ip` (unknown: counted under 0.0.0.0).
    pub fn admit(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
        transport: Transport,
    ) -> Result<Permit, Refusal> {
        let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let refusal = {
            let mut counts = self.counts();
            let from_ip = counts.per_ip.get(&ip).copied().unwrap_or(0);
            if self.shutdown.is_cancelled() {
                Some(Refusal::ShuttingDown)
            } else if counts.total >= self.max_total {
                Some(Refusal::OverCapacity(self.max_total))
            } else if from_ip >= self.max_per_ip {
                Some(Refusal::PerIp(self.max_per_ip))
            } else {
                counts.total += 1;
                *counts.per_ip.entry(ip).or_default() += 1;
                None
            }
        };
        if let Some(refusal) = refusal {
            self.metrics.connection_refused(refusal.code());
            return Err(refusal);
        }
        self.metrics.connection_opened(transport);
        Ok(Permit {
            admission: self.clone(),
            ip,
            transport,
            close_reason: Mutex::new(None),
            quiet: AtomicBool::new(false),
            opened_at: crate::event::rfc3339(crate::event::now()),
        })
    }

    /// Counts a connection refused for a reason outside this module
    /// (bad origin, bad credentials), so every refusal shows in the metrics.
    pub fn refused(&self, reason: &'static str) {
        self.metrics.connection_refused(reason);
    }

    /// Counts one accepted HTTP connection from `ip` until it is upgraded or
    /// closed. `None` when `ip` already holds the per-IP limit of them: the
    /// caller closes the connection. Client connections are counted apart
    /// (by [`Admission::admit`]), so a client's own HTTP connection never
    /// makes it refuse itself.
    pub fn admit_http(self: &Arc<Self>, ip: IpAddr) -> Option<HttpSlot> {
        {
            let mut counts = self.counts();
            let held = counts.http_per_ip.entry(ip).or_default();
            if *held >= self.max_per_ip {
                drop(counts);
                self.metrics.connection_refused(Refusal::PerIp(0).code());
                return None;
            }
            *held += 1;
        }
        Some(HttpSlot {
            admission: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts().total
    }

    /// Open connections shutdown waits for: all but the quiet ones.
    fn awaited(&self) -> usize {
        let counts = self.counts();
        counts.total.saturating_sub(counts.quiet)
    }

    /// Waits until every permit not marked quiet is released or `limit`
    /// passes; returns how many such connections were still open.
    pub async fn wait_until_idle(&self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Registered before the check, so a release in between is not missed.
            let released = self.released.notified();
            if self.awaited() == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return self.awaited();
            }
        }
    }
}

/// One counted HTTP connection; dropping it releases its place.
pub struct HttpSlot {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Drop for HttpSlot {
    fn drop(&mut self) {
        let mut counts = self.admission.counts();
        if let Some(n) = counts.http_per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.http_per_ip.remove(&self.ip);
            }
        }
    }
}

/// One admitted connection. Dropping it releases its place and records why
/// the connection ended (see [`Permit::set_close_reason`]).
pub struct Permit {
    admission: Arc<Admission>,
    ip: IpAddr,
    transport: Transport,
    close_reason: Mutex<Option<&'static str>>,
    quiet: AtomicBool,
    /// When the connection was admitted (RFC 3339): its "connected since" in presence.
    opened_at: String,
}

impl Permit {
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// When this connection was admitted, as presence shows it.
    pub fn opened_at(&self) -> &str {
        &self.opened_at
    }

    /// The stable word the metrics record when this connection ends; the
    /// first reason set wins, since later ones are consequences of it.
    pub fn set_close_reason(&self, reason: &'static str) {
        self.close_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(reason);
    }

    /// Whether shutdown waits for this connection to end. A connection is
    /// waited for unless marked quiet: one with no client to say goodbye to
    /// (an Engine.IO session no Socket.IO client has joined, or one whose
    /// client has left) still counts against the limits, but simply ends
    /// with the process.
    pub fn set_quiet(&self, quiet: bool) {
        {
            // Flag and count change together, under the lock.
            let mut counts = self.admission.counts();
            if self.quiet.swap(quiet, Ordering::Relaxed) == quiet {
                return;
            }
            if quiet {
                counts.quiet += 1;
            } else {
                counts.quiet = counts.quiet.saturating_sub(1);
            }
        }
        if quiet {
            self.admission.released.notify_waiters();
        }
    }

    /// `client_closed` unless the server ended the connection for a reason.
    pub fn close_reason(&self) -> &'static str {
        self.close_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or(disconnect::CLIENT_CLOSED)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        {
            let mut counts = self.admission.counts();
            counts.total = counts.total.saturating_sub(1);
            if *self.quiet.get_mut() {
                counts.quiet = counts.quiet.saturating_sub(1);
            }
            if let Some(n) = counts.per_ip.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    counts.per_ip.remove(&self.ip);
                }
            }
        }
        self.admission
            .metrics
            .connection_closed(self.transport, self.close_reason());
        self.admission.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(total: usize, per_ip: usize) -> Arc<Admission> {
        let limits = Limits {
            max_connections: total,
            max_connections_per_ip: per_ip,
            ..Limits::default()
        };
        Admission::new(
            &limits,
            Arc::new(Metrics::default()),
            CancellationToken::new(),
        )
    }

    #[test]
    fn limits_total_and_per_ip_and_releases_on_drop() {
        let a = admission(3, 2);
        let ip1 = Some("10.0.0.1".parse().unwrap());
        let ip2 = Some("10.0.0.2".parse().unwrap());
        let p1 = a.admit(ip1, Transport::Sse).unwrap();
        let _p2 = a.admit(ip1, Transport::WebSocket).unwrap();
        assert_eq!(a.admit(ip1, Transport::Sse).err(), Some(Refusal::PerIp(2)));
        let _p3 = a.admit(ip2, Transport::Sse).unwrap();
        assert_eq!(
            a.admit(ip2, Transport::Sse).err(),
            Some(Refusal::OverCapacity(3))
        );
        drop(p1);
        assert!(a.admit(ip1, Transport::Sse).is_ok());
        a.shutdown.cancel();
        assert_eq!(
            a.admit(ip2, Transport::Sse).err(),
            Some(Refusal::ShuttingDown)
        );
    }

    #[tokio::test]
    async fn shutdown_waits_for_connections_not_marked_quiet() {
        let a = admission(3, 3);
        let session = a.admit(None, Transport::SocketIo).unwrap();
        session.set_quiet(true);
        session.set_quiet(true);
        assert_eq!(a.open(), 1, "a quiet connection still counts");
        assert_eq!(a.wait_until_idle(Duration::ZERO).await, 0);
        session.set_quiet(false);
        assert_eq!(a.wait_until_idle(Duration::ZERO).await, 1);
        let waiting = tokio::spawn({
            let a = a.clone();
            async move { a.wait_until_idle(Duration::from_secs(3600)).await }
        });
        tokio::task::yield_now().await;
        session.set_quiet(true);
        let woken = tokio::time::timeout(Duration::from_secs(10), waiting).await;
        assert_eq!(woken.expect("woken when it turns quiet").unwrap(), 0);
        drop(session);
        assert_eq!((a.open(), a.counts().quiet), (0, 0));
    }

    #[test]
    fn http_connections_are_bounded_per_ip_apart_from_clients() {
        let a = admission(10, 2);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let _client = a.admit(Some(ip), Transport::Sse).unwrap();
        let _c2 = a.admit(Some(ip), Transport::Sse).unwrap();
        let h1 = a.admit_http(ip).expect("clients do not count here");
        let _h2 = a.admit_http(ip).expect("second");
        assert!(a.admit_http(ip).is_none(), "third is over the limit");
        assert!(a.admit_http("10.0.0.2".parse().unwrap()).is_some());
        drop(h1);
        assert!(a.admit_http(ip).is_some(), "released on drop");
    }

    #[test]
    fn first_close_reason_wins() {
        let a = admission(1, 1);
        let p = a.admit(None, Transport::WebSocket).unwrap();
        p.set_close_reason("slow_consumer");
        p.set_close_reason("shutdown");
        assert_eq!(p.close_reason(), "slow_consumer");
    }
}

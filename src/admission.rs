//! Who may hold a client connection, and when connections must go.
//!
//! Every transport asks here before it serves a connection: the node-wide and
//! per-IP connection limits are shared by Socket.IO, WebSocket and SSE, so no
//! transport can starve the others. The answer is a [`Permit`] that counts the
//! connection (in the limits and in [`Metrics`]) for exactly as long as it
//! lives. Shutdown goes through here too: it refuses newcomers, tells every
//! open connection to leave, and lets the server wait until they have.

use crate::{
    config::Limits,
    disconnect::{self, refused},
    metrics::{Metrics, Transport},
};
use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};
use tokio::sync::{Notify, watch};

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
    closing: bool,
}

pub struct Admission {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
    metrics: Arc<Metrics>,
    /// Flips to true once, when shutdown begins.
    shutdown: watch::Sender<bool>,
    /// Woken whenever a permit is released.
    released: Notify,
}

impl Admission {
    pub fn new(limits: &Limits, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Admission {
            max_total: limits.max_connections,
            max_per_ip: limits.max_connections_per_ip,
            counts: Mutex::default(),
            metrics,
            shutdown: watch::channel(false).0,
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
            if counts.closing {
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
        })
    }

    /// Counts a connection refused for a reason outside this module
    /// (bad origin, bad credentials), so every refusal shows in the metrics.
    pub fn refused(&self, reason: &'static str) {
        self.metrics.connection_refused(reason);
    }

    /// Resolves when shutdown begins (at once if it already has).
    pub fn shutting_down(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown.subscribe();
        async move {
            // An error means the admission is gone, which is shutdown too.
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.counts().closing
    }

    /// Refuses new connections from now on and tells open ones to go.
    pub fn begin_shutdown(&self) {
        self.counts().closing = true;
        self.shutdown.send_replace(true);
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts().total
    }

    /// Waits until every permit is released or `limit` passes; returns how
    /// many connections were still open.
    pub async fn wait_until_idle(&self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Registered before the check, so a release in between is not missed.
            let released = self.released.notified();
            let open = self.open();
            if open == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return self.open();
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
}

impl Permit {
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The stable word the metrics record when this connection ends; the
    /// first reason set wins, since later ones are consequences of it.
    pub fn set_close_reason(&self, reason: &'static str) {
        self.close_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(reason);
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
        Admission::new(&limits, Arc::new(Metrics::default()))
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
        a.begin_shutdown();
        assert_eq!(
            a.admit(ip2, Transport::Sse).err(),
            Some(Refusal::ShuttingDown)
        );
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

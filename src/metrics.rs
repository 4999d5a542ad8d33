//! The figures an operator watches, owned in one place so `/metrics`
//! (Prometheus text) and `/v1/stats` (JSON) can never disagree: both render
//! the same [`Report`], taken from live counters that the hub, the transports
//! and the admission control update as things happen. Nothing here is
//! estimated or hard-coded.
//!
//! Updates are relaxed atomic adds on the hot paths (fan-out adds to a
//! counter it already holds a handle to), so watching costs the hub nothing
//! measurable.
//!
//! Other subsystems keep their own figures and render their own metric
//! families through [`Families`] (the heartbeat does); this module knows
//! none of them, and provides the one [`Histogram`] type they all use.
use dashmap::DashMap;
use serde::Serialize;
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Distinct event names tracked one by one; backends choose names, so the
/// label set is capped and later names are counted under [`OTHER_EVENTS`].
const MAX_EVENT_NAMES: usize = 200;
pub const OTHER_EVENTS: &str = "other";

/// Upper bounds (seconds) of the publish latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Which way a connection came in: a label for metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    SocketIo,
    WebSocket,
    Sse,
    /// Sinks outside the three transports (in-process tools, tests).
    Other,
}

impl Transport {
    pub const ALL: [Transport; 4] = [
        Transport::SocketIo,
        Transport::WebSocket,
        Transport::Sse,
        Transport::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::SocketIo => "socketio",
            Transport::WebSocket => "websocket",
            Transport::Sse => "sse",
            Transport::Other => "other",
        }
    }
}

/// Published and delivered counts of one event name.
#[derive(Default)]
pub struct EventCounters {
    published: AtomicU64,
    delivered: AtomicU64,
}

impl EventCounters {
    /// One event accepted into one connection's outgoing queue.
    pub fn delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct TransportCounters {
    open: AtomicI64,
    opened: AtomicU64,
    slow_disconnects: AtomicU64,
}

/// A latency histogram with fixed bucket bounds (seconds), updated with
/// relaxed atomic adds. `observe` counts before it buckets and `report`
/// reads the buckets before the count, so a report never shows more
/// bucketed observations than counted ones.
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative); observations past the last bound only count.
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|le| secs <= *le) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn report(&self) -> LatencyReport {
        let mut cumulative = 0;
        let buckets = self
            .bounds
            .iter()
            .zip(self.buckets.iter())
            .map(|(le, n)| {
                cumulative += n.load(Ordering::Relaxed);
                Bucket {
                    le: *le,
                    count: cumulative,
                }
            })
            .collect();
        let sum_nanos = self.sum_nanos.load(Ordering::Relaxed);
        LatencyReport {
            count: self.count.load(Ordering::Relaxed),
            sum_seconds: sum_nanos as f64 / 1e9,
            sum: Duration::from_nanos(sum_nanos),
            buckets,
        }
    }
}

pub struct Metrics {
    started: Instant,
    transports: [TransportCounters; Transport::ALL.len()],
    closed: DashMap<(Transport, &'static str), u64>,
    refused: DashMap<&'static str, u64>,
    events: DashMap<String, Arc<EventCounters>>,
    publish_latency: Histogram,
    store_errors: AtomicU64,
    rate_limited: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            transports: Default::default(),
            closed: DashMap::new(),
            refused: DashMap::new(),
            events: DashMap::new(),
            publish_latency: Histogram::new(&LATENCY_BUCKETS),
            store_errors: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// The counters of one event name, for callers that count many times.
    pub fn event(&self, name: &str) -> Arc<EventCounters> {
        if let Some(counters) = self.events.get(name) {
            return counters.clone();
        }
        let name = if self.events.len() >= MAX_EVENT_NAMES {
            OTHER_EVENTS
        } else {
            name
        };
        self.events.entry(name.to_owned()).or_default().clone()
    }

    /// A publish committed (not an idempotent replay), and how long it took.
    pub fn published(&self, name: &str, elapsed: Duration) {
        self.event(name).published.fetch_add(1, Ordering::Relaxed);
        self.publish_latency.observe(elapsed);
    }

    pub fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub fn slow_disconnect(&self, transport: Transport) {
        self.transport(transport)
            .slow_disconnects
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_opened(&self, transport: Transport) {
        let t = self.transport(transport);
        t.open.fetch_add(1, Ordering::Relaxed);
        t.opened.fetch_add(1, Ordering::Relaxed);
    }

    /// `reason` is a stable word (`client_closed`, `slow_consumer`, …).
    pub fn connection_closed(&self, transport: Transport, reason: &'static str) {
        self.transport(transport)
            .open
            .fetch_sub(1, Ordering::Relaxed);
        *self.closed.entry((transport, reason)).or_default() += 1;
    }

    /// A connection turned away before it was served; `reason` is a stable word.
    pub fn connection_refused(&self, reason: &'static str) {
        *self.refused.entry(reason).or_default() += 1;
    }

    fn transport(&self, transport: Transport) -> &TransportCounters {
        &self.transports[transport as usize]
    }

    /// Every figure, read now. `subscriptions` comes from the hub's registry.
    pub fn report(&self, subscriptions: usize) -> Report {
        let connections = Transport::ALL
            .iter()
            // `other` only shows once something outside the three transports used it.
            .filter(|&&t| {
                let c = self.transport(t);
                t != Transport::Other
                    || c.opened.load(Ordering::Relaxed) + c.slow_disconnects.load(Ordering::Relaxed)
                        > 0
            })
            .map(|&t| {
                let c = self.transport(t);
                let closed = self
                    .closed
                    .iter()
                    .filter(|e| e.key().0 == t)
                    .map(|e| (e.key().1, *e.value()))
                    .collect();
                let figures = TransportReport {
                    open: c.open.load(Ordering::Relaxed).max(0) as u64,
                    opened: c.opened.load(Ordering::Relaxed),
                    closed,
                    slow_consumer_disconnects: c.slow_disconnects.load(Ordering::Relaxed),
                };
                (t.as_str(), figures)
            })
            .collect();
        let events = self
            .events
            .iter()
            .map(|e| {
                let figures = EventReport {
                    published: e.value().published.load(Ordering::Relaxed),
                    delivered: e.value().delivered.load(Ordering::Relaxed),
                };
                (e.key().clone(), figures)
            })
            .collect();
        Report {
            uptime_seconds: self.started.elapsed().as_secs(),
            connections,
            connections_refused: self
                .refused
                .iter()
                .map(|e| (*e.key(), *e.value()))
                .collect(),
            subscriptions,
            events,
            publish_latency: self.publish_latency.report(),
            store_errors: self.store_errors.load(Ordering::Relaxed),
            publish_rate_limited: self.rate_limited.load(Ordering::Relaxed),
        }
    }
}

/// All figures at one moment; `/v1/stats` is this as JSON.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub uptime_seconds: u64,
    pub connections: BTreeMap<&'static str, TransportReport>,
    pub connections_refused: BTreeMap<&'static str, u64>,
    pub subscriptions: usize,
    pub events: BTreeMap<String, EventReport>,
    pub publish_latency: LatencyReport,
    pub store_errors: u64,
    pub publish_rate_limited: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransportReport {
    pub open: u64,
    pub opened: u64,
    pub closed: BTreeMap<&'static str, u64>,
    pub slow_consumer_disconnects: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventReport {
    pub published: u64,
    pub delivered: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatencyReport {
    pub count: u64,
    pub sum_seconds: f64,
    /// The same sum, exact (for reports in other units).
    #[serde(skip)]
    pub sum: Duration,
    /// Cumulative, as Prometheus buckets are.
    pub buckets: Vec<Bucket>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Bucket {
    pub le: f64,
    pub count: u64,
}

/// A subsystem's figures as metric families of its own.
pub trait Families {
    fn families(&self, out: &mut Exposition);
}

impl Report {
    /// The Prometheus text exposition format (version 0.0.4): the hub's
    /// families, then each other subsystem's.
    pub fn prometheus(&self, others: &[&dyn Families]) -> String {
        let mut out = Exposition::default();
        let per_transport = |f: fn(&TransportReport) -> u64| {
            self.connections
                .iter()
                .map(move |(t, c)| (format!("transport=\"{t}\""), f(c).to_string()))
        };
        out.family(
            "statushub_connections",
            "gauge",
            "Client connections open now, by transport.",
            per_transport(|c| c.open),
        );
        out.family(
            "statushub_connections_opened_total",
            "counter",
            "Client connections accepted, by transport.",
            per_transport(|c| c.opened),
        );
        out.family(
            "statushub_connections_closed_total",
            "counter",
            "Client connections ended, by transport and reason.",
            self.connections.iter().flat_map(|(t, c)| {
                c.closed.iter().map(move |(reason, n)| {
                    (
                        format!("transport=\"{t}\",reason=\"{}\"", escape(reason)),
                        n.to_string(),
                    )
                })
            }),
        );
        out.family(
            "statushub_connections_refused_total",
            "counter",
            "Connection attempts turned away, by reason.",
            self.connections_refused
                .iter()
                .map(|(reason, n)| (format!("reason=\"{}\"", escape(reason)), n.to_string())),
        );
        out.family(
            "statushub_slow_consumer_disconnects_total",
            "counter",
            "Connections cut off because their outgoing queue overflowed, by transport.",
            per_transport(|c| c.slow_consumer_disconnects),
        );
        out.family(
            "statushub_subscriptions",
            "gauge",
            "Account subscriptions held by connections on this node.",
            [(String::new(), self.subscriptions.to_string())],
        );
        let per_event = |f: fn(&EventReport) -> u64| {
            self.events
                .iter()
                .map(move |(e, r)| (format!("event=\"{}\"", escape(e)), f(r).to_string()))
        };
        out.family(
            "statushub_events_published_total",
            "counter",
            "Events committed through this node, by event name.",
            per_event(|e| e.published),
        );
        out.family(
            "statushub_events_delivered_total",
            "counter",
            "Events handed to a connection's outgoing queue, by event name.",
            per_event(|e| e.delivered),
        );
        out.histogram(
            "statushub_publish_duration_seconds",
            "Time from a publish call to its durable commit.",
            &self.publish_latency,
        );
        out.family(
            "statushub_store_errors_total",
            "counter",
            "Store operations that failed because the store was unavailable.",
            [(String::new(), self.store_errors.to_string())],
        );
        out.family(
            "statushub_publish_rate_limited_total",
            "counter",
            "Publishes refused with 429 by the per-API-key rate limit.",
            [(String::new(), self.publish_rate_limited.to_string())],
        );
        for other in others {
            other.families(&mut out);
        }
        out.family(
            "statushub_uptime_seconds",
            "gauge",
            "Seconds since this node started.",
            [(String::new(), self.uptime_seconds.to_string())],
        );
        out.text
    }
}

/// Writes metric families, each whole, as the text format requires.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    pub fn family(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: impl IntoIterator<Item = (String, String)>,
    ) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            if labels.is_empty() {
                let _ = writeln!(self.text, "{name} {value}");
            } else {
                let _ = writeln!(self.text, "{name}{{{labels}}} {value}");
            }
        }
    }

    pub fn histogram(&mut self, name: &str, help: &str, h: &LatencyReport) {
        let buckets = h
            .buckets
            .iter()
            .map(|b| (format!("le=\"{}\"", b.le), b.count.to_string()))
            .chain([("le=\"+Inf\"".to_owned(), h.count.to_string())]);
        self.family(name, "histogram", help, std::iter::empty());
        for (labels, value) in buckets {
            let _ = writeln!(self.text, "{name}_bucket{{{labels}}} {value}");
        }
        let _ = writeln!(
            self.text,
            "{name}_sum {}\n{name}_count {}",
            h.sum_seconds, h.count
        );
    }
}

/// Label values are quoted; backslash, quote and newline must be escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counts_every_observation() {
        let m = Metrics::default();
        m.published("a", Duration::from_micros(300));
        m.published("a", Duration::from_millis(3));
        m.published("b", Duration::from_secs(60));
        let r = m.report(0);
        assert_eq!(r.publish_latency.count, 3);
        assert_eq!(r.publish_latency.buckets[0].count, 1);
        assert_eq!(r.publish_latency.buckets.last().map(|b| b.count), Some(2));
        assert_eq!(r.events["a"].published, 2);
        let text = r.prometheus(&[]);
        assert!(text.contains("statushub_publish_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("statushub_events_published_total{event=\"b\"} 1"));
    }

    #[test]
    fn event_names_are_capped() {
        let m = Metrics::default();
        for i in 0..MAX_EVENT_NAMES + 10 {
            m.published(&format!("e{i}"), Duration::ZERO);
        }
        let r = m.report(0);
        assert_eq!(r.events.len(), MAX_EVENT_NAMES + 1);
        assert_eq!(r.events[OTHER_EVENTS].published, 10);
    }
}

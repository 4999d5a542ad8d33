//! Run-time configuration of `statushub serve`, validated once at start-up.
//!
//! Every setting has one name shared by its flag and its environment variable,
//! so a config error can name exactly what the operator has to fix.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Everything the server needs to run, already validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub jwt_secret: String,
    pub api_keys: Vec<String>,
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel; `None` = `statushub`.
    pub redis_prefix: Option<String>,
    /// Empty means same origin only.
    pub allowed_origins: Vec<String>,
    pub limits: Limits,
    pub retention: Retention,
    pub monitors: MonitorSettings,
    /// The webhook dispatcher's timing (defaults; tests shorten and inject a clock).
    pub webhooks: WebhookSettings,
}

/// Per-connection and per-request bounds. Each has a `STATUSHUB_*` variable
/// and a flag; docs/OPERATIONS.md lists them with their defaults.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest accepted HTTP body in bytes (413 above).
    pub max_body_bytes: usize,
    /// Outgoing messages buffered per connection before it is cut off as slow.
    pub queue_size: usize,
    /// How long a reconnecting client may take to absorb its missed events.
    pub catch_up_timeout: Duration,
    /// Client connections (all transports together) this node serves at once.
    pub max_connections: usize,
    /// Client connections one IP address may hold at once.
    pub max_connections_per_ip: usize,
    /// Accounts one connection may subscribe to (its own included).
    pub max_subscriptions: usize,
    /// Largest message a client may send over WebSocket or Socket.IO.
    pub max_message_bytes: usize,
    /// Sustained publishes per second per API key; 0 turns the limit off.
    pub publish_rate: u32,
    /// Publishes an API key may make in a burst above the sustained rate.
    pub publish_burst: u32,
    /// How long an Engine.IO session may stay open without a Socket.IO
    /// client joining it (the connect packet, accepted) before it is closed.
    pub connect_timeout: Duration,
    /// How often the server pings idle WebSocket/Socket.IO peers (and sends
    /// SSE keep-alive comments).
    pub ping_interval: Duration,
    /// How long a pinged peer may take to answer before it is closed.
    pub ping_timeout: Duration,
    /// How long a raw WebSocket client may take to send its `auth` frame.
    pub auth_timeout: Duration,
    /// How long an HTTP client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long an HTTP connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// How long a node's presence entries outlive its last refresh (it
    /// refreshes every third of this): how long a dead node's connections
    /// stay listed.
    pub presence_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024,
            queue_size: 1024,
            catch_up_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            max_subscriptions: 100,
            max_message_bytes: 64 * 1024,
            publish_rate: 1_000,
            publish_burst: 2_000,
            connect_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            auth_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            presence_ttl: Duration::from_secs(30),
        }
    }
}

/// How much history each account keeps for resume and `events?since`.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// Events kept per account.
    pub max_events: u64,
    /// Events older than this are dropped.
    pub max_age: Duration,
    /// How long an `Idempotency-Key` answers with its first result.
    pub idempotency_ttl: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_events: 10_000,
            max_age: Duration::from_secs(7 * 24 * 3600),
            idempotency_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// How the heartbeat checks monitors.
#[derive(Clone, Debug)]
pub struct MonitorSettings {
    /// Checks in flight at once, across all monitors.
    pub max_in_flight: usize,
    /// Shortest `intervalMs` a monitor may ask for. 1 s in production;
    /// tests lower it to run state machines in milliseconds.
    pub min_interval: Duration,
    /// How long check results are kept (`store::HistoryPolicy::keep`).
    pub history: Duration,
    /// `--outbound-deny-private`: checks of loopback, private and
    /// link-local destinations fail instead of connecting.
    pub deny_private: bool,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        MonitorSettings {
            max_in_flight: 64,
            min_interval: Duration::from_secs(1),
            history: Duration::from_secs(30 * 24 * 3600),
            deny_private: false,
        }
    }
}

/// A setting that is missing or malformed; the message names it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{setting} is required (set {env} or pass {flag}{hint})")]
    Missing {
        setting: &'static str,
        env: &'static str,
        flag: &'static str,
        /// What else would do, e.g. `, or run with --dev`.
        hint: &'static str,
    },
    #[error("{setting} is invalid: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
    #[error(transparent)]
    DevSecrets(#[from] crate::dev::DevSecretsError),
}

/// Splits a comma-separated list, dropping blanks.
pub fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Milliseconds since the Unix epoch, as the dispatcher sees time.
pub type Clock = std::sync::Arc<dyn Fn() -> i64 + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    std::sync::Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    })
}

/// The webhook dispatcher's timing (`webhooks::dispatch`).
#[derive(Clone)]
pub struct WebhookSettings {
    /// Where the dispatcher reads the time (tests move it by hand).
    pub clock: Clock,
    /// How often the outbox is polled for due deliveries.
    pub poll: Duration,
    /// One attempt's whole time (connect, send, answer).
    pub timeout: Duration,
    /// Attempts in flight to one endpoint at most.
    pub per_endpoint: usize,
    /// How long a claim holds a delivery (a node that died mid-attempt
    /// gives it up after this).
    pub lease: Duration,
    /// How long after its event a delivery is retried before it fails.
    pub window: Duration,
    /// `--outbound-deny-private`: refuse loopback, private and link-local
    /// destinations (after DNS resolution).
    pub deny_private: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            clock: system_clock(),
            poll: Duration::from_millis(250),
            timeout: Duration::from_secs(10),
            per_endpoint: 4,
            lease: Duration::from_secs(60),
            window: Duration::from_secs(24 * 3600),
            deny_private: false,
        }
    }
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("poll", &self.poll)
            .field("timeout", &self.timeout)
            .field("per_endpoint", &self.per_endpoint)
            .field("lease", &self.lease)
            .field("window", &self.window)
            .field("deny_private", &self.deny_private)
            .finish_non_exhaustive()
    }
}

//! The command line: `statushub serve` and `statushub token`.
//!
//! Every `serve` setting is both a flag and a `STATUSHUB_*` variable (clap's
//! `env`), so containers and shells configure it the same way.

use crate::{
    auth::Jwt,
    config::{Config, ConfigError, Limits, MonitorSettings, Retention, split_list},
    dev,
};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::{
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

#[derive(Parser)]
#[command(name = "statushub", version, about = "Realtime status broadcast hub")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start-up: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Command {
    /// Run the hub.
    Serve(ServeArgs),
    /// Mint a client token with the configured secret (development and tests).
    Token(TokenArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address the HTTP/WebSocket server binds: IP:PORT, localhost:PORT, or :PORT
    /// (127.0.0.1); port 0 picks a free one. 0.0.0.0:PORT listens on every interface.
    #[arg(long, env = "STATUSHUB_LISTEN", default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Directory of the embedded store (SQLite file).
    #[arg(long, env = "STATUSHUB_DATA_DIR", default_value = "./statushub-data")]
    pub data_dir: PathBuf,
    /// HS256 key for client tokens.
    #[arg(long, env = "STATUSHUB_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Comma-separated API keys for backend services.
    #[arg(long, env = "STATUSHUB_API_KEYS", hide_env_values = true)]
    pub api_keys: Option<String>,
    /// Redis URL for cluster mode on Redis: events, snapshots, idempotency records and
    /// monitors live in Redis, not the data dir; every node sharing it serves every account.
    /// For a Redis Cluster, one node's URL (detected) or several, comma-separated (docs/CLUSTER.md).
    #[arg(long, env = "STATUSHUB_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel (1-64 of A-Z a-z 0-9 _ . : -), so several
    /// clusters can share one Redis. Every node of a cluster must use the same one.
    #[arg(long, env = "STATUSHUB_REDIS_PREFIX", default_value = "statushub")]
    pub redis_prefix: String,
    /// Comma-separated origins allowed for CORS and WebSocket upgrades (default: same origin only).
    #[arg(long, env = "STATUSHUB_ALLOWED_ORIGINS")]
    pub allowed_origins: Option<String>,
    /// Development: use a JWT secret and an API key kept in <data-dir>/dev-secrets.json
    /// (made on the first run, reused after) when none is given, and print a
    /// ready-to-use token, status page link and curl line.
    #[arg(long)]
    pub dev: bool,
    /// Events retained per account for resume.
    #[arg(long, env = "STATUSHUB_RETENTION_EVENTS", default_value_t = 10_000)]
    pub retention_events: u64,
    /// How long events are retained (e.g. 7d, 12h).
    #[arg(long, env = "STATUSHUB_RETENTION_AGE", default_value = "7d", value_parser = humantime::parse_duration)]
    pub retention_age: Duration,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "STATUSHUB_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// Outgoing messages buffered per connection before it is cut off as too slow.
    #[arg(long, env = "STATUSHUB_QUEUE_SIZE", default_value_t = 1024)]
    pub queue_size: usize,
    /// Heartbeat checks in flight at once, across all monitors.
    #[arg(long, env = "STATUSHUB_MONITOR_MAX_IN_FLIGHT", default_value_t = 64)]
    pub monitor_max_in_flight: usize,
    /// Shortest monitor interval accepted, in ms (lower it only for tests).
    #[arg(
        long,
        env = "STATUSHUB_MIN_MONITOR_INTERVAL_MS",
        default_value_t = 1000
    )]
    pub min_monitor_interval_ms: u64,
    /// How long every monitor check is kept (hourly buckets after 24 h), e.g. 30d.
    #[arg(long, env = "STATUSHUB_MONITOR_HISTORY", default_value = "30d", value_parser = humantime::parse_duration)]
    pub monitor_history: Duration,
    /// Refuse webhook deliveries and monitor checks to loopback, private and
    /// link-local addresses, checked after DNS resolution (docs/WEBHOOKS.md).
    #[arg(long, env = "STATUSHUB_OUTBOUND_DENY_PRIVATE")]
    pub outbound_deny_private: bool,
    /// Client connections (all transports together) served at once.
    #[arg(long, env = "STATUSHUB_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Client connections one IP address may hold at once.
    #[arg(
        long,
        env = "STATUSHUB_MAX_CONNECTIONS_PER_IP",
        default_value_t = 1_000
    )]
    pub max_connections_per_ip: usize,
    /// Accounts one connection may subscribe to (its own included).
    #[arg(long, env = "STATUSHUB_MAX_SUBSCRIPTIONS", default_value_t = 100)]
    pub max_subscriptions: usize,
    /// Largest message a client may send over WebSocket or Socket.IO, in bytes.
    #[arg(long, env = "STATUSHUB_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub max_message_bytes: usize,
    /// Sustained publishes per second per API key (0 = unlimited).
    #[arg(long, env = "STATUSHUB_PUBLISH_RATE", default_value_t = 1_000)]
    pub publish_rate: u32,
    /// Publishes an API key may burst above the sustained rate.
    #[arg(long, env = "STATUSHUB_PUBLISH_BURST", default_value_t = 2_000)]
    pub publish_burst: u32,
    /// How long a Socket.IO session may stay open without joining (its connect
    /// packet accepted) before it is closed, e.g. 10s.
    #[arg(long, env = "STATUSHUB_CONNECT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// How often idle peers are pinged (and SSE keep-alives sent), e.g. 25s.
    #[arg(long, env = "STATUSHUB_PING_INTERVAL", default_value = "25s", value_parser = humantime::parse_duration)]
    pub ping_interval: Duration,
    /// How long a pinged peer may take to answer before it is closed, e.g. 20s.
    #[arg(long, env = "STATUSHUB_PING_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub ping_timeout: Duration,
    /// How long a raw WebSocket client may take to authenticate, e.g. 5s.
    #[arg(long, env = "STATUSHUB_AUTH_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub auth_timeout: Duration,
    /// How long an HTTP client may take to send a request's headers, e.g. 10s.
    #[arg(long, env = "STATUSHUB_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,
    /// How long an HTTP connection may stay open with no request in flight, e.g. 60s.
    #[arg(long, env = "STATUSHUB_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// How long a node's presence entries outlive its last refresh, e.g. 30s.
    #[arg(long, env = "STATUSHUB_PRESENCE_TTL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub presence_ttl: Duration,
    /// Log format on stderr.
    #[arg(long, env = "STATUSHUB_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Args)]
pub struct TokenArgs {
    /// Account the token opens (its `account_id` claim).
    #[arg(long)]
    pub account: String,
    /// User the token is for (its `sub` claim).
    #[arg(long)]
    pub user: String,
    /// `admin` may subscribe to any account.
    #[arg(long)]
    pub role: Option<String>,
    /// Lifetime, e.g. 1h, 30m, 7d.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// HS256 key to sign with: the hub's STATUSHUB_JWT_SECRET.
    #[arg(long, env = "STATUSHUB_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Data dir of a `serve --dev` hub: without a JWT secret, the dev secret kept
    /// there (dev-secrets.json) signs the token.
    #[arg(long, env = "STATUSHUB_DATA_DIR", default_value = "./statushub-data")]
    pub data_dir: PathBuf,
}

/// Which secrets `--dev` supplied, to print for the newcomer.
pub struct Generated {
    /// The JWT secret is the dev one.
    pub jwt_secret: bool,
    /// The API key is the dev one.
    pub api_key: bool,
    /// The dev secrets file, and whether this start made it.
    pub kept_in: Option<(PathBuf, bool)>,
}

impl ServeArgs {
    /// Validates the settings into a [`Config`], generating secrets under `--dev`.
    pub fn into_config(self) -> Result<(Config, Generated), ConfigError> {
        self.check_limits()?;
        let given_secret = self.jwt_secret.filter(|s| !s.is_empty());
        let mut api_keys = self.api_keys.as_deref().map(split_list).unwrap_or_default();
        let mut generated = Generated {
            jwt_secret: given_secret.is_none(),
            api_key: api_keys.is_empty(),
            kept_in: None,
        };
        if !self.dev {
            if given_secret.is_none() {
                return Err(missing(
                    "JWT secret",
                    "STATUSHUB_JWT_SECRET",
                    "--jwt-secret",
                    SERVE_HINT,
                ));
            }
            if api_keys.is_empty() {
                return Err(missing(
                    "an API key",
                    "STATUSHUB_API_KEYS",
                    "--api-keys",
                    SERVE_HINT,
                ));
            }
        }
        let jwt_secret = match given_secret {
            Some(secret) if !api_keys.is_empty() => secret,
            given => {
                let (kept, made) = dev::load_or_create(&self.data_dir)?;
                generated.kept_in = Some((dev::path(&self.data_dir), made));
                if api_keys.is_empty() {
                    api_keys.push(kept.api_key);
                }
                given.unwrap_or(kept.jwt_secret)
            }
        };
        if self.retention_events == 0 {
            return Err(invalid(
                "STATUSHUB_RETENTION_EVENTS (--retention-events)",
                "must be at least 1",
            ));
        }
        if self.queue_size < 16 {
            return Err(invalid(
                "STATUSHUB_QUEUE_SIZE (--queue-size)",
                "must be at least 16",
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(invalid(
                "STATUSHUB_MAX_BODY_BYTES (--max-body-bytes)",
                "must be at least 1024",
            ));
        }
        if !(1..=10_000).contains(&self.monitor_max_in_flight) {
            return Err(invalid(
                "STATUSHUB_MONITOR_MAX_IN_FLIGHT (--monitor-max-in-flight)",
                "must be between 1 and 10000",
            ));
        }
        if !(10..=3_600_000).contains(&self.min_monitor_interval_ms) {
            return Err(invalid(
                "STATUSHUB_MIN_MONITOR_INTERVAL_MS (--min-monitor-interval-ms)",
                "must be between 10 and 3600000",
            ));
        }
        if !(3600..=366 * 86_400).contains(&self.monitor_history.as_secs()) {
            return Err(invalid(
                "STATUSHUB_MONITOR_HISTORY (--monitor-history)",
                "must be between 1h and 366d",
            ));
        }
        let config = Config {
            listen: self.listen,
            data_dir: self.data_dir,
            jwt_secret,
            api_keys,
            redis_url: self.redis_url.filter(|s| !s.is_empty()),
            redis_prefix: Some(self.redis_prefix).filter(|s| !s.is_empty()),
            allowed_origins: self
                .allowed_origins
                .as_deref()
                .map(split_list)
                .unwrap_or_default(),
            limits: Limits {
                max_body_bytes: self.max_body_bytes,
                queue_size: self.queue_size,
                max_connections: self.max_connections,
                max_connections_per_ip: self.max_connections_per_ip,
                max_subscriptions: self.max_subscriptions,
                max_message_bytes: self.max_message_bytes,
                publish_rate: self.publish_rate,
                publish_burst: self.publish_burst,
                connect_timeout: self.connect_timeout,
                ping_interval: self.ping_interval,
                ping_timeout: self.ping_timeout,
                auth_timeout: self.auth_timeout,
                header_read_timeout: self.header_read_timeout,
                idle_timeout: self.idle_timeout,
                presence_ttl: self.presence_ttl,
                ..Limits::default()
            },
            retention: Retention {
                max_events: self.retention_events,
                max_age: self.retention_age,
                ..Retention::default()
            },
            monitors: MonitorSettings {
                max_in_flight: self.monitor_max_in_flight,
                min_interval: Duration::from_millis(self.min_monitor_interval_ms),
                history: self.monitor_history,
                deny_private: self.outbound_deny_private,
            },
            webhooks: crate::webhooks::Settings {
                deny_private: self.outbound_deny_private,
                ..Default::default()
            },
        };
        Ok((config, generated))
    }
}

impl ServeArgs {
    /// Limits that would leave the hub unusable are refused at start-up.
    fn check_limits(&self) -> Result<(), ConfigError> {
        let at_least_one = [
            (
                "STATUSHUB_MAX_CONNECTIONS (--max-connections)",
                self.max_connections,
            ),
            (
                "STATUSHUB_MAX_CONNECTIONS_PER_IP (--max-connections-per-ip)",
                self.max_connections_per_ip,
            ),
            (
                "STATUSHUB_MAX_SUBSCRIPTIONS (--max-subscriptions)",
                self.max_subscriptions,
            ),
        ];
        for (setting, value) in at_least_one {
            if value == 0 {
                return Err(invalid(setting, "must be at least 1"));
            }
        }
        if self.max_message_bytes < 1024 {
            return Err(invalid(
                "STATUSHUB_MAX_MESSAGE_BYTES (--max-message-bytes)",
                "must be at least 1024",
            ));
        }
        if self.publish_rate > 0 && self.publish_burst == 0 {
            return Err(invalid(
                "STATUSHUB_PUBLISH_BURST (--publish-burst)",
                "must be at least 1 while a publish rate is set",
            ));
        }
        let nonzero = [
            (
                "STATUSHUB_CONNECT_TIMEOUT (--connect-timeout)",
                self.connect_timeout,
            ),
            (
                "STATUSHUB_PING_INTERVAL (--ping-interval)",
                self.ping_interval,
            ),
            ("STATUSHUB_PING_TIMEOUT (--ping-timeout)", self.ping_timeout),
            ("STATUSHUB_AUTH_TIMEOUT (--auth-timeout)", self.auth_timeout),
            (
                "STATUSHUB_HEADER_READ_TIMEOUT (--header-read-timeout)",
                self.header_read_timeout,
            ),
            ("STATUSHUB_IDLE_TIMEOUT (--idle-timeout)", self.idle_timeout),
            ("STATUSHUB_PRESENCE_TTL (--presence-ttl)", self.presence_ttl),
        ];
        for (setting, value) in nonzero {
            if value.is_zero() {
                return Err(invalid(setting, "must be longer than zero"));
            }
        }
        Ok(())
    }
}

impl TokenArgs {
    pub fn mint(&self) -> Result<String, ConfigError> {
        let kept;
        let secret = match self.jwt_secret.as_deref().filter(|s| !s.is_empty()) {
            Some(secret) => secret,
            None => {
                kept = dev::load(&self.data_dir)?.ok_or_else(|| {
                    missing(
                        "JWT secret",
                        "STATUSHUB_JWT_SECRET",
                        "--jwt-secret",
                        TOKEN_HINT,
                    )
                })?;
                &kept.jwt_secret
            }
        };
        if !crate::event::valid_account_id(&self.account) {
            return Err(invalid(
                "--account",
                "use letters, digits, '_', '-', '.', '@' (1 to 128)",
            ));
        }
        Ok(Jwt::new(secret).mint(&self.account, &self.user, self.role.as_deref(), self.ttl))
    }
}

/// What `serve` offers when a secret is missing.
const SERVE_HINT: &str = ", or run with --dev to use secrets kept in the data dir";
/// What `token` offers: it reads the secret a `serve --dev` hub kept.
const TOKEN_HINT: &str =
    "; for a `serve --dev` hub, pass its --data-dir (no dev-secrets.json there)";

fn missing(
    setting: &'static str,
    env: &'static str,
    flag: &'static str,
    hint: &'static str,
) -> ConfigError {
    ConfigError::Missing {
        setting,
        env,
        flag,
        hint,
    }
}

fn invalid(setting: &'static str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.into(),
    }
}

/// The `--listen` value: `IP:PORT`, `[IPv6]:PORT`, `localhost:PORT` or
/// `:PORT` (the last two on 127.0.0.1; names are not resolved, so the hub
/// never binds somewhere DNS chose).
pub fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    let raw = raw.trim();
    if let Ok(addr) = raw.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let refuse = || {
        format!(
            "{raw:?} is not an address to listen on; use IP:PORT, e.g. 127.0.0.1:8080, \
             0.0.0.0:8080 (every interface), [::1]:8080, localhost:8080, or :0 (a free port)"
        )
    };
    let (host, port) = raw.rsplit_once(':').ok_or_else(refuse)?;
    let port: u16 = port.parse().map_err(|_| refuse())?;
    if host.is_empty() || host.eq_ignore_ascii_case("localhost") {
        Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port))
    } else {
        Err(refuse())
    }
}

/// What `serve --dev` prints once the port is known: enough to see an event flow.
pub fn dev_banner(config: &Config, url: &str, generated: &Generated) -> String {
    let jwt = Jwt::new(&config.jwt_secret);
    let token = jwt.mint("demo", "demo-user", None, Duration::from_secs(24 * 3600));
    let key = &config.api_keys[0];
    let ws = url.replacen("http", "ws", 1);
    let mut out = String::from("\nstatushub dev mode\n");
    if generated.jwt_secret {
        out += &format!("  JWT secret: {}\n", config.jwt_secret);
    }
    if generated.api_key {
        out += &format!("  API key:    {key}\n");
    }
    if let Some((path, made)) = &generated.kept_in {
        let when = if *made {
            "made now and kept in"
        } else {
            "kept from an earlier --dev run in"
        };
        out += &format!(
            "  ({when} {}:\n   \
             a restart reuses them, so tokens and the key stay valid; delete the file for new ones)\n",
            path.display()
        );
    }
    out += &format!(
        "  client token (account \"demo\", 24h):\n    {token}\n\n\
         For your shell (the docs use these names):\n    \
         export TOKEN='{token}' API_KEY='{key}'\n"
    );
    if generated.jwt_secret {
        out += &format!(
            "Mint more tokens with the kept secret:\n    \
             statushub token --data-dir {} --account demo --user me\n",
            shell_word(&config.data_dir)
        );
    }
    out += &format!(
        "\nOpen the live status page:\n    {url}/?token={token}\n\n\
         Connect a socket.io client:\n    io(\"{url}\", {{ auth: {{ token: \"{token}\" }} }})\n\n\
         Or follow the events as Server-Sent Events or on a raw WebSocket (cargo install websocat):\n    \
         curl -N '{url}/v1/accounts/demo/stream?token={token}'\n    \
         websocat '{ws}/ws?token={token}'\n\n\
         Post a phone test and watch phone_status_changed arrive:\n    \
         curl -sS -X POST {url}/v1/accounts/demo/phone-tests \\\n      \
         -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n      \
         -d '{{\"phoneNumberId\":\"phone-1\",\"isActive\":true,\"displayPhoneNumber\":\"+1 555 0100\"}}'\n"
    );
    out
}

/// A path as one shell word (quoted when it holds anything unusual).
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+@:,".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_listen;

    #[test]
    fn listen_takes_what_the_readme_promises() {
        for (raw, expected) in [
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("0.0.0.0:0", "0.0.0.0:0"),
            ("[::1]:9000", "[::1]:9000"),
            (":0", "127.0.0.1:0"),
            (":8081", "127.0.0.1:8081"),
            ("localhost:8080", "127.0.0.1:8080"),
            ("LOCALHOST:0", "127.0.0.1:0"),
        ] {
            assert_eq!(parse_listen(raw).unwrap().to_string(), expected, "{raw}");
        }
        for raw in [
            "8080",
            "localhost",
            "example.com:80",
            ":99999",
            "1.2.3:80",
            "",
        ] {
            let message = parse_listen(raw).unwrap_err();
            assert!(message.contains("e.g. 127.0.0.1:8080"), "{raw}: {message}");
        }
    }
}

//! Flags. Every flag's doc comment is its `--help` text: say what it does,
//! its unit, and what the default measures.

use crate::client::Transport;
use clap::{Args, Parser, Subcommand};
use std::{path::PathBuf, time::Duration};

/// Load generator for statushub and any server that follows its publish
/// endpoint (`POST /v1/accounts/{account}/events` with an API key) and its
/// Socket.IO rooms (`account:{id}`, JWT `auth.token` with an `account_id` claim).
///
/// Each scenario connects, measures, prints a table, optionally appends a
/// JSON line to --json, and stops by itself (bounded by --max-duration).
#[derive(Parser)]
#[command(name = "loadgen", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// N clients over A accounts; E events per account published over HTTP
    /// keep-alive; reports deliveries/s, end-to-end latency and
    /// lost / duplicated / out-of-order deliveries.
    Fanout(FanoutArgs),
    /// N connections held open; reports server RSS per connection and
    /// connections accepted per second.
    Idle(IdleArgs),
    /// Acknowledged publishes per second (no subscribers), into one account
    /// or spread over several.
    Publish(PublishArgs),
    /// Turns --json result files into the markdown tables of docs/PERFORMANCE.md.
    Report(ReportArgs),
}

/// Flags shared by every scenario.
#[derive(Args, Clone)]
pub struct Common {
    /// Server base URL (http://host:port); WebSocket URLs are derived from it.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Where publishers send events, when not to --url: another node of a
    /// cluster, so every delivery measured crosses from one node to the other.
    #[arg(long)]
    pub publish_url: Option<String>,
    /// API key for POST /v1/accounts/{account}/events.
    #[arg(long, env = "LOADGEN_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// HS256 secret the server verifies client tokens with; the tool mints its own.
    #[arg(long, env = "LOADGEN_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,
    /// PID of the server process, to read its RSS and CPU from /proc/PID.
    /// Without it server figures are left out.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Name of the server in the results (e.g. statushub, peer).
    #[arg(long, default_value = "server")]
    pub server_name: String,
    /// Spread connections over source addresses 127.0.0.1 ..= 127.0.0.N
    /// (loopback targets only), so ports never run out.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=254))]
    pub source_addrs: u8,
    /// Connection handshakes in flight at once.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Give up when the clients are not all connected after this long (e.g. 60s).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// Hard bound on the whole run; the tool stops with an error after it.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub max_duration: Duration,
    /// Append the result as one JSON line to this file (for `loadgen report`).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Worker threads of the tool (1 = a single-threaded runtime, best when
    /// the tool is pinned to one core).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    /// Subscribing clients.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Accounts; client i subscribes to account i mod A.
    #[arg(long, default_value_t = 10)]
    pub accounts: usize,
    /// Events published to each account.
    #[arg(long, default_value_t = 1000)]
    pub events: u64,
    /// Total publishes per second over all accounts (0 = as fast as the
    /// server acknowledges them with --publishers requests in flight).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Publishing keep-alive connections (= publishes in flight at most).
    #[arg(long, default_value_t = 32)]
    pub publishers: usize,
    /// Filler bytes in each event's data, so events have a realistic size.
    #[arg(long, default_value_t = 128)]
    pub pad: usize,
    /// After the last publish, how long to wait for outstanding deliveries
    /// before counting them lost.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Client protocol.
    #[arg(long, value_enum, default_value = "socketio")]
    pub transport: Transport,
}

#[derive(Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connections to open and hold (each costs one descriptor here and one in the server).
    #[arg(long, default_value_t = 5000)]
    pub clients: usize,
    /// Accounts the connections are spread over.
    #[arg(long, default_value_t = 100)]
    pub accounts: usize,
    /// Pause after the last connection before reading the server's RSS.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// How long to hold the connections open (answering pings) after that.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub hold: Duration,
    /// Client protocol.
    #[arg(long, value_enum, default_value = "socketio")]
    pub transport: Transport,
}

#[derive(Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub common: Common,
    /// Accounts the publishes are spread over, round robin (1 = all into one account).
    #[arg(long, default_value_t = 1)]
    pub accounts: usize,
    /// Publishes to make at most.
    #[arg(long, default_value_t = 50_000)]
    pub events: u64,
    /// Stop publishing after this long even if --events are not all done.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Publishing keep-alive connections (= publishes in flight).
    #[arg(long, default_value_t = 64)]
    pub publishers: usize,
    /// Filler bytes in each event's data.
    #[arg(long, default_value_t = 128)]
    pub pad: usize,
}

#[derive(Args)]
pub struct ReportArgs {
    /// JSON-lines result files written with --json.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// --server-name of the hub in the results.
    #[arg(long, default_value = "statushub")]
    pub hub: String,
    /// --server-name of the reference peer in the results.
    #[arg(long, default_value = "peer")]
    pub peer: String,
    /// --server-name of the no-persistence ceiling hub (bench/ceiling) in the results.
    #[arg(long, default_value = "ceiling")]
    pub ceiling: String,
}

//! What Redis-backed tests share: a fresh key prefix on the shared
//! `redis-server` at 127.0.0.1:6379 (its keys deleted when the test ends,
//! passed or not), and a private `redis-server` a test may stop and start.
#![allow(dead_code)] // each test binary uses a different part

use statushub::{
    config::Retention,
    event::Event,
    store::{Feed, RedisSettings, RedisStore},
};
use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::mpsc;

pub const SHARED_URL: &str = "redis://127.0.0.1:6379";
const INSTALL: &str = "Redis tests need redis-server on 127.0.0.1:6379 \
    (apt-get install -y redis-server; redis-server --daemonize yes)";

/// A key prefix no other test uses; its keys are deleted on drop.
pub struct Prefix {
    pub name: String,
    url: String,
}

impl Prefix {
    /// A prefix on the shared Redis, which must be running.
    pub fn fresh() -> Self {
        let answered = redis::Client::open(SHARED_URL)
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        if let Err(e) = answered {
            panic!("{INSTALL}: {e}");
        }
        Prefix::on(SHARED_URL)
    }

    /// A prefix on the local Redis Cluster `.ci/run` starts (its nodes in
    /// `STATUSHUB_TEST_REDIS_CLUSTER`, comma-separated `host:port`).
    pub fn on_cluster() -> Self {
        let nodes = std::env::var("STATUSHUB_TEST_REDIS_CLUSTER").unwrap_or_else(|_| {
            panic!(
                "Redis Cluster tests need STATUSHUB_TEST_REDIS_CLUSTER=host:port,… naming a \
                 running cluster (start one as .ci/run does: three redis-server \
                 --cluster-enabled yes, then redis-cli --cluster create)"
            )
        });
        let url = nodes
            .split(',')
            .map(|n| format!("redis://{}", n.trim()))
            .collect::<Vec<_>>()
            .join(",");
        Prefix::on(&url)
    }

    pub fn on(url: &str) -> Self {
        let name = format!("test-{}", hex::encode(rand::random::<[u8; 6]>()));
        Prefix {
            name,
            url: url.to_owned(),
        }
    }

    pub fn settings(&self) -> RedisSettings {
        RedisSettings {
            url: self.url.clone(),
            prefix: self.name.clone(),
        }
    }

    /// Opens a store on this prefix; a missing Redis fails the test saying
    /// what to install.
    pub async fn open(
        &self,
        retention: Retention,
    ) -> (Arc<RedisStore>, mpsc::Receiver<Arc<Event>>) {
        let (tx, rx) = mpsc::channel(100_000);
        let store = RedisStore::open(&self.settings(), retention, tx)
            .await
            .unwrap_or_else(|e| panic!("{INSTALL}: {e}"));
        (Arc::new(store), rx)
    }

    /// A store on this prefix, opened without waiting for Redis (for
    /// constructors that cannot await).
    pub fn store(&self, feed: Feed, retention: Retention) -> RedisStore {
        RedisStore::open_lazy(&self.settings(), retention, feed)
            .unwrap_or_else(|e| panic!("{INSTALL}: {e}"))
    }

    /// Deletes every key of one account (what a Redis that lost it looks like).
    pub fn forget_account(&self, account: &str) {
        self.delete_matching(&format!("{}:{{{account}}}:*", self.name));
    }

    /// Deletes the keys matching `pattern` on every node named by the URL
    /// (one for a server, each seed of a cluster), one key per `DEL` so
    /// keys of different cluster slots never share a command.
    fn delete_matching(&self, pattern: &str) {
        for url in self.url.split(',') {
            let Ok(client) = redis::Client::open(url) else {
                continue;
            };
            let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
                continue;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query(&mut conn)
                .unwrap_or_default();
            for key in keys {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(key).query(&mut conn);
            }
        }
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        self.delete_matching(&format!("{}:*", self.name));
    }
}

/// A `redis-server` of the test's own on a spare port, killed (by PID) on
/// drop, so a failing test leaves nothing running. Keeps nothing on disk.
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
    /// Its working directory (an AOF turned on by a test lands here).
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl OwnRedis {
    pub fn start() -> Self {
        OwnRedis::start_with(&[])
    }

    /// Starts one with extra `redis-server` arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a spare port")
            .port();
        let mut redis = OwnRedis {
            port,
            child: None,
            dir: tempfile::tempdir().expect("a temp dir"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again, on the same port) and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{INSTALL}: cannot start redis-server: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answered = redis::Client::open(self.url().as_str())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if answered.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where a store under test keeps its data, fresh per test: a directory
/// (SQLite) or a key prefix on the shared Redis or the local Redis Cluster,
/// whose keys go with it. Opening twice on one place is a reopen.
pub struct Place {
    dir: tempfile::TempDir,
    redis: std::sync::OnceLock<Prefix>,
    redis_cluster: std::sync::OnceLock<Prefix>,
}

impl Place {
    pub fn new() -> Self {
        Place {
            dir: tempfile::tempdir().expect("temp dir"),
            redis: std::sync::OnceLock::new(),
            redis_cluster: std::sync::OnceLock::new(),
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The place's Redis prefix (the same one on every reopen).
    pub fn redis(&self) -> &Prefix {
        self.redis.get_or_init(Prefix::fresh)
    }

    /// The place's prefix on the local Redis Cluster.
    pub fn redis_cluster(&self) -> &Prefix {
        self.redis_cluster.get_or_init(Prefix::on_cluster)
    }
}

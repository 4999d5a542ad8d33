//! The three scenarios and what they share: the run's environment (server,
//! source addresses, token minter, fresh account names) and a fleet of
//! subscribing clients connected with bounded concurrency.

pub mod fanout;
pub mod idle;
pub mod publish;

use crate::{
    Error,
    cli::Common,
    client::{Client, Transport},
    monitor::{Counters, WindowFigures, now_us},
    net::{Sources, Target},
    report::{RunResult, Scenario},
    token::Minter,
};
use std::{
    future::Future,
    sync::{Arc, OnceLock},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tokio::{
    sync::{Semaphore, watch},
    task::JoinHandle,
};

/// Descriptors the tool needs besides its connections (runtime, stdio, files).
pub const SPARE_DESCRIPTORS: u64 = 32;
/// A loadgen CPU share above this means the tool itself may be the bottleneck.
const SATURATED_PCT: f64 = 90.0;
/// Waiting for a CPU longer than this share of the window while not using
/// the core fully means other work on the machine took the pinned core.
const STARVED_PCT: f64 = 10.0;

pub struct Env {
    pub common: Common,
    pub target: Target,
    /// Where publishers send (`--publish-url`, else `target`).
    pub publish_target: Target,
    pub sources: Sources,
    pub minter: Minter,
    pub server_pid: Option<String>,
    /// Makes this run's account names fresh, so reruns against the same
    /// server (and its stored history) never mix.
    run_id: String,
}

impl Env {
    pub async fn new(common: Common) -> Result<Arc<Self>, Error> {
        let target = Target::resolve(&common.url).await?;
        let sources = Sources::new(common.source_addrs, &target);
        let publish_target = match &common.publish_url {
            Some(url) => Target::resolve(url).await?,
            None => target.clone(),
        };
        let minter = Minter::new(&common.jwt_secret, 24 * 3600);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Ok(Arc::new(Env {
            server_pid: common.server_pid.map(|p| p.to_string()),
            run_id: format!("{:x}{:x}", std::process::id(), nanos % 0xffff_ffff),
            common,
            target,
            publish_target,
            sources,
            minter,
        }))
    }

    pub fn account(&self, a: usize) -> String {
        format!("bench-{}-{a}", self.run_id)
    }

    pub fn result(
        &self,
        transport: Option<Transport>,
        window: WindowFigures,
        server_rss_peak: Option<u64>,
        problems: Vec<String>,
        scenario: Scenario,
    ) -> RunResult {
        let mut notes = Vec::new();
        if window.loadgen_cpu_pct.is_some_and(|p| p >= SATURATED_PCT) {
            notes.push("loadgen CPU-bound: figures are a lower bound".into());
        }
        if starved(window.server_cpu_pct, window.server_wait_pct)
            || starved(window.loadgen_cpu_pct, window.loadgen_wait_pct)
        {
            notes.push("other work took CPU time: compare per server CPU-s".into());
        }
        RunResult {
            server: self.common.server_name.clone(),
            transport,
            seconds: window.seconds,
            server_cpu_pct: window.server_cpu_pct,
            server_wait_pct: window.server_wait_pct,
            server_rss_peak,
            loadgen_cpu_pct: window.loadgen_cpu_pct,
            loadgen_wait_pct: window.loadgen_wait_pct,
            problems,
            notes,
            scenario,
        }
    }
}

/// A process that waited for a CPU yet did not use its core fully was held
/// back by other work. One that used its core fully may still show waiting:
/// its own threads queue for the one core it is pinned to.
fn starved(cpu_pct: Option<f64>, wait_pct: Option<f64>) -> bool {
    wait_pct.is_some_and(|w| w >= STARVED_PCT) && cpu_pct.is_some_and(|c| c < SATURATED_PCT)
}

/// The first error of many, kept for the message.
#[derive(Clone, Default)]
pub struct FirstError(Arc<OnceLock<String>>);

impl FirstError {
    pub fn set(&self, e: impl std::fmt::Display) {
        let _ = self.0.set(e.to_string());
    }

    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// Subscribing clients of one run: client i belongs to account i mod `accounts`.
pub struct Fleet<T> {
    pub handles: Vec<JoinHandle<Option<T>>>,
    pub stop: watch::Sender<bool>,
    pub first_error: FirstError,
    /// When the first connection attempt started (µs, tool clock).
    pub started_us: u64,
}

impl<T: Send + 'static> Fleet<T> {
    /// Connects `clients` clients (at most --connect-concurrency handshakes at
    /// once); each connected one then runs `work` until told to stop.
    pub fn spawn<F, Fut>(
        env: &Arc<Env>,
        clients: usize,
        accounts: usize,
        transport: Transport,
        counters: &Arc<Counters>,
        work: F,
    ) -> Self
    where
        F: Fn(usize, Client, watch::Receiver<bool>) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        let first_error = FirstError::default();
        let permits = Arc::new(Semaphore::new(env.common.connect_concurrency.max(1)));
        let started_us = now_us();
        let handles = (0..clients)
            .map(|i| {
                let (env, counters, first_error, permits, work) = (
                    env.clone(),
                    counters.clone(),
                    first_error.clone(),
                    permits.clone(),
                    work.clone(),
                );
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    let connected = {
                        let _permit = permits.acquire_owned().await.ok()?;
                        let token = env
                            .minter
                            .mint(&env.account(i % accounts), &format!("bench-user-{i}"));
                        tokio::select! {
                            c = Client::connect(i, &env.target, &env.sources, transport, &token) => c,
                            _ = stopped.changed() => return None,
                        }
                    };
                    match connected {
                        Ok(client) => {
                            Counters::add(&counters.connected, 1);
                            counters.last_connected_us.fetch_max(now_us(), std::sync::atomic::Ordering::Relaxed);
                            Some(work(i, client, stopped).await)
                        }
                        Err(e) => {
                            Counters::add(&counters.failed, 1);
                            first_error.set(format!("client {i}: {e}"));
                            None
                        }
                    }
                })
            })
            .collect();
        Fleet {
            handles,
            stop,
            first_error,
            started_us,
        }
    }

    /// Waits until every client connected or failed. With `fail_fast`, the
    /// first failure ends the wait with its error (a run with a missing
    /// client cannot count anyway).
    pub async fn connected(
        &self,
        counters: &Counters,
        timeout: Duration,
        fail_fast: bool,
    ) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let clients = self.handles.len() as u64;
        loop {
            let (ok, failed) = (
                Counters::get(&counters.connected),
                Counters::get(&counters.failed),
            );
            if failed > 0 && (fail_fast || ok == 0 && failed == clients) {
                return Err(Error::Aborted(format!(
                    "{failed} of {clients} clients could not connect; first error: {}",
                    self.first_error.get().unwrap_or("unknown")
                )));
            }
            if ok + failed >= clients {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Aborted(format!(
                    "only {ok} of {clients} clients connected within {timeout:?} ({failed} failed{})",
                    self.first_error
                        .get()
                        .map(|e| format!("; first error: {e}"))
                        .unwrap_or_default()
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Tells every client to stop and collects what they return.
    pub async fn finish(self) -> Vec<T> {
        let _ = self.stop.send(true);
        let mut out = Vec::with_capacity(self.handles.len());
        for handle in self.handles {
            if let Ok(Some(t)) = handle.await {
                out.push(t);
            }
        }
        out
    }
}

/// `{"event":"bench.tick","data":{"n":…,"t":…,"pad":"…"}}`: `n` numbers the
/// event within its account, `t` is the send time in µs on the tool's clock.
pub fn event_body(n: u64, pad: &str) -> bytes::Bytes {
    format!(
        r#"{{"event":"bench.tick","data":{{"n":{n},"t":{},"pad":"{pad}"}}}}"#,
        now_us()
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::starved;

    #[test]
    fn starvation_needs_waiting_without_a_full_core() {
        assert!(starved(Some(40.0), Some(50.0)));
        assert!(
            !starved(Some(95.0), Some(60.0)),
            "its own threads queue on one core"
        );
        assert!(!starved(Some(40.0), Some(2.0)));
        assert!(!starved(None, Some(50.0)));
    }
}

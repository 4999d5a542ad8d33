//! Live counters of a run, a progress line every second, and the CPU/RSS
//! figures of the measured window.

use crate::procstat::{self, CpuMeter};
use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};
use tokio::{sync::watch, task::JoinHandle};

/// Microseconds on the tool's own clock (one process: no clock skew).
pub fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

#[derive(Default)]
pub struct Counters {
    pub connected: AtomicU64,
    pub failed: AtomicU64,
    pub published: AtomicU64,
    pub publish_errors: AtomicU64,
    /// First-time deliveries (duplicates excluded).
    pub delivered: AtomicU64,
    pub disconnects: AtomicU64,
    /// When the last client finished connecting (µs, tool clock).
    pub last_connected_us: AtomicU64,
}

impl Counters {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Relaxed)
    }

    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }
}

/// Prints progress each second and tracks the server's peak RSS.
pub struct Progress {
    stop: watch::Sender<bool>,
    task: JoinHandle<u64>,
}

impl Progress {
    pub fn start(
        scenario: &'static str,
        server_pid: Option<String>,
        counters: Arc<Counters>,
        quiet: bool,
    ) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut server_cpu = server_pid.as_deref().map(CpuMeter::start);
            let mut own_cpu = CpuMeter::for_self();
            let (mut last_pub, mut last_del) = (0, 0);
            let mut peak_rss = 0;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                let rss = server_pid.as_deref().and_then(procstat::rss_bytes);
                peak_rss = peak_rss.max(rss.unwrap_or(0));
                let (published, delivered) = (
                    Counters::get(&counters.published),
                    Counters::get(&counters.delivered),
                );
                if !quiet {
                    let server = match (server_cpu.as_mut().map(CpuMeter::lap), rss) {
                        (Some((Some(cpu), wait)), Some(rss)) => format!(
                            "server {cpu:3.0}% cpu (waited {:3.0}%) {:6.1} MB",
                            wait.unwrap_or(0.0),
                            rss as f64 / 1e6
                        ),
                        _ => "server n/a".into(),
                    };
                    let (own, own_wait) = own_cpu.lap();
                    eprintln!(
                        "[{scenario} {:5.1}s] connected {:>6} failed {:>3} | published {:>8} (+{:>6}/s) errors {:>3} | delivered {:>9} (+{:>7}/s) | {server} | loadgen {:3.0}% cpu (waited {:3.0}%)",
                        started.elapsed().as_secs_f64(),
                        Counters::get(&counters.connected),
                        Counters::get(&counters.failed),
                        published,
                        published - last_pub,
                        Counters::get(&counters.publish_errors),
                        delivered,
                        delivered - last_del,
                        own.unwrap_or(0.0),
                        own_wait.unwrap_or(0.0),
                    );
                }
                (last_pub, last_del) = (published, delivered);
            }
            peak_rss
        });
        Progress { stop, task }
    }

    /// Stops printing; returns the highest server RSS seen, in bytes.
    pub async fn finish(self) -> Option<u64> {
        let _ = self.stop.send(true);
        self.task.await.ok().filter(|&rss| rss > 0)
    }
}

/// CPU use of the server and of the tool over a measured window.
pub struct Window {
    server: Option<CpuMeter>,
    own: CpuMeter,
    started: Instant,
}

pub struct WindowFigures {
    pub seconds: f64,
    pub server_cpu_pct: Option<f64>,
    /// Runnable-but-waiting time of the server's threads, % of the window.
    pub server_wait_pct: Option<f64>,
    pub loadgen_cpu_pct: Option<f64>,
    pub loadgen_wait_pct: Option<f64>,
}

impl Window {
    pub fn start(server_pid: Option<&str>) -> Self {
        Window {
            server: server_pid.map(CpuMeter::start),
            own: CpuMeter::for_self(),
            started: Instant::now(),
        }
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn finish(&self) -> WindowFigures {
        WindowFigures {
            seconds: self.started.elapsed().as_secs_f64(),
            server_cpu_pct: self.server.as_ref().and_then(CpuMeter::percent),
            server_wait_pct: self.server.as_ref().and_then(CpuMeter::wait_percent),
            loadgen_cpu_pct: self.own.percent(),
            loadgen_wait_pct: self.own.wait_percent(),
        }
    }
}

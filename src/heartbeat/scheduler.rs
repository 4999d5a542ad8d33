//! One scheduler for every monitor: a single task owns a heap of due times
//! and one timer, and starts each due check as a short-lived task.
//!
//! Why not a task per monitor sleeping in a loop: the scheduler is the one
//! place that knows every monitor's next check, so a delete or an update
//! takes effect at once (no sleeping task to find and cancel), a check never
//! overlaps the previous one of the same monitor, and shutdown has a single
//! thing to stop. A global semaphore bounds the checks in flight, and jitter
//! keeps monitors registered (or resumed) together from firing together.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    future::Future,
    hash::Hash,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{
    sync::{Semaphore, mpsc},
    task::{self, JoinError, JoinHandle, JoinSet},
    time::{Instant, sleep_until},
};
use tokio_util::sync::CancellationToken;

/// Each wait is lengthened by up to this fraction of itself, at random.
pub const JITTER: f64 = 0.1;
/// …but by no more than this.
pub const MAX_JITTER: Duration = Duration::from_secs(60);
/// When a check task panicked, its monitor is tried again after this.
const AFTER_PANIC: Duration = Duration::from_secs(60);
/// How long `stop` waits for results being recorded before abandoning them.
const DRAIN_FOR: Duration = Duration::from_secs(5);

/// [`Runner::turn`]: check now, skip and ask again after a wait (another
/// node checks it), or stop (it no longer exists).
#[derive(Debug, PartialEq, Eq)]
pub enum Turn {
    Check,
    Skip(Duration),
    Stop,
}

/// What the scheduler runs when a monitor is due.
pub trait Runner<K>: Send + Sync + 'static {
    type Probe: Send + 'static;

    /// Decides, before each due check (holding its in-flight permit, so no
    /// lease runs out waiting for one), whether this node checks the monitor
    /// now. By default it always does; in a cluster, only its lease holder.
    fn turn(&self, _key: &K) -> impl Future<Output = Turn> + Send {
        async { Turn::Check }
    }

    /// Told after [`Runner::apply`] that the next check is planned within
    /// `until` (jitter included), so a lease can be kept that long.
    fn planned(&self, _key: &K, _until: Duration) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Checks the monitor (holding one in-flight permit); `None` when it no
    /// longer exists. Dropped half-way when the scheduler stops.
    fn probe(&self, key: &K) -> impl Future<Output = Option<Self::Probe>> + Send;

    /// Records a probe's result and says how long to wait before the next
    /// check (jitter is added on top); `None` stops checking the monitor.
    /// Runs to completion even when the scheduler stops.
    fn apply(&self, key: &K, probe: Self::Probe) -> impl Future<Output = Option<Duration>> + Send;
}

enum Command<K> {
    Schedule(K, Duration),
    Remove(K),
}

pub struct Scheduler<K> {
    commands: mpsc::UnboundedSender<Command<K>>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
}

impl<K> Scheduler<K>
where
    K: Clone + Eq + Hash + Ord + Send + Sync + 'static,
{
    pub fn start<R: Runner<K>>(runner: Arc<R>, max_in_flight: usize) -> Self {
        let max_in_flight = max_in_flight.max(1);
        let (commands, rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let permits = Arc::new(Semaphore::new(max_in_flight));
        let timer = Timer {
            runner,
            slots: HashMap::new(),
            heap: BinaryHeap::new(),
            runs: JoinSet::new(),
            running: HashMap::new(),
            permits: permits.clone(),
            stop: stop.clone(),
        };
        Scheduler {
            commands,
            task: Mutex::new(Some(tokio::spawn(timer.run(rx)))),
            stop,
            permits,
            max_in_flight,
        }
    }

    /// Plans the monitor's next check at a random moment within `within`
    /// from now (at once for zero), replacing whatever was planned. A check
    /// of it already in progress finishes first and its result decides
    /// nothing about timing.
    pub fn schedule(&self, key: K, within: Duration) {
        let _ = self.commands.send(Command::Schedule(key, within));
    }

    /// Stops checking the monitor. A check in progress still finishes;
    /// its [`Runner::apply`] must then find the monitor gone.
    pub fn remove(&self, key: K) {
        let _ = self.commands.send(Command::Remove(key));
    }

    /// Probes running now.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight
            .saturating_sub(self.permits.available_permits())
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Stops at once without waiting (as when the process dies): probes in
    /// progress are dropped at their next step.
    pub fn halt(&self) {
        self.stop.cancel();
    }

    /// Cancels probes in progress, lets results being recorded finish, and
    /// returns once nothing runs any more.
    pub async fn stop(&self) {
        self.stop.cancel();
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// A scheduler dropped without `stop` still stops: nothing keeps checking
/// for an owner that is gone.
impl<K> Drop for Scheduler<K> {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[derive(Default)]
struct Slot {
    /// Bumped by every `schedule`; heap entries and runs of an older
    /// generation no longer decide anything.
    generation: u64,
    running: bool,
    /// A `schedule` that arrived while a check was running.
    restart: Option<Duration>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Due<K> {
    at: Instant,
    generation: u64,
    key: K,
}

struct Timer<K, R> {
    runner: Arc<R>,
    slots: HashMap<K, Slot>,
    heap: BinaryHeap<Reverse<Due<K>>>,
    runs: JoinSet<Option<Duration>>,
    /// Which monitor (and generation) each run belongs to, so even a
    /// panicked run finds its slot again.
    running: HashMap<task::Id, (K, u64)>,
    permits: Arc<Semaphore>,
    stop: CancellationToken,
}

impl<K, R> Timer<K, R>
where
    K: Clone + Eq + Hash + Ord + Send + Sync + 'static,
    R: Runner<K>,
{
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command<K>>) {
        loop {
            let next = self.heap.peek().map_or_else(
                || Instant::now() + Duration::from_secs(3600),
                |Reverse(d)| d.at,
            );
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => break,
                Some(done) = self.runs.join_next_with_id(), if !self.runs.is_empty() => self.finished(done),
                command = commands.recv() => match command {
                    Some(Command::Schedule(key, within)) => self.schedule(key, within),
                    Some(Command::Remove(key)) => {
                        self.slots.remove(&key);
                    }
                    None => break,
                },
                _ = sleep_until(next) => self.start_due(),
            }
        }
        self.stop.cancel();
        // Probes end at once (cancelled); results being recorded get a moment.
        let drained = tokio::time::timeout(DRAIN_FOR, async {
            while self.runs.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = self.runs.len(),
                "abandoning monitor results still being recorded at shutdown"
            );
            self.runs.shutdown().await;
        }
    }

    fn schedule(&mut self, key: K, within: Duration) {
        let slot = self.slots.entry(key.clone()).or_default();
        slot.generation += 1;
        if slot.running {
            slot.restart = Some(within);
        } else {
            let generation = slot.generation;
            self.plan(key, generation, within.mul_f64(rand::random::<f64>()));
        }
    }

    fn plan(&mut self, key: K, generation: u64, after: Duration) {
        self.heap.push(Reverse(Due {
            at: Instant::now() + after,
            generation,
            key,
        }));
    }

    fn start_due(&mut self) {
        let now = Instant::now();
        while self.heap.peek().is_some_and(|Reverse(d)| d.at <= now) {
            let Some(Reverse(due)) = self.heap.pop() else {
                break;
            };
            let Some(slot) = self.slots.get_mut(&due.key) else {
                continue;
            };
            if slot.generation != due.generation || slot.running {
                continue;
            }
            slot.running = true;
            self.spawn(due.key, due.generation);
        }
    }

    fn spawn(&mut self, key: K, generation: u64) {
        let runner = self.runner.clone();
        let permits = self.permits.clone();
        let stop = self.stop.clone();
        let task_key = key.clone();
        let handle = self.runs.spawn(async move {
            let probe = tokio::select! {
                biased;
                _ = stop.cancelled() => return None,
                probe = async {
                    let _permit = permits.acquire_owned().await.map_err(|_| None)?;
                    match runner.turn(&task_key).await {
                        Turn::Check => {}
                        Turn::Skip(wait) => return Err(Some(wait)),
                        Turn::Stop => return Err(None),
                    }
                    runner.probe(&task_key).await.ok_or(None)
                } => probe,
            };
            let probe = match probe {
                Ok(probe) => probe,
                Err(next) => return next,
            };
            let next = runner.apply(&task_key, probe).await;
            if let Some(wait) = next {
                runner.planned(&task_key, jittered(wait, 1.0)).await;
            }
            next
        });
        self.running.insert(handle.id(), (key, generation));
    }

    fn finished(&mut self, done: Result<(task::Id, Option<Duration>), JoinError>) {
        let (id, next) = match done {
            Ok((id, next)) => (id, next),
            Err(e) => {
                tracing::error!(error = %e, "a monitor check task failed");
                (e.id(), Some(AFTER_PANIC))
            }
        };
        let Some((key, generation)) = self.running.remove(&id) else {
            return;
        };
        let Some(slot) = self.slots.get_mut(&key) else {
            return;
        };
        slot.running = false;
        if let Some(within) = slot.restart.take() {
            let current = slot.generation;
            self.plan(key, current, within.mul_f64(rand::random::<f64>()));
        } else if slot.generation == generation {
            match next {
                Some(wait) => self.plan(key, generation, jittered(wait, rand::random::<f64>())),
                None => {
                    self.slots.remove(&key);
                }
            }
        }
    }
}

/// `wait` lengthened by `unit` (in [0, 1)) × [`JITTER`] of itself, capped.
pub fn jittered(wait: Duration, unit: f64) -> Duration {
    wait + wait.mul_f64(JITTER * unit.clamp(0.0, 1.0)).min(MAX_JITTER)
}

#[cfg(test)]
mod tests {
    //! Timing runs on tokio's paused clock: time moves only when every task
    //! waits, so the instants recorded are exactly what the scheduler chose.

    use super::*;
    use crate::heartbeat::machine::{Check, ErrorKind, MonitorState, Policy};
    use std::sync::{
        Mutex as StdMutex,
        atomic::{AtomicUsize, Ordering},
    };

    /// Scripted checks through the real state machine, recording when each
    /// probe started.
    struct Scripted {
        policy: Policy,
        script: StdMutex<Vec<bool>>,
        state: StdMutex<MonitorState>,
        probed_at: StdMutex<Vec<Instant>>,
        /// Failures counted before each probe, to know its expected wait.
        failures_before: StdMutex<Vec<u32>>,
    }

    impl Runner<u32> for Scripted {
        type Probe = Check;

        async fn probe(&self, _key: &u32) -> Option<Check> {
            self.probed_at.lock().unwrap().push(Instant::now());
            let mut script = self.script.lock().unwrap();
            let pass = if script.is_empty() {
                true
            } else {
                script.remove(0)
            };
            Some(Check {
                latency_ms: 1,
                http_status: Some(if pass { 200 } else { 500 }),
                error: (!pass).then(|| (ErrorKind::UnexpectedStatus, "500".into())),
                checked_at: "T".into(),
            })
        }

        async fn apply(&self, _key: &u32, check: Check) -> Option<Duration> {
            let mut state = self.state.lock().unwrap();
            let step = state.apply(&self.policy, &check);
            *state = step.state;
            self.failures_before
                .lock()
                .unwrap()
                .push(state.consecutive_failures);
            Some(step.delay)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waits_follow_the_backoff_policy_with_bounded_jitter() {
        let policy = Policy {
            interval: Duration::from_secs(10),
            max_retries: 2,
            backoff_multiplier: 2.0,
        };
        let runner = Arc::new(Scripted {
            policy,
            script: StdMutex::new(vec![true, false, false, false, false, true, true]),
            state: StdMutex::default(),
            probed_at: StdMutex::default(),
            failures_before: StdMutex::default(),
        });
        let start = Instant::now();
        let scheduler = Scheduler::start(runner.clone(), 4);
        scheduler.schedule(7, Duration::from_secs(1));
        tokio::time::sleep(Duration::from_secs(2000)).await;

        let at = runner.probed_at.lock().unwrap().clone();
        let failures = runner.failures_before.lock().unwrap().clone();
        assert!(at.len() >= 8, "only {} checks in 2000 s", at.len());
        assert!(
            at[0] - start < Duration::from_secs(1),
            "first check within the spread"
        );
        // pass, then four failures (2 retries, unhealthy, backing off further), then passes.
        assert_eq!(&failures[..7], [0, 1, 2, 3, 4, 0, 0]);
        for (i, pair) in at.windows(2).enumerate().take(7) {
            let gap = pair[1] - pair[0];
            let base = policy.delay_after(failures[i]);
            assert!(
                gap >= base && gap <= jittered(base, 1.0),
                "wait {i} was {gap:?}, expected {base:?} plus at most 10%"
            );
        }
        let gaps: Vec<u64> = at
            .windows(2)
            .take(6)
            .map(|p| (p[1] - p[0]).as_secs())
            .collect();
        assert!(gaps[4] >= 160 && gaps[5] >= 10 && gaps[5] < 12, "{gaps:?}");
        scheduler.stop().await;
    }

    /// Probes that take a second each and count how many overlap.
    #[derive(Default)]
    struct Slow {
        now: AtomicUsize,
        max: AtomicUsize,
        probes: StdMutex<HashMap<u32, usize>>,
        applied: AtomicUsize,
        hang: bool,
        apply_for: Duration,
    }

    impl Runner<u32> for Slow {
        type Probe = ();

        async fn probe(&self, key: &u32) -> Option<()> {
            let running = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.max.fetch_max(running, Ordering::SeqCst);
            *self.probes.lock().unwrap().entry(*key).or_default() += 1;
            if self.hang {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            Some(())
        }

        async fn apply(&self, _key: &u32, _: ()) -> Option<Duration> {
            tokio::time::sleep(self.apply_for).await;
            self.applied.fetch_add(1, Ordering::SeqCst);
            Some(Duration::from_secs(30))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_checks_never_exceed_the_limit() {
        let runner = Arc::new(Slow::default());
        let scheduler = Scheduler::start(runner.clone(), 5);
        for key in 0..100 {
            scheduler.schedule(key, Duration::ZERO);
        }
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert_eq!(
            runner.probes.lock().unwrap().len(),
            100,
            "every monitor was checked"
        );
        assert_eq!(runner.max.load(Ordering::SeqCst), 5);
        assert_eq!(scheduler.in_flight(), 0);
        scheduler.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn removed_monitors_are_not_checked_and_rescheduling_restarts() {
        let runner = Arc::new(Slow::default());
        let scheduler = Scheduler::start(runner.clone(), 5);
        scheduler.schedule(1, Duration::ZERO);
        scheduler.schedule(2, Duration::ZERO);
        tokio::time::sleep(Duration::from_secs(100)).await;
        let count = |key| {
            runner
                .probes
                .lock()
                .unwrap()
                .get(&key)
                .copied()
                .unwrap_or(0)
        };
        let before = count(1);
        assert!(before >= 3, "checked every ~31 s");
        scheduler.remove(1);
        tokio::time::sleep(Duration::from_secs(1000)).await;
        assert_eq!(count(1), before, "no check after removal");
        assert!(count(2) > before + 20, "the other monitor went on");
        // A new schedule brings it back at once, whatever its old plan was.
        scheduler.schedule(1, Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(count(1), before + 1);
        scheduler.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn stop_cancels_probes_and_lets_results_finish() {
        let hanging = Arc::new(Slow {
            hang: true,
            ..Slow::default()
        });
        let scheduler = Scheduler::start(hanging.clone(), 5);
        scheduler.schedule(1, Duration::ZERO);
        tokio::time::sleep(Duration::from_secs(1)).await;
        scheduler.stop().await;
        assert_eq!(hanging.applied.load(Ordering::SeqCst), 0);

        let recording = Arc::new(Slow {
            apply_for: Duration::from_secs(2),
            ..Slow::default()
        });
        let scheduler = Scheduler::start(recording.clone(), 5);
        scheduler.schedule(1, Duration::ZERO);
        // Past the probe (1 s), inside the 2 s apply.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        scheduler.stop().await;
        assert_eq!(
            recording.applied.load(Ordering::SeqCst),
            1,
            "apply finished before stop returned"
        );
    }

    #[test]
    fn jitter_only_lengthens_and_is_capped() {
        let base = Duration::from_secs(10);
        assert_eq!(jittered(base, 0.0), base);
        assert_eq!(jittered(base, 0.5), Duration::from_millis(10_500));
        let long = Duration::from_secs(3600);
        assert_eq!(jittered(long, 1.0), long + MAX_JITTER);
    }
}

//! Fanout: N clients over A accounts receive E events per account published
//! over HTTP keep-alive. Publishing starts only once every client has its
//! snapshot, so every acknowledged event is owed to every client of its
//! account: anything missing at the end is lost.

use super::{Env, FirstError, Fleet, SPARE_DESCRIPTORS, event_body};
use crate::{
    Error,
    cli::FanoutArgs,
    client::Client,
    histogram::Histogram,
    monitor::{Counters, Progress, Window, now_us},
    procstat,
    protocol::Incoming,
    publisher::Publisher,
    report::{Fanout, RunResult, Scenario},
    track::{Bitset, Tracker, Verdict},
};
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::sync::watch;

/// Latency samples a client keeps before adding them to the shared histogram.
const LATENCY_BATCH: usize = 256;

struct ClientOutcome {
    account: usize,
    tracker: Tracker,
    /// Time of the last first-time delivery (µs, tool clock).
    last_at: u64,
    disconnect: Option<String>,
}

pub async fn run(env: Arc<Env>, args: FanoutArgs) -> Result<RunResult, Error> {
    if args.clients == 0 || args.accounts == 0 || args.events == 0 {
        return Err(Error::Config(
            "--clients, --accounts and --events must be at least 1".into(),
        ));
    }
    procstat::ensure_descriptors((args.clients + args.publishers) as u64 + SPARE_DESCRIPTORS)
        .map_err(Error::Config)?;
    let counters = Arc::new(Counters::default());
    let latencies = Arc::new(Mutex::new(Histogram::default()));
    let progress = Progress::start(
        "fanout",
        env.server_pid.clone(),
        counters.clone(),
        env.common.quiet,
    );

    let fleet = {
        let (counters, latencies, events, accounts) = (
            counters.clone(),
            latencies.clone(),
            args.events,
            args.accounts,
        );
        Fleet::spawn(
            &env,
            args.clients,
            accounts,
            args.transport,
            &counters.clone(),
            move |i, client, stop| {
                receive(
                    i % accounts,
                    client,
                    stop,
                    events,
                    counters.clone(),
                    latencies.clone(),
                )
            },
        )
    };
    if let Err(e) = fleet
        .connected(&counters, env.common.connect_timeout, true)
        .await
    {
        fleet.finish().await;
        progress.finish().await;
        return Err(e);
    }
    if !env.common.quiet {
        eprintln!(
            "all {} clients have their snapshot; publishing",
            args.clients
        );
    }

    let window = Window::start(env.server_pid.as_deref());
    let publish_started_us = now_us();
    let acked: Arc<Vec<Mutex<Bitset>>> = Arc::new(
        (0..args.accounts)
            .map(|_| Mutex::new(Bitset::new(args.events)))
            .collect(),
    );
    let publish_error = publish_all(&env, &args, &counters, &acked).await;
    let published_for = window.started().elapsed();

    // Every client is owed every acknowledged event of its account.
    let per_account: Vec<u64> = acked.iter().map(|b| lock(b).count()).collect();
    let owed: u64 = (0..args.clients)
        .map(|i| per_account[i % args.accounts])
        .sum();
    drain(&counters, owed, args.clients as u64, args.drain_timeout).await;
    let figures = window.finish();
    let outcomes = fleet.finish().await;
    let peak_rss = progress.finish().await;

    let mut fanout = Fanout {
        clients: args.clients,
        accounts: args.accounts,
        events_per_account: args.events,
        rate: (args.rate > 0.0).then_some(args.rate),
        publishers: args.publishers,
        published: Counters::get(&counters.published),
        publish_errors: Counters::get(&counters.publish_errors),
        publish_per_sec: Counters::get(&counters.published) as f64
            / published_for.as_secs_f64().max(1e-9),
        deliveries: 0,
        deliveries_per_sec: 0.0,
        latency: lock(&latencies).summary(),
        lost: 0,
        duplicated: 0,
        out_of_order: 0,
        disconnects: 0,
    };
    let mut last_at = publish_started_us;
    let mut first_disconnect = None;
    // Every client connected (connecting was fail-fast); one without an
    // outcome ended abnormally and its deliveries are unknown.
    let unreported = args.clients - outcomes.len();
    for o in &outcomes {
        fanout.deliveries += o.tracker.unique;
        fanout.duplicated += o.tracker.duplicates;
        fanout.out_of_order += o.tracker.out_of_order;
        fanout.lost += o.tracker.lost(&lock(&acked[o.account]));
        last_at = last_at.max(o.last_at);
        if let Some(why) = &o.disconnect {
            fanout.disconnects += 1;
            first_disconnect.get_or_insert_with(|| why.clone());
        }
    }
    let delivery_secs = (last_at - publish_started_us) as f64 / 1e6;
    fanout.deliveries_per_sec = fanout.deliveries as f64 / delivery_secs.max(1e-9);

    let mut problems = Vec::new();
    for (count, what) in [
        (fanout.lost, "lost"),
        (fanout.duplicated, "duplicated"),
        (fanout.out_of_order, "out of order"),
    ] {
        if count > 0 {
            problems.push(format!("{count} {what}"));
        }
    }
    if fanout.publish_errors > 0 {
        problems.push(format!(
            "{} publish errors (first: {})",
            fanout.publish_errors,
            publish_error.get().unwrap_or("?")
        ));
    }
    if unreported > 0 {
        problems.push(format!("{unreported} clients ended without a report"));
    }
    if fanout.disconnects > 0 {
        problems.push(format!(
            "{} clients disconnected (first: {})",
            fanout.disconnects,
            first_disconnect.unwrap_or_default()
        ));
    }
    let mut result = env.result(
        Some(args.transport),
        figures,
        peak_rss,
        problems,
        Scenario::Fanout(fanout.clone()),
    );
    if let Some(rate) = fanout.rate
        && fanout.publish_per_sec < rate * 0.95
    {
        result.notes.push(format!(
            "publishing reached only {:.0} of {rate} publishes/s",
            fanout.publish_per_sec
        ));
    }
    Ok(result)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One client's life after its snapshot: account every delivery until stopped.
async fn receive(
    account: usize,
    mut client: Client,
    mut stop: watch::Receiver<bool>,
    events: u64,
    counters: Arc<Counters>,
    latencies: Arc<Mutex<Histogram>>,
) -> ClientOutcome {
    let mut tracker = Tracker::new(events, client.snapshot_seq);
    let mut batch = Vec::with_capacity(LATENCY_BATCH);
    let flush = |batch: &mut Vec<u64>| {
        let mut h = lock(&latencies);
        for &v in batch.iter() {
            h.record(v);
        }
        batch.clear();
    };
    let mut last_at = 0;
    let mut disconnect = None;
    loop {
        let msg = tokio::select! {
            biased;
            _ = stop.changed() => break,
            msg = client.next() => msg,
        };
        match msg {
            Ok(Incoming::Event { seq, n, t }) => {
                let verdict = tracker.record(n, seq.unwrap_or(0));
                if matches!(verdict, Verdict::Fresh | Verdict::OutOfOrder) {
                    Counters::add(&counters.delivered, 1);
                    let now = now_us();
                    last_at = now;
                    if let Some(t) = t {
                        batch.push(now.saturating_sub(t));
                        if batch.len() >= LATENCY_BATCH {
                            flush(&mut batch);
                        }
                    }
                }
            }
            Ok(Incoming::Closed(why) | Incoming::Refused(why)) => {
                disconnect = Some(why);
                break;
            }
            Ok(_) => {}
            Err(e) => {
                disconnect = Some(e.to_string());
                break;
            }
        }
    }
    flush(&mut batch);
    if disconnect.is_some() {
        Counters::add(&counters.disconnects, 1);
    }
    ClientOutcome {
        account,
        tracker,
        last_at,
        disconnect,
    }
}

/// Publishes every event (event k goes to account k mod A as its number
/// k / A, so accounts advance together), at `--rate` or as fast as
/// acknowledged. Returns the first publish error, if any.
async fn publish_all(
    env: &Arc<Env>,
    args: &FanoutArgs,
    counters: &Arc<Counters>,
    acked: &Arc<Vec<Mutex<Bitset>>>,
) -> FirstError {
    let total = args.events * args.accounts as u64;
    let next = Arc::new(AtomicU64::new(0));
    let first_error = FirstError::default();
    let pad: Arc<str> = "x".repeat(args.pad).into();
    let accounts: Arc<Vec<String>> = Arc::new((0..args.accounts).map(|a| env.account(a)).collect());
    let start = tokio::time::Instant::now();
    let rate = (args.rate > 0.0).then_some(args.rate);
    let workers: Vec<_> = (0..args.publishers.max(1))
        .map(|p| {
            let (env, counters, acked, next, first_error, pad, accounts) = (
                env.clone(),
                counters.clone(),
                acked.clone(),
                next.clone(),
                first_error.clone(),
                pad.clone(),
                accounts.clone(),
            );
            tokio::spawn(async move {
                let mut publisher = match Publisher::connect(
                    p,
                    &env.publish_target,
                    &env.sources,
                    &env.common.api_key,
                )
                .await
                {
                    Ok(publisher) => publisher,
                    Err(e) => {
                        first_error.set(format!("publisher {p}: {e}"));
                        return;
                    }
                };
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= total {
                        return;
                    }
                    if let Some(rate) = rate {
                        tokio::time::sleep_until(start + Duration::from_secs_f64(k as f64 / rate))
                            .await;
                    }
                    let (a, n) = (
                        (k % accounts.len() as u64) as usize,
                        k / accounts.len() as u64,
                    );
                    match publisher
                        .publish(
                            &env.publish_target,
                            &env.sources,
                            &accounts[a],
                            event_body(n, &pad),
                        )
                        .await
                    {
                        Ok(()) => {
                            lock(&acked[a]).insert(n);
                            Counters::add(&counters.published, 1);
                        }
                        Err(e) => {
                            Counters::add(&counters.publish_errors, 1);
                            first_error.set(e);
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    // Publishers that could not connect leave their share unpublished.
    let unpublished = total.saturating_sub(
        Counters::get(&counters.published) + Counters::get(&counters.publish_errors),
    );
    if unpublished > 0 && first_error.get().is_some() {
        Counters::add(&counters.publish_errors, unpublished);
    }
    first_error
}

/// Waits until `owed` first-time deliveries arrived, every client is gone,
/// or `timeout` passed since publishing ended.
async fn drain(counters: &Counters, owed: u64, clients: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Counters::get(&counters.delivered) < owed
        && Counters::get(&counters.disconnects) < clients
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

//! Publish: acknowledged publishes per second with no subscribers, each
//! publisher a keep-alive connection with one request in flight, into one
//! account (every publish contends for the same sequence) or spread over
//! several.

use super::{Env, FirstError, SPARE_DESCRIPTORS, event_body};
use crate::{
    Error,
    cli::PublishArgs,
    histogram::Histogram,
    monitor::{Counters, Progress, Window},
    procstat,
    publisher::Publisher,
    report::{Publish, RunResult, Scenario},
};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

pub async fn run(env: Arc<Env>, args: PublishArgs) -> Result<RunResult, Error> {
    if args.accounts == 0 || args.events == 0 || args.publishers == 0 {
        return Err(Error::Config(
            "--accounts, --events and --publishers must be at least 1".into(),
        ));
    }
    procstat::ensure_descriptors(args.publishers as u64 + SPARE_DESCRIPTORS)
        .map_err(Error::Config)?;
    let counters = Arc::new(Counters::default());
    let progress = Progress::start(
        "publish",
        env.server_pid.clone(),
        counters.clone(),
        env.common.quiet,
    );
    let accounts: Arc<Vec<String>> = Arc::new((0..args.accounts).map(|a| env.account(a)).collect());
    let pad: Arc<str> = "x".repeat(args.pad).into();
    let next = Arc::new(AtomicU64::new(0));
    let first_error = FirstError::default();
    let deadline = Instant::now() + args.duration;

    // Connect first, so the window measures publishing, not handshakes.
    let mut publishers = Vec::with_capacity(args.publishers);
    for p in 0..args.publishers {
        publishers.push(
            Publisher::connect(p, &env.publish_target, &env.sources, &env.common.api_key).await?,
        );
    }
    let window = Window::start(env.server_pid.as_deref());
    let workers: Vec<_> = publishers
        .into_iter()
        .map(|mut publisher| {
            let (env, counters, accounts, pad, next, first_error) = (
                env.clone(),
                counters.clone(),
                accounts.clone(),
                pad.clone(),
                next.clone(),
                first_error.clone(),
            );
            let total = args.events;
            tokio::spawn(async move {
                let mut latency = Histogram::default();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= total || Instant::now() >= deadline {
                        return latency;
                    }
                    let account = &accounts[(k % accounts.len() as u64) as usize];
                    let sent = Instant::now();
                    match publisher
                        .publish(
                            &env.publish_target,
                            &env.sources,
                            account,
                            event_body(k, &pad),
                        )
                        .await
                    {
                        Ok(()) => {
                            latency.record(sent.elapsed().as_micros() as u64);
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
    let mut latency = Histogram::default();
    for worker in workers {
        if let Ok(h) = worker.await {
            latency.merge(&h);
        }
    }
    let figures = window.finish();
    let peak_rss = progress.finish().await;

    let acked = Counters::get(&counters.published);
    let errors = Counters::get(&counters.publish_errors);
    let mut problems = Vec::new();
    if errors > 0 {
        problems.push(format!(
            "{errors} publish errors (first: {})",
            first_error.get().unwrap_or("?")
        ));
    }
    let publish = Publish {
        accounts: args.accounts,
        publishers: args.publishers,
        acked,
        errors,
        acked_per_sec: acked as f64 / figures.seconds.max(1e-9),
        latency: latency.summary(),
    };
    Ok(env.result(
        None,
        figures,
        peak_rss,
        problems,
        Scenario::Publish(publish),
    ))
}

//! Idle: N connections opened as fast as the server accepts them (with
//! --connect-concurrency handshakes in flight), then held. Reports how many
//! were accepted per second and how much the server's RSS grew per
//! connection, read from /proc/PID/status once the connections settled.

use super::{Env, Fleet, SPARE_DESCRIPTORS};
use crate::{
    Error,
    cli::IdleArgs,
    monitor::{Counters, Progress, Window},
    procstat,
    protocol::Incoming,
    report::{Idle, RunResult, Scenario},
};
use std::sync::Arc;

pub async fn run(env: Arc<Env>, args: IdleArgs) -> Result<RunResult, Error> {
    if args.clients == 0 || args.accounts == 0 {
        return Err(Error::Config(
            "--clients and --accounts must be at least 1".into(),
        ));
    }
    procstat::ensure_descriptors(args.clients as u64 + SPARE_DESCRIPTORS).map_err(Error::Config)?;
    let rss = || env.server_pid.as_deref().and_then(procstat::rss_bytes);
    let rss_before = rss();
    let counters = Arc::new(Counters::default());
    let progress = Progress::start(
        "idle",
        env.server_pid.clone(),
        counters.clone(),
        env.common.quiet,
    );
    let window = Window::start(env.server_pid.as_deref());

    let fleet = {
        let counters = counters.clone();
        Fleet::spawn(
            &env,
            args.clients,
            args.accounts,
            args.transport,
            &counters.clone(),
            move |_, mut client, mut stop| {
                let counters = counters.clone();
                async move {
                    loop {
                        let msg = tokio::select! {
                            _ = stop.changed() => return,
                            msg = client.next() => msg,
                        };
                        if matches!(msg, Ok(Incoming::Closed(_) | Incoming::Refused(_)) | Err(_)) {
                            Counters::add(&counters.disconnects, 1);
                            return;
                        }
                    }
                }
            },
        )
    };
    let connected = fleet
        .connected(&counters, env.common.connect_timeout, false)
        .await;
    // CPU figures of the connect phase: that is where the work is.
    let figures = window.finish();
    if let Err(e) = connected {
        fleet.finish().await;
        progress.finish().await;
        return Err(e);
    }
    let ok = Counters::get(&counters.connected);
    let failed = Counters::get(&counters.failed);
    let accept_secs =
        (Counters::get(&counters.last_connected_us).saturating_sub(fleet.started_us)) as f64 / 1e6;
    if !env.common.quiet {
        eprintln!("{ok} connections open ({failed} failed) in {accept_secs:.2} s; settling");
    }
    tokio::time::sleep(args.settle).await;
    let rss_after = rss();
    tokio::time::sleep(args.hold).await;
    let disconnects = Counters::get(&counters.disconnects);
    let first_error = fleet.first_error.get().map(str::to_owned);
    fleet.finish().await;
    let peak_rss = progress.finish().await;

    let rss_per_connection = match (rss_before, rss_after) {
        (Some(before), Some(after)) if ok > 0 => {
            Some(after.saturating_sub(before) as f64 / ok as f64)
        }
        _ => None,
    };
    let mut problems = Vec::new();
    if failed > 0 {
        problems.push(format!(
            "{failed} connections failed (first: {})",
            first_error.unwrap_or_default()
        ));
    }
    if disconnects > 0 {
        problems.push(format!("{disconnects} connections dropped while held"));
    }
    let idle = Idle {
        clients: args.clients,
        connected: ok,
        failed,
        accepted_per_sec: ok as f64 / accept_secs.max(1e-9),
        rss_before,
        rss_after,
        rss_per_connection,
        hold_seconds: (args.settle + args.hold).as_secs_f64(),
        disconnects,
    };
    Ok(env.result(
        Some(args.transport),
        figures,
        peak_rss,
        problems,
        Scenario::Idle(idle),
    ))
}

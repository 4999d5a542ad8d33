//! Results: what one run measured (a JSON line), the table printed after a
//! run, and the markdown of docs/PERFORMANCE.md built from a set of runs,
//! including the comparison with the issue's targets.

use crate::{client::Transport, histogram::Percentiles};
use serde::{Deserialize, Serialize};
use std::fmt::Write;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub server: String,
    /// The subscribers' protocol; None for publish, which has no subscribers.
    pub transport: Option<Transport>,
    /// Length of the measured window.
    pub seconds: f64,
    pub server_cpu_pct: Option<f64>,
    /// Time the server's threads were runnable but waiting for a CPU, in
    /// percent of the window: other work on the machine taking its core.
    #[serde(default)]
    pub server_wait_pct: Option<f64>,
    pub server_rss_peak: Option<u64>,
    pub loadgen_cpu_pct: Option<f64>,
    #[serde(default)]
    pub loadgen_wait_pct: Option<f64>,
    /// Why this run does not count (empty: it counts).
    pub problems: Vec<String>,
    /// Caveats that do not void the run.
    pub notes: Vec<String>,
    #[serde(flatten)]
    pub scenario: Scenario,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "scenario", rename_all = "lowercase")]
pub enum Scenario {
    Fanout(Fanout),
    Idle(Idle),
    Publish(Publish),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fanout {
    pub clients: usize,
    pub accounts: usize,
    pub events_per_account: u64,
    /// Requested publish rate; None = as fast as acknowledged.
    pub rate: Option<f64>,
    pub publishers: usize,
    pub published: u64,
    pub publish_errors: u64,
    pub publish_per_sec: f64,
    pub deliveries: u64,
    pub deliveries_per_sec: f64,
    pub latency: Percentiles,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub disconnects: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Idle {
    pub clients: usize,
    pub connected: u64,
    pub failed: u64,
    pub accepted_per_sec: f64,
    pub rss_before: Option<u64>,
    pub rss_after: Option<u64>,
    pub rss_per_connection: Option<f64>,
    pub hold_seconds: f64,
    pub disconnects: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Publish {
    pub accounts: usize,
    pub publishers: usize,
    pub acked: u64,
    pub errors: u64,
    pub acked_per_sec: f64,
    pub latency: Percentiles,
}

impl RunResult {
    /// `count` per second of server CPU time: what one fully available core
    /// would do if CPU is the limit. Unlike a rate per wall-clock second, it
    /// holds up when other work on the machine takes the server's core.
    pub fn per_server_cpu_sec(&self, count: f64) -> Option<f64> {
        let cpu_secs = self.server_cpu_pct? / 100.0 * self.seconds;
        (cpu_secs > 0.0).then(|| count / cpu_secs)
    }

    /// Server CPU µs spent per `count` (e.g. per delivery): the inverse of
    /// [`Self::per_server_cpu_sec`].
    pub fn server_cpu_us_per(&self, count: f64) -> Option<f64> {
        let cpu_secs = self.server_cpu_pct? / 100.0 * self.seconds;
        (count > 0.0 && cpu_secs > 0.0).then(|| cpu_secs * 1e6 / count)
    }

    pub fn counts(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn transport_name(&self) -> &'static str {
        self.transport.map_or("-", Transport::name)
    }

    pub fn scenario_name(&self) -> &'static str {
        match self.scenario {
            Scenario::Fanout(_) => "fanout",
            Scenario::Idle(_) => "idle",
            Scenario::Publish(_) => "publish",
        }
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

fn pct(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.0} %"))
}

/// "95 % (wait 3 %)": CPU used and time spent waiting for a CPU.
fn cpu(used: Option<f64>, wait: Option<f64>) -> String {
    match wait {
        Some(w) => format!("{} (wait {w:.0} %)", pct(used)),
        None => pct(used),
    }
}

fn per_cpu(r: &RunResult, count: f64) -> String {
    r.per_server_cpu_sec(count)
        .map_or("n/a".into(), |v| format!("{}/s", thousands(v)))
}

/// Server CPU-µs per `count`, `—` when the server's CPU is unknown.
fn cpu_us(r: &RunResult, count: f64) -> String {
    r.server_cpu_us_per(count)
        .map_or("—".into(), |v| format!("{v:.1}"))
}

fn mb(v: Option<u64>) -> String {
    v.map_or("n/a".into(), |v| format!("{:.1} MB", v as f64 / 1e6))
}

fn kb(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{:.1} KB", v / 1024.0))
}

/// The key/value table printed after one run.
pub fn console_table(r: &RunResult) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("scenario", r.scenario_name().into()),
        ("server", r.server.clone()),
        ("transport", r.transport_name().into()),
    ];
    match &r.scenario {
        Scenario::Fanout(f) => rows.extend([
            (
                "clients / accounts",
                format!("{} / {}", thousands(f.clients as f64), f.accounts),
            ),
            ("events per account", thousands(f.events_per_account as f64)),
            (
                "rate",
                f.rate.map_or("max".into(), |r| format!("{r} publishes/s")),
            ),
            (
                "published (errors)",
                format!("{} ({})", thousands(f.published as f64), f.publish_errors),
            ),
            ("publishes/s", thousands(f.publish_per_sec)),
            ("deliveries", thousands(f.deliveries as f64)),
            ("deliveries/s", thousands(f.deliveries_per_sec)),
            ("server CPU-µs per delivery", cpu_us(r, f.deliveries as f64)),
            (
                "latency p50 / p99 / max",
                format!(
                    "{} / {} / {}",
                    ms(f.latency.p50_us),
                    ms(f.latency.p99_us),
                    ms(f.latency.max_us)
                ),
            ),
            (
                "lost / duplicated / out of order",
                format!("{} / {} / {}", f.lost, f.duplicated, f.out_of_order),
            ),
            ("disconnects", f.disconnects.to_string()),
        ]),
        Scenario::Idle(i) => rows.extend([
            (
                "connections (failed)",
                format!(
                    "{} of {} ({})",
                    thousands(i.connected as f64),
                    thousands(i.clients as f64),
                    i.failed
                ),
            ),
            ("accepted/s", thousands(i.accepted_per_sec)),
            (
                "server RSS before / after",
                format!("{} / {}", mb(i.rss_before), mb(i.rss_after)),
            ),
            ("server RSS per connection", kb(i.rss_per_connection)),
            ("held for", format!("{:.1} s", i.hold_seconds)),
            ("disconnects while held", i.disconnects.to_string()),
        ]),
        Scenario::Publish(p) => rows.extend([
            (
                "accounts / publishers",
                format!("{} / {}", p.accounts, p.publishers),
            ),
            (
                "acked (errors)",
                format!("{} ({})", thousands(p.acked as f64), p.errors),
            ),
            ("acked/s", thousands(p.acked_per_sec)),
            (
                "publish latency p50 / p99 / max",
                format!(
                    "{} / {} / {}",
                    ms(p.latency.p50_us),
                    ms(p.latency.p99_us),
                    ms(p.latency.max_us)
                ),
            ),
        ]),
    }
    rows.extend([
        ("measured window", format!("{:.2} s", r.seconds)),
        ("server CPU (of one core)", pct(r.server_cpu_pct)),
        ("server waited for a CPU", pct(r.server_wait_pct)),
        ("server peak RSS", mb(r.server_rss_peak)),
        ("loadgen CPU (of one core)", pct(r.loadgen_cpu_pct)),
        ("loadgen waited for a CPU", pct(r.loadgen_wait_pct)),
        (
            "counts",
            if r.counts() {
                "yes".into()
            } else {
                format!("NO: {}", r.problems.join("; "))
            },
        ),
    ]);
    for note in &r.notes {
        rows.push(("note", note.clone()));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        let _ = writeln!(out, "  {k:<width$}  {v}");
    }
    out
}

fn validity(r: &RunResult) -> String {
    let mut cell = if r.counts() {
        "yes".to_string()
    } else {
        format!("**no**: {}", r.problems.join("; "))
    };
    for note in &r.notes {
        cell += &format!(" ({note})");
    }
    cell
}

/// The markdown tables for a set of runs.
pub fn markdown(results: &[RunResult], hub: &str, peer: &str, ceiling: &str) -> String {
    let mut out = String::new();
    let fanouts: Vec<_> = results
        .iter()
        .filter_map(|r| match &r.scenario {
            Scenario::Fanout(f) => Some((r, f)),
            _ => None,
        })
        .collect();
    if !fanouts.is_empty() {
        out += "#### Fanout\n\n| server | transport | clients | accounts | events/account | publish rate | deliveries/s | per server CPU-s | server CPU-µs per delivery | p50 | p99 | max | lost / dup / out of order | server CPU | loadgen CPU | counts |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n";
        for (r, f) in fanouts {
            let rate = f.rate.map_or(
                format!("max ({}/s)", thousands(f.publish_per_sec)),
                |rate| format!("{rate}/s"),
            );
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {rate} | {} | {} | {} | {} | {} | {} | {} / {} / {} | {} | {} | {} |",
                r.server,
                r.transport_name(),
                thousands(f.clients as f64),
                f.accounts,
                thousands(f.events_per_account as f64),
                thousands(f.deliveries_per_sec),
                per_cpu(r, f.deliveries as f64),
                cpu_us(r, f.deliveries as f64),
                ms(f.latency.p50_us),
                ms(f.latency.p99_us),
                ms(f.latency.max_us),
                f.lost,
                f.duplicated,
                f.out_of_order,
                cpu(r.server_cpu_pct, r.server_wait_pct),
                cpu(r.loadgen_cpu_pct, r.loadgen_wait_pct),
                validity(r)
            );
        }
        out += "\n";
    }
    let idles: Vec<_> = results
        .iter()
        .filter_map(|r| match &r.scenario {
            Scenario::Idle(i) => Some((r, i)),
            _ => None,
        })
        .collect();
    if !idles.is_empty() {
        out += "#### Idle connections\n\n| server | transport | connections | accepted/s | per server CPU-s | server RSS per connection | server RSS after | failed | server CPU (connect phase) | loadgen CPU (connect phase) | counts |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|\n";
        for (r, i) in idles {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.server,
                r.transport_name(),
                thousands(i.connected as f64),
                thousands(i.accepted_per_sec),
                per_cpu(r, i.connected as f64),
                kb(i.rss_per_connection),
                mb(i.rss_after),
                i.failed,
                cpu(r.server_cpu_pct, r.server_wait_pct),
                cpu(r.loadgen_cpu_pct, r.loadgen_wait_pct),
                validity(r)
            );
        }
        out += "\n";
    }
    let publishes: Vec<_> = results
        .iter()
        .filter_map(|r| match &r.scenario {
            Scenario::Publish(p) => Some((r, p)),
            _ => None,
        })
        .collect();
    if !publishes.is_empty() {
        out += "#### Publish (acknowledged, no subscribers)\n\n| server | accounts | publishers | acked/s | per server CPU-s | p50 | p99 | max | errors | server CPU | loadgen CPU | counts |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n";
        for (r, p) in publishes {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.server,
                p.accounts,
                p.publishers,
                thousands(p.acked_per_sec),
                per_cpu(r, p.acked as f64),
                ms(p.latency.p50_us),
                ms(p.latency.p99_us),
                ms(p.latency.max_us),
                p.errors,
                cpu(r.server_cpu_pct, r.server_wait_pct),
                cpu(r.loadgen_cpu_pct, r.loadgen_wait_pct),
                validity(r)
            );
        }
        out += "\n";
    }
    out += "CPU columns: share of one core used, and (wait) the share of the window its threads were runnable but waiting for a CPU, summed over threads: other work on the machine, or the process's own threads queueing for the one core it is pinned to. \"per server CPU-s\" divides the count by the server's CPU seconds: what one fully available core would do when CPU is the limit; \"server CPU-µs per delivery\" is its inverse, the server's CPU seconds × 10⁶ / deliveries (— when the server's CPU is unknown).\n\n";
    out += &targets(results, hub, peer);
    out += &against_ceiling(results, hub, peer, ceiling);
    out
}

/// Same clients, accounts, events and rate.
fn same_case(a: &Fanout, b: &Fanout) -> bool {
    (a.clients, a.accounts, a.events_per_account, a.rate)
        == (b.clients, b.accounts, b.events_per_account, b.rate)
}

fn case_name(f: &Fanout) -> String {
    format!(
        "{} clients / {} accounts / {} events, {}",
        thousands(f.clients as f64),
        f.accounts,
        thousands(f.events_per_account as f64),
        f.rate
            .map_or("max rate".into(), |r| format!("{r} publishes/s"))
    )
}

fn times(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.2}×"))
}

/// Every fanout case the ceiling ran (over `/ws`), with each server's run of
/// the same case beside it: deliveries/s as a multiple of the ceiling's, and
/// server CPU per delivery as a multiple of the ceiling's.
fn against_ceiling<'a>(results: &'a [RunResult], hub: &str, peer: &str, ceiling: &str) -> String {
    let mut cases: Vec<&'a Fanout> = Vec::new();
    for r in results.iter().filter(|r| r.server == ceiling) {
        if let Scenario::Fanout(f) = &r.scenario
            && !cases.iter().any(|c| same_case(c, f))
        {
            cases.push(f);
        }
    }
    let mut out = String::new();
    for case in cases {
        let shape = |s: &'a Scenario| -> Option<&'a Fanout> {
            match s {
                Scenario::Fanout(f) if same_case(f, case) => Some(f),
                _ => None,
            }
        };
        let Some((cr, cf)) = find(results, ceiling, Some(Transport::Ws), shape) else {
            continue;
        };
        let ceiling_us = cr.server_cpu_us_per(cf.deliveries as f64);
        for (server, transport) in [
            (ceiling, Transport::Ws),
            (hub, Transport::Socketio),
            (hub, Transport::Ws),
            (peer, Transport::Socketio),
        ] {
            let Some((r, f)) = find(results, server, Some(transport), shape) else {
                continue;
            };
            let us = r.server_cpu_us_per(f.deliveries as f64);
            let _ = writeln!(
                out,
                "| {} | {server} ({}) | {}/s | {} | {} | {} | {} | {} |",
                case_name(case),
                transport.name(),
                thousands(f.deliveries_per_sec),
                times(Some(f.deliveries_per_sec / cf.deliveries_per_sec.max(1.0))),
                cpu_us(r, f.deliveries as f64),
                times(us.zip(ceiling_us).map(|(a, c)| a / c)),
                ms(f.latency.p99_us),
                validity(r)
            );
        }
    }
    if out.is_empty() {
        return out;
    }
    format!(
        "\n#### Against the ceiling (same run)\n\nThe ceiling (`bench/ceiling`) is a hub that persists nothing and encodes each event once for all its subscribers: the least any hub with one socket per subscriber does. \"× the ceiling's\" is deliveries/s as a multiple of the ceiling's, and server CPU per delivery as a multiple of the ceiling's (what the rest costs on top).\n\n| case | server | deliveries/s | × the ceiling's | server CPU-µs per delivery | × the ceiling's | p99 | counts |\n|---|---|--:|--:|--:|--:|--:|---|\n{out}"
    )
}

/// A target row: what was required, what was measured, whether it was met.
struct Row {
    target: String,
    hub: String,
    peer: String,
    verdict: String,
}

fn find<'a, T>(
    results: &'a [RunResult],
    server: &str,
    transport: Option<Transport>,
    pick: impl Fn(&'a Scenario) -> Option<&'a T>,
) -> Option<(&'a RunResult, &'a T)> {
    // The last matching run wins: files are read in order, newest last.
    results
        .iter()
        .rev()
        .filter(|r| r.server == server && r.transport == transport)
        .find_map(|r| pick(&r.scenario).map(|s| (r, s)))
}

fn verdict(met: bool, counts: bool) -> String {
    match (counts, met) {
        (false, _) => "run does not count".into(),
        (true, true) => "met".into(),
        (true, false) => "**missed**".into(),
    }
}

fn fanout_rows<'a>(results: &'a [RunResult], hub: &str, peer: &str, rows: &mut Vec<Row>) {
    for (clients, accounts, events, factor) in [(1000, 10, 1000, 8.0), (10_000, 100, 100, 5.0)] {
        let shape = |s: &'a Scenario| -> Option<&'a Fanout> {
            match s {
                Scenario::Fanout(f)
                    if f.clients == clients
                        && f.accounts == accounts
                        && f.events_per_account == events
                        && f.rate.is_none() =>
                {
                    Some(f)
                }
                _ => None,
            }
        };
        let target = format!(
            "fanout {} clients / {accounts} accounts / {} events: ≥ {factor}× the peer's deliveries/s, p99 ≤ the peer's",
            thousands(clients as f64),
            thousands(events as f64)
        );
        let p = find(results, peer, Some(Transport::Socketio), shape);
        for transport in [Transport::Socketio, Transport::Ws] {
            let Some((hr, h)) = find(results, hub, Some(transport), shape) else {
                if transport == Transport::Socketio {
                    rows.push(Row {
                        target: target.clone(),
                        hub: "not run".into(),
                        peer: String::new(),
                        verdict: "not measured".into(),
                    });
                }
                continue;
            };
            let hub_cell = format!(
                "{} ({}): {}/s, p99 {}",
                hub,
                transport.name(),
                thousands(h.deliveries_per_sec),
                ms(h.latency.p99_us)
            );
            let Some((pr, pf)) = p else {
                rows.push(Row {
                    target: target.clone(),
                    hub: hub_cell,
                    peer: "not run".into(),
                    verdict: "no peer figure".into(),
                });
                continue;
            };
            let ratio = h.deliveries_per_sec / pf.deliveries_per_sec.max(1.0);
            let cpu_ratio = hr
                .per_server_cpu_sec(h.deliveries as f64)
                .zip(pr.per_server_cpu_sec(pf.deliveries as f64))
                .map_or("n/a".into(), |(a, b)| format!("{:.2}×", a / b.max(1.0)));
            let met = ratio >= factor && h.latency.p99_us <= pf.latency.p99_us;
            rows.push(Row {
                target: target.clone(),
                hub: hub_cell,
                peer: format!(
                    "{}/s, p99 {}",
                    thousands(pf.deliveries_per_sec),
                    ms(pf.latency.p99_us)
                ),
                verdict: format!(
                    "{ratio:.2}× (per server CPU-s: {cpu_ratio}), p99 {:.2}× the peer's: {}",
                    h.latency.p99_us as f64 / pf.latency.p99_us.max(1) as f64,
                    verdict(met, hr.counts() && pr.counts())
                ),
            });
        }
    }
}

/// 300 publishes/s: to 1,000 clients against the issue's 5 ms p99 target;
/// to 10,000 clients (100 accounts) measured with no target set.
fn rate_rows<'a>(results: &'a [RunResult], hub: &str, peer: &str, rows: &mut Vec<Row>) {
    for (clients, p99_target_us) in [(1000usize, Some(5000u64)), (10_000, None)] {
        let shape = |s: &'a Scenario| -> Option<&'a Fanout> {
            match s {
                Scenario::Fanout(f)
                    if f.clients == clients && f.rate.is_some_and(|r| (r - 300.0).abs() < 1e-9) =>
                {
                    Some(f)
                }
                _ => None,
            }
        };
        let cell = |r: &RunResult, f: &Fanout| {
            format!(
                "p99 {}, {} server CPU-µs per delivery",
                ms(f.latency.p99_us),
                cpu_us(r, f.deliveries as f64)
            )
        };
        let p = find(results, peer, Some(Transport::Socketio), shape);
        for transport in [Transport::Socketio, Transport::Ws] {
            let Some((hr, h)) = find(results, hub, Some(transport), shape) else {
                continue;
            };
            let (goal, result) = match p99_target_us {
                Some(us) => (
                    format!("p99 publish-to-delivery ≤ {} ms", us / 1000),
                    verdict(h.latency.p99_us <= us, hr.counts()),
                ),
                None => (
                    "p99 publish-to-delivery and server CPU per delivery (no target)".into(),
                    if hr.counts() {
                        "measured".into()
                    } else {
                        "run does not count".into()
                    },
                ),
            };
            rows.push(Row {
                target: format!(
                    "300 publishes/s to {} clients ({} accounts): {goal}",
                    thousands(clients as f64),
                    h.accounts
                ),
                hub: format!("{} ({}): {}", hub, transport.name(), cell(hr, h)),
                peer: p.map_or("not run".into(), |(pr, pf)| cell(pr, pf)),
                verdict: result,
            });
        }
    }
}

fn idle_rows<'a>(results: &'a [RunResult], hub: &str, peer: &str, rows: &mut Vec<Row>) {
    let shape = |s: &'a Scenario| -> Option<&'a Idle> {
        match s {
            Scenario::Idle(i) => Some(i),
            _ => None,
        }
    };
    let p = find(results, peer, Some(Transport::Socketio), shape);
    let Some((hr, h)) = find(results, hub, Some(Transport::Socketio), shape) else {
        return;
    };
    let scale = if h.connected >= 19_900 {
        String::new()
    } else {
        format!(
            " (measured at {} connections, not 19,900)",
            thousands(h.connected as f64)
        )
    };
    rows.push(Row {
        target: format!(
            "idle 19,900 Socket.IO connections: ≤ 8 KB server RSS per connection{scale}"
        ),
        hub: kb(h.rss_per_connection),
        peer: p.map_or("not run".into(), |(_, pi)| kb(pi.rss_per_connection)),
        verdict: verdict(
            h.rss_per_connection.is_some_and(|b| b <= 8.0 * 1024.0),
            hr.counts(),
        ),
    });
    rows.push(Row {
        target: format!("idle 19,900 Socket.IO connections: ≥ 10,000 accepted/s{scale}"),
        hub: format!("{}/s", thousands(h.accepted_per_sec)),
        peer: p.map_or("not run".into(), |(_, pi)| {
            format!("{}/s", thousands(pi.accepted_per_sec))
        }),
        verdict: verdict(h.accepted_per_sec >= 10_000.0, hr.counts()),
    });
}

fn publish_rows<'a>(results: &'a [RunResult], hub: &str, peer: &str, rows: &mut Vec<Row>) {
    for (accounts, floor) in [(1usize, 20_000.0), (100, 50_000.0)] {
        let shape = |s: &'a Scenario| -> Option<&'a Publish> {
            match s {
                Scenario::Publish(p) if p.accounts == accounts => Some(p),
                _ => None,
            }
        };
        let Some((hr, h)) = find(results, hub, None, shape) else {
            continue;
        };
        let p = find(results, peer, None, shape);
        rows.push(Row {
            target: format!(
                "durable publish: ≥ {}/s acked into {accounts} account{}",
                thousands(floor),
                if accounts == 1 { "" } else { "s" }
            ),
            hub: format!("{}/s", thousands(h.acked_per_sec)),
            peer: p.map_or("not run".into(), |(_, pp)| {
                format!("{}/s (not persisting)", thousands(pp.acked_per_sec))
            }),
            verdict: verdict(h.acked_per_sec >= floor, hr.counts()),
        });
    }
}

fn targets(results: &[RunResult], hub: &str, peer: &str) -> String {
    let mut rows = Vec::new();
    fanout_rows(results, hub, peer, &mut rows);
    rate_rows(results, hub, peer, &mut rows);
    idle_rows(results, hub, peer, &mut rows);
    publish_rows(results, hub, peer, &mut rows);
    let mut out = String::from(
        "#### Against the targets (same run)\n\n| target | statushub | peer | result |\n|---|---|---|---|\n",
    );
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            row.target, row.hub, row.peer, row.verdict
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fanout(
        server: &str,
        transport: Transport,
        per_sec: f64,
        p99: u64,
        problems: Vec<String>,
    ) -> RunResult {
        RunResult {
            server: server.into(),
            transport: Some(transport),
            seconds: 10.0,
            server_cpu_pct: Some(99.0),
            server_wait_pct: Some(1.0),
            loadgen_wait_pct: None,
            server_rss_peak: Some(50_000_000),
            loadgen_cpu_pct: Some(60.0),
            problems,
            notes: vec![],
            scenario: Scenario::Fanout(Fanout {
                clients: 1000,
                accounts: 10,
                events_per_account: 1000,
                rate: None,
                publishers: 32,
                published: 10_000,
                publish_errors: 0,
                publish_per_sec: 1000.0,
                deliveries: (per_sec * 10.0) as u64,
                deliveries_per_sec: per_sec,
                latency: Percentiles {
                    p50_us: 1000,
                    p99_us: p99,
                    max_us: p99 * 2,
                },
                lost: 0,
                duplicated: 0,
                out_of_order: 0,
                disconnects: 0,
            }),
        }
    }

    /// `r` as a run of another fanout case.
    fn case(
        mut r: RunResult,
        clients: usize,
        accounts: usize,
        events: u64,
        rate: Option<f64>,
    ) -> RunResult {
        if let Scenario::Fanout(f) = &mut r.scenario {
            (f.clients, f.accounts, f.events_per_account, f.rate) =
                (clients, accounts, events, rate);
        }
        r
    }

    #[test]
    fn server_cpu_per_delivery() {
        // 99 % of 10 s over 1,000,000 deliveries.
        let r = fanout("statushub", Transport::Ws, 100_000.0, 1, vec![]);
        assert!((r.server_cpu_us_per(1_000_000.0).unwrap() - 9.9).abs() < 1e-9);
        let table = console_table(&r);
        let line = table
            .lines()
            .find(|l| l.trim_start().starts_with("server CPU-µs per delivery"))
            .expect("a CPU per delivery row");
        assert!(line.ends_with(" 9.9"), "{table}");
        let md = markdown(&[r], "statushub", "peer", "ceiling");
        assert!(md.contains("| server CPU-µs per delivery |"), "{md}");
        assert!(md.contains("| 100,000 | 101,010/s | 9.9 |"), "{md}");

        let mut unknown = fanout("peer", Transport::Socketio, 100_000.0, 1, vec![]);
        unknown.server_cpu_pct = None;
        assert_eq!(unknown.server_cpu_us_per(1.0), None);
        let md = markdown(&[unknown], "statushub", "peer", "ceiling");
        assert!(md.contains("| 100,000 | n/a | — |"), "{md}");
    }

    #[test]
    fn the_ceiling_is_compared_case_by_case() {
        let ten_k = |r| case(r, 10_000, 100, 100, None);
        let results = [
            ten_k(fanout(
                "statushub",
                Transport::Socketio,
                50_000.0,
                9_000,
                vec![],
            )),
            ten_k(fanout("statushub", Transport::Ws, 100_000.0, 8_000, vec![])),
            ten_k(fanout("peer", Transport::Socketio, 45_000.0, 7_000, vec![])),
            ten_k(fanout("ceiling", Transport::Ws, 250_000.0, 3_000, vec![])),
            // A case the ceiling did not run stays out of its section.
            fanout("statushub", Transport::Ws, 300_000.0, 1_000, vec![]),
        ];
        let md = markdown(&results, "statushub", "peer", "ceiling");
        let section = md
            .split("#### Against the ceiling")
            .nth(1)
            .expect("a ceiling section");
        let case = "10,000 clients / 100 accounts / 100 events, max rate";
        for row in [
            format!("| {case} | ceiling (ws) | 250,000/s | 1.00× | 4.0 | 1.00× | 3.00 ms | yes |"),
            format!(
                "| {case} | statushub (socketio) | 50,000/s | 0.20× | 19.8 | 5.00× | 9.00 ms | yes |"
            ),
            format!(
                "| {case} | statushub (ws) | 100,000/s | 0.40× | 9.9 | 2.50× | 8.00 ms | yes |"
            ),
            format!(
                "| {case} | peer (socketio) | 45,000/s | 0.18× | 22.0 | 5.56× | 7.00 ms | yes |"
            ),
        ] {
            assert!(section.contains(&row), "{row} in {section}");
        }
        assert!(!section.contains("300,000/s"), "{section}");
        // The peer comparison is still there, and the ceiling is in the fanout table.
        assert!(md.contains("2.22× (per server CPU-s: 2.22×)"), "{md}");
        assert!(md.contains("| ceiling | ws | 10,000 | 100 |"), "{md}");

        let without = markdown(&results[..3], "statushub", "peer", "ceiling");
        assert!(!without.contains("Against the ceiling"), "{without}");
    }

    #[test]
    fn rate_rows_at_1k_and_10k_clients() {
        let results = [
            case(
                fanout("statushub", Transport::Ws, 300_000.0, 2_000, vec![]),
                1000,
                10,
                300,
                Some(300.0),
            ),
            case(
                fanout("statushub", Transport::Ws, 300_000.0, 7_000, vec![]),
                10_000,
                100,
                30,
                Some(300.0),
            ),
            case(
                fanout("peer", Transport::Socketio, 300_000.0, 9_000, vec![]),
                10_000,
                100,
                30,
                Some(300.0),
            ),
        ];
        let md = markdown(&results, "statushub", "peer", "ceiling");
        assert!(md.contains("| 300 publishes/s to 1,000 clients (10 accounts): p99 publish-to-delivery ≤ 5 ms | statushub (ws): p99 2.00 ms, 3.3 server CPU-µs per delivery | not run | met |"), "{md}");
        assert!(md.contains("| 300 publishes/s to 10,000 clients (100 accounts): p99 publish-to-delivery and server CPU per delivery (no target) | statushub (ws): p99 7.00 ms, 3.3 server CPU-µs per delivery | p99 9.00 ms, 3.3 server CPU-µs per delivery | measured |"), "{md}");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }

    #[test]
    fn results_round_trip_through_json() {
        let r = fanout("statushub", Transport::Socketio, 1.0, 1, vec![]);
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains(r#""scenario":"fanout""#));
        let back: RunResult = serde_json::from_str(&line).unwrap();
        assert_eq!(back.scenario_name(), "fanout");
    }

    #[test]
    fn target_verdicts_compare_hub_and_peer() {
        let results = [
            fanout("peer", Transport::Socketio, 50_000.0, 20_000, vec![]),
            fanout("statushub", Transport::Socketio, 450_000.0, 10_000, vec![]),
            fanout("statushub", Transport::Ws, 100_000.0, 10_000, vec![]),
        ];
        let md = markdown(&results, "statushub", "peer", "ceiling");
        assert!(
            md.contains("9.00× (per server CPU-s: 9.00×), p99 0.50× the peer's: met"),
            "{md}"
        );
        assert!(
            md.contains("2.00× (per server CPU-s: 2.00×), p99 0.50× the peer's: **missed**"),
            "{md}"
        );
    }

    #[test]
    fn a_run_with_problems_never_meets_a_target() {
        let results = [
            fanout("peer", Transport::Socketio, 50_000.0, 20_000, vec![]),
            fanout(
                "statushub",
                Transport::Socketio,
                900_000.0,
                1_000,
                vec!["3 lost".into()],
            ),
        ];
        let md = markdown(&results, "statushub", "peer", "ceiling");
        assert!(md.contains("run does not count"), "{md}");
        assert!(md.contains("**no**: 3 lost"), "{md}");
    }
}

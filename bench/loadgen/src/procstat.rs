//! What a process costs, read from `/proc`: resident memory and CPU time of
//! the server under test and of the tool itself (a saturated load tool
//! measures itself, not the server), how long their threads sat runnable
//! waiting for a CPU (on a shared machine, other work steals the pinned
//! core and every figure of the run with it), and the descriptor budget.

use std::{collections::HashMap, time::Instant};

/// Resident set size in bytes (`VmRSS` of `/proc/PID/status`).
pub fn rss_bytes(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// User + system CPU time in clock ticks (`/proc/PID/stat` fields 14 and 15).
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat)
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // `after` starts at field 3 (state); utime is field 14, stime 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Nanoseconds each thread of `pid` spent runnable but waiting for a CPU
/// (second field of `/proc/PID/task/TID/schedstat`), by thread id: threads
/// come and go (tokio's blocking pool), so a window compares them one by one.
fn run_delays(pid: &str) -> Option<HashMap<u64, u64>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut delays = HashMap::new();
    for task in tasks.flatten() {
        let tid = task.file_name().to_str().and_then(|t| t.parse().ok());
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok();
        if let (Some(tid), Some(ns)) = (tid, stat.as_deref().and_then(parse_run_delay)) {
            delays.insert(tid, ns);
        }
    }
    (!delays.is_empty()).then_some(delays)
}

/// Waiting time accumulated since `before`; a thread born since counts whole.
fn waited_since(before: &HashMap<u64, u64>, now: &HashMap<u64, u64>) -> u64 {
    now.iter()
        .map(|(tid, ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

fn parse_run_delay(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().nth(1)?.parse().ok()
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}

/// CPU use of one process over a window, in percent of one core.
pub struct CpuMeter {
    pid: String,
    ticks: Option<u64>,
    waited: Option<HashMap<u64, u64>>,
    at: Instant,
}

impl CpuMeter {
    pub fn start(pid: &str) -> Self {
        CpuMeter {
            pid: pid.to_owned(),
            ticks: cpu_ticks(pid),
            waited: run_delays(pid),
            at: Instant::now(),
        }
    }

    /// Time spent runnable but not running, in percent of the window
    /// (summed over threads). Well above a few percent means the process
    /// was starved by other work and its figures understate it.
    pub fn wait_percent(&self) -> Option<f64> {
        let waited = waited_since(self.waited.as_ref()?, &run_delays(&self.pid)?);
        let secs = self.at.elapsed().as_secs_f64();
        (secs > 0.0).then(|| waited as f64 / 1e9 / secs * 100.0)
    }

    pub fn for_self() -> Self {
        Self::start("self")
    }

    /// Percent of one core since `start` (or the last `lap`).
    pub fn percent(&self) -> Option<f64> {
        let used = cpu_ticks(&self.pid)?.checked_sub(self.ticks?)?;
        let secs = self.at.elapsed().as_secs_f64();
        (secs > 0.0).then(|| used as f64 / ticks_per_second() / secs * 100.0)
    }

    /// CPU and wait percent since the last lap, starting a new one.
    pub fn lap(&mut self) -> (Option<f64>, Option<f64>) {
        let pct = (self.percent(), self.wait_percent());
        *self = CpuMeter::start(&self.pid);
        pct
    }
}

/// Makes sure this process may open `needed` descriptors, raising its soft
/// limit up to the hard one; says what to change when it cannot.
pub fn ensure_descriptors(needed: u64) -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write to / read from the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err("cannot read the descriptor limit".into());
        }
        if lim.rlim_cur < needed && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    if lim.rlim_cur >= needed {
        Ok(())
    } else {
        Err(format!(
            "this run needs about {needed} descriptors but the limit is {} (ulimit -n); \
             use fewer --clients per loadgen process",
            lim.rlim_cur
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tstatushub\nVmPeak:\t  9000 kB\nVmRSS:\t   45120 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(45120 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn reads_cpu_ticks_past_odd_command_names() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1000 1000 100";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn reads_run_delay() {
        assert_eq!(
            parse_run_delay("6810181914 17134238953 7068\n"),
            Some(17_134_238_953)
        );
        assert_eq!(parse_run_delay("12"), None);
    }

    #[test]
    fn waiting_is_compared_thread_by_thread() {
        let before = HashMap::from([(1, 100), (2, 500)]);
        // Thread 2 exited, thread 3 was born during the window.
        let now = HashMap::from([(1, 150), (3, 30)]);
        assert_eq!(waited_since(&before, &now), 80);
    }

    #[test]
    fn own_figures_are_readable() {
        assert!(rss_bytes("self").is_some_and(|b| b > 0));
        let meter = CpuMeter::for_self();
        assert!(meter.percent().is_some());
        assert!(
            meter.wait_percent().is_some(),
            "schedstat needs CONFIG_SCHEDSTATS"
        );
    }
}

//! The circuit breaker of each endpoint: after `threshold` failed attempts
//! in a row an endpoint's circuit opens and its deliveries wait (they are
//! not attempted, so their own backoff does not advance) until a cool-down
//! has passed; then one delivery goes out as a probe (half-open). A 2xx
//! closes the circuit; a failure opens it again for twice as long (up to an
//! hour). An endpoint failing for `disable_after` is disabled.
//!
//! The state is this node's (in memory): a restart starts closed, and each
//! node of a cluster judges an endpoint by its own attempts.

use std::{collections::HashMap, sync::Mutex};

/// Consecutive failures that open a circuit.
const THRESHOLD: u32 = 5;
/// The first cool-down, and the longest.
const COOL_DOWN_MS: i64 = 60_000;
const MAX_COOL_DOWN_MS: i64 = 3_600_000;

/// Whether a claimed delivery may be attempted now.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// Closed: go.
    Closed,
    /// Half-open: this one attempt is the probe.
    Probe,
    /// Open (or a probe is out): wait.
    Held,
}

#[derive(Default)]
struct Circuit {
    failures: u32,
    failing_since_ms: i64,
    /// Set while open: when a probe may go.
    open_until_ms: Option<i64>,
    cool_down_ms: i64,
    probing: bool,
}

pub struct Breakers {
    circuits: Mutex<HashMap<String, Circuit>>,
    disable_after_ms: i64,
}

/// Circuits by state, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct States {
    pub open: u64,
    pub half_open: u64,
}

impl Breakers {
    pub fn new(disable_after_ms: i64) -> Self {
        Breakers {
            circuits: Mutex::default(),
            disable_after_ms,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Circuit>> {
        self.circuits.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn gate(&self, endpoint: &str, now_ms: i64) -> Gate {
        let mut circuits = self.lock();
        let Some(c) = circuits.get_mut(endpoint) else {
            return Gate::Closed;
        };
        match c.open_until_ms {
            None => Gate::Closed,
            Some(_) if c.probing => Gate::Held,
            Some(until) if now_ms >= until => {
                c.probing = true;
                Gate::Probe
            }
            Some(_) => Gate::Held,
        }
    }

    /// Records an attempt's outcome; true when the endpoint has now failed
    /// for `disable_after` and is to be disabled (its circuit is forgotten).
    pub fn record(&self, endpoint: &str, ok: bool, now_ms: i64) -> bool {
        let mut circuits = self.lock();
        if ok {
            circuits.remove(endpoint);
            return false;
        }
        let c = circuits.entry(endpoint.to_owned()).or_default();
        if c.failures == 0 {
            c.failing_since_ms = now_ms;
        }
        c.failures += 1;
        if c.probing || c.open_until_ms.is_none() && c.failures >= THRESHOLD {
            c.cool_down_ms = if c.probing {
                (c.cool_down_ms * 2).min(MAX_COOL_DOWN_MS)
            } else {
                COOL_DOWN_MS
            };
            c.probing = false;
            c.open_until_ms = Some(now_ms + c.cool_down_ms);
        }
        if now_ms - c.failing_since_ms >= self.disable_after_ms {
            circuits.remove(endpoint);
            return true;
        }
        false
    }

    /// A probe that was held back without an attempt goes again later.
    pub fn abandon_probe(&self, endpoint: &str) {
        if let Some(c) = self.lock().get_mut(endpoint) {
            c.probing = false;
        }
    }

    pub fn states(&self) -> States {
        let circuits = self.lock();
        let mut states = States::default();
        for c in circuits.values().filter(|c| c.open_until_ms.is_some()) {
            if c.probing {
                states.half_open += 1;
            } else {
                states.open += 1;
            }
        }
        states
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_probes_closes_and_disables() {
        let b = Breakers::new(24 * 3_600_000);
        for n in 0..THRESHOLD {
            assert_eq!(b.gate("e", 0), Gate::Closed, "{n}");
            assert!(!b.record("e", false, 0));
        }
        assert_eq!(b.gate("e", 1), Gate::Held, "open");
        assert_eq!(
            b.states(),
            States {
                open: 1,
                half_open: 0
            }
        );
        assert_eq!(b.gate("e", COOL_DOWN_MS), Gate::Probe);
        assert_eq!(b.gate("e", COOL_DOWN_MS), Gate::Held, "one probe at a time");
        assert!(!b.record("e", false, COOL_DOWN_MS));
        assert_eq!(
            b.gate("e", 2 * COOL_DOWN_MS),
            Gate::Held,
            "longer cool-down"
        );
        assert_eq!(b.gate("e", 3 * COOL_DOWN_MS), Gate::Probe);
        assert!(!b.record("e", true, 3 * COOL_DOWN_MS));
        assert_eq!(b.gate("e", 3 * COOL_DOWN_MS), Gate::Closed, "closed again");
        assert!(!b.record("e", false, 0));
        assert!(
            b.record("e", false, 24 * 3_600_000),
            "a day of failure disables"
        );
        assert_eq!(b.states(), States::default());
    }
}

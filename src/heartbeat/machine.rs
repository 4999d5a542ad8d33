//! The monitor state machine: what one check result does to a monitor's
//! health, which event that is, and how long to wait before the next check.
//!
//! Pure and synchronous on purpose: the rules that decide what tabs are told
//! (and how hard a failing endpoint is hit) are tested here without a clock,
//! a network or a store; the scheduler only applies the delays it returns.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// Longest wait between two checks of a monitor whose own interval is
/// shorter: a dead endpoint is still probed at least this often.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    #[default]
    Unknown,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// `health_changed.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The first verdict after `unknown`.
    StatusChange,
    /// Back to `unknown` (only an override does that).
    HealthChange,
    /// `healthy` → `unhealthy`.
    ErrorState,
    /// `unhealthy` → `healthy`.
    Recovery,
}

impl Kind {
    /// The kind of a change of health, or `None` when nothing changed.
    pub fn of(from: Health, to: Health) -> Option<Kind> {
        match (from, to) {
            _ if from == to => None,
            (_, Health::Unknown) => Some(Kind::HealthChange),
            (Health::Unknown, _) => Some(Kind::StatusChange),
            (_, Health::Unhealthy) => Some(Kind::ErrorState),
            (_, Health::Healthy) => Some(Kind::Recovery),
        }
    }
}

/// `health_changed.source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Heartbeat,
    Manual,
    System,
}

/// Why a check failed; the prefix of `lastError`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Timeout,
    Refused,
    Dns,
    Tls,
    /// Any other failure to open the connection (reset, unreachable, …).
    Connect,
    UnexpectedStatus,
    /// The request failed after connecting (malformed response, …).
    Request,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Refused => "refused",
            ErrorKind::Dns => "dns",
            ErrorKind::Tls => "tls",
            ErrorKind::Connect => "connect",
            ErrorKind::UnexpectedStatus => "unexpected_status",
            ErrorKind::Request => "request",
        }
    }
}

/// One check's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub latency_ms: u64,
    pub http_status: Option<u16>,
    /// `None` when the check passed.
    pub error: Option<(ErrorKind, String)>,
    /// RFC 3339.
    pub checked_at: String,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.error.is_none()
    }
}

/// A monitor's state as tabs see it: `health_changed.current` and the
/// snapshot's `monitors` entry. `latencyMs` and `lastChecked` are null until
/// the first check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Current {
    pub health: Health,
    pub latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// `"<kind>: <detail>"`, kind being one of [`ErrorKind`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub last_checked: Option<String>,
}

impl Current {
    /// The state a snapshot entry describes, if it is one.
    pub fn from_entry(entry: &Value) -> Option<Current> {
        serde_json::from_value(entry.clone()).ok()
    }
}

/// What the machine needs of a monitor's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    pub interval: Duration,
    pub max_retries: u32,
    pub backoff_multiplier: f64,
}

impl Policy {
    /// The wait before the next check after `failures` consecutive failures:
    /// `interval × backoffMultiplier^failures`, never more than the larger of
    /// the interval and [`MAX_BACKOFF`].
    pub fn delay_after(&self, failures: u32) -> Duration {
        let cap = self.interval.max(MAX_BACKOFF);
        let factor = self.backoff_multiplier.powi(failures.min(1024) as i32);
        let secs = self.interval.as_secs_f64() * factor;
        if secs.is_finite() && secs < cap.as_secs_f64() {
            Duration::from_secs_f64(secs)
        } else {
            cap
        }
    }

    /// Consecutive failures that make a monitor unhealthy: the first check
    /// plus `maxRetries` retries, all failed (Uptime Kuma's rule).
    pub fn failures_to_unhealthy(&self) -> u32 {
        self.max_retries.saturating_add(1)
    }
}

/// The state kept per monitor, and saved after every check so a restart
/// resumes it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MonitorState {
    /// The latest check (or override): what `GET .../monitors/{id}` shows.
    pub current: Current,
    pub consecutive_failures: u32,
}

/// The result of applying a check or an override.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub state: MonitorState,
    /// The event to publish, if health changed.
    pub change: Option<Kind>,
    /// Wait before the next check (before jitter).
    pub delay: Duration,
}

impl MonitorState {
    pub fn health(&self) -> Health {
        self.current.health
    }

    /// Applies one check. A pass makes the monitor healthy. A failure
    /// changes nothing while retries are left (Uptime Kuma's PENDING) and
    /// makes it unhealthy once they are used up; every failure lengthens the
    /// wait, so an unhealthy endpoint is probed less and less often.
    pub fn apply(&self, policy: &Policy, check: &Check) -> Step {
        let failures = if check.passed() {
            0
        } else {
            self.consecutive_failures.saturating_add(1)
        };
        let health = match (check.passed(), self.health()) {
            (true, _) => Health::Healthy,
            (false, Health::Unhealthy) => Health::Unhealthy,
            (false, _) if failures >= policy.failures_to_unhealthy() => Health::Unhealthy,
            (false, unchanged) => unchanged,
        };
        let state = MonitorState {
            current: Current {
                health,
                latency_ms: Some(check.latency_ms),
                http_status: check.http_status,
                last_error: check
                    .error
                    .as_ref()
                    .map(|(kind, detail)| format!("{}: {detail}", kind.as_str())),
                last_checked: Some(check.checked_at.clone()),
            },
            consecutive_failures: failures,
        };
        Step {
            change: Kind::of(self.health(), health),
            delay: policy.delay_after(failures),
            state,
        }
    }

    /// A manual or system override: sets health (and optionally the error
    /// shown) without a check. The next check then applies the usual rules
    /// from the overridden health, so an override does not silence checks.
    pub fn overridden(
        &self,
        health: Health,
        last_error: Option<String>,
    ) -> (MonitorState, Option<Kind>) {
        let state = MonitorState {
            current: Current {
                health,
                last_error,
                ..self.current.clone()
            },
            consecutive_failures: match health {
                Health::Unhealthy => self.consecutive_failures,
                Health::Healthy | Health::Unknown => 0,
            },
        };
        (state, Kind::of(self.health(), health))
    }

    /// The state to resume with after a restart. `saved` is the state last
    /// saved; `published` the monitor's snapshot entry, i.e. what tabs were
    /// last told. The two differ only when the process stopped between
    /// publishing a change and saving it; then tabs' view wins, so resuming
    /// never publishes a change that already happened, nor skips one.
    pub fn resume(
        saved: Option<MonitorState>,
        published: Option<Current>,
        policy: &Policy,
    ) -> MonitorState {
        let told = published.as_ref().map_or(Health::Unknown, |c| c.health);
        match saved {
            Some(saved) if saved.health() == told => saved,
            _ => MonitorState {
                consecutive_failures: match told {
                    Health::Unhealthy => policy.failures_to_unhealthy(),
                    Health::Healthy | Health::Unknown => 0,
                },
                current: published.unwrap_or_default(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_retries: u32, multiplier: f64) -> Policy {
        Policy {
            interval: Duration::from_secs(10),
            max_retries,
            backoff_multiplier: multiplier,
        }
    }

    fn ok() -> Check {
        Check {
            latency_ms: 12,
            http_status: Some(200),
            error: None,
            checked_at: "T".into(),
        }
    }

    fn failed() -> Check {
        Check {
            latency_ms: 500,
            http_status: Some(500),
            error: Some((ErrorKind::UnexpectedStatus, "500".into())),
            checked_at: "T".into(),
        }
    }

    /// Runs checks from `state`, returning each step's change.
    fn run(policy: &Policy, state: &mut MonitorState, checks: &[Check]) -> Vec<Option<Kind>> {
        checks
            .iter()
            .map(|check| {
                let step = state.apply(policy, check);
                *state = step.state;
                step.change
            })
            .collect()
    }

    #[test]
    fn first_verdict_is_a_status_change_and_repeats_are_silent() {
        let p = policy(0, 1.0);
        let mut s = MonitorState::default();
        assert_eq!(
            run(&p, &mut s, &[ok(), ok(), ok()]),
            [Some(Kind::StatusChange), None, None]
        );
        let mut s = MonitorState::default();
        assert_eq!(
            run(&p, &mut s, &[failed(), failed()]),
            [Some(Kind::StatusChange), None]
        );
        assert_eq!(s.health(), Health::Unhealthy);
        assert_eq!(
            s.current.last_error.as_deref(),
            Some("unexpected_status: 500")
        );
    }

    #[test]
    fn failures_are_retried_before_the_state_changes() {
        let p = policy(2, 1.0);
        let mut s = MonitorState::default();
        run(&p, &mut s, &[ok()]);
        // Two retries are allowed: the third consecutive failure decides.
        assert_eq!(
            run(&p, &mut s, &[failed(), failed(), failed(), failed()]),
            [None, None, Some(Kind::ErrorState), None]
        );
        assert_eq!(s.consecutive_failures, 4);
        assert_eq!(run(&p, &mut s, &[ok()]), [Some(Kind::Recovery)]);
        assert_eq!(s.consecutive_failures, 0);
        // A pass in between resets the count: no flapping into unhealthy.
        assert_eq!(
            run(
                &p,
                &mut s,
                &[failed(), failed(), ok(), failed(), failed(), ok()]
            ),
            [None; 6]
        );
        assert_eq!(s.health(), Health::Healthy);
    }

    #[test]
    fn unknown_also_waits_for_retries() {
        let p = policy(1, 1.0);
        let mut s = MonitorState::default();
        assert_eq!(run(&p, &mut s, &[failed()]), [None]);
        assert_eq!(s.health(), Health::Unknown);
        assert_eq!(run(&p, &mut s, &[failed()]), [Some(Kind::StatusChange)]);
        assert_eq!(s.health(), Health::Unhealthy);
    }

    #[test]
    fn delays_back_off_and_are_capped() {
        let p = policy(3, 2.0);
        let secs: Vec<u64> = (0..6).map(|n| p.delay_after(n).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 300]);
        assert_eq!(p.delay_after(u32::MAX), MAX_BACKOFF);
        let flat = policy(3, 1.0);
        assert_eq!(flat.delay_after(50), Duration::from_secs(10));
        let slow = Policy {
            interval: Duration::from_secs(3600),
            ..p
        };
        assert_eq!(
            slow.delay_after(5),
            Duration::from_secs(3600),
            "the cap never shortens the interval"
        );
        let mut s = MonitorState::default();
        let steps: Vec<u64> = [failed(), failed(), ok()]
            .iter()
            .map(|c| {
                let step = s.apply(&p, c);
                s = step.state;
                step.delay.as_secs()
            })
            .collect();
        assert_eq!(steps, [20, 40, 10]);
    }

    #[test]
    fn overrides_change_health_and_reset_counts() {
        let p = policy(0, 1.0);
        let mut s = MonitorState::default();
        run(&p, &mut s, &[ok()]);
        let (down, kind) = s.overridden(Health::Unhealthy, Some("maintenance".into()));
        assert_eq!(kind, Some(Kind::ErrorState));
        assert_eq!(
            down.current.latency_ms,
            Some(12),
            "keeps the last check's figures"
        );
        assert_eq!(down.current.last_error.as_deref(), Some("maintenance"));
        assert_eq!(down.overridden(Health::Unhealthy, None).1, None);
        let (unknown, kind) = down.overridden(Health::Unknown, None);
        assert_eq!(kind, Some(Kind::HealthChange));
        let mut back = unknown;
        assert_eq!(run(&p, &mut back, &[ok()]), [Some(Kind::StatusChange)]);
    }

    #[test]
    fn resume_trusts_what_tabs_were_told() {
        let p = policy(2, 1.0);
        let saved = MonitorState {
            current: Current {
                health: Health::Healthy,
                ..Current::default()
            },
            consecutive_failures: 2,
        };
        let told_healthy = Some(saved.current.clone());
        assert_eq!(
            MonitorState::resume(Some(saved.clone()), told_healthy, &p),
            saved
        );
        let told_unhealthy = Some(Current {
            health: Health::Unhealthy,
            ..Current::default()
        });
        let resumed = MonitorState::resume(Some(saved.clone()), told_unhealthy, &p);
        assert_eq!(resumed.health(), Health::Unhealthy);
        assert_eq!(resumed.consecutive_failures, 3);
        let fresh = MonitorState::resume(Some(saved), None, &p);
        assert_eq!(
            (fresh.health(), fresh.consecutive_failures),
            (Health::Unknown, 0)
        );
    }

    #[test]
    fn current_has_the_contract_shape() {
        let mut s = MonitorState::default();
        run(&policy(0, 1.0), &mut s, &[failed()]);
        assert_eq!(
            serde_json::to_value(&s.current).unwrap(),
            serde_json::json!({
                "health": "unhealthy", "latencyMs": 500, "httpStatus": 500,
                "lastError": "unexpected_status: 500", "lastChecked": "T"
            })
        );
        let never = serde_json::to_value(Current::default()).unwrap();
        assert_eq!(
            never,
            serde_json::json!({"health": "unknown", "latencyMs": null, "lastChecked": null})
        );
    }
}

//! The rules of a job's life and its statistics, without store or clock.

use super::*;
use serde_json::json;

fn start(retry: Option<RetryPolicy>, now: i64) -> Job {
    StartRequest {
        kind: "orders".into(),
        total: Some(100),
        metadata: None,
        retry,
        stale_after_ms: Some(10_000),
    }
    .into_job("sync_1".into(), now)
    .expect("a valid start")
}

fn report(value: serde_json::Value) -> ProgressReport {
    serde_json::from_value(value).expect("a report")
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        backoff_ms: 1000,
        backoff_multiplier: 2.0,
    }
}

#[test]
fn starts_running_at_attempt_one_and_validates() {
    let job = start(None, 5);
    assert_eq!((job.status, job.attempt, job.done), (Status::Running, 1, 0));
    assert_eq!(job.deadline_ms(), Some(10_005), "stale deadline");
    let bad = |value: serde_json::Value| {
        let request: StartRequest = serde_json::from_value(value).expect("parses");
        request.into_job("x".into(), 0).expect_err("refused")
    };
    assert!(matches!(bad(json!({"kind": ""})), Refusal::Invalid(_)));
    assert!(matches!(bad(json!({"kind": "a b"})), Refusal::Invalid(_)));
    assert!(matches!(
        bad(json!({"kind": "k", "staleAfterMs": 5})),
        Refusal::Invalid(_)
    ));
    assert!(matches!(
        bad(
            json!({"kind": "k", "retry": {"maxAttempts": 0, "backoffMs": 1, "backoffMultiplier": 2}})
        ),
        Refusal::Invalid(_)
    ));
    assert!(matches!(
        bad(
            json!({"kind": "k", "retry": {"maxAttempts": 2, "backoffMs": 1, "backoffMultiplier": 0.5}})
        ),
        Refusal::Invalid(_)
    ));
}

#[test]
fn reports_update_progress_and_aliases_end_the_job() {
    let job = start(None, 0);
    let next = job
        .report(
            &report(json!({"done": 40, "results": {"orders": 38}, "checkpoint": {"page": 4}})),
            7,
            0.0,
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        (next.done, next.total, next.last_report_ms),
        (40, Some(100), 7)
    );
    assert_eq!(next.checkpoint, Some(json!({"page": 4})));
    assert!(!next.is_status_change(&job));
    let done = next
        .report(&report(json!({"status": "SUCCESS", "done": 100})), 9, 0.0)
        .unwrap()
        .unwrap();
    assert_eq!(
        (done.status, done.finished_ms),
        (Status::Completed, Some(9))
    );
    assert!(done.is_status_change(&next));
    assert_eq!(done.deadline_ms(), None);
    // A finished job is never reopened; repeating its end changes nothing.
    assert_eq!(
        done.report(&report(json!({"done": 1})), 10, 0.0),
        Err(Refusal::Finished(Status::Completed))
    );
    assert_eq!(
        done.report(&report(json!({"status": "complete"})), 10, 0.0),
        Ok(None)
    );
    assert!(matches!(
        job.report(&report(json!({"status": "bogus"})), 1, 0.0),
        Err(Refusal::Invalid(m)) if m.contains("in_progress")
    ));
    assert!(matches!(
        job.report(&report(json!({"done": 101})), 1, 0.0),
        Err(Refusal::Invalid(_))
    ));
    assert!(matches!(
        job.report(&report(json!({"status": "idle"})), 1, 0.0),
        Err(Refusal::Invalid(_))
    ));
}

#[test]
fn cancel_stops_reports_and_is_idempotent() {
    let job = start(None, 0);
    let cancelled = job.cancel(3).unwrap().unwrap();
    assert_eq!(
        (cancelled.status, cancelled.finished_ms),
        (Status::Cancelled, Some(3))
    );
    assert_eq!(cancelled.cancel(4), Ok(None));
    assert_eq!(
        cancelled.report(&report(json!({"done": 1})), 5, 0.0),
        Err(Refusal::Cancelled)
    );
    let done = job
        .report(&report(json!({"status": "completed"})), 1, 0.0)
        .unwrap()
        .unwrap();
    assert_eq!(done.cancel(2), Err(Refusal::Finished(Status::Completed)));
}

#[test]
fn the_retry_schedule_is_backoff_times_multiplier_with_bounded_jitter() {
    let p = policy();
    assert_eq!(p.delay_ms(1, 0.0), 1000);
    assert_eq!(p.delay_ms(2, 0.0), 2000);
    assert_eq!(p.delay_ms(3, 0.0), 4000);
    assert_eq!(
        p.delay_ms(2, 1.0),
        2400,
        "jitter adds at most JITTER of the delay"
    );
    assert_eq!(p.delay_ms(2, 0.5), 2200);
    let huge = RetryPolicy {
        max_attempts: 100,
        backoff_ms: 86_400_000,
        backoff_multiplier: 10.0,
    };
    assert_eq!(huge.delay_ms(99, 1.0), rules::MAX_RETRY_DELAY_MS);
}

#[test]
fn stale_jobs_fail_and_retry_until_attempts_run_out() {
    let job = start(Some(policy()), 0);
    assert_eq!(job.sweep(9_999, 0.0), None, "not stale yet");
    let stale = job.sweep(10_000, 0.0).expect("stale");
    assert_eq!(stale.status, Status::Failed);
    assert_eq!(stale.error.as_deref(), Some("stale: no progress for 10s"));
    assert_eq!(
        stale.next_retry_ms,
        Some(11_000),
        "backoffMs after attempt 1"
    );
    assert_eq!(stale.deadline_ms(), Some(11_000));
    assert_eq!(stale.sweep(10_999, 0.0), None, "retry not due yet");
    let second = stale.sweep(11_000, 0.0).expect("re-run");
    assert_eq!(
        (second.status, second.attempt, second.awaiting_worker),
        (Status::Running, 2, true)
    );
    assert_eq!(second.next_retry_ms, None);
    // Attempt 2 fails by report: the wait doubles; the checkpoint stays.
    let with_checkpoint = second
        .report(&report(json!({"checkpoint": {"page": 9}})), 12_000, 0.0)
        .unwrap()
        .unwrap();
    assert!(!with_checkpoint.awaiting_worker, "a worker reported");
    let failed = with_checkpoint
        .report(
            &report(json!({"status": "error", "error": "boom"})),
            13_000,
            0.0,
        )
        .unwrap()
        .unwrap();
    assert_eq!(failed.next_retry_ms, Some(15_000));
    assert_eq!(failed.error.as_deref(), Some("boom"));
    let third = failed.sweep(15_000, 0.0).unwrap();
    assert_eq!(
        (third.attempt, third.checkpoint.clone()),
        (3, Some(json!({"page": 9})))
    );
    let last = third.sweep(25_000, 0.0).unwrap();
    assert_eq!(
        (last.status, last.next_retry_ms),
        (Status::Failed, None),
        "no attempts left"
    );
    assert_eq!(last.sweep(1_000_000, 0.0), None);
}

#[test]
fn a_waiting_retry_can_be_cancelled() {
    let failed = start(Some(policy()), 0).sweep(10_000, 0.0).unwrap();
    let cancelled = failed.cancel(10_500).unwrap().unwrap();
    assert_eq!(
        (cancelled.status, cancelled.next_retry_ms),
        (Status::Cancelled, None)
    );
    assert_eq!(cancelled.sweep(20_000, 0.0), None);
}

#[test]
fn stats_count_rate_percentiles_and_last_success() {
    let mut jobs = Vec::new();
    for (i, (kind, status)) in [
        ("a", "completed"),
        ("a", "completed"),
        ("b", "failed"),
        ("b", "completed"),
        ("a", "running"),
    ]
    .iter()
    .enumerate()
    {
        let mut job = start(None, i as i64 * 1000);
        job.kind = kind.to_string();
        job.sync_id = format!("s{i}");
        if *status != "running" {
            let r = report(json!({"status": status}));
            job = job
                .report(&r, i as i64 * 1000 + 100 * (i as i64 + 1), 0.0)
                .unwrap()
                .unwrap();
        }
        jobs.push(job);
    }
    let s = stats("acc", &jobs);
    assert_eq!(s.total, 5);
    assert_eq!(s.by_status["completed"], 3);
    assert_eq!(s.by_status["idle"], 0);
    assert_eq!(s.by_kind["a"]["running"], 1);
    assert_eq!(s.success_rate, Some(0.75));
    // Completed durations 100, 200, 400 ms.
    assert_eq!(
        s.duration_ms,
        Durations {
            p50: Some(200),
            p95: Some(400)
        }
    );
    assert_eq!(s.last_success["a"].sync_id, "s1");
    assert_eq!(s.last_success["b"].sync_id, "s3");
    assert_eq!(s.running.len(), 1);
    assert_eq!(percentile(&[], 50.0), None);
    assert_eq!(percentile(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95.0), Some(10));
}

//! The dispatcher: a background task under the server's shutdown token that
//! reads the outbox (never the hub's fan-out), claims due deliveries, POSTs
//! them signed, and records each attempt with its next one.
//!
//! Order: the outbox hands out only the head of each endpoint and account,
//! so a later event waits while an earlier one is retried. Isolation: each
//! delivery runs in its own task, at most `per_endpoint` at a time per
//! endpoint, so one slow receiver holds only its own slots. Time comes from
//! an injected [`Clock`], so tests move through the backoff schedule without
//! sleeping.

use super::{
    Figures,
    breaker::{Breakers, Gate},
    sign,
};
pub use crate::config::{Clock, WebhookSettings as Settings, system_clock};
use crate::store::{Attempt, Delivery, Next, Outbox, WebhookRegistry};
use reqwest::{StatusCode, header};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The retry schedule after the first, second, … failed attempt; the last
/// step repeats until the retry window ends.
const SCHEDULE_SECS: [u64; 7] = [5, 60, 300, 1800, 7200, 21600, 43200];
/// Most deliveries claimed per poll.
const CLAIM_BATCH: usize = 256;

/// When to try again after `failed` failed attempts (1 = the first), or
/// give up: the schedule plus up to 10 % jitter, or the receiver's
/// `Retry-After`, as long as it lands within the window from `created_ms`.
pub fn next_attempt(
    failed: u32,
    created_ms: i64,
    now_ms: i64,
    retry_after: Option<Duration>,
    window: Duration,
) -> Next {
    let step = SCHEDULE_SECS[(failed.max(1) as usize - 1).min(SCHEDULE_SECS.len() - 1)];
    let base_ms = step * 1000;
    let delay_ms = match retry_after {
        Some(wait) => (wait.as_millis() as u64).max(1000),
        None => base_ms + rand::random_range(0..=base_ms / 10),
    };
    let at = now_ms.saturating_add(delay_ms as i64);
    if at > created_ms.saturating_add(window.as_millis() as i64) {
        Next::GiveUp
    } else {
        Next::RetryAt(at)
    }
}

/// `Retry-After` in seconds (the HTTP-date form is read as absent).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    if !matches!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        return None;
    }
    let secs: u64 = response
        .headers()
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.min(24 * 3600)))
}

pub struct Dispatcher {
    pub(super) outbox: Arc<dyn Outbox>,
    pub(super) registry: Arc<dyn WebhookRegistry>,
    pub(super) clock: Clock,
    pub(super) settings: Settings,
    pub(super) figures: Arc<Figures>,
    pub(super) client: reqwest::Client,
    /// Attempts in flight per endpoint.
    in_flight: Mutex<HashMap<String, usize>>,
    pub(super) breakers: Breakers,
    /// Rings when a slot frees up or a delivery is queued by hand.
    pub(super) wake: Notify,
}

impl Dispatcher {
    pub fn new(
        outbox: Arc<dyn Outbox>,
        registry: Arc<dyn WebhookRegistry>,
        settings: Settings,
        figures: Arc<Figures>,
    ) -> Self {
        let window_ms = settings.window.as_millis() as i64;
        let mut client = reqwest::Client::builder();
        if settings.deny_private {
            client = client.dns_resolver(Arc::new(crate::outbound::PublicOnly));
        }
        let client = client
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("statushub-webhooks/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.timeout)
            .build()
            .unwrap_or_default();
        Dispatcher {
            outbox,
            registry,
            clock: settings.clock.clone(),
            settings,
            figures,
            client,
            in_flight: Mutex::default(),
            breakers: Breakers::new(window_ms),
            wake: Notify::new(),
        }
    }

    /// Polls until `stop` fires; attempts in flight are abandoned then (their
    /// claims expire and they are tried again: at least once).
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.settings.poll) => {}
                () = self.wake.notified() => {}
            }
            if let Err(error) = self.tick(&stop).await {
                tracing::warn!(%error, "webhooks: could not read the outbox; retrying");
            }
        }
    }

    async fn tick(
        self: &Arc<Self>,
        stop: &CancellationToken,
    ) -> Result<(), crate::store::StoreError> {
        let now = (self.clock)();
        let lease = self.settings.lease.as_millis() as i64;
        for delivery in self.outbox.claim_due(now, lease, CLAIM_BATCH).await? {
            let gate = self.breakers.gate(&delivery.endpoint_id, now);
            if gate == Gate::Held || !self.reserve(&delivery.endpoint_id) {
                if gate == Gate::Probe {
                    self.breakers.abandon_probe(&delivery.endpoint_id);
                }
                if gate == Gate::Held {
                    self.figures
                        .held
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                self.outbox.release(&delivery).await?;
                continue;
            }
            let this = self.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = this.deliver(&delivery) => {}
                }
                this.unreserve(&delivery.endpoint_id);
                this.wake.notify_one();
            });
        }
        Ok(())
    }

    fn reserve(&self, endpoint: &str) -> bool {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let n = in_flight.entry(endpoint.to_owned()).or_default();
        if *n >= self.settings.per_endpoint {
            return false;
        }
        *n += 1;
        true
    }

    fn unreserve(&self, endpoint: &str) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = in_flight.get_mut(endpoint) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                in_flight.remove(endpoint);
            }
        }
    }

    /// One attempt, recorded in the outbox.
    async fn deliver(&self, d: &Delivery) {
        let endpoint = match self.registry.get_webhook(&d.endpoint_id).await {
            Ok(Some(endpoint)) if endpoint.enabled => endpoint,
            // Disabled: the claim runs out and the delivery waits.
            Ok(Some(_)) => return,
            Ok(None) => {
                let gone = Attempt {
                    status_code: None,
                    error: Some("the endpoint was deleted".into()),
                    latency_ms: 0,
                    next: Next::GiveUp,
                };
                let _ = self.outbox.settle(d, gone).await;
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "webhooks: could not read an endpoint");
                let _ = self.outbox.release(d).await;
                return;
            }
        };
        let now = (self.clock)();
        if self.settings.deny_private && crate::outbound::literal_refused(&endpoint.url) {
            let refused = Attempt {
                status_code: None,
                error: Some(crate::outbound::REFUSED.into()),
                latency_ms: 0,
                next: Next::GiveUp,
            };
            let _ = self.outbox.settle(d, refused).await;
            return;
        }
        let timestamp = now.div_euclid(1000);
        // The current secret, and rotated-out ones still in their overlap.
        let secrets = std::iter::once(endpoint.secret.as_str()).chain(
            endpoint
                .previous_secrets
                .iter()
                .filter(|p| p.until_ms > now)
                .map(|p| p.secret.as_str()),
        );
        let signature = sign::signature_header(secrets, &d.event_id, timestamp, d.body.as_bytes());
        let started = Instant::now();
        let sent = self
            .client
            .post(&endpoint.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &d.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(d.body.clone())
            .send()
            .await;
        let latency_ms = started.elapsed().as_millis() as u64;
        let failed = d.attempts + 1;
        let attempt = match sent {
            Ok(response) if response.status().is_success() => Attempt {
                status_code: Some(response.status().as_u16()),
                error: None,
                latency_ms,
                next: Next::Delivered,
            },
            Ok(response) => Attempt {
                status_code: Some(response.status().as_u16()),
                error: Some(format!("answered {}", response.status())),
                latency_ms,
                next: next_attempt(
                    failed,
                    d.created_ms,
                    (self.clock)(),
                    retry_after(&response),
                    self.settings.window,
                ),
            },
            Err(error) => Attempt {
                status_code: None,
                error: Some(describe(&error)),
                latency_ms,
                next: next_attempt(
                    failed,
                    d.created_ms,
                    (self.clock)(),
                    None,
                    self.settings.window,
                ),
            },
        };
        self.figures.attempted(&attempt);
        let ok = attempt.next == Next::Delivered;
        if self.breakers.record(&d.endpoint_id, ok, (self.clock)()) {
            self.disable(endpoint).await;
        }
        if attempt.next == Next::GiveUp {
            tracing::warn!(webhook = %d.endpoint_id, delivery = %d.id, "webhooks: gave up on a delivery after its retry window");
        }
        if let Err(error) = self.outbox.settle(d, attempt).await {
            tracing::warn!(%error, delivery = %d.id, "webhooks: could not record an attempt; it will be tried again");
        }
    }
}

impl Dispatcher {
    /// Disables an endpoint that failed for the whole retry window, saying
    /// so in its `note` and the log.
    async fn disable(&self, mut endpoint: crate::store::Endpoint) {
        tracing::warn!(webhook = %endpoint.id, url = %endpoint.url, "webhook_disabled: every delivery failed for 24 h; the endpoint is disabled until it is put again");
        endpoint.enabled = false;
        endpoint.note = Some("webhook_disabled".into());
        if let Err(error) = self.registry.put_webhook(endpoint).await {
            tracing::warn!(%error, "webhooks: could not disable an endpoint");
        }
    }
}

fn describe(error: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        if e.to_string().contains(crate::outbound::REFUSED) {
            return crate::outbound::REFUSED.into();
        }
        source = e.source();
    }
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "could not connect".into()
    } else {
        "request failed".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_grows_and_ends_with_the_window() {
        let window = Duration::from_secs(24 * 3600);
        let at = |failed, now| match next_attempt(failed, 0, now, None, window) {
            Next::RetryAt(at) => at - now,
            other => panic!("{other:?}"),
        };
        assert!((5_000..=5_500).contains(&at(1, 0)));
        assert!((60_000..=66_000).contains(&at(2, 0)));
        assert!((43_200_000..=47_520_000).contains(&at(9, 0)));
        assert_eq!(
            next_attempt(7, 0, 23 * 3600 * 1000, None, window),
            Next::GiveUp
        );
        assert_eq!(
            next_attempt(1, 0, 0, Some(Duration::from_secs(120)), window),
            Next::RetryAt(120_000)
        );
    }
}

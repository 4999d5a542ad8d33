//! Outbound webhooks: backend services subscribe endpoints to an account's
//! (or every account's) events and receive each committed event as a signed
//! POST (Standard Webhooks 1.0), at least once, in seq order per account,
//! retried with backoff for up to 24 h (docs/WEBHOOKS.md).
//!
//! - `spec`: the API's body, its validation and the views it answers with;
//! - `sign`: secrets and signatures;
//! - `dispatch`: the background task that drains the outbox.
//!
//! The store decides which endpoints an event is queued for, in the atomic
//! step that sequences it (`store::webhooks`); this module manages the
//! registry and delivers what the outbox holds.

pub mod breaker;
pub mod dispatch;
pub mod sign;
pub mod spec;

pub use dispatch::{Clock, Settings, system_clock};
pub use spec::{DeliveryList, DeliveryView, EndpointList, EndpointSpec, EndpointView};

use crate::{
    event,
    metrics::{Exposition, Families},
    outbound,
    store::{
        Attempt, Delivery, DeliveryStatus, Endpoint, NewDelivery, Next, Outbox, OutboxDepth,
        PutWebhook, StoreError, WebhookRegistry,
    },
};
use dispatch::Dispatcher;
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};
use tokio_util::sync::CancellationToken;

/// How long a rotated-out secret keeps signing beside the new one.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 3600 * 1000;

/// The name of the event `POST …/webhooks/{id}/test` sends.
pub const TEST_EVENT: &str = "webhook.test";

/// Why a webhook request was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Invalid(String),
    #[error("no such webhook")]
    NotFound,
    #[error("no such delivery")]
    NoDelivery,
    #[error("webhook id {0:?} is taken by an endpoint of another scope")]
    Taken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Attempt outcomes since start.
#[derive(Default)]
pub struct Figures {
    delivered: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    held: AtomicU64,
}

impl Figures {
    fn attempted(&self, attempt: &Attempt) {
        let counter = match attempt.next {
            Next::Delivered => &self.delivered,
            Next::RetryAt(_) => &self.retried,
            Next::GiveUp => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The webhook figures of `/metrics`, read at scrape time.
pub struct Report {
    delivered: u64,
    retried: u64,
    failed: u64,
    depth: OutboxDepth,
    now_ms: i64,
    circuits: breaker::States,
    held: u64,
}

impl Families for Report {
    fn families(&self, out: &mut Exposition) {
        out.family(
            "statushub_webhook_attempts_total",
            "counter",
            "Webhook delivery attempts, by outcome (delivered, retry = failed and rescheduled, failed = given up).",
            [
                ("delivered", self.delivered),
                ("retry", self.retried),
                ("failed", self.failed),
            ]
            .map(|(o, n)| (format!("outcome=\"{o}\""), n.to_string())),
        );
        out.family(
            "statushub_webhook_outbox_pending",
            "gauge",
            "Webhook deliveries not delivered yet (outbox depth).",
            [(String::new(), self.depth.pending.to_string())],
        );
        out.family(
            "statushub_webhook_circuits",
            "gauge",
            "Endpoints whose circuit breaker is open or half-open (probing) on this node; the others are closed.",
            [("open", self.circuits.open), ("half_open", self.circuits.half_open)]
                .map(|(s, n)| (format!("state=\"{s}\""), n.to_string())),
        );
        out.family(
            "statushub_webhook_held_total",
            "counter",
            "Due deliveries held back because their endpoint's circuit was open.",
            [(String::new(), self.held.to_string())],
        );
        let age = self
            .depth
            .oldest_pending_ms
            .map_or(0.0, |ms| (self.now_ms - ms).max(0) as f64 / 1000.0);
        out.family(
            "statushub_webhook_oldest_pending_seconds",
            "gauge",
            "Age of the oldest pending webhook delivery (0 when none).",
            [(String::new(), format!("{age:.3}"))],
        );
    }
}

/// The webhook service: the registry, the outbox and the dispatcher.
pub struct Webhooks {
    registry: Arc<dyn WebhookRegistry>,
    outbox: Arc<dyn Outbox>,
    dispatcher: Arc<Dispatcher>,
    figures: Arc<Figures>,
    clock: Clock,
}

impl Webhooks {
    pub fn new(
        registry: Arc<dyn WebhookRegistry>,
        outbox: Arc<dyn Outbox>,
        settings: Settings,
    ) -> Arc<Self> {
        let figures = Arc::new(Figures::default());
        let clock = settings.clock.clone();
        let dispatcher = Arc::new(Dispatcher::new(
            outbox.clone(),
            registry.clone(),
            settings,
            figures.clone(),
        ));
        Arc::new(Webhooks {
            registry,
            outbox,
            dispatcher,
            figures,
            clock,
        })
    }

    /// Starts the dispatcher under `stop` (the server's shutdown token).
    pub fn start(&self, stop: CancellationToken) {
        tokio::spawn(self.dispatcher.clone().run(stop));
    }

    /// Creates (with a new secret, shown in the answer) or updates an
    /// endpoint. Returns its view and whether it was created.
    pub async fn put(
        &self,
        account_id: Option<&str>,
        id: &str,
        spec: EndpointSpec,
    ) -> Result<(EndpointView, bool), WebhookError> {
        spec.validate().map_err(WebhookError::Invalid)?;
        if self.dispatcher.settings.deny_private && outbound::literal_refused(&spec.url) {
            return Err(WebhookError::Invalid(format!("url: {}", outbound::REFUSED)));
        }
        let now = event::rfc3339(event::now());
        let endpoint = Endpoint {
            id: id.to_owned(),
            account_id: account_id.map(str::to_owned),
            url: spec.url,
            events: spec.events,
            description: spec.description,
            enabled: spec.enabled.unwrap_or(true),
            secret: sign::new_secret(),
            created_at: now.clone(),
            updated_at: now,
            previous_secrets: vec![],
            note: None,
        };
        match self.registry.put_webhook(endpoint).await? {
            PutWebhook::Created(e) => Ok((EndpointView::of(e, true), true)),
            PutWebhook::Updated(e) => Ok((EndpointView::of(e, false), false)),
            PutWebhook::Taken => Err(WebhookError::Taken(id.to_owned())),
        }
    }

    /// The endpoint of this scope and id.
    async fn endpoint(&self, account_id: Option<&str>, id: &str) -> Result<Endpoint, WebhookError> {
        match self.registry.get_webhook(id).await? {
            Some(e) if e.account_id.as_deref() == account_id => Ok(e),
            _ => Err(WebhookError::NotFound),
        }
    }

    pub async fn get(
        &self,
        account_id: Option<&str>,
        id: &str,
    ) -> Result<EndpointView, WebhookError> {
        Ok(EndpointView::of(
            self.endpoint(account_id, id).await?,
            false,
        ))
    }

    /// One scope's endpoints, or every endpoint (`None`).
    pub async fn list(&self, scope: Option<Option<&str>>) -> Result<EndpointList, WebhookError> {
        let webhooks = self.registry.list_webhooks(scope).await?;
        Ok(EndpointList {
            webhooks: webhooks
                .into_iter()
                .map(|e| EndpointView::of(e, false))
                .collect(),
        })
    }

    pub async fn delete(&self, account_id: Option<&str>, id: &str) -> Result<(), WebhookError> {
        if self.registry.delete_webhook(account_id, id).await? {
            Ok(())
        } else {
            Err(WebhookError::NotFound)
        }
    }

    /// Gives the endpoint a new secret (shown in the answer, once); the old
    /// one keeps signing beside it for [`ROTATION_OVERLAP_MS`].
    pub async fn rotate(
        &self,
        account_id: Option<&str>,
        id: &str,
    ) -> Result<EndpointView, WebhookError> {
        let until = (self.clock)() + ROTATION_OVERLAP_MS;
        let endpoint = self
            .registry
            .rotate_webhook_secret(account_id, id, sign::new_secret(), until)
            .await?
            .ok_or(WebhookError::NotFound)?;
        Ok(EndpointView::of(endpoint, true))
    }

    pub async fn deliveries(
        &self,
        account_id: Option<&str>,
        id: &str,
        status: Option<DeliveryStatus>,
        limit: usize,
    ) -> Result<DeliveryList, WebhookError> {
        self.endpoint(account_id, id).await?;
        let deliveries = self.outbox.deliveries(id, status, limit).await?;
        Ok(DeliveryList {
            endpoint_id: id.to_owned(),
            deliveries: deliveries.into_iter().map(DeliveryView::of).collect(),
        })
    }

    /// Makes a delivery pending and due now (a failed one gets a new
    /// retry window's worth of attempts only through this).
    pub async fn retry(
        &self,
        account_id: Option<&str>,
        id: &str,
        delivery_id: &str,
    ) -> Result<DeliveryView, WebhookError> {
        self.endpoint(account_id, id).await?;
        let delivery = self
            .outbox
            .retry_delivery(id, delivery_id, (self.clock)())
            .await?
            .ok_or(WebhookError::NoDelivery)?;
        self.dispatcher.wake.notify_one();
        Ok(DeliveryView::of(delivery))
    }

    /// Queues a `webhook.test` event to this endpoint.
    pub async fn send_test(
        &self,
        account_id: Option<&str>,
        id: &str,
    ) -> Result<DeliveryView, WebhookError> {
        let endpoint = self.endpoint(account_id, id).await?;
        let event_id = event::new_id();
        let body = serde_json::json!({
            "event": TEST_EVENT,
            "accountId": endpoint.account_id,
            "seq": 0,
            "id": event_id,
            "publishedAt": event::rfc3339(event::now()),
            "data": {"webhookId": endpoint.id},
        });
        let delivery: Delivery = self
            .outbox
            .enqueue(NewDelivery {
                endpoint_id: endpoint.id,
                account_id: endpoint.account_id.unwrap_or_default(),
                event_id,
                event: TEST_EVENT.into(),
                body: body.to_string(),
            })
            .await?;
        self.dispatcher.wake.notify_one();
        Ok(DeliveryView::of(delivery))
    }

    /// The figures `/metrics` shows.
    pub async fn report(&self) -> Report {
        Report {
            delivered: self.figures.delivered.load(Ordering::Relaxed),
            retried: self.figures.retried.load(Ordering::Relaxed),
            failed: self.figures.failed.load(Ordering::Relaxed),
            depth: self.outbox.outbox_depth().await.unwrap_or_default(),
            now_ms: (self.clock)(),
            circuits: self.dispatcher.breakers.states(),
            held: self.figures.held.load(Ordering::Relaxed),
        }
    }
}

//! The append path: one task that pipelines whatever appends are waiting.
//!
//! Appends are queued to this task; it takes every append waiting (up to
//! [`MAX_BATCH`]), sends one `EVALSHA append` per draft in a single pipeline
//! (one round trip for the batch, as SQLite's group commit is one fsync), and
//! reads the replies in order. Replies come back in the order the scripts ran;
//! the new events are handed in reply order to the fan-out `Sequencer`
//! (`subscriber`), which feeds each account in seq order, and an append is
//! answered only after its event is on this node's feed.
//!
//! `Body::Entry` runs a Rust closure on the entry's previous value, which a
//! Lua script cannot call. It is applied by optimistic check-and-set: the
//! writer derives the event from the value it *believes* the entry has and
//! the script applies it only if the entry still has exactly that value
//! (compared by content: `Derive` is pure, so equal inputs give equal
//! outputs). Otherwise the script writes nothing and returns the current
//! value, and the draft is derived again in the next batch. Beliefs come from
//! a bounded cache of entries this writer wrote or was told about; with one
//! writer per account it is always right and an entry append costs one round
//! trip; an unknown entry costs one extra (a probe that the script answers
//! with the current value), and a value changed by another node costs a retry.
//!
//! On a Redis Cluster a pipeline may only hold keys of one slot, so the batch
//! is split into one pipeline per account (every key of an account shares
//! its hash tag), sent concurrently; each account's drafts keep their order.

use super::{
    codec, conn,
    keys::{Keys, entry_field},
    scripts::SCRIPTS,
    subscriber::{Sequencer, Source},
};
use crate::{
    config::Retention,
    event::Event,
    store::{
        Appended, Body, Draft, Endpoint, EntryChange, Receipt, StoreError, fill_services_notified,
        subscribed,
    },
};
use redis::Value;
use serde_json::value::RawValue;
use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};
use tokio::sync::{mpsc, oneshot};

/// Appends sent in one pipeline at most.
pub const MAX_BATCH: usize = 512;
/// Check-and-set attempts before an entry append gives up (contention).
const MAX_ATTEMPTS: u32 = 16;
/// Entry values remembered; the cache is dropped whole when it grows past.
const CACHE_LIMIT: usize = 100_000;

pub struct Job {
    pub draft: Draft,
    pub reply: oneshot::Sender<Result<Appended, StoreError>>,
    pub attempts: u32,
}

pub struct Writer {
    pub conn: conn::Conn,
    pub keys: Keys,
    pub retention: Retention,
    /// Feeds committed events (deduplicated against the subscriber's copy).
    pub sequencer: Sequencer,
    /// Believed entry values by `account \0 field`; `None` = absent.
    pub entries: HashMap<String, Option<String>>,
    /// Pipelines sent so far (round trips of the append path).
    pub round_trips: Arc<AtomicU64>,
}

/// A draft made into script arguments.
struct Prepared {
    job: Job,
    /// The entry's cache key, for `Body::Entry`.
    entry: Option<String>,
    /// The entry's next value as sent (`None` removes it).
    next: Option<String>,
    /// The event's data as sent (for the feed).
    data: Box<RawValue>,
    /// Whether webhook deliveries were queued with it.
    queued: bool,
}

/// What one script reply says.
enum Reply {
    New(u64, String),
    Replayed(Receipt),
    Conflict,
    Stale(Option<String>),
}

impl Writer {
    pub async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut retry = VecDeque::new();
        loop {
            let mut batch: Vec<Job> = retry.drain(..).collect();
            if batch.is_empty() {
                match jobs.recv().await {
                    Some(job) => batch.push(job),
                    None => return,
                }
            }
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            // A caller that gave up (timed out) must not get its draft
            // stored behind its back.
            batch.retain(|job| !job.reply.is_closed());
            if !batch.is_empty() {
                self.commit(batch, &mut retry).await;
            }
        }
    }

    async fn commit(&mut self, batch: Vec<Job>, retry: &mut VecDeque<Job>) {
        if self.entries.len() > CACHE_LIMIT {
            self.entries.clear();
        }
        let endpoints = match self.webhooks().await {
            Ok(endpoints) => endpoints,
            Err(e) => {
                for job in batch {
                    let _ = job.reply.send(Err(StoreError::Unavailable(e.to_string())));
                }
                return;
            }
        };
        // One pipeline for the batch; on a cluster one per account.
        let mut groups: Vec<(redis::Pipeline, Vec<Prepared>)> = Vec::new();
        let mut group_of: HashMap<String, usize> = HashMap::new();
        let per_account = self.conn.is_cluster();
        for job in batch {
            let group_key = if per_account {
                job.draft.account_id.clone()
            } else {
                String::new()
            };
            let index = *group_of.entry(group_key).or_insert_with(|| {
                let mut pipe = redis::pipe();
                pipe.ignore_errors();
                groups.push((pipe, Vec::new()));
                groups.len() - 1
            });
            let (pipe, prepared) = &mut groups[index];
            prepared.extend(self.prepare(job, &endpoints, pipe));
        }
        groups.retain(|(_, prepared)| !prepared.is_empty());
        if groups.is_empty() {
            return;
        }
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let accounts: Vec<String> = groups
            .iter()
            .flat_map(|(_, prepared)| prepared.iter().map(|p| p.job.draft.account_id.clone()))
            .collect();
        let accounts = || accounts.iter().map(String::as_str);
        self.sequencer.expect(accounts()).await;
        let replies = futures::future::join_all(groups.iter().map(|(pipe, _)| {
            let mut conn = self.conn.clone();
            async move { conn::bounded(pipe.query_async::<Vec<Value>>(&mut conn)).await }
        }))
        .await;
        let mut reload = false;
        for ((_, prepared), replies) in groups.into_iter().zip(replies) {
            reload |= self.answer(prepared, replies, retry).await;
        }
        if reload && let Err(e) = conn::bounded(SCRIPTS.append.load_async(&mut self.conn)).await {
            tracing::warn!(error = %e, "could not load the append script");
        }
        self.sequencer.settled(accounts()).await;
    }

    /// Answers each draft of one pipeline from its replies; true when Redis
    /// had forgotten the script (the drafts are queued again).
    async fn answer(
        &mut self,
        prepared: Vec<Prepared>,
        replies: Result<Vec<Value>, StoreError>,
        retry: &mut VecDeque<Job>,
    ) -> bool {
        let replies = match replies {
            Ok(replies) if replies.len() == prepared.len() => replies,
            Ok(_) => {
                self.fail(prepared, conn::malformed("the append pipeline"));
                return false;
            }
            Err(e) => {
                tracing::warn!(error = %e, batch = prepared.len(), "append batch failed");
                self.fail(prepared, e);
                return false;
            }
        };
        let mut reload = false;
        for (p, value) in prepared.into_iter().zip(replies) {
            match value {
                Value::ServerError(e) if e.code() == "NOSCRIPT" => {
                    // Redis restarted and forgot the script; nothing ran.
                    reload = true;
                    self.forget(&p);
                    retry.push_back(p.job);
                }
                Value::ServerError(e) => {
                    self.forget(&p);
                    let _ = p
                        .job
                        .reply
                        .send(Err(StoreError::Unavailable(format!("redis: {e:?}"))));
                }
                value => self.settle(p, &value, retry).await,
            }
        }
        reload
    }

    /// Builds the script call for one draft, or answers it with why not.
    fn prepare(
        &mut self,
        job: Job,
        endpoints: &[Endpoint],
        pipe: &mut redis::Pipeline,
    ) -> Option<Prepared> {
        let draft = &job.draft;
        // The webhook endpoints this event is queued for: its data says so
        // and the script queues exactly these, in the step that sequences it.
        let notified = subscribed(endpoints, &draft.account_id, &draft.event);
        let keys = self.keys.account(&draft.account_id);
        let (fingerprint, idem_key) = match &draft.idempotency {
            Some(idem) => (idem.fingerprint.as_str(), keys.idempotency(&idem.key)),
            None => ("", keys.idempotency("")),
        };
        let mut entry_key = None;
        let (mode, field, believed, next, data) = match &draft.body {
            Body::Fixed(data) => ("fixed", String::new(), None, None, data.clone()),
            Body::Entry {
                section,
                key,
                derive,
            } => {
                let field = entry_field(section.as_str(), key);
                let cache_key = format!("{}\0{field}", draft.account_id);
                let believed = self.entries.get(&cache_key).cloned();
                let (next, data) = match &believed {
                    Some(previous) => {
                        let parsed = previous
                            .as_deref()
                            .and_then(|text| serde_json::from_str(text).ok());
                        let EntryChange {
                            mut data,
                            mut entry,
                        } = derive(parsed.as_ref());
                        fill_services_notified(&draft.event, &mut data, &notified);
                        if let Some(entry) = &mut entry {
                            fill_services_notified(&draft.event, entry, &notified);
                        }
                        let data = match serde_json::value::to_raw_value(&data) {
                            Ok(data) => data,
                            Err(e) => {
                                let _ = job.reply.send(Err(StoreError::Unavailable(e.to_string())));
                                return None;
                            }
                        };
                        let next = entry.map(|e| e.to_string());
                        // Later drafts of this batch build on this one.
                        self.entries.insert(cache_key.clone(), next.clone());
                        (next, data)
                    }
                    // A probe: the script answers with the current value.
                    None => (None, RawValue::NULL.to_owned()),
                };
                entry_key = Some(cache_key);
                ("entry", field, believed, next, data)
            }
        };
        let body = codec::encode_body(&draft.event, &draft.id, &draft.published_at, &data);
        let (envelope_head, envelope_tail) = envelope_around_seq(draft, &data);
        let (believed_flag, believed_value) = match &believed {
            None => ("", ""),
            Some(None) => ("0", ""),
            Some(Some(value)) => ("1", value.as_str()),
        };
        let (next_flag, next_value) = match &next {
            Some(value) => ("1", value.as_str()),
            None => ("0", ""),
        };
        let call = pipe
            .cmd("EVALSHA")
            .arg(SCRIPTS.append.get_hash())
            .arg(6)
            .arg(&keys.meta)
            .arg(&keys.events)
            .arg(&keys.entries)
            .arg(&idem_key)
            .arg(&keys.outbox)
            .arg(&keys.outbox_pending)
            .arg(conn::new_epoch())
            .arg(self.retention.max_events.max(1))
            .arg(mode)
            .arg(&body)
            .arg(&field)
            .arg(believed_flag)
            .arg(believed_value)
            .arg(next_flag)
            .arg(next_value)
            .arg(fingerprint)
            .arg(self.retention.idempotency_ttl.as_secs().max(1))
            .arg(&draft.id)
            .arg(&draft.published_at)
            .arg(&keys.channel)
            .arg(envelope_head)
            .arg(envelope_tail)
            .arg(&draft.account_id)
            .arg(&draft.event);
        for endpoint in &notified {
            call.arg(crate::store::webhooks::new_delivery_id())
                .arg(endpoint);
        }
        Some(Prepared {
            job,
            entry: entry_key,
            next,
            data,
            queued: !notified.is_empty(),
        })
    }

    /// Answers one draft from its script reply.
    async fn settle(&mut self, p: Prepared, value: &Value, retry: &mut VecDeque<Job>) {
        let Some(reply) = parse(&p.job.draft, value) else {
            self.forget(&p);
            let _ = p.job.reply.send(Err(conn::malformed("append")));
            return;
        };
        match reply {
            Reply::New(seq, epoch) => {
                if let Some(key) = &p.entry {
                    self.entries.insert(key.clone(), p.next.clone());
                }
                if p.queued {
                    self.note_outbox(&p.job.draft.account_id).await;
                }
                let draft = p.job.draft;
                let event = Event {
                    event: draft.event,
                    account_id: draft.account_id,
                    seq,
                    id: draft.id,
                    published_at: draft.published_at,
                    data: p.data,
                };
                let receipt = Receipt {
                    id: event.id.clone(),
                    account_id: event.account_id.clone(),
                    seq,
                    published_at: event.published_at.clone(),
                };
                // On this node's feed before the append is answered.
                self.sequencer.offer(Source::Writer, &epoch, event).await;
                let _ = p.job.reply.send(Ok(Appended::New(receipt)));
            }
            Reply::Replayed(receipt) => {
                self.forget(&p);
                let _ = p.job.reply.send(Ok(Appended::Replayed(receipt)));
            }
            Reply::Conflict => {
                self.forget(&p);
                let _ = p.job.reply.send(Err(StoreError::IdempotencyConflict));
            }
            Reply::Stale(current) => {
                if let Some(key) = &p.entry {
                    self.entries.insert(key.clone(), current);
                }
                let mut job = p.job;
                job.attempts += 1;
                if job.attempts > MAX_ATTEMPTS {
                    let _ = job.reply.send(Err(StoreError::Unavailable(
                        "the snapshot entry kept changing under this append; retry".into(),
                    )));
                } else {
                    retry.push_back(job);
                }
            }
        }
    }

    /// Drops a belief this batch may have made wrong.
    fn forget(&mut self, p: &Prepared) {
        if let Some(key) = &p.entry {
            self.entries.remove(key);
        }
    }

    fn fail(&mut self, prepared: Vec<Prepared>, e: StoreError) {
        // Whether the scripts ran is unknown: believe nothing.
        self.entries.clear();
        for p in prepared {
            let _ = p
                .job
                .reply
                .send(Err(StoreError::Unavailable(e.to_string())));
        }
    }
}

/// The event's envelope (as the SSE `data:` line) cut around its seq, which
/// only the script knows: the webhook body is `head + seq + tail`.
fn envelope_around_seq(draft: &Draft, data: &RawValue) -> (String, String) {
    const MARK: &str = "\"seq\":18446744073709551615";
    let event = Event {
        event: draft.event.clone(),
        account_id: draft.account_id.clone(),
        seq: u64::MAX,
        id: draft.id.clone(),
        published_at: draft.published_at.clone(),
        data: data.to_owned(),
    };
    let text = serde_json::to_string(&event).unwrap_or_default();
    // The mark comes before any data (name and account hold no quotes).
    match text.find(MARK) {
        Some(at) => (
            format!("{}\"seq\":", &text[..at]),
            text[at + MARK.len()..].to_owned(),
        ),
        None => (String::new(), String::new()),
    }
}

fn parse(draft: &Draft, value: &Value) -> Option<Reply> {
    let items = codec::array(value)?;
    Some(match codec::text(items.first()?)?.as_str() {
        "new" => Reply::New(codec::int(items.get(1)?)?, codec::text(items.get(2)?)?),
        "replay" => Reply::Replayed(Receipt {
            id: codec::text(items.get(2)?)?,
            account_id: draft.account_id.clone(),
            seq: codec::int(items.get(1)?)?,
            published_at: codec::text(items.get(3)?)?,
        }),
        "conflict" => Reply::Conflict,
        "stale" => match codec::text(items.get(1)?)?.as_str() {
            "1" => Reply::Stale(Some(codec::text(items.get(2)?)?)),
            _ => Reply::Stale(None),
        },
        _ => return None,
    })
}

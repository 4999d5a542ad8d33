//! The one subscribe path: the rules that decide whether a connection may
//! follow an account, shared by every transport so they can never disagree.
//!
//! A transport turns what its client sent into a [`SubscribeRequest`]
//! ([`SubscribeRequest::parse`] checks the account id and the `since` and
//! `epoch` fields), and asks a connection's [`Subscriptions`] to add it: the token
//! must be the account's own or an admin's, the account not already
//! followed on this connection, and the connection under
//! `--max-subscriptions`. A refusal is a [`SubscribeError`] whose
//! [`code`](SubscribeError::code) is the contract's stable word; the
//! transport only encodes it (an `error` frame, an ack, a `connect_error`,
//! an HTTP error).
//!
//! A repeated subscribe to an account the connection already follows is
//! refused with `bad_request` ("already subscribed"), on every transport, as
//! Centrifugo refuses it ("already subscribed"): the first subscription keeps
//! its place in the stream, and a client that wants a different resume point
//! reconnects.
//!
//! The `epoch` is only carried here; the hub compares it with the store's
//! when it replays (`Hub::replay`), the one place the epoch rule lives.
//!
//! A `filter` ([`crate::filter`]) is checked here too, once, whatever the
//! transport: a malformed one is `bad_request` with a message naming the
//! field. The hub applies it per subscription.

use crate::{
    auth::Claims,
    event,
    filter::Filter,
    hub::{Hub, Interest, Resume, Sink, Subscription, Who},
};
use serde_json::value::RawValue;
use std::sync::Arc;

/// What a client asked to follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeRequest {
    pub account_id: String,
    /// The last seq the client saw; `None` asks for a snapshot.
    pub since: Option<u64>,
    /// The epoch of that seq (from the client's last snapshot); `None` trusts `since`.
    pub epoch: Option<String>,
    /// Only the events that pass; `None` takes all.
    pub filter: Option<Arc<Filter>>,
}

/// The longest `epoch` a client may send; the hub's own are 16 hex digits.
pub const MAX_EPOCH_LEN: usize = 64;

/// Why a subscription was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    #[error("not authenticated: send a token first")]
    NotAuthenticated,
    #[error("invalid accountId {0:?}")]
    BadAccount(String),
    #[error("since must be a non-negative integer")]
    BadSince,
    #[error("epoch must be a string of 1 to {MAX_EPOCH_LEN} letters, digits, '-' or '_'")]
    BadEpoch,
    /// The message names the field (`filter[0].kinds[1] …`).
    #[error("{0}")]
    BadFilter(String),
    #[error("this token may not subscribe to account {0}")]
    Forbidden(String),
    #[error("already subscribed to account {0}")]
    AlreadySubscribed(String),
    #[error("at most {0} subscriptions per connection")]
    TooMany(usize),
}

impl SubscribeError {
    /// The stable word clients see.
    pub fn code(&self) -> &'static str {
        match self {
            SubscribeError::NotAuthenticated => "unauthorized",
            SubscribeError::BadAccount(_)
            | SubscribeError::BadSince
            | SubscribeError::BadEpoch
            | SubscribeError::BadFilter(_)
            | SubscribeError::AlreadySubscribed(_) => "bad_request",
            SubscribeError::Forbidden(_) => "forbidden",
            SubscribeError::TooMany(_) => "too_many_subscriptions",
        }
    }
}

impl SubscribeRequest {
    /// A request from a client's fields: the account id must be valid and
    /// `since`, when given, a JSON number or numeric string (null means none),
    /// and `epoch` a short JSON string ([`parse_epoch`]); no filter.
    pub fn parse(
        account_id: String,
        since: Option<&RawValue>,
        epoch: Option<&RawValue>,
    ) -> Result<Self, SubscribeError> {
        if !event::valid_account_id(&account_id) {
            return Err(SubscribeError::BadAccount(account_id));
        }
        Ok(SubscribeRequest {
            account_id,
            since: parse_since(since)?,
            epoch: parse_epoch(epoch)?,
            filter: None,
        })
    }

    /// The same request, following only what `filter` ([`parse_filter`]) lets through.
    pub fn with_filter(mut self, filter: Option<&RawValue>) -> Result<Self, SubscribeError> {
        self.filter = parse_filter(filter)?;
        Ok(self)
    }

    /// Where the hub resumes this subscription.
    pub fn resume(&self) -> Resume {
        Resume {
            since: self.since,
            epoch: self.epoch.clone(),
        }
    }
}

/// `filter` as JSON ([`Filter::parse`]); `null` or absent means none.
pub fn parse_filter(raw: Option<&RawValue>) -> Result<Option<Arc<Filter>>, SubscribeError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.get().trim() == "null" {
        return Ok(None);
    }
    parse_filter_text(raw.get()).map(Some)
}

/// `filter` as JSON text (SSE's URL-decoded `?filter=`).
pub fn parse_filter_text(text: &str) -> Result<Arc<Filter>, SubscribeError> {
    Filter::parse_text(text)
        .map(Arc::new)
        .map_err(SubscribeError::BadFilter)
}

/// Where a connection's own subscription starts and what it follows.
pub type Start = (Resume, Option<Arc<Filter>>);

/// [`parse_resume`] and [`parse_filter`] together (a Socket.IO auth payload, a `/ws` auth frame).
pub fn parse_start(
    since: Option<&RawValue>,
    epoch: Option<&RawValue>,
    filter: Option<&RawValue>,
) -> Result<Start, SubscribeError> {
    Ok((parse_resume(since, epoch)?, parse_filter(filter)?))
}

/// [`parse_resume_text`] and [`parse_filter_text`] together (a `/ws` URL's query).
pub fn parse_start_text(
    since: Option<&str>,
    epoch: Option<&str>,
    filter: Option<&str>,
) -> Result<Start, SubscribeError> {
    let filter = filter.map(parse_filter_text).transpose()?;
    Ok((parse_resume_text(since, epoch)?, filter))
}

/// A resume point from JSON fields (a Socket.IO auth payload, a `/ws` auth frame).
pub fn parse_resume(
    since: Option<&RawValue>,
    epoch: Option<&RawValue>,
) -> Result<Resume, SubscribeError> {
    Ok(Resume {
        since: parse_since(since)?,
        epoch: parse_epoch(epoch)?,
    })
}

/// A resume point from query parameters (`?since=N&epoch=E`).
pub fn parse_resume_text(
    since: Option<&str>,
    epoch: Option<&str>,
) -> Result<Resume, SubscribeError> {
    Ok(Resume {
        since: since.map(parse_since_text).transpose()?,
        epoch: epoch.map(parse_epoch_text).transpose()?,
    })
}

/// `epoch` as JSON: a string ([`parse_epoch_text`]); `null` or absent means none.
pub fn parse_epoch(raw: Option<&RawValue>) -> Result<Option<String>, SubscribeError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.get().trim() == "null" {
        return Ok(None);
    }
    let text: String = serde_json::from_str(raw.get()).map_err(|_| SubscribeError::BadEpoch)?;
    parse_epoch_text(&text).map(Some)
}

/// `epoch` as text (a query parameter): 1 to [`MAX_EPOCH_LEN`] ASCII
/// letters, digits, `-` or `_`. Any such string is accepted; one the store
/// never issued simply differs from its epoch.
pub fn parse_epoch_text(text: &str) -> Result<String, SubscribeError> {
    let sane = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if text.is_empty() || text.len() > MAX_EPOCH_LEN || !text.bytes().all(sane) {
        return Err(SubscribeError::BadEpoch);
    }
    Ok(text.to_owned())
}

/// `since` as JSON: a non-negative integer, as a number or a numeric string;
/// `null` or absent means none. Kept raw until here so that a number JSON
/// cannot hold as a float (`1e400`) is refused as a bad `since`, not as a
/// malformed message. Floats, negatives and numbers past `u64` are refused.
pub fn parse_since(raw: Option<&RawValue>) -> Result<Option<u64>, SubscribeError> {
    let Some(raw) = raw else { return Ok(None) };
    let text = raw.get().trim();
    if text == "null" {
        return Ok(None);
    }
    if text.starts_with('"') {
        let s: String = serde_json::from_str(text).map_err(|_| SubscribeError::BadSince)?;
        return parse_since_text(&s).map(Some);
    }
    parse_since_text(text).map(Some)
}

/// `since` as text (a query parameter, a numeric string): decimal digits only.
pub fn parse_since_text(text: &str) -> Result<u64, SubscribeError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SubscribeError::BadSince);
    }
    text.parse().map_err(|_| SubscribeError::BadSince)
}

/// A connection's subscriptions, so it is checked against what it already
/// follows and can release them all when it ends.
#[derive(Default)]
pub struct Subscriptions {
    held: Vec<Arc<Subscription>>,
    /// The connection's id and start, for presence (see [`Subscriptions::of`]).
    connection: Option<(String, String)>,
}

impl Subscriptions {
    /// The subscriptions of a connection that presence lists as
    /// `connection_id`, connected since `since` (RFC 3339, its permit's).
    pub fn of(connection_id: String, since: String) -> Self {
        Subscriptions {
            held: Vec::new(),
            connection: Some((connection_id, since)),
        }
    }

    fn interest(&self, claims: &Claims, filter: Option<Arc<Filter>>) -> Interest {
        let who = self.connection.as_ref().map(|(id, since)| Who {
            connection_id: id.clone(),
            user: Some(claims.sub.clone()),
            connected_since: since.clone(),
        });
        Interest { filter, who }
    }

    /// The connection's own account, joined on connect: a verified token may
    /// always follow its own account.
    pub fn join_own(
        &mut self,
        hub: &Arc<Hub>,
        claims: &Claims,
        resume: Resume,
        filter: Option<Arc<Filter>>,
        sink: Arc<dyn Sink>,
    ) {
        let interest = self.interest(claims, filter);
        self.held
            .push(hub.subscribe_with(&claims.account_id, resume, interest, sink));
    }

    /// Whether `claims` may add `req` now; [`add`](Self::add) checks the same.
    pub fn check(
        &self,
        claims: Option<&Claims>,
        req: &SubscribeRequest,
        max: usize,
    ) -> Result<(), SubscribeError> {
        let claims = claims.ok_or(SubscribeError::NotAuthenticated)?;
        if !claims.may_read(&req.account_id) {
            return Err(SubscribeError::Forbidden(req.account_id.clone()));
        }
        if self.held.iter().any(|s| s.account_id == req.account_id) {
            return Err(SubscribeError::AlreadySubscribed(req.account_id.clone()));
        }
        if self.held.len() >= max {
            return Err(SubscribeError::TooMany(max));
        }
        Ok(())
    }

    /// Subscribes the connection to another account (an admin's), after the checks.
    pub fn add(
        &mut self,
        hub: &Arc<Hub>,
        claims: Option<&Claims>,
        req: SubscribeRequest,
        max: usize,
        sink: Arc<dyn Sink>,
    ) -> Result<(), SubscribeError> {
        self.check(claims, &req, max)?;
        let interest = match claims {
            Some(claims) => self.interest(claims, req.filter.clone()),
            None => Interest::default(),
        };
        self.held
            .push(hub.subscribe_with(&req.account_id, req.resume(), interest, sink));
        Ok(())
    }

    /// Forgets every subscription; nothing is offered to the connection after this.
    pub fn release(&mut self, hub: &Hub) {
        for sub in self.held.drain(..) {
            hub.unsubscribe(&sub);
        }
    }

    /// Drops the handles without telling a hub (when the hub is already gone).
    pub fn clear(&mut self) {
        self.held.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    #[test]
    fn since_is_a_number_or_numeric_string() {
        assert_eq!(parse_since(None), Ok(None));
        assert_eq!(parse_since(Some(&raw("null"))), Ok(None));
        assert_eq!(parse_since(Some(&raw("0"))), Ok(Some(0)));
        assert_eq!(parse_since(Some(&raw("42"))), Ok(Some(42)));
        assert_eq!(parse_since(Some(&raw("\"42\""))), Ok(Some(42)));
        assert_eq!(
            parse_since(Some(&raw("18446744073709551615"))),
            Ok(Some(u64::MAX))
        );
        for bad in [
            "1e400",
            "-1e400",
            "-1",
            "1.5",
            "1.0",
            "1e2",
            "18446744073709551616",
            "\"-1\"",
            "\"1e400\"",
            "\"\"",
            "\" 1\"",
            "true",
            "[]",
            "{}",
        ] {
            assert_eq!(
                parse_since(Some(&raw(bad))),
                Err(SubscribeError::BadSince),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_bad_account_id_is_a_bad_request() {
        let err = SubscribeRequest::parse("../x".into(), None, None).unwrap_err();
        assert_eq!(err.code(), "bad_request");
    }

    #[test]
    fn epoch_is_a_short_plain_string() {
        assert_eq!(parse_epoch(None), Ok(None));
        assert_eq!(parse_epoch(Some(&raw("null"))), Ok(None));
        assert_eq!(
            parse_epoch(Some(&raw("\"9f3a_B-0\""))),
            Ok(Some("9f3a_B-0".into()))
        );
        let longest = format!("\"{}\"", "a".repeat(MAX_EPOCH_LEN));
        assert!(parse_epoch(Some(&raw(&longest))).is_ok());
        let too_long = format!("\"{}\"", "a".repeat(MAX_EPOCH_LEN + 1));
        for bad in [
            "\"\"", "\"a b\"", "\"é\"", "\"a/b\"", "12", "true", "[]", "{}", &too_long,
        ] {
            assert_eq!(
                parse_epoch(Some(&raw(bad))),
                Err(SubscribeError::BadEpoch),
                "{bad}"
            );
        }
        assert_eq!(SubscribeError::BadEpoch.code(), "bad_request");
        assert!(
            SubscribeError::BadEpoch
                .to_string()
                .starts_with("epoch must be")
        );
    }

    #[test]
    fn codes_are_the_contract_words() {
        assert_eq!(SubscribeError::NotAuthenticated.code(), "unauthorized");
        assert_eq!(SubscribeError::Forbidden("a".into()).code(), "forbidden");
        assert_eq!(
            SubscribeError::AlreadySubscribed("a".into()).code(),
            "bad_request"
        );
        assert_eq!(SubscribeError::TooMany(2).code(), "too_many_subscriptions");
        assert_eq!(
            SubscribeError::BadSince.to_string(),
            "since must be a non-negative integer"
        );
    }
}

//! Subscription filters: which of an account's events (and snapshot
//! entries) a subscription wants. One parser of the client's JSON and one
//! pure rule ([`Filter::passes`]), so every transport, the live fan-out, a
//! resume and the snapshot all select the same way.
//!
//! A filter is a list of alternatives; an event passes when it matches any
//! of them, and it matches an alternative when every field that alternative
//! gives matches (docs/FILTERS.md says what each field is compared with).
//! The fields are read out of an event's data once ([`Facts::of_event`],
//! cached on the hub's `Published`), so a filtered subscription costs one
//! small comparison per event and an unfiltered one nothing.

use crate::{
    event::{self, Event, Section},
    store::Snapshot,
};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Most alternatives in one filter.
pub const MAX_ALTERNATIVES: usize = 16;
/// Most values in one field of an alternative.
pub const MAX_VALUES: usize = 256;
/// Longest value (an id, a provider, a kind).
pub const MAX_VALUE_LEN: usize = 256;

/// The `kinds` a `health_changed` event may carry.
pub const KINDS: [&str; 4] = ["status_change", "health_change", "error_state", "recovery"];
/// The `healthLevels` a monitor may be at.
pub const HEALTH_LEVELS: [&str; 3] = ["unknown", "healthy", "unhealthy"];

/// A checked filter: at least one alternative.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    alternatives: Vec<Alternative>,
}

/// One alternative; `None` fields are not checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Alternative {
    events: Option<Vec<String>>,
    monitor_ids: Option<Vec<String>>,
    kinds: Option<Vec<String>>,
    health_levels: Option<Vec<String>>,
    phone_ids: Option<Vec<String>>,
    providers: Option<Vec<String>>,
    sync_kinds: Option<Vec<String>>,
}

/// How a client writes one alternative.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawAlternative {
    events: Option<Value>,
    monitor_ids: Option<Value>,
    kinds: Option<Value>,
    health_levels: Option<Value>,
    phone_ids: Option<Value>,
    providers: Option<Value>,
    sync_kinds: Option<Value>,
}

/// What a filter compares: the event's name and the fields of its data the
/// filter knows, or a snapshot entry seen as the event that wrote it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub event: String,
    pub monitor_id: Option<String>,
    /// `health_changed`'s `kind`.
    pub kind: Option<String>,
    /// `current.health` of `health_changed`; a monitor entry's `health`.
    pub health: Option<String>,
    pub phone_id: Option<String>,
    pub provider: Option<String>,
    /// `sync_progress`'s `kind`.
    pub sync_kind: Option<String>,
    /// A snapshot entry: a state, not a transition, so `kinds` is not checked.
    pub entry: bool,
}

fn text(data: &Value, field: &str) -> Option<String> {
    data.get(field).and_then(Value::as_str).map(str::to_owned)
}

impl Facts {
    /// The facts of a committed event (its data is read once, here).
    pub fn of_event(event: &Event) -> Facts {
        let data: Value = serde_json::from_str(event.data.get()).unwrap_or(Value::Null);
        let name = event.event.as_str();
        Facts {
            event: event.event.clone(),
            monitor_id: text(&data, "monitorId"),
            kind: (name == event::HEALTH_CHANGED)
                .then(|| text(&data, "kind"))
                .flatten(),
            health: data.get("current").and_then(|c| text(c, "health")),
            phone_id: text(&data, "phoneNumberId"),
            provider: text(&data, "provider"),
            sync_kind: (name == event::SYNC_PROGRESS)
                .then(|| text(&data, "kind"))
                .flatten(),
            entry: false,
        }
    }

    /// A snapshot entry as the event that last wrote it.
    pub fn of_entry(section: Section, key: &str, entry: &Value) -> Facts {
        let mut facts = Facts {
            entry: true,
            ..Facts::default()
        };
        match section {
            Section::Phones => {
                facts.event = event::PHONE_STATUS_CHANGED.into();
                facts.phone_id = text(entry, "phoneNumberId").or_else(|| Some(key.into()));
            }
            Section::Credentials => {
                facts.event = event::STATUS_SYNC.into();
                let from_key = key.split(':').next().map(str::to_owned);
                facts.provider = text(entry, "provider").or(from_key);
            }
            Section::Monitors => {
                facts.event = event::HEALTH_CHANGED.into();
                facts.monitor_id = Some(key.into());
                facts.health = text(entry, "health");
            }
            Section::Jobs => {
                facts.event = event::SYNC_PROGRESS.into();
                facts.sync_kind = text(entry, "kind");
            }
        }
        facts
    }
}

/// Whether `value` is one of `wanted` (a field not given always matches; a
/// field given never matches an event without that value).
fn one_of(wanted: &Option<Vec<String>>, value: &Option<String>) -> bool {
    match (wanted, value) {
        (None, _) => true,
        (Some(list), Some(v)) => list.iter().any(|w| w == v),
        (Some(_), None) => false,
    }
}

/// An event name against `name` or `prefix*`.
fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

impl Alternative {
    fn passes(&self, facts: &Facts) -> bool {
        let events = self
            .events
            .as_ref()
            .is_none_or(|list| list.iter().any(|p| name_matches(p, &facts.event)));
        events
            && one_of(&self.monitor_ids, &facts.monitor_id)
            && (facts.entry || one_of(&self.kinds, &facts.kind))
            && one_of(&self.health_levels, &facts.health)
            && one_of(&self.phone_ids, &facts.phone_id)
            && one_of(&self.providers, &facts.provider)
            && one_of(&self.sync_kinds, &facts.sync_kind)
    }
}

impl Filter {
    /// The rule: an event (or entry) passes when any alternative matches it.
    pub fn passes(&self, facts: &Facts) -> bool {
        self.alternatives.iter().any(|a| a.passes(facts))
    }

    /// The snapshot as this filter sees it: entries that would not pass are
    /// left out; `seq` and `epoch` stay the account's.
    pub fn snapshot(&self, snapshot: &Snapshot) -> Snapshot {
        let mut out = Snapshot {
            account_id: snapshot.account_id.clone(),
            seq: snapshot.seq,
            epoch: snapshot.epoch.clone(),
            reset: snapshot.reset,
            ..Snapshot::default()
        };
        for section in Section::ALL {
            let kept = section_of(snapshot, section)
                .iter()
                .filter(|(key, entry)| self.passes(&Facts::of_entry(section, key, entry)))
                .map(|(k, v)| (k.clone(), v.clone()));
            out.section_mut(section).extend(kept);
        }
        out
    }

    /// Parses a client's filter: a JSON list of alternatives (a single
    /// object is taken as a list of one). The error names the field.
    pub fn parse(value: &Value) -> Result<Filter, String> {
        let list = match value {
            Value::Array(list) => list.as_slice(),
            Value::Object(_) => std::slice::from_ref(value),
            _ => return Err("filter must be a list of alternatives (objects)".into()),
        };
        if list.is_empty() || list.len() > MAX_ALTERNATIVES {
            return Err(format!(
                "filter must list 1 to {MAX_ALTERNATIVES} alternatives, got {}",
                list.len()
            ));
        }
        let alternatives = list
            .iter()
            .enumerate()
            .map(|(i, alt)| parse_alternative(&format!("filter[{i}]"), alt))
            .collect::<Result<_, _>>()?;
        Ok(Filter { alternatives })
    }

    /// [`Filter::parse`] from JSON text (a query parameter, a raw field).
    pub fn parse_text(text: &str) -> Result<Filter, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("filter is not JSON: {e}"))?;
        Filter::parse(&value)
    }
}

fn section_of(snapshot: &Snapshot, section: Section) -> &Map<String, Value> {
    match section {
        Section::Phones => &snapshot.phones,
        Section::Credentials => &snapshot.credentials,
        Section::Monitors => &snapshot.monitors,
        Section::Jobs => &snapshot.jobs,
    }
}

fn parse_alternative(at: &str, value: &Value) -> Result<Alternative, String> {
    if !value.is_object() {
        return Err(format!("{at} must be an object"));
    }
    let raw: RawAlternative = serde_json::from_value(value.clone()).map_err(|e| {
        format!("{at}: {e} (fields: events, monitorIds, kinds, healthLevels, phoneIds, providers, syncKinds)")
    })?;
    let field = |name: &str, v: Option<Value>, check: &dyn Fn(&str) -> Result<(), String>| {
        v.filter(|v| !v.is_null())
            .map(|v| strings(&format!("{at}.{name}"), &v, check))
            .transpose()
    };
    let plain = |s: &str| {
        if s.is_empty() || s.len() > MAX_VALUE_LEN {
            Err(format!("must be 1 to {MAX_VALUE_LEN} bytes"))
        } else {
            Ok(())
        }
    };
    let one_of = |allowed: &'static [&'static str]| {
        move |s: &str| {
            if allowed.contains(&s) {
                Ok(())
            } else {
                Err(format!("must be one of {}", allowed.join(", ")))
            }
        }
    };
    Ok(Alternative {
        events: field("events", raw.events, &event_pattern)?,
        monitor_ids: field("monitorIds", raw.monitor_ids, &|s| {
            event::valid_account_id(s)
                .then_some(())
                .ok_or_else(|| "is not a valid monitor id".to_owned())
        })?,
        kinds: field("kinds", raw.kinds, &one_of(&KINDS))?,
        health_levels: field("healthLevels", raw.health_levels, &one_of(&HEALTH_LEVELS))?,
        phone_ids: field("phoneIds", raw.phone_ids, &plain)?,
        providers: field("providers", raw.providers, &plain)?,
        sync_kinds: field("syncKinds", raw.sync_kinds, &plain)?,
    })
}

/// An event name, or a prefix of one followed by `*` (`*` alone: any).
fn event_pattern(pattern: &str) -> Result<(), String> {
    let name = pattern.strip_suffix('*').unwrap_or(pattern);
    let sane = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.:-".contains(&b);
    let whole = pattern.len() == name.len();
    let ok = name.len() <= 64
        && name.bytes().all(sane)
        && (name.is_empty() && !whole
            || name.bytes().next().is_some_and(|b| b.is_ascii_lowercase()));
    ok.then_some(()).ok_or_else(|| {
        "must be an event name (^[a-z][a-z0-9_.:-]{0,63}$), optionally ending in '*'".to_owned()
    })
}

/// A non-empty list of distinct-enough strings, each checked.
fn strings(
    at: &str,
    value: &Value,
    check: &dyn Fn(&str) -> Result<(), String>,
) -> Result<Vec<String>, String> {
    let Value::Array(items) = value else {
        return Err(format!("{at} must be a list of strings"));
    };
    if items.is_empty() || items.len() > MAX_VALUES {
        return Err(format!("{at} must list 1 to {MAX_VALUES} values"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let s = item
                .as_str()
                .ok_or_else(|| format!("{at}[{i}] must be a string"))?;
            check(s).map_err(|why| format!("{at}[{i}] {s:?} {why}"))?;
            Ok(s.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests;

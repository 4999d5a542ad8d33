//! The filter rules, one by one.

use super::*;
use serde_json::json;

fn filter(v: Value) -> Filter {
    Filter::parse(&v).expect("a valid filter")
}

fn refused(v: Value) -> String {
    Filter::parse(&v).expect_err("refused")
}

fn named(event: &str) -> Facts {
    Facts {
        event: event.into(),
        ..Facts::default()
    }
}

fn health(monitor: &str, kind: &str, level: &str) -> Facts {
    Facts {
        monitor_id: Some(monitor.into()),
        kind: Some(kind.into()),
        health: Some(level.into()),
        ..named(event::HEALTH_CHANGED)
    }
}

fn event_of(name: &str, data: Value) -> Event {
    Event {
        event: name.into(),
        account_id: "a".into(),
        seq: 1,
        id: "e".into(),
        published_at: "T".into(),
        data: serde_json::value::to_raw_value(&data).unwrap(),
    }
}

#[test]
fn events_match_by_name_or_prefix() {
    let f = filter(json!([{ "events": ["order.*", "status_sync"] }]));
    assert!(f.passes(&named("order.paid")));
    assert!(f.passes(&named("order.")));
    assert!(f.passes(&named("status_sync")));
    assert!(!f.passes(&named("status_sync_x")));
    assert!(!f.passes(&named("orders")));
    assert!(filter(json!([{ "events": ["*"] }])).passes(&named("anything")));
}

#[test]
fn every_given_field_must_match() {
    let f = filter(json!([{ "events": ["health_changed"], "monitorIds": ["m1"],
        "kinds": ["error_state"], "healthLevels": ["unhealthy"] }]));
    assert!(f.passes(&health("m1", "error_state", "unhealthy")));
    assert!(
        !f.passes(&health("m2", "error_state", "unhealthy")),
        "monitor"
    );
    assert!(!f.passes(&health("m1", "recovery", "unhealthy")), "kind");
    assert!(!f.passes(&health("m1", "error_state", "healthy")), "level");
    assert!(
        !f.passes(&Facts {
            event: "custom".into(),
            ..health("m1", "error_state", "unhealthy")
        }),
        "name"
    );
}

#[test]
fn any_alternative_is_enough() {
    let f = filter(json!([{ "monitorIds": ["m1"] }, { "phoneIds": ["p1"] }]));
    assert!(f.passes(&health("m1", "recovery", "healthy")));
    let phone = Facts {
        phone_id: Some("p1".into()),
        ..named(event::PHONE_STATUS_CHANGED)
    };
    assert!(f.passes(&phone));
    assert!(!f.passes(&named("order.paid")), "no field to match");
    assert!(
        filter(json!([{}])).passes(&named("x")),
        "an empty alternative takes all"
    );
}

#[test]
fn a_field_given_never_matches_an_event_without_it() {
    for f in [
        json!({ "monitorIds": ["m1"] }),
        json!({ "kinds": ["recovery"] }),
        json!({ "healthLevels": ["healthy"] }),
        json!({ "phoneIds": ["p1"] }),
        json!({ "providers": ["binance"] }),
        json!({ "syncKinds": ["import"] }),
    ] {
        assert!(!filter(f.clone()).passes(&named("order.paid")), "{f}");
    }
}

#[test]
fn facts_come_from_the_contract_payloads() {
    let h = Facts::of_event(&event_of(
        event::HEALTH_CHANGED,
        json!({ "monitorId": "m1",
        "kind": "recovery", "previous": { "health": "unhealthy" }, "current": { "health": "healthy" } }),
    ));
    assert_eq!(h, health("m1", "recovery", "healthy"));
    let s = Facts::of_event(&event_of(
        event::SYNC_PROGRESS,
        json!({ "syncId": "s", "kind": "import" }),
    ));
    assert_eq!((s.sync_kind.as_deref(), s.kind), (Some("import"), None));
    let p = Facts::of_event(&event_of(
        event::PHONE_STATUS_CHANGED,
        json!({ "phoneNumberId": "p1" }),
    ));
    assert_eq!(p.phone_id.as_deref(), Some("p1"));
    let c = Facts::of_event(&event_of(
        event::STATUS_SYNC,
        json!({ "provider": "binance" }),
    ));
    assert_eq!(c.provider.as_deref(), Some("binance"));
    let custom = Facts::of_event(&event_of("x", json!({ "kind": "status_change" })));
    assert_eq!(custom.kind, None, "kinds are health_changed's only");
    let removed = Facts::of_event(&event_of(
        event::MONITOR_REMOVED,
        json!({ "monitorId": "m1" }),
    ));
    assert_eq!(removed.monitor_id.as_deref(), Some("m1"));
}

#[test]
fn the_snapshot_keeps_entries_that_would_pass() {
    let mut snap = Snapshot {
        account_id: "a".into(),
        seq: 9,
        epoch: "e".into(),
        ..Snapshot::default()
    };
    snap.monitors
        .insert("m1".into(), json!({ "health": "unhealthy" }));
    snap.monitors
        .insert("m2".into(), json!({ "health": "healthy" }));
    snap.phones
        .insert("p1".into(), json!({ "phoneNumberId": "p1" }));
    snap.credentials
        .insert("binance:u1".into(), json!({ "provider": "binance" }));
    snap.credentials.insert("kraken:u1".into(), json!({}));
    snap.jobs.insert("s1".into(), json!({ "kind": "import" }));
    let f = filter(
        json!([{ "kinds": ["error_state"], "healthLevels": ["unhealthy"] },
        { "providers": ["kraken"] }, { "syncKinds": ["import"] }]),
    );
    let out = f.snapshot(&snap);
    assert_eq!(
        (out.seq, out.epoch.as_str(), out.account_id.as_str()),
        (9, "e", "a")
    );
    assert_eq!(
        out.monitors.keys().collect::<Vec<_>>(),
        ["m1"],
        "kinds do not apply to a state"
    );
    assert!(out.phones.is_empty());
    assert_eq!(
        out.credentials.keys().collect::<Vec<_>>(),
        ["kraken:u1"],
        "provider from the key"
    );
    assert_eq!(out.jobs.len(), 1);
}

#[test]
fn malformed_filters_name_the_field() {
    let cases = [
        (json!("x"), "filter must be a list"),
        (json!([]), "1 to 16 alternatives"),
        (json!([1]), "filter[0] must be an object"),
        (
            json!([{ "monitorId": ["m"] }]),
            "filter[0]: unknown field `monitorId`",
        ),
        (
            json!([{}, { "events": "x" }]),
            "filter[1].events must be a list",
        ),
        (json!([{ "events": [] }]), "filter[0].events must list 1 to"),
        (
            json!([{ "events": ["Bad"] }]),
            "filter[0].events[0] \"Bad\" must be an event name",
        ),
        (json!([{ "events": ["a*b*"] }]), "filter[0].events[0]"),
        (
            json!([{ "kinds": ["down"] }]),
            "filter[0].kinds[0] \"down\" must be one of status_change",
        ),
        (
            json!([{ "healthLevels": ["ok"] }]),
            "filter[0].healthLevels[0]",
        ),
        (json!([{ "monitorIds": [".."] }]), "filter[0].monitorIds[0]"),
        (json!([{ "phoneIds": [""] }]), "filter[0].phoneIds[0]"),
        (
            json!([{ "providers": [1] }]),
            "filter[0].providers[0] must be a string",
        ),
        (
            json!([{ "syncKinds": ["x".repeat(257)] }]),
            "filter[0].syncKinds[0]",
        ),
    ];
    for (input, expected) in cases {
        let err = refused(input.clone());
        assert!(err.contains(expected), "{input}: {err}");
    }
    assert!(
        Filter::parse_text("{")
            .unwrap_err()
            .starts_with("filter is not JSON")
    );
    assert!(refused(json!(vec![json!({}); 17])).contains("got 17"));
}

#[test]
fn a_single_object_and_null_fields_are_accepted() {
    let f = filter(json!({ "monitorIds": ["m1"], "kinds": null }));
    assert!(f.passes(&health("m1", "recovery", "healthy")));
    assert_eq!(
        Filter::parse_text(r#"[{"events":["*"]}]"#).map(|f| f.alternatives.len()),
        Ok(1)
    );
}

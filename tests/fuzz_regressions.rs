//! Inputs the fuzzers (docs/FUZZING.md) found or that are known to be
//! hostile, run through the same `statushub::parse` entry points: none may
//! panic, and each gets the answer it should.

use statushub::{auth::Jwt, parse};
use std::time::Duration;

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[test]
fn deeply_nested_bodies_are_refused_without_a_crash() {
    for depth in [200, 32_000] {
        // Whether publish refuses such data is the input validation's call
        // (a documented nesting limit); the parser must just not crash.
        let body = format!(
            r#"{{"event":"order.paid","data":{{"a":{}}}}}"#,
            nested(depth)
        );
        let _ = parse::custom_event(body.as_bytes());
        let frame = format!(r#"{{"type":"subscribe","accountId":{}}}"#, nested(depth));
        assert!(parse::ws_client_frame(&frame).is_err(), "depth {depth}");
        let auth = format!(r#"{{"token":"t","since":{}}}"#, nested(depth));
        let (since, _) = parse::socketio_auth(&Jwt::new("s"), auth.as_bytes());
        assert!(since.is_err(), "depth {depth}");
        let filter = format!(
            r#"{{"type":"auth","token":"t","filter":[{{"events":{}}}]}}"#,
            nested(depth)
        );
        assert!(
            parse::ws_client_frame(&filter).is_err(),
            "filter depth {depth}"
        );
        let auth = format!(r#"{{"token":"t","filter":{}}}"#, nested(depth));
        let (since, _) = parse::socketio_auth(&Jwt::new("s"), auth.as_bytes());
        assert!(since.is_err(), "filter depth {depth}");
        let query = format!("filter={}", nested(depth));
        assert!(
            parse::sse_resume(&query, None).is_err(),
            "filter depth {depth}"
        );
    }
}

#[test]
fn out_of_range_numbers_do_not_crash_the_parsers() {
    for n in ["1e400", "-1e400", "18446744073709551616", "-1", "1.5"] {
        let frame = format!(r#"{{"type":"auth","token":"t","since":{n}}}"#);
        assert!(parse::ws_client_frame(&frame).is_err(), "since {n}");
        assert!(
            parse::events_query(&format!("since={n}")).is_err(),
            "since {n}"
        );
        assert!(
            parse::sse_resume("", Some(n.as_bytes())).is_err(),
            "Last-Event-ID {n}"
        );
        let phone = format!(r#"{{"phoneNumberId":"p","isActive":{n}}}"#);
        assert!(parse::phone_test(phone.as_bytes()).is_err(), "isActive {n}");
        // Whatever the publish path decides about such data, it never panics.
        let _ = parse::custom_event(format!(r#"{{"event":"e","data":{{"n":{n}}}}}"#).as_bytes());
    }
}

#[test]
fn the_entry_points_accept_what_clients_send() {
    assert_eq!(parse::ws_client_frame(r#"{"type":"ping"}"#), Ok("ping"));
    assert_eq!(
        parse::ws_client_frame(r#"{"type":"subscribe","accountId":"acme","since":3}"#),
        Ok("subscribe")
    );
    assert_eq!(parse::events_query("since=10&limit=5&token=x"), Ok((10, 5)));
    assert!(parse::events_query("limit=0").is_err());
    assert!(parse::events_query("bogus=1").is_err());
    assert_eq!(parse::sse_resume("since=4", Some(b" 9 ")), Ok(Some(9)));
    assert_eq!(parse::sse_resume("since=4", None), Ok(Some(4)));
    assert!(parse::sse_resume("", Some(b"\xff")).is_err());

    let jwt = Jwt::new("secret");
    let token = jwt.mint("acme", "u1", None, Duration::from_secs(60));
    let auth = format!(r#"{{"token":"{token}","since":"12"}}"#);
    let (since, claims) = parse::socketio_auth(&jwt, auth.as_bytes());
    assert_eq!(since, Ok(Some(12)));
    assert_eq!(claims.expect("a valid token").account_id, "acme");
    let (since, claims) = parse::socketio_auth(&jwt, br#"{"since":true}"#);
    assert!(since.is_err() && claims.is_err());

    let (name, data) =
        parse::custom_event(br#"{"event":"order.paid","data":{"b":1, "a":[]}}"#).expect("valid");
    assert_eq!(
        (name.as_str(), data.as_str()),
        ("order.paid", r#"{"b":1, "a":[]}"#)
    );
    let data = parse::phone_test(br#"{"phoneNumberId":"p1","isActive":false}"#).expect("valid");
    assert_eq!(data["status"], "INACTIVE");
    assert!(parse::credential_test(br#"{"provider":" ","userId":"u","success":true}"#).is_err());
    assert!(parse::monitor_spec(br#"{"url":"ftp://x","intervalMs":5000,"timeoutMs":1000,"maxRetries":0,"backoffMultiplier":1}"#).is_err());
    assert!(parse::status_override(br#"{"health":"healthy"}"#).is_ok());
}

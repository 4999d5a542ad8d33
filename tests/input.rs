//! Input the hub must refuse at the door, against a real server: JSON that
//! cannot be stored and read back (nesting past the documented limit,
//! numbers out of range), bodies that are not JSON by their `Content-Type`,
//! ids made only of dots and monitor header values outside visible ASCII.
//! Every refusal has the contract's error shape and changes nothing.

mod common;

use common::{API_KEY, TestServer, error_code};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The documented nesting limit (README, Events).
const MAX_DEPTH: usize = 32;

/// `{"a":{"a":…{}…}}`: an object `levels` deep.
fn nested_object(levels: usize) -> String {
    let mut text = "{}".to_owned();
    for _ in 1..levels {
        text = format!("{{\"a\":{text}}}");
    }
    text
}

/// `{"a":[[…[]…]]}`: an object holding arrays, `levels` deep in all.
fn nested_arrays(levels: usize) -> String {
    format!(
        "{{\"a\":{}{}}}",
        "[".repeat(levels - 1),
        "]".repeat(levels - 1)
    )
}

async fn post_raw(
    server: &TestServer,
    path: &str,
    content_type: Option<&str>,
    body: String,
) -> (u16, Value) {
    let mut request = server
        .http
        .post(format!("{}{path}", server.url))
        .bearer_auth(API_KEY)
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request
        .send()
        .await
        .expect("the hub answers (no panic, no reset)");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn publish_raw(server: &TestServer, account: &str, data: &str) -> (u16, Value) {
    let body = format!("{{\"event\":\"poison.test\",\"data\":{data}}}");
    post_raw(
        server,
        &format!("/v1/accounts/{account}/events"),
        Some("application/json"),
        body,
    )
    .await
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

/// The events page of `account` as read by a client: must be a 200 with a
/// parsable body.
async fn page(server: &TestServer, account: &str) -> Vec<Value> {
    let (status, body) = server
        .get(
            &format!("/v1/accounts/{account}/events?since=0"),
            Some(API_KEY),
        )
        .await;
    assert_eq!(status, 200, "the page reads: {body}");
    body["events"].as_array().cloned().expect("events array")
}

#[tokio::test]
async fn poison_event_data_is_refused_at_the_door() {
    let server = TestServer::start().await;
    // The event body is one level, so `data` may hold 31 more.
    let cases = [
        ("200 levels of objects", nested_object(200), "nest"),
        ("32,000 levels of arrays", nested_arrays(32_000), "nest"),
        ("one level too deep", nested_object(MAX_DEPTH), "nest"),
        ("1e400", r#"{"n":1e400}"#.to_owned(), "number"),
        ("-1e400", r#"{"list":[1,-1e400]}"#.to_owned(), "number"),
        (
            "a lone surrogate",
            r#"{"s":"\ud800"}"#.to_owned(),
            "invalid JSON",
        ),
    ];
    for (what, data, hint) in &cases {
        let (status, body) = publish_raw(&server, "a", data).await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "bad_request"),
            "{what}: {body}"
        );
        assert!(
            message(&body).contains(hint),
            "{what}: message names the problem: {body}"
        );
    }
    let (_, body) = publish_raw(&server, "a", r#"{"n":1e400}"#).await;
    assert!(
        message(&body).contains("data.n"),
        "the path to the value: {body}"
    );
    let (_, body) = publish_raw(&server, "a", r#"{"list":[1,-1e400]}"#).await;
    assert!(
        message(&body).contains("data.list[1]"),
        "the path to the value: {body}"
    );
    assert!(page(&server, "a").await.is_empty(), "nothing was published");

    // At the limit and with numbers JSON round-trips, the data is kept verbatim.
    let fine = [
        nested_object(MAX_DEPTH - 1),
        r#"{"big":1e308,"small":-1e308,"u":18446744073709551615,"i":-9223372036854775808,"f":0.5}"#
            .to_owned(),
    ];
    for data in &fine {
        let (status, body) = publish_raw(&server, "a", data).await;
        assert_eq!(status, 201, "{data}: {body}");
    }
    let events = page(&server, "a").await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["seq"], 1, "refusals consumed no seq");
    assert_eq!(events[1]["data"]["u"], json!(u64::MAX));
    assert_eq!(events[1]["data"]["i"], json!(i64::MIN));
}

#[tokio::test]
async fn every_publish_endpoint_and_monitor_body_has_the_same_rules() {
    let server = TestServer::start().await;
    let deep = nested_object(MAX_DEPTH + 1);
    let paths = [
        "/v1/accounts/a/phone-tests",
        "/v1/accounts/a/credential-tests",
        "/v1/accounts/a/events",
    ];
    for path in paths {
        for (body, hint) in [
            (deep.clone(), "nest"),
            (r#"{"x":1e400}"#.to_owned(), "number"),
        ] {
            let (status, answer) = post_raw(&server, path, Some("application/json"), body).await;
            assert_eq!(
                (status, error_code(&answer)),
                (400, "bad_request"),
                "{path}: {answer}"
            );
            assert!(message(&answer).contains(hint), "{path}: {answer}");
        }
    }
    let monitor = "/v1/accounts/a/monitors/m1";
    for (body, hint) in [
        (deep.clone(), "nest"),
        (
            r#"{"url":"http://127.0.0.1:1/","intervalMs":1e400}"#.to_owned(),
            "number",
        ),
    ] {
        let response = server
            .http
            .put(format!("{}{monitor}", server.url))
            .bearer_auth(API_KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 400);
        let answer: Value = response.json().await.expect("error body");
        assert!(message(&answer).contains(hint), "monitor PUT: {answer}");
    }
    let (status, answer) = post_raw(
        &server,
        &format!("{monitor}/status"),
        Some("application/json"),
        deep,
    )
    .await;
    assert_eq!(
        (status, error_code(&answer)),
        (400, "bad_request"),
        "{answer}"
    );
    assert!(message(&answer).contains("nest"), "{answer}");
    assert_eq!(
        server.get(monitor, Some(API_KEY)).await.0,
        404,
        "no monitor was made"
    );
    assert!(page(&server, "a").await.is_empty(), "nothing was published");
}

#[tokio::test]
async fn bodies_must_be_json_by_content_type() {
    let server = TestServer::start().await;
    let body = json!({ "event": "ct.test", "data": {} }).to_string();
    let path = "/v1/accounts/a/events";
    for content_type in [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "",
    ] {
        let (status, answer) = post_raw(&server, path, Some(content_type), body.clone()).await;
        assert_eq!(
            (status, error_code(&answer)),
            (415, "unsupported_media_type"),
            "{content_type:?}: {answer}"
        );
        assert!(message(&answer).contains("application/json"), "{answer}");
    }
    let monitor = json!({"url": "http://127.0.0.1:1/", "intervalMs": 60000, "timeoutMs": 1000,
        "maxRetries": 0, "backoffMultiplier": 1})
    .to_string();
    let response = server
        .http
        .put(format!("{}/v1/accounts/a/monitors/m1", server.url))
        .bearer_auth(API_KEY)
        .header("content-type", "text/plain")
        .body(monitor)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 415);
    assert!(
        page(&server, "a").await.is_empty(),
        "refused bodies published nothing"
    );

    // JSON with parameters, in any case, a +json type, and no Content-Type at all.
    for content_type in [
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("Application/JSON"),
        Some("application/vnd.statushub+json"),
        None,
    ] {
        let (status, answer) = post_raw(&server, path, content_type, body.clone()).await;
        assert_eq!(status, 201, "{content_type:?}: {answer}");
    }
    assert_eq!(page(&server, "a").await.len(), 5);
}

/// A request line sent as is: HTTP clients normalize `.` and `..` path
/// segments away, attackers do not.
async fn raw_request(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {API_KEY}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn ids_made_only_of_dots_are_refused() {
    let server = TestServer::start().await;
    let phone = json!({ "phoneNumberId": "p1", "isActive": true }).to_string();
    let monitor = json!({"url": "http://127.0.0.1:1/", "intervalMs": 60000, "timeoutMs": 1000,
        "maxRetries": 0, "backoffMultiplier": 1})
    .to_string();
    let cases = [
        ("POST", "/v1/accounts/./phone-tests", phone.as_str()),
        ("POST", "/v1/accounts/../phone-tests", phone.as_str()),
        (
            "POST",
            "/v1/accounts/.../events",
            r#"{"event":"x","data":{}}"#,
        ),
        ("GET", "/v1/accounts/../status", ""),
        ("GET", "/v1/accounts/./events?since=0", ""),
        ("PUT", "/v1/accounts/a/monitors/..", monitor.as_str()),
        ("PUT", "/v1/accounts/a/monitors/.", monitor.as_str()),
        ("PUT", "/v1/accounts/../monitors/m1", monitor.as_str()),
        ("GET", "/v1/accounts/a/monitors/..", ""),
    ];
    for (method, path, body) in cases {
        let (status, answer) = raw_request(&server, method, path, body).await;
        assert_eq!(
            (status, error_code(&answer)),
            (400, "bad_request"),
            "{method} {path}: {answer}"
        );
    }
    // Dots inside an id stay fine.
    assert_eq!(
        raw_request(&server, "POST", "/v1/accounts/a.b/phone-tests", &phone)
            .await
            .0,
        201
    );
    assert_eq!(
        raw_request(&server, "PUT", "/v1/accounts/a/monitors/.m", &monitor)
            .await
            .0,
        201
    );
    let (_, list) = server.get("/v1/accounts/a/monitors", Some(API_KEY)).await;
    assert_eq!(list["monitors"].as_array().map(Vec::len), Some(1), "{list}");
}

#[tokio::test]
async fn monitor_header_values_must_be_visible_ascii() {
    let server = TestServer::start().await;
    let path = "/v1/accounts/a/monitors/m1";
    for value in ["café", "tab\there", "bell\u{7}", "del\u{7f}", "ß"] {
        let body = json!({"url": "http://127.0.0.1:1/", "intervalMs": 60000, "timeoutMs": 1000,
            "maxRetries": 0, "backoffMultiplier": 1, "headers": {"x-key": value}});
        let (status, answer) = server.put(path, &body).await;
        assert_eq!(
            (status, error_code(&answer)),
            (400, "bad_request"),
            "{value:?}: {answer}"
        );
        assert!(message(&answer).contains("x-key"), "{answer}");
    }
    assert_eq!(
        server.get(path, Some(API_KEY)).await.0,
        404,
        "nothing was stored"
    );
    let body = json!({"url": "http://127.0.0.1:1/", "intervalMs": 60000, "timeoutMs": 1000,
        "maxRetries": 0, "backoffMultiplier": 1, "headers": {"x-key": "Bearer a-b_c.d~!"}});
    assert_eq!(server.put(path, &body).await.0, 201);
}

//! Stored data the hub cannot serve (written by an older version that let a
//! poison event in, or damaged on disk) must fail soft: each bad row is left
//! out and logged as an error once per read, and everything around it is
//! served as usual on every read path (events pages, resumes on each
//! transport, the snapshot, monitors, a restart).
//!
//! The bad rows are written straight into the hub's real SQLite file with
//! rusqlite while the hub runs. One test per binary: it installs the global
//! log subscriber to see the errors.

mod common;

use common::{API_KEY, TestServer, WAIT, test_config, wait_for};
use serde_json::{Value, json};
use std::{
    io::Write,
    sync::{Arc, Mutex},
};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// Error lines (as JSON) logged so far.
    fn errors(&self) -> Vec<Value> {
        let text =
            String::from_utf8(self.0.lock().expect("log buffer").clone()).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["level"] == "ERROR")
            .collect()
    }

    /// Error lines about the stored event `seq`.
    fn errors_about_event(&self, seq: u64) -> usize {
        self.errors()
            .iter()
            .filter(|l| l["fields"]["seq"] == seq)
            .count()
    }

    fn clear(&self) {
        self.0.lock().expect("log buffer").clear();
    }
}

fn nested(levels: usize) -> String {
    let mut text = "{}".to_owned();
    for _ in 1..levels {
        text = format!("{{\"a\":{text}}}");
    }
    text
}

/// Bad rows, each as the store would hold it: events 2..=6 of account `a`.
fn poison_events() -> Vec<(u64, String)> {
    vec![
        (2, nested(200)),
        (3, r#"{"n":1e400}"#.to_owned()),
        (4, "{not json".to_owned()),
        (5, r#"{"s":"\ud800"}"#.to_owned()),
        (6, "[".repeat(32_000) + &"]".repeat(32_000)),
    ]
}

fn insert_bad_rows(server: &TestServer) {
    let path = server.data_dir.path().join("statushub.db");
    let conn = rusqlite::Connection::open(&path).expect("open the hub's SQLite file");
    conn.busy_timeout(WAIT).expect("busy timeout");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    for (seq, data) in poison_events() {
        conn.execute(
            "INSERT INTO events (account_id, seq, id, event, data, published_at, stored_ms)
             VALUES ('a', ?1, ?2, 'poison.test', ?3, '2026-01-01T00:00:00Z', ?4)",
            rusqlite::params![seq, format!("evt_bad{seq}"), data, now],
        )
        .expect("insert a bad event");
    }
    conn.execute("UPDATE accounts SET head = 6 WHERE account_id = 'a'", [])
        .expect("head");
    for (section, key, value) in [
        ("phones", "bad-number", r#"{"x":1e400}"#.to_owned()),
        ("phones", "bad-json", "{".to_owned()),
        ("phones", "too-deep", nested(200)),
        ("nowhere", "k", "{}".to_owned()),
    ] {
        conn.execute(
            "INSERT INTO entries (account_id, section, key, value, seq) VALUES ('a', ?1, ?2, ?3, 3)",
            rusqlite::params![section, key, value],
        )
        .expect("insert a bad entry");
    }
    for (id, spec, state) in [
        ("bad-spec", "not json", None),
        ("not-a-spec", r#"{"url":1}"#, None),
        (
            "bad-state",
            r#"{"url":"http://127.0.0.1:1/","intervalMs":60000,"timeoutMs":1000,"maxRetries":0,"backoffMultiplier":1.0}"#,
            Some("{oops"),
        ),
    ] {
        conn.execute(
            "INSERT INTO monitors (account_id, id, spec, state, updated_ms) VALUES ('a', ?1, ?2, ?3, ?4)",
            rusqlite::params![id, spec, state, now],
        )
        .expect("insert a bad monitor");
    }
}

async fn page(server: &TestServer, query: &str) -> Value {
    let (status, body) = server
        .get(&format!("/v1/accounts/a/events?{query}"), Some(API_KEY))
        .await;
    assert_eq!(status, 200, "{query}: the page reads: {body}");
    body
}

fn seqs(page: &Value) -> Vec<u64> {
    page["events"]
        .as_array()
        .map(|events| events.iter().filter_map(|e| e["seq"].as_u64()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn bad_stored_rows_are_left_out_and_logged_never_a_panic_or_a_broken_page() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .init();

    let server = TestServer::start().await;
    server.publish("a", "good.one", json!({ "n": 1 })).await;
    server.phone_test("a", "p-good", true).await;
    // seq 2 is now the phone test; the bad rows take 2..=6 after it is moved away.
    let conn =
        rusqlite::Connection::open(server.data_dir.path().join("statushub.db")).expect("open");
    conn.busy_timeout(WAIT).expect("busy timeout");
    conn.execute("DELETE FROM events WHERE account_id = 'a' AND seq = 2", [])
        .expect("drop seq 2");
    drop(conn);
    insert_bad_rows(&server);
    let good = server.publish("a", "good.two", json!({ "n": 7 })).await;
    assert_eq!(good["seq"], 7);

    // Every page reads, without the bad rows; paging walks past them.
    capture.clear();
    let all = page(&server, "since=0").await;
    assert_eq!(seqs(&all), vec![1, 7], "{all}");
    assert_eq!(
        (all["seq"].as_u64(), all["hasMore"].as_bool()),
        (Some(7), Some(false))
    );
    for (seq, _) in poison_events() {
        assert_eq!(
            capture.errors_about_event(seq),
            1,
            "event {seq} logged once for one read: {:?}",
            capture.errors()
        );
    }
    let first = page(&server, "since=0&limit=1").await;
    assert_eq!(
        (seqs(&first), first["hasMore"].as_bool()),
        (vec![1], Some(true))
    );
    let next = page(&server, "since=1&limit=1").await;
    assert_eq!(
        (seqs(&next), next["hasMore"].as_bool()),
        (vec![7], Some(false)),
        "{next}"
    );
    let tail = page(&server, "since=3&limit=2").await;
    assert_eq!(seqs(&tail), vec![7], "{tail}");

    // Resumes on every transport deliver the good events around them, then live ones.
    let token = server.token("a");
    let mut ws = server.ws(&format!("?token={token}&since=0")).await;
    let mut sse = server
        .sse(
            &format!("/v1/accounts/a/stream?token={token}"),
            &[("last-event-id", "0")],
        )
        .await;
    let mut sio = server
        .socketio(json!({ "token": token, "since": 0 }))
        .await
        .expect("socket.io connects");
    server.publish("a", "good.three", json!({ "n": 8 })).await;
    let ws_seqs: Vec<Value> = [
        ws.next_event().await,
        ws.next_event().await,
        ws.next_event().await,
    ]
    .iter()
    .map(|e| e["seq"].clone())
    .collect();
    assert_eq!(ws_seqs, vec![json!(1), json!(7), json!(8)]);
    let mut sse_ids = Vec::new();
    while sse_ids.len() < 3 {
        let event = sse.next_event().await;
        if event.event != "snapshot" {
            sse_ids.push(event.id.unwrap_or_default());
        }
    }
    assert_eq!(sse_ids, ["1", "7", "8"]);
    let mut sio_seqs = Vec::new();
    while sio_seqs.len() < 3 {
        let (name, _, meta) = sio.next_event().await.expect("socket.io event");
        if name != "snapshot" {
            sio_seqs.push(meta["seq"].clone());
        }
    }
    assert_eq!(sio_seqs, vec![json!(1), json!(7), json!(8)]);

    // The snapshot keeps its good entries.
    let (status, snapshot) = server.get("/v1/accounts/a/status", Some(API_KEY)).await;
    assert_eq!(status, 200, "{snapshot}");
    let phones: Vec<&String> = snapshot["phones"]
        .as_object()
        .expect("phones")
        .keys()
        .collect();
    assert_eq!(phones, ["p-good"], "{snapshot}");

    // Monitors: a bad spec is left out, a bad state is read as no state.
    let (status, list) = server.get("/v1/accounts/a/monitors", Some(API_KEY)).await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["monitors"]
        .as_array()
        .expect("monitors")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["bad-state"], "{list}");
    assert_eq!(
        server
            .get("/v1/accounts/a/monitors/bad-spec", Some(API_KEY))
            .await
            .0,
        404
    );
    let errors = capture.errors();
    for what in [
        "bad-number",
        "bad-json",
        "too-deep",
        "nowhere",
        "bad-spec",
        "not-a-spec",
        "bad-state",
    ] {
        assert!(
            errors.iter().any(|l| l.to_string().contains(what)),
            "{what} was logged as an error: {errors:?}"
        );
    }

    // A restart reads the same rows and starts.
    let dir = server.stop().await;
    let config = test_config(dir.path());
    let server = TestServer::start_in(dir, config).await;
    assert_eq!(seqs(&page(&server, "since=0").await), vec![1, 7, 8]);
    wait_for("the restarted hub answers", WAIT, || async {
        server.get("/readyz", None).await.0 == 200
    })
    .await;
}

//! One structured log line when a connection opens and one when it closes,
//! with the reason, on every transport. The server logs through `tracing`;
//! this test binary captures it as JSON (what `--log-format json` prints).

mod common;
mod process;

use common::{TestServer, WAIT, wait_for};
use serde_json::{Value, json};
use std::{
    io::Write,
    sync::{Arc, Mutex},
};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// The `fields` of every captured line whose message is `message`.
    fn lines(&self, message: &str) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["fields"]["message"] == message)
            .map(|l| l["fields"].clone())
            .collect()
    }
}

#[tokio::test]
async fn every_transport_logs_one_open_and_one_close_with_its_reason() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .init();

    let server = TestServer::start().await;
    let token = server.token("acme");
    let mut ws = server.ws_for("acme").await;
    ws.stream.close(None).await.unwrap();
    let mut refused = server.ws("?token=garbage").await;
    refused.close_code().await;
    let mut sse = server
        .sse(&format!("/v1/accounts/acme/stream?token={token}"), &[])
        .await;
    sse.next_event().await;
    drop(sse);
    let sio = server
        .socketio(json!({ "token": token }))
        .await
        .expect("socket.io");
    drop(sio);

    wait_for("every close to be logged", WAIT, || async {
        capture.lines("connection closed").len() == 4
    })
    .await;
    let opened = capture.lines("connection opened");
    let closed = capture.lines("connection closed");
    let id = |line: &Value| line.get("connection").or(line.get("socket")).cloned();
    for transport in ["websocket", "sse", "socketio"] {
        let opens: Vec<_> = opened
            .iter()
            .filter(|l| l["transport"] == transport)
            .collect();
        let closes: Vec<_> = closed
            .iter()
            .filter(|l| l["transport"] == transport)
            .collect();
        assert_eq!(
            opens.len(),
            closes.len(),
            "{transport}: {opens:?} / {closes:?}"
        );
        for open in opens {
            let close = closes
                .iter()
                .find(|c| id(c) == id(open))
                .unwrap_or_else(|| panic!("no close line for {open}"));
            assert!(
                close["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "{close}"
            );
        }
    }
    let reasons: Vec<_> = closed
        .iter()
        .filter(|l| l["transport"] == "websocket")
        .map(|l| l["reason"].as_str().unwrap_or_default())
        .collect();
    assert!(
        reasons.contains(&"client_closed") && reasons.contains(&"unauthorized"),
        "{reasons:?}"
    );
}

/// Text logs colour only a terminal: written to a pipe or a file they carry
/// no escape codes (`tracing`'s default colours whatever it writes to).
#[test]
fn text_logs_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let hub = process::Hub::serve(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--jwt-secret",
            "s",
            "--api-keys",
            "k",
        ],
    );
    hub.wait_for_log("INFO");
    let stderr = hub.stop();
    assert!(
        !stderr.contains("\x1b["),
        "colour codes in piped logs: {stderr:?}"
    );
}

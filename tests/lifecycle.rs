//! The server's life cycle on the HTTP layer: connections that never finish a
//! request or sit idle are bounded in time and per IP, and shutdown with no
//! clients left (or only idle, half-sent or long-polling ones) is quick.

mod common;

use common::{TestServer, WAIT, wait_for};
use serde_json::{Value, json};
use statushub::{
    config::Retention,
    store::{Body, Draft, EventLog, SqliteStore, StoreError},
};
use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// "No hang", not a performance figure: with no clients shutdown takes
/// milliseconds; the old drain waited 10 s.
const QUICK_STOP: Duration = Duration::from_secs(3);

/// Reads until the server closes the connection; returns what it sent.
async fn read_to_close(tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("the server closes the connection within the wait")
        {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends one keep-alive request and reads its (small) response.
async fn keep_alive_request(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .expect("a response")
        .expect("read");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    tcp
}

/// Whether the server has closed `tcp` (without waiting).
fn is_closed(tcp: &TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match tcp.try_read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

#[tokio::test]
async fn shutdown_with_idle_half_sent_and_closed_clients_is_quick() {
    let server = TestServer::start().await;
    let token = server.token("acme");

    // Clients of each kind come and go.
    let mut ws = server.ws_for("acme").await;
    ws.stream.close(None).await.expect("ws close");
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
    server.publish("acme", "x", json!({})).await;
    wait_for("every client to be gone", WAIT, || async {
        let stats = server.stats().await;
        ["websocket", "sse", "socketio"]
            .iter()
            .all(|t| stats["connections"][t]["open"] == 0)
    })
    .await;

    // What stays: an idle keep-alive (reqwest's pool holds one too), a
    // connection that sent half a request, one that sent nothing, and an
    // Engine.IO long poll (a request in flight).
    let _idle = keep_alive_request(server.addr).await;
    let mut half = TcpStream::connect(server.addr).await.expect("connect");
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: hu")
        .await
        .expect("write");
    let _silent = TcpStream::connect(server.addr).await.expect("connect");
    let open: String = server
        .http
        .get(format!("{}/socket.io/?EIO=4&transport=polling", server.url))
        .send()
        .await
        .expect("polling handshake")
        .text()
        .await
        .expect("open packet");
    let sid = serde_json::from_str::<Value>(open.trim_start_matches('0')).expect("open")["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    let poll = tokio::spawn({
        let http = server.http.clone();
        let url = format!(
            "{}/socket.io/?EIO=4&transport=polling&sid={sid}",
            server.url
        );
        async move { http.get(url).send().await.map(|r| r.status()) }
    });
    // The long poll is in flight once its request reached the server.
    wait_for("the long poll to be in flight", WAIT, || async {
        !poll.is_finished()
    })
    .await;

    let started = Instant::now();
    server.stop().await;
    let took = started.elapsed();
    assert!(took < QUICK_STOP, "shutdown took {took:?}");
    assert!(
        read_to_close(&mut half).await.is_empty(),
        "the half-sent request was cut without an answer"
    );
    let _ = tokio::time::timeout(WAIT, poll)
        .await
        .expect("the long poll ended");
}

/// The Node suite's shutdown hang (issue 12.5): a polling tab leaves its
/// namespace (`41`) and vanishes before its Engine.IO close packet arrives.
/// socketioxide's `close` only closes sessions with a namespace socket, so
/// the tab's long poll stayed in flight and the drain waited out its timeout.
#[tokio::test]
async fn shutdown_does_not_wait_for_the_long_poll_of_a_session_that_left_its_namespace() {
    let server = TestServer::start().await;
    let token = server.token("acme");
    let base = format!("{}/socket.io/?EIO=4&transport=polling", server.url);
    let open = server
        .http
        .get(&base)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sid = serde_json::from_str::<Value>(open.trim_start_matches('0')).expect("open")["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    let session = format!("{base}&sid={sid}");
    let post = |body: String| {
        let (http, url) = (server.http.clone(), session.clone());
        async move {
            let r = http.post(url).body(body).send().await.expect("post");
            assert_eq!(r.status(), 200);
        }
    };
    post(format!("40{}", json!({ "token": token }))).await;
    let connected = server
        .http
        .get(&session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Engine.IO pings at once, so a ping may come first (`2`, `\x1e`, `40…`).
    assert!(connected.contains("40{"), "{connected}");
    // `41` and then the long poll, pipelined on one connection: once the
    // answer to the first is read, the server has taken up the second.
    let path = session.trim_start_matches(&server.url);
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    tcp.write_all(
        format!(
            "POST {path} HTTP/1.1\r\nHost: hub\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n41\
             GET {path} HTTP/1.1\r\nHost: hub\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("\r\n\r\nok") {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("the answer to 41")
            .expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    wait_for("the namespace socket to be gone", WAIT, || async {
        server.stats().await["subscriptions"] == 0
    })
    .await;
    // The engine session is still there (its long poll in flight) and still
    // counts as a connection, but nobody is left to say goodbye to.
    assert_eq!(server.open_connections("socketio").await, 1);

    let started = Instant::now();
    server.stop().await;
    let took = started.elapsed();
    assert!(took < QUICK_STOP, "shutdown took {took:?}");
    read_to_close(&mut tcp).await;
}

#[tokio::test]
async fn a_client_sending_its_headers_slowly_is_dropped_after_the_header_read_timeout() {
    let timeout = Duration::from_millis(500);
    let server = TestServer::start_with(|c| c.limits.header_read_timeout = timeout).await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    let started = Instant::now();
    let (mut read, mut write) = tcp.split();
    let request =
        b"GET /healthz HTTP/1.1\r\nHost: hub\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    // One byte every 50 ms: the whole head would take ~3.5 s.
    let trickle = async {
        for byte in request {
            if write.write_all(&[*byte]).await.is_err() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    };
    let mut answer = Vec::new();
    let closed = async {
        tokio::time::timeout(WAIT, read.read_to_end(&mut answer))
            .await
            .expect("closed within the wait")
    };
    tokio::pin!(trickle);
    tokio::select! {
        finished = &mut trickle => panic!("the whole head was accepted (sent: {finished})"),
        _ = closed => {}
    }
    let took = started.elapsed();
    assert!(took >= timeout, "closed after {took:?}, before the timeout");
    assert!(
        answer.is_empty(),
        "no response to a request never completed"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_is_closed_after_the_idle_timeout_but_a_stream_is_not() {
    let idle = Duration::from_millis(500);
    let server = TestServer::start_with(|c| c.limits.idle_timeout = idle).await;
    let token = server.token("acme");
    let mut sse = server
        .sse(&format!("/v1/accounts/acme/stream?token={token}"), &[])
        .await;
    assert_eq!(sse.next_event().await.event, "snapshot");

    // Measured from before the request: the server's idle time starts later.
    let asked = Instant::now();
    let mut tcp = keep_alive_request(server.addr).await;
    read_to_close(&mut tcp).await;
    let took = asked.elapsed();
    assert!(
        took >= idle,
        "closed after {took:?}, before the idle timeout"
    );

    // The SSE stream has sent nothing for longer than the idle timeout, yet
    // a response still being sent is never idle.
    let receipt = server.publish("acme", "still.streaming", json!({})).await;
    assert_eq!(sse.next_event().await.json()["id"], receipt["id"]);
}

#[tokio::test]
async fn slowloris_is_bounded_by_the_per_ip_limit() {
    let limit = 5;
    let server = TestServer::start_with(|c| c.limits.max_connections_per_ip = limit).await;
    let mut held = Vec::new();
    for _ in 0..4 * limit {
        let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
        // Over the limit the server may already have closed it.
        let _ = tcp.write_all(b"GET /healthz HTTP/1.1\r\n").await;
        held.push(tcp);
    }
    wait_for("connections over the limit to be closed", WAIT, || {
        let closed = held.iter().filter(|t| is_closed(t)).count();
        async move { closed >= 3 * limit }
    })
    .await;
    let open = held.iter().filter(|t| !is_closed(t)).count();
    assert_eq!(open, limit, "the server holds at most the per-IP limit");

    // Once the slow clients go, the address is served again.
    drop(held);
    wait_for("a request from the address to be served", WAIT, || async {
        match reqwest::get(format!("{}/healthz", server.url)).await {
            Ok(r) => r.status() == 200,
            Err(_) => false,
        }
    })
    .await;
    let stats = server.stats().await;
    assert!(
        stats["connectionsRefused"]["too_many_connections"]
            .as_u64()
            .unwrap_or(0)
            >= 3 * limit as u64,
        "refusals are counted: {stats}"
    );
}

fn draft(account: &str) -> Draft {
    Draft {
        account_id: account.into(),
        event: "x".into(),
        id: statushub::event::new_id(),
        published_at: "2026-01-01T00:00:00Z".into(),
        body: Body::Fixed(serde_json::value::to_raw_value(&json!({})).unwrap()),
        idempotency: None,
    }
}

#[tokio::test]
async fn a_closed_store_is_flushed_checkpointed_and_refuses_later_calls() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let store = Arc::new(SqliteStore::open(dir.path(), Retention::default(), tx).unwrap());
    let pending: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.append(draft("acme")).await })
        })
        .collect();
    store.close().await.expect("close");
    let mut acknowledged = 0;
    for p in pending {
        match p.await.unwrap() {
            Ok(_) => acknowledged += 1,
            Err(StoreError::Unavailable(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    let mut fed = 0;
    while rx.try_recv().is_ok() {
        fed += 1;
    }
    assert_eq!(fed, acknowledged, "every acknowledged append was fed");
    assert!(matches!(
        store.append(draft("acme")).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(store.ping().await.is_err(), "reads fail too");
    store.close().await.expect("closing twice is harmless");
    let wal = dir.path().join("statushub.db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "the WAL was checkpointed"
    );
    drop(store);
    let (tx, _rx) = tokio::sync::mpsc::channel(64);
    let reopened = SqliteStore::open(dir.path(), Retention::default(), tx).unwrap();
    let history = reopened.events_since("acme", 0, 100).await.unwrap();
    assert_eq!(
        history.events.len(),
        acknowledged,
        "acknowledged appends are durable"
    );
}

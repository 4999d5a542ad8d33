//! A real webhook receiver on 127.0.0.1 (axum), scripted per request, and a
//! clock the test moves by hand (the dispatcher's injected clock).
#![allow(dead_code)]

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::Duration,
};

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Hit {
    pub headers: HeaderMap,
    pub body: String,
    /// What it answered.
    pub status: u16,
}

impl Hit {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

/// A scripted answer: status and optional `Retry-After`.
#[derive(Clone, Copy, Debug)]
pub struct Answer(pub u16, pub Option<u64>);

#[derive(Clone, Default)]
pub struct Receiver {
    pub addr: Option<SocketAddr>,
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Answers for the next requests, in order; then 200 (or `down`'s 503).
    script: Arc<Mutex<VecDeque<Answer>>>,
    /// While set, every unscripted request gets 503 without Retry-After.
    down: Arc<AtomicBool>,
    /// While set, requests are never answered.
    stuck: Arc<AtomicBool>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let mut receiver = Receiver::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        receiver.addr = Some(listener.local_addr().expect("addr"));
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr.expect("started"))
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// The requests it answered with a 2xx.
    pub fn delivered(&self) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| (200..300).contains(&h.status))
            .collect()
    }

    pub fn script(&self, answers: &[Answer]) {
        self.script.lock().unwrap().extend(answers.iter().copied());
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn set_stuck(&self, stuck: bool) {
        self.stuck.store(stuck, Ordering::SeqCst);
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    let scripted = r.script.lock().unwrap().pop_front();
    let answer = scripted.unwrap_or(if r.down.load(Ordering::SeqCst) {
        Answer(503, None)
    } else {
        Answer(200, None)
    });
    let stuck = r.stuck.load(Ordering::SeqCst);
    r.hits.lock().unwrap().push(Hit {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        status: if stuck { 0 } else { answer.0 },
    });
    if stuck {
        std::future::pending::<()>().await;
    }
    let mut response = StatusCode::from_u16(answer.0)
        .unwrap_or(StatusCode::OK)
        .into_response();
    if let Some(secs) = answer.1 {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    response
}

/// The dispatcher's clock: the wall clock plus an offset the test advances.
#[derive(Clone, Default)]
pub struct TestClock {
    offset_ms: Arc<AtomicI64>,
}

impl TestClock {
    pub fn clock(&self) -> statushub::webhooks::Clock {
        let offset = self.offset_ms.clone();
        let system = statushub::webhooks::system_clock();
        Arc::new(move || system() + offset.load(Ordering::SeqCst))
    }

    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    pub fn now_ms(&self) -> i64 {
        (self.clock())()
    }
}

/// Verifies a delivery as a Standard Webhooks receiver does: the signature
/// over `id.timestamp.body` with the secret's decoded key.
pub fn verify(secret: &str, hit: &Hit) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ secret"))
        .expect("base64 secret");
    let signed = format!(
        "{}.{}.{}",
        hit.header("webhook-id"),
        hit.header("webhook-timestamp"),
        hit.body
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(signed.as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    hit.header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

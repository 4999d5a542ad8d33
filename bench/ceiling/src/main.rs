//! The throughput ceiling of the benchmarks: a hub that does the least a hub
//! can do, run by `bench/run.sh` beside statushub and the Node peer.
//!
//! It speaks only what `loadgen --transport ws` uses of statushub's protocol:
//! `POST /v1/accounts/{account}/events` with an API key (answered `201` with
//! the event's seq) and `GET /ws?token=JWT`, which sends
//! `{"type":"snapshot","data":{"accountId","seq"}}` and then one
//! `{"type":"event","event","accountId","seq","data"}` text frame per event
//! of the token's account.
//!
//! What it leaves out is what the figures compare against: no store (a
//! per-account seq counter in memory), no per-socket work per event (each
//! event is encoded once into a complete WebSocket frame, and since server
//! frames are unmasked the same `Bytes` go to every subscriber), no pings,
//! no limits, no logs, one thread (run.sh pins servers to one core). Each
//! connection has a bounded queue drained by a writer task that writes all
//! it finds queued in one `write`; a full queue ends the connection. So
//! statushub's distance from this hub is the price of persistence and of
//! its features, and what is left here is mostly the kernel's per-`write`
//! cost, the floor of any design with one socket per subscriber.
//!
//! Client frames are read and dropped; a subscription ends when its client
//! closes the TCP connection.

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Method, Request, Response, StatusCode, body::Incoming, header, server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha1::{Digest, Sha1};
use std::{
    borrow::Cow,
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream, tcp::OwnedWriteHalf},
    sync::mpsc,
};

/// Frames a connection may have queued (statushub's default queue size).
const QUEUE: usize = 1024;
/// Frames the writer takes from its queue for one `write`.
const BATCH: usize = 64;
const MAX_BODY: usize = 1 << 20;
/// Close 1008 (policy violation), reason "queue full": sent after the last
/// queued frame when the connection was dropped for not keeping up.
const CLOSE_QUEUE_FULL: &[u8] = b"\x88\x0c\x03\xf0queue full";

/// A no-persistence hub speaking the part of statushub's protocol that
/// `loadgen --transport ws` uses.
#[derive(Parser)]
#[command(name = "ceiling", version)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// HS256 secret of client tokens (their `account_id` claim is the account).
    #[arg(long)]
    jwt_secret: String,
    /// Comma-separated API keys for publishing.
    #[arg(long)]
    api_keys: String,
    // Accepted so run.sh starts every server alike; the ceiling has no limits.
    #[arg(long = "publish-rate", hide = true)]
    _publish_rate: Option<f64>,
    #[arg(long = "max-connections", hide = true)]
    _max_connections: Option<u64>,
    #[arg(long = "max-connections-per-ip", hide = true)]
    _max_connections_per_ip: Option<u64>,
}

struct Hub {
    key: DecodingKey,
    validation: Validation,
    api_keys: Vec<String>,
    accounts: Mutex<HashMap<String, Account>>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Account {
    seq: u64,
    subscribers: Vec<Subscriber>,
}

struct Subscriber {
    id: u64,
    queue: mpsc::Sender<Bytes>,
}

#[derive(Deserialize)]
struct Claims {
    account_id: String,
}

#[derive(Deserialize)]
struct PublishBody<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Frame<'a> {
    Snapshot {
        data: Snapshot<'a>,
    },
    Event {
        event: &'a str,
        #[serde(rename = "accountId")]
        account_id: &'a str,
        seq: u64,
        data: &'a RawValue,
    },
}

#[derive(Serialize)]
struct Snapshot<'a> {
    #[serde(rename = "accountId")]
    account_id: &'a str,
    seq: u64,
}

impl Hub {
    /// The account of a valid token.
    fn verify(&self, token: &str) -> Option<String> {
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .ok()
            .map(|data| data.claims.account_id)
    }

    fn may_publish(&self, req: &Request<Incoming>) -> bool {
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|key| self.api_keys.iter().any(|k| k == key))
    }

    /// Numbers the event, encodes its frame once and queues it for every
    /// subscriber, all under the lock so each queue sees seqs in order.
    fn publish(&self, account: &str, event: &str, data: &RawValue) -> u64 {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let acc = accounts.entry(account.to_owned()).or_default();
        acc.seq += 1;
        let frame = text_frame(&Frame::Event {
            event,
            account_id: account,
            seq: acc.seq,
            data,
        });
        // A full queue (or a gone writer) drops the subscriber; its writer
        // then sends what is queued, the close frame, and ends.
        acc.subscribers
            .retain(|s| s.queue.try_send(frame.clone()).is_ok());
        acc.seq
    }

    /// Queues the snapshot and joins the account: events after the
    /// snapshot's seq follow it in the same queue.
    fn subscribe(&self, account: &str, queue: mpsc::Sender<Bytes>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let acc = accounts.entry(account.to_owned()).or_default();
        let snapshot = text_frame(&Frame::Snapshot {
            data: Snapshot {
                account_id: account,
                seq: acc.seq,
            },
        });
        if queue.try_send(snapshot).is_ok() {
            acc.subscribers.push(Subscriber { id, queue });
        }
        id
    }

    fn unsubscribe(&self, account: &str, id: u64) {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(acc) = accounts.get_mut(account) {
            acc.subscribers.retain(|s| s.id != id);
        }
    }
}

/// A complete unmasked WebSocket text frame: the JSON is written after room
/// for the longest header, which then goes right in front of it.
fn text_frame(msg: &Frame) -> Bytes {
    const HEAD: usize = 10;
    let mut buf = vec![0; HEAD];
    serde_json::to_writer(&mut buf, msg).expect("frames are plain JSON");
    let len = buf.len() - HEAD;
    let start = match len {
        0..=125 => {
            buf[9] = len as u8;
            8
        }
        126..=0xffff => {
            buf[7] = 126;
            buf[8..HEAD].copy_from_slice(&(len as u16).to_be_bytes());
            6
        }
        _ => {
            buf[1] = 127;
            buf[2..HEAD].copy_from_slice(&(len as u64).to_be_bytes());
            0
        }
    };
    buf[start] = 0x81; // FIN, text
    Bytes::from(buf).slice(start..)
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

async fn handle(
    hub: Arc<Hub>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    if req.method() == Method::POST
        && let Some(account) = path
            .strip_prefix("/v1/accounts/")
            .and_then(|p| p.strip_suffix("/events"))
            .filter(|a| !a.is_empty() && !a.contains('/'))
    {
        let account = account.to_owned();
        return Ok(publish(hub, account, req).await);
    }
    if req.method() == Method::GET && path == "/ws" {
        return Ok(upgrade(hub, req));
    }
    Ok(reply(StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#))
}

async fn publish(hub: Arc<Hub>, account: String, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if !hub.may_publish(&req) {
        return reply(StatusCode::UNAUTHORIZED, r#"{"error":"unauthorized"}"#);
    }
    let Ok(body) = Limited::new(req.into_body(), MAX_BODY).collect().await else {
        return reply(StatusCode::BAD_REQUEST, r#"{"error":"unreadable body"}"#);
    };
    let body = body.to_bytes();
    let Ok(input) = serde_json::from_slice::<PublishBody>(&body) else {
        return reply(
            StatusCode::BAD_REQUEST,
            r#"{"error":"expected {event, data}"}"#,
        );
    };
    let seq = hub.publish(&account, &input.event, input.data);
    reply(StatusCode::CREATED, format!(r#"{{"seq":{seq}}}"#))
}

/// Checks the token before upgrading, then hands the raw TCP stream to
/// [`subscriber`] once hyper has sent the 101.
fn upgrade(hub: Arc<Hub>, mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    let token = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
    let Some(account) = token.and_then(|t| hub.verify(t)) else {
        return reply(StatusCode::UNAUTHORIZED, r#"{"error":"unauthorized"}"#);
    };
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return reply(
            StatusCode::BAD_REQUEST,
            r#"{"error":"not a WebSocket upgrade"}"#,
        );
    };
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = BASE64.encode(sha.finalize());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await
            && let Ok(parts) = upgraded.downcast::<TokioIo<TcpStream>>()
        {
            subscriber(hub, account, parts.io.into_inner()).await;
        }
    });
    let mut response = reply(StatusCode::SWITCHING_PROTOCOLS, Bytes::new());
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    headers.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("upgrade"),
    );
    headers.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        header::HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    response
}

/// One subscription: a writer task drains the queue while this task reads
/// (and drops) client frames until the client goes.
async fn subscriber(hub: Arc<Hub>, account: String, stream: TcpStream) {
    let (mut input, output) = stream.into_split();
    let (queue, queued) = mpsc::channel(QUEUE);
    let id = hub.subscribe(&account, queue);
    tokio::spawn(write(output, queued));
    let mut buf = [0; 512];
    while matches!(input.read(&mut buf).await, Ok(n) if n > 0) {}
    // Dropping the account's sender ends the writer.
    hub.unsubscribe(&account, id);
}

async fn write(mut output: OwnedWriteHalf, mut queued: mpsc::Receiver<Bytes>) {
    let mut frames = Vec::with_capacity(BATCH);
    let mut batch = Vec::new();
    while queued.recv_many(&mut frames, BATCH).await > 0 {
        let written = if let [frame] = frames.as_slice() {
            output.write_all(frame).await
        } else {
            batch.clear();
            for frame in &frames {
                batch.extend_from_slice(frame);
            }
            output.write_all(&batch).await
        };
        frames.clear();
        if written.is_err() {
            return;
        }
    }
    let _ = output.write_all(CLOSE_QUEUE_FULL).await;
    let _ = output.shutdown().await;
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    // statushub's backlog, so connection bursts are accepted alike.
    socket.listen(4096)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let hub = Arc::new(Hub {
        key: DecodingKey::from_secret(args.jwt_secret.as_bytes()),
        validation: Validation::new(Algorithm::HS256),
        api_keys: args
            .api_keys
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect(),
        accounts: Mutex::default(),
        next_id: AtomicU64::new(0),
    });
    let listener = bind(args.listen)?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of descriptors, most likely: let some close first.
                eprintln!("ceiling: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let hub = hub.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(hub.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades()
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &str) -> Bytes {
        let data = RawValue::from_string(data.to_owned()).unwrap();
        text_frame(&Frame::Event {
            event: "e",
            account_id: "a",
            seq: 7,
            data: &data,
        })
    }

    #[test]
    fn frames_carry_the_length_the_json_has() {
        let small = event("1");
        let json = br#"{"type":"event","event":"e","accountId":"a","seq":7,"data":1}"#;
        assert_eq!(&small[..2], &[0x81, json.len() as u8]);
        assert_eq!(&small[2..], json);

        let pad = format!("\"{}\"", "x".repeat(300));
        let medium = event(&pad);
        let len = medium.len() - 4;
        assert_eq!(&medium[..4], &[0x81, 126, (len >> 8) as u8, len as u8]);

        let pad = format!("\"{}\"", "x".repeat(70_000));
        let large = event(&pad);
        assert_eq!(&large[..2], &[0x81, 127]);
        assert_eq!(&large[2..10], &((large.len() - 10) as u64).to_be_bytes());
    }

    #[test]
    fn snapshots_are_type_snapshot_with_account_and_seq() {
        let frame = text_frame(&Frame::Snapshot {
            data: Snapshot {
                account_id: "a",
                seq: 3,
            },
        });
        assert_eq!(
            &frame[2..],
            br#"{"type":"snapshot","data":{"accountId":"a","seq":3}}"#
        );
    }
}

//! The one harness every integration test uses: a real server (real SQLite
//! file in a temp dir) on port 0, stopped deterministically through `run`'s
//! shutdown future.
#![allow(dead_code)] // each test binary uses a different part of the harness

use serde_json::Value;
use statushub::{
    auth::Jwt,
    config::{Config, Limits, MonitorSettings, Retention},
    server::ServerError,
};
use std::{future::Future, net::SocketAddr, time::Duration};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub const API_KEY: &str = "test-api-key";
pub const SECRET: &str = "test-jwt-secret";

pub struct TestServer {
    pub url: String,
    pub addr: SocketAddr,
    pub jwt: Jwt,
    pub http: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
}

pub fn test_config(data_dir: &std::path::Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("static address"),
        data_dir: data_dir.to_owned(),
        jwt_secret: SECRET.into(),
        api_keys: vec![API_KEY.into(), "second-key".into()],
        redis_url: None,
        allowed_origins: vec![],
        limits: Limits::default(),
        retention: Retention::default(),
        // Monitor tests run their state machines in tens of milliseconds.
        monitors: MonitorSettings {
            min_interval: Duration::from_millis(10),
            ..MonitorSettings::default()
        },
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server whose config `tweak` may adjust.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(data_dir.path());
        tweak(&mut config);
        Self::start_in(data_dir, config).await
    }

    /// Starts a server on an existing data dir (to test restarts).
    pub async fn start_in(data_dir: tempfile::TempDir, config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(statushub::run(listener, config, async {
            let _ = rx.await;
        }));
        TestServer {
            url: format!("http://{addr}"),
            addr,
            jwt: Jwt::new(SECRET),
            http: reqwest::Client::new(),
            data_dir,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn token(&self, account: &str) -> String {
        self.jwt
            .mint(account, "user-1", None, Duration::from_secs(3600))
    }

    pub fn admin_token(&self) -> String {
        self.jwt
            .mint("ops", "admin-1", Some("admin"), Duration::from_secs(3600))
    }

    /// POSTs JSON to `path` with the API key.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(API_KEY)
            .json(body)
            .send()
            .await
            .expect("request");
        answer(response).await
    }

    /// Sends `method` to `path` with an optional JSON body and bearer credential.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        credential: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(credential) = credential {
            request = request.bearer_auth(credential);
        }
        answer(request.send().await.expect("request")).await
    }

    /// PUTs JSON to `path` with the API key.
    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request(reqwest::Method::PUT, path, Some(body), Some(API_KEY))
            .await
    }

    /// DELETEs `path` with the API key.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::DELETE, path, None, Some(API_KEY))
            .await
    }

    /// GETs `path` with the given bearer credential (or none).
    pub async fn get(&self, path: &str, credential: Option<&str>) -> (u16, Value) {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(credential) = credential {
            request = request.bearer_auth(credential);
        }
        answer(request.send().await.expect("request")).await
    }

    pub async fn phone_test(&self, account: &str, phone: &str, active: bool) -> Value {
        let (status, body) = self
            .post(
                &format!("/v1/accounts/{account}/phone-tests"),
                &serde_json::json!({ "phoneNumberId": phone, "isActive": active }),
            )
            .await;
        assert_eq!(status, 201, "publish failed: {body}");
        body
    }

    /// Retained events of an account after `since`, read with the API key.
    pub async fn events(&self, account: &str, since: u64) -> Vec<Value> {
        let (status, body) = self
            .get(
                &format!("/v1/accounts/{account}/events?since={since}&limit=10000"),
                Some(API_KEY),
            )
            .await;
        assert_eq!(status, 200, "events read failed: {body}");
        body["events"].as_array().cloned().unwrap_or_default()
    }

    /// Graceful stop; returns the data dir so a test can restart on it.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .expect("server stops within 15 s")
                .expect("server task did not panic");
            result.expect("server ran without error");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.data_dir, dir)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Waits for `condition` to hold, polling, or panics naming `what`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts the contract's error shape and returns the code.
pub fn error_code(body: &Value) -> &str {
    let code = body["error"]["code"].as_str();
    assert!(
        code.is_some() && body["error"]["message"].is_string(),
        "not the contract's error shape: {body}"
    );
    code.unwrap_or_default()
}

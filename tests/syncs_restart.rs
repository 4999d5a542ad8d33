//! A `kill -9` of the real binary in the middle of a sync: after the restart
//! the job is still running with its last checkpoint, and its duplicate
//! guard still refuses a second start of the kind.

mod process;

use process::Hub;
use serde_json::{Value, json};

const KEY: &str = "restart-test-key";

fn serve(dir: &std::path::Path) -> Hub {
    Hub::serve(
        dir,
        &[
            "--listen",
            "127.0.0.1:0",
            "--jwt-secret",
            "restart-test-secret",
            "--api-keys",
            KEY,
        ],
    )
}

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url).bearer_auth(KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_running_job_its_checkpoint_and_its_guard_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let first = serve(dir.path());
    let syncs = format!("{}/v1/accounts/acc/syncs", first.url);
    let (status, job) = call(
        reqwest::Method::POST,
        syncs.clone(),
        Some(json!({"kind": "orders", "total": 100})),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    let id = job["syncId"].as_str().unwrap().to_owned();
    let (status, _) = call(
        reqwest::Method::POST,
        format!("{syncs}/{id}/progress"),
        Some(json!({"done": 40, "checkpoint": {"page": 4}})),
    )
    .await;
    assert_eq!(status, 200);
    drop(first); // SIGKILL: no shutdown, no checkpoint of the WAL

    let second = serve(dir.path());
    let syncs = format!("{}/v1/accounts/acc/syncs", second.url);
    let (status, kept) = call(reqwest::Method::GET, format!("{syncs}/{id}"), None).await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["status"], "running");
    assert_eq!(kept["progress"], json!({"done": 40, "total": 100}));
    assert_eq!(kept["checkpoint"], json!({"page": 4}));
    let (status, refused) = call(
        reqwest::Method::POST,
        syncs.clone(),
        Some(json!({"kind": "orders"})),
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "sync_in_progress");
    assert_eq!(refused["error"]["syncId"], id.as_str());
    // The worker carries on after the restart and finishes.
    let (status, done) = call(
        reqwest::Method::POST,
        format!("{syncs}/{id}/progress"),
        Some(json!({"done": 100, "status": "completed"})),
    )
    .await;
    assert_eq!((status, done["status"].as_str()), (200, Some("completed")));
    second.stop();
}

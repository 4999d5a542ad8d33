//! Sync jobs on two hub nodes sharing one Redis: starts racing on both
//! nodes give one `201` and `409 sync_in_progress` for the rest; a job
//! started on one node is reported on and cancelled through the other, and
//! both nodes' tabs see it in the snapshot.

mod common;
mod redis_support;

use common::{Nodes, error_code};
use redis_support::{Prefix, SHARED_URL};
use serde_json::{Value, json};

#[tokio::test]
async fn two_nodes_share_the_guard_and_the_job() {
    let prefix = Prefix::fresh();
    let nodes = Nodes::start(2, |_, config| {
        config.redis_url = Some(SHARED_URL.into());
        config.redis_prefix = Some(prefix.name.clone());
    })
    .await;
    let path = "/v1/accounts/acc/syncs";
    let body = json!({"kind": "orders"});
    let starts = (0..8).map(|i| nodes[i % 2].post(path, &body));
    let answers = futures::future::join_all(starts).await;
    let won: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(
        won.len(),
        1,
        "exactly one start wins across nodes: {answers:?}"
    );
    let id = won[0]["syncId"].as_str().unwrap().to_owned();
    for (status, body) in answers.iter().filter(|(s, _)| *s != 201) {
        assert_eq!((*status, error_code(body)), (409, "sync_in_progress"));
        assert_eq!(body["error"]["syncId"], id.as_str());
    }
    let (status, _) = nodes[1]
        .post(&format!("{path}/{id}/progress"), &json!({"done": 3}))
        .await;
    assert_eq!(status, 200);
    let (status, cancelled) = nodes[0]
        .post(&format!("{path}/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("cancelled"))
    );
    let (status, refused) = nodes[1]
        .post(&format!("{path}/{id}/progress"), &json!({"done": 4}))
        .await;
    assert_eq!((status, error_code(&refused)), (409, "sync_cancelled"));
    for node in &nodes.nodes {
        let (_, snapshot) = node
            .get("/v1/accounts/acc/status", Some(common::API_KEY))
            .await;
        assert_eq!(snapshot["jobs"][&id]["status"], "cancelled");
        assert_eq!(snapshot["jobs"][&id]["progress"]["done"], 3);
    }
    nodes.stop().await;
}

//! The node figures of cluster mode against a real `redis-server` of the
//! test's own, stopped and started: `/v1/stats` `node` says whether Redis
//! answers and how fast, and picks up again without a restart.

mod common;
mod redis_support;

use common::{TestServer, WAIT, wait_for};
use redis_support::OwnRedis;

async fn node(server: &TestServer) -> serde_json::Value {
    server.stats().await["node"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_show_redis_lost_and_back_with_its_round_trip() {
    let mut redis = OwnRedis::start();
    let url = redis.url();
    let server = TestServer::start_with(|config| config.redis_url = Some(url)).await;
    wait_for("a measured round trip", WAIT, || async {
        let node = node(&server).await;
        node["redisReachable"] == true
            && node["redisRoundTripMs"]
                .as_f64()
                .is_some_and(|ms| ms >= 0.0)
    })
    .await;
    assert_eq!(node(&server).await["store"], "redis");

    redis.stop();
    wait_for("Redis reported unreachable", WAIT, || async {
        let node = node(&server).await;
        node["redisReachable"] == false && node["redisRoundTripMs"].is_null()
    })
    .await;
    let metrics = reqwest::get(format!("{}/metrics", server.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(metrics.contains("statushub_redis_up 0"), "{metrics}");

    redis.restart();
    wait_for("Redis reported reachable again", WAIT, || async {
        node(&server).await["redisReachable"] == true
    })
    .await;
    server.stop().await;
}

//! The OpenAPI document cannot drift: every route of the router is in it and
//! every operation in it is routed, the committed `docs/openapi.json` is what
//! the binary serves, and every error status is documented with the error
//! shape. (`scripts/api-fuzz.sh` checks the live answers against it.)

mod common;

use common::{API_KEY, TestServer};
use serde_json::Value;
use std::{collections::BTreeSet, path::Path};

const COMMITTED: &str = "docs/openapi.json";
const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

async fn served(server: &TestServer) -> String {
    let response = server
        .http
        .get(format!("{}/openapi.json", server.url))
        .send()
        .await
        .expect("GET /openapi.json");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "served as JSON"
    );
    response.text().await.expect("body")
}

/// `(method, path)` of every operation in the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| (m.to_string(), path.clone()))
        })
        .collect()
}

/// `(method, path)` of every `.route("…", get(…).post(…))` in the sources.
fn routed() -> BTreeSet<(String, String)> {
    let route = regex::Regex::new(r#"\.route\(\s*"([^"]+)""#).expect("regex");
    let method = regex::Regex::new(r"(?:^|[\s.(])(get|post|put|delete|patch)\(").expect("regex");
    let mut found = BTreeSet::new();
    let mut files = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read src") {
                files.push(entry.expect("dir entry").path());
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read source");
        for capture in route.captures_iter(&text) {
            let whole = capture.get(0).expect("match");
            // The rest of the `.route(` call: up to its closing parenthesis.
            let rest = &text[whole.end()..];
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(rest.len(), |(i, _)| i);
            for m in method.captures_iter(&rest[..end]) {
                found.insert((m[1].to_string(), capture[1].to_string()));
            }
        }
    }
    found
}

#[tokio::test]
async fn every_route_is_documented_and_every_operation_routed() {
    let server = TestServer::start().await;
    let doc: Value = serde_json::from_str(&served(&server).await).expect("JSON");
    let documented = documented(&doc);
    let routed = routed();
    assert!(
        routed.len() >= 15,
        "the source scan found too few routes: {routed:?}"
    );
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the OpenAPI document (src/openapi/paths.rs): {undocumented:?}"
    );
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        unrouted.is_empty(),
        "documented operations with no route: {unrouted:?}"
    );

    // And the live router answers each one (not the fallback's 404 / 405).
    for (method, path) in &documented {
        let concrete = path
            .replace("{account}", "acme")
            .replace("{id}", "api-health")
            .replace("{name}", "app.js");
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let response = server
            .http
            .request(method.clone(), format!("{}{concrete}", server.url))
            .bearer_auth(API_KEY)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        // Drop the response unread: `/stream` never ends.
        let fallback = if status == 404 || status == 405 {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            matches!(body["error"]["code"].as_str(), Some("method_not_allowed"))
                || body["error"]["message"] == "no such endpoint"
        } else {
            false
        };
        assert!(!fallback, "{method} {concrete} is not routed ({status})");
    }
    server.stop().await;
}

#[tokio::test]
async fn committed_document_is_what_the_binary_serves() {
    let server = TestServer::start().await;
    let served = served(&server).await;
    server.stop().await;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED);
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &served).expect("write docs/openapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == served,
        "{COMMITTED} differs from what the hub serves at /openapi.json; \
         regenerate it with `UPDATE_OPENAPI=1 cargo test --test openapi` and commit it"
    );
}

#[test]
fn every_error_status_has_the_error_shape() {
    let doc: Value =
        serde_json::from_str(&statushub::openapi::document_json()).expect("the document is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    assert_eq!(schemes["apiKey"]["scheme"], "bearer");
    assert_eq!(schemes["clientToken"]["bearerFormat"], "JWT");
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], serde_json::json!(["error"]));
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let responses = operation["responses"].as_object().expect("responses");
            for (status, response) in responses {
                if !status.starts_with('4') && !status.starts_with('5') {
                    continue;
                }
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status} lacks the error shape"
                );
            }
            if operation.get("requestBody").is_some() {
                for status in ["400", "401", "413", "415"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} takes a body but does not list {status}"
                    );
                }
            }
        }
    }
}

//! The live status page is served from the binary alone: `GET /` and the
//! assets it references, with the right types, validators and headers.

mod common;

use common::TestServer;
use reqwest::{StatusCode, header};

async fn get(server: &TestServer, path: &str) -> reqwest::Response {
    server
        .http
        .get(format!("{}{path}", server.url))
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn the_page_and_every_asset_it_references_are_served() {
    let server = TestServer::start().await;
    let page = get(&server, "/?token=anything").await;
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
    let csp = headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("ascii");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let html = page.text().await.expect("body");

    let assets: Vec<&str> = html
        .split('"')
        .filter(|part| part.starts_with("assets/"))
        .collect();
    assert_eq!(
        assets,
        [
            "assets/page.css",
            "assets/statushub-client.js",
            "assets/app.js"
        ]
    );
    for asset in assets {
        let response = get(&server, &format!("/{asset}")).await;
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        let expected = if asset.ends_with(".css") {
            "text/css; charset=utf-8"
        } else {
            "text/javascript; charset=utf-8"
        };
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            expected,
            "{asset}"
        );
        assert_eq!(
            response.headers()[header::X_CONTENT_TYPE_OPTIONS],
            "nosniff"
        );
        let on_disk = std::fs::read_to_string(format!(
            "{}/web-client/page/{}",
            env!("CARGO_MANIFEST_DIR"),
            &asset["assets/".len()..]
        ))
        .expect("asset on disk");
        assert_eq!(
            response.text().await.expect("body"),
            on_disk,
            "{asset} differs from the file"
        );
    }
    // Nothing on the page comes from elsewhere.
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "external reference in the page"
    );
    server.stop().await;
}

#[tokio::test]
async fn assets_revalidate_with_their_etag() {
    let server = TestServer::start().await;
    let first = get(&server, "/assets/statushub-client.js").await;
    assert_eq!(first.headers()[header::CACHE_CONTROL], "no-cache");
    let etag = first.headers()[header::ETAG]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    for validator in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".into(),
    ] {
        let again = server
            .http
            .get(format!("{}/assets/statushub-client.js", server.url))
            .header(header::IF_NONE_MATCH, &validator)
            .send()
            .await
            .expect("request");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{validator}");
        assert_eq!(again.headers()[header::ETAG], etag.as_str());
        assert!(again.text().await.expect("body").is_empty());
    }
    let stale = server
        .http
        .get(format!("{}/", server.url))
        .header(header::IF_NONE_MATCH, "\"stale\"")
        .send()
        .await
        .expect("request");
    assert_eq!(stale.status(), StatusCode::OK);
    assert_ne!(
        stale.headers()[header::ETAG],
        etag.as_str(),
        "page and bundle share a validator"
    );
    server.stop().await;
}

#[tokio::test]
async fn unknown_assets_are_404_in_the_contract_shape() {
    let server = TestServer::start().await;
    for path in ["/assets/nope.js", "/assets/..%2FCargo.toml", "/assets/"] {
        let (status, body) = server.get(path, None).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(common::error_code(&body), "not_found", "{path}");
    }
    server.stop().await;
}

//! The live status page at `GET /`, served from files compiled into the
//! binary, so a bare `statushub serve` shows it without npm or a static
//! directory.
//!
//! The page is `web-client/page/`: plain HTML, CSS and a script, plus the
//! SDK bundle `statushub-client.js` that `npm run build:page` generates and
//! commits (`npm run check:page` fails when it is stale). Responses carry an
//! `ETag` and `Cache-Control: no-cache`: browsers revalidate on every load and
//! get a `304` until the binary serves different bytes, so an upgraded hub
//! never pairs a new page with an old cached bundle.

use crate::api::ApiError;
use axum::{
    Router,
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("../web-client/page/index.html"),
};

/// Everything under `/assets/`.
const ASSETS: [Asset; 3] = [
    Asset {
        name: "page.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../web-client/page/page.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../web-client/page/app.js"),
    },
    Asset {
        name: "statushub-client.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../web-client/page/statushub-client.js"),
    },
];

/// Only the hub's own files run on the page, and it talks only to the hub:
/// a token in the page is worth stealing. `connect-src 'self'` covers the
/// same-origin WebSocket.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// Strong validators, computed once per process from the embedded bytes.
static ETAGS: LazyLock<Vec<(&'static str, HeaderValue)>> = LazyLock::new(|| {
    std::iter::once(&INDEX)
        .chain(ASSETS.iter())
        .map(|asset| {
            let digest = hex::encode(Sha256::digest(asset.body.as_bytes()));
            let etag = HeaderValue::from_str(&format!("\"{}\"", &digest[..32]))
                .expect("hex is a valid header value");
            (asset.name, etag)
        })
        .collect()
});

/// `GET /` and `GET /assets/{name}`; merged into the API router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{name}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    let mut response = serve(&INDEX, &headers);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    // `/?token=…` must not travel on in a Referer header.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => serve(asset, &headers),
        None => ApiError::not_found("no such asset").into_response(),
    }
}

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let etag = ETAGS
        .iter()
        .find(|(name, _)| *name == asset.name)
        .map(|(_, etag)| etag.clone())
        .expect("every asset has an etag");
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::ETAG, etag.clone()),
    ];
    if matches_etag(request, &etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, asset.body).into_response()
}

/// `If-None-Match` holds this validator (or `*`); weak forms compare equal
/// for a GET, as RFC 9110 says.
fn matches_etag(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else {
        return false;
    };
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

//! The OpenAPI 3.1 document of the whole HTTP surface, served at
//! `GET /openapi.json` and committed as `docs/openapi.json`.
//!
//! Bodies are described by the handlers' own types (each derives
//! `utoipa::ToSchema` beside its `serde` derives), so a changed field changes
//! the document. The operations are declared in [`paths`], one per route and
//! method; `tests/openapi.rs` fails when a route of the router is missing
//! from it (or the other way round) and when the committed copy differs from
//! what the binary serves, and `scripts/api-fuzz.sh` (schemathesis) checks
//! the live hub's answers against it.

mod history;
mod paths;
mod schemas;
mod syncs;
mod webhooks;

use crate::{
    api::bodies::{ErrorBody, EventsPage, MonitorList, ServiceStatus, Unchanged},
    api::ops::Stats,
    event::{CredentialTest, CustomEvent, Event, PhoneTest},
    heartbeat::{Current, Health, MonitorSpec, MonitorView, Source, StatusOverride},
    store::{Receipt, Snapshot},
};
use axum::{
    Router,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use std::sync::LazyLock;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
};

/// The security scheme names the operations refer to.
pub const API_KEY: &str = "apiKey";
pub const CLIENT_TOKEN: &str = "clientToken";
pub const QUERY_TOKEN: &str = "queryToken";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "statushub",
        description = "Realtime status broadcast hub: backends publish sequenced, persisted \
per-account events over this HTTP API; browsers receive them over Socket.IO (`/socket.io/`, \
not described here: Engine.IO is not an HTTP API), raw WebSocket (`/ws`) or Server-Sent Events. \
Every error answer is `{\"error\": {\"code\", \"message\"}}`.",
        license(name = "MIT")
    ),
    paths(
        paths::phone_tests,
        paths::credential_tests,
        paths::publish_event,
        paths::events_since,
        paths::status,
        paths::presence,
        paths::stream,
        paths::monitor_list,
        paths::monitor_get,
        paths::monitor_put,
        paths::monitor_delete,
        paths::monitor_status,
        history::monitor_history,
        history::monitor_uptime,
        history::monitor_stats,
        syncs::sync_start,
        syncs::sync_list,
        syncs::sync_stats,
        syncs::sync_get,
        syncs::sync_progress,
        syncs::sync_cancel,
        webhooks::webhook_list,
        webhooks::webhook_get,
        webhooks::webhook_put,
        webhooks::webhook_delete,
        webhooks::webhook_deliveries,
        webhooks::webhook_retry,
        webhooks::webhook_test,
        webhooks::account_webhook_list,
        webhooks::account_webhook_get,
        webhooks::account_webhook_put,
        webhooks::account_webhook_delete,
        webhooks::account_webhook_deliveries,
        webhooks::account_webhook_retry,
        webhooks::account_webhook_test,
        webhooks::webhook_rotate,
        webhooks::account_webhook_rotate,
        paths::websocket,
        paths::healthz,
        paths::readyz,
        paths::metrics,
        paths::stats,
        paths::page,
        paths::asset,
        paths::openapi_json,
    ),
    components(schemas(
        ErrorBody,
        Receipt,
        Event,
        EventsPage,
        Snapshot,
        PhoneTest,
        CredentialTest,
        CustomEvent,
        MonitorSpec,
        MonitorView,
        MonitorList,
        StatusOverride,
        Unchanged,
        Current,
        Health,
        Source,
        ServiceStatus,
        Stats,
        crate::uptime::MonitorHistoryPage,
        crate::uptime::MonitorUptime,
        crate::uptime::MonitorStats,
        crate::jobs::JobView,
        crate::jobs::JobPage,
        crate::jobs::JobStats,
        crate::jobs::StartRequest,
        crate::jobs::ProgressReport,
        crate::api::presence::PresenceList,
        crate::store::PresenceEntry,
        crate::webhooks::EndpointSpec,
        crate::webhooks::EndpointView,
        crate::webhooks::EndpointList,
        crate::webhooks::DeliveryView,
        crate::webhooks::DeliveryList,
        crate::store::DeliveryStatus,
        crate::api::webhooks::NotifiedReceipt,
    )),
    modifiers(&Security),
    tags(
        (name = "publish", description = "Backends publish events (API key)"),
        (name = "read", description = "An account's state and history (API key or the account's token)"),
        (name = "monitors", description = "Heartbeat monitors (docs/MONITORS.md)"),
        (name = "syncs", description = "Tracked sync jobs (docs/JOBS.md)"),
        (name = "webhooks", description = "Outbound webhooks (docs/WEBHOOKS.md)"),
        (name = "realtime", description = "Live transports"),
        (name = "operations", description = "For operators; no credentials"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <api key>`: one of the hub's `--api-keys`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            CLIENT_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "`Authorization: Bearer <token>`: an HS256 client token (claims `sub`, \
                         `account_id`, `exp`, optional `role: \"admin\"`), as `statushub token` mints.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            QUERY_TOKEN,
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "A client token (or API key) in `?token=`, for clients that cannot set headers.",
            ))),
        );
    }
}

/// The document as the binary serves it.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The document as pretty JSON with a final newline: the exact bytes of
/// `GET /openapi.json` and of the committed `docs/openapi.json`.
pub fn document_json() -> String {
    let mut text = document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    text.push('\n');
    text
}

static SERVED: LazyLock<String> = LazyLock::new(document_json);

/// `GET /openapi.json`, no credentials; merged into the server's router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/openapi.json", get(serve))
}

async fn serve() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        SERVED.as_str(),
    )
        .into_response()
}

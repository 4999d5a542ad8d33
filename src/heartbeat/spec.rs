//! A monitor's settings: the body of `PUT /v1/accounts/{account}/monitors/{id}`,
//! validated once so the scheduler and the probe can rely on every field.
//!
//! The same type is what the store keeps (as JSON), so what a monitor was
//! registered with is exactly what it resumes with after a restart.

use super::machine::Policy;
use reqwest::{Method, Url, header::HeaderName};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::{collections::BTreeMap, time::Duration};

pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(120);
pub const MAX_RETRIES: u32 = 20;
pub const MAX_BACKOFF_MULTIPLIER: f64 = 10.0;
const MAX_URL_BYTES: usize = 2048;
const MAX_HEADERS: usize = 32;
const MAX_HEADER_VALUE_BYTES: usize = 4096;
const MAX_STATUS_RULES: usize = 16;
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
/// Headers the client computes itself; a monitor setting them would corrupt the request.
const FORBIDDEN_HEADERS: [&str; 5] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"url": "http://127.0.0.1:9/health", "intervalMs": 30000,
    "timeoutMs": 5000, "maxRetries": 2, "backoffMultiplier": 2.0, "expectStatus": [204, "200-299"]}))]
pub struct MonitorSpec {
    /// `http://` or `https://`.
    #[schema(format = "uri", max_length = 2048)]
    pub url: String,
    /// At least the hub's `--min-monitor-interval-ms` (default 1000), at most a day.
    #[schema(minimum = 10, maximum = 86_400_000)]
    pub interval_ms: u64,
    /// Whole-check deadline (connect, TLS, response headers); below `intervalMs`.
    #[schema(minimum = 1, maximum = 120_000)]
    pub timeout_ms: u64,
    /// Failed checks retried before the monitor turns unhealthy.
    #[schema(maximum = 20)]
    pub max_retries: u32,
    /// Each consecutive failure multiplies the wait by this (1 = no backoff).
    #[schema(minimum = 1, maximum = 10)]
    pub backoff_multiplier: f64,
    /// Any case; shown upper case.
    #[serde(default = "default_method")]
    #[schema(
        pattern = "^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|get|head|post|put|patch|delete|options)$"
    )]
    pub method: String,
    /// Statuses that count as a pass (default 200–399).
    #[serde(default = "default_expect")]
    pub expect_status: Vec<StatusRange>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Off by default: a redirect is itself the answer (a 3xx passes the default `expectStatus`).
    #[serde(default)]
    pub follow_redirects: bool,
}

fn default_method() -> String {
    "GET".into()
}

fn default_expect() -> Vec<StatusRange> {
    vec![StatusRange { lo: 200, hi: 399 }]
}

/// Bounds that depend on how the server runs.
#[derive(Clone, Copy, Debug)]
pub struct SpecLimits {
    pub min_interval: Duration,
}

impl MonitorSpec {
    /// Checks every field and normalizes `method` to upper case; the message
    /// names the field at fault.
    pub fn validated(mut self, limits: &SpecLimits) -> Result<MonitorSpec, String> {
        self.check_url()?;
        let min = limits.min_interval.as_millis() as u64;
        let max = MAX_INTERVAL.as_millis() as u64;
        if !(min..=max).contains(&self.interval_ms) {
            return Err(format!("intervalMs must be between {min} and {max}"));
        }
        let max_timeout = MAX_TIMEOUT.as_millis() as u64;
        if self.timeout_ms == 0
            || self.timeout_ms >= self.interval_ms
            || self.timeout_ms > max_timeout
        {
            return Err(format!(
                "timeoutMs must be at least 1, below intervalMs and at most {max_timeout}"
            ));
        }
        if self.max_retries > MAX_RETRIES {
            return Err(format!("maxRetries must be between 0 and {MAX_RETRIES}"));
        }
        if !(1.0..=MAX_BACKOFF_MULTIPLIER).contains(&self.backoff_multiplier) {
            return Err(format!(
                "backoffMultiplier must be between 1 and {MAX_BACKOFF_MULTIPLIER}"
            ));
        }
        self.method = self.method.to_ascii_uppercase();
        if !METHODS.contains(&self.method.as_str()) {
            return Err(format!("method must be one of {}", METHODS.join(", ")));
        }
        if self.expect_status.is_empty() || self.expect_status.len() > MAX_STATUS_RULES {
            return Err(format!(
                "expectStatus must list 1 to {MAX_STATUS_RULES} codes or ranges"
            ));
        }
        self.check_headers()?;
        Ok(self)
    }

    fn check_url(&self) -> Result<(), String> {
        if self.url.len() > MAX_URL_BYTES {
            return Err(format!("url is longer than {MAX_URL_BYTES} bytes"));
        }
        let url = Url::parse(&self.url).map_err(|e| format!("url is not a valid URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "url scheme must be http or https, not {:?}",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("url has no host".into());
        }
        Ok(())
    }

    fn check_headers(&self) -> Result<(), String> {
        if self.headers.len() > MAX_HEADERS {
            return Err(format!("headers may hold at most {MAX_HEADERS} entries"));
        }
        for (name, value) in &self.headers {
            let parsed = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("headers: {name:?} is not a valid header name"))?;
            if FORBIDDEN_HEADERS.contains(&parsed.as_str()) {
                return Err(format!("headers: {name:?} is set by the client itself"));
            }
            // Stricter than `HeaderValue` (which passes tabs and bytes past
            // ASCII, such as `é`, that servers decode differently).
            let visible = value.bytes().all(|b| (b' '..=b'~').contains(&b));
            if value.len() > MAX_HEADER_VALUE_BYTES || !visible {
                return Err(format!(
                    "headers: the value of {name:?} must be visible ASCII and spaces, at most {MAX_HEADER_VALUE_BYTES} bytes"
                ));
            }
        }
        Ok(())
    }

    pub fn policy(&self) -> Policy {
        Policy {
            interval: Duration::from_millis(self.interval_ms),
            max_retries: self.max_retries,
            backoff_multiplier: self.backoff_multiplier,
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The method, already validated.
    pub fn http_method(&self) -> Method {
        Method::from_bytes(self.method.as_bytes()).unwrap_or(Method::GET)
    }

    pub fn expects(&self, status: u16) -> bool {
        self.expect_status
            .iter()
            .any(|r| (r.lo..=r.hi).contains(&status))
    }
}

/// One `expectStatus` rule: a code (`204`) or an inclusive range (`"200-299"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusRange {
    pub lo: u16,
    pub hi: u16,
}

/// In the OpenAPI document: a status code, or a `"lo-hi"` range.
impl utoipa::PartialSchema for StatusRange {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(100))
                    .maximum(Some(599)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^[1-5][0-9]{2}-[1-5][0-9]{2}$")),
            )
            .into()
    }
}

impl utoipa::ToSchema for StatusRange {}

impl StatusRange {
    fn new(lo: u16, hi: u16) -> Result<StatusRange, String> {
        if !(100..=599).contains(&lo) || !(100..=599).contains(&hi) || lo > hi {
            return Err(format!(
                "expectStatus: {lo}-{hi} is not a range of HTTP statuses (100 to 599, low to high)"
            ));
        }
        Ok(StatusRange { lo, hi })
    }
}

impl Serialize for StatusRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.lo == self.hi {
            s.serialize_u16(self.lo)
        } else {
            s.serialize_str(&format!("{}-{}", self.lo, self.hi))
        }
    }
}

impl<'de> Deserialize<'de> for StatusRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Code(u16),
            Range(String),
        }
        let parsed = match Raw::deserialize(d)? {
            Raw::Code(code) => StatusRange::new(code, code),
            Raw::Range(text) => {
                let bounds = text
                    .split_once('-')
                    .map(|(lo, hi)| (lo.trim().parse(), hi.trim().parse()));
                match bounds {
                    Some((Ok(lo), Ok(hi))) => StatusRange::new(lo, hi),
                    _ => Err(format!(
                        "expectStatus: {text:?} is neither a status code nor a range like \"200-299\""
                    )),
                }
            }
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const LIMITS: SpecLimits = SpecLimits {
        min_interval: Duration::from_secs(1),
    };

    fn parse(body: Value) -> Result<MonitorSpec, String> {
        serde_json::from_value::<MonitorSpec>(body)
            .map_err(|e| e.to_string())?
            .validated(&LIMITS)
    }

    fn base() -> Value {
        json!({"url": "https://api.example.com/health", "intervalMs": 30000, "timeoutMs": 5000,
               "maxRetries": 2, "backoffMultiplier": 2.0})
    }

    fn with(field: &str, value: Value) -> Value {
        let mut body = base();
        body[field] = value;
        body
    }

    #[test]
    fn defaults_and_round_trip() {
        let spec = parse(base()).unwrap();
        assert_eq!(spec.method, "GET");
        assert!(spec.expects(200) && spec.expects(302) && !spec.expects(404) && !spec.expects(199));
        assert!(!spec.follow_redirects && spec.headers.is_empty());
        let stored = serde_json::to_value(&spec).unwrap();
        assert_eq!(stored["expectStatus"], json!(["200-399"]));
        assert_eq!(serde_json::from_value::<MonitorSpec>(stored).unwrap(), spec);
    }

    #[test]
    fn expect_status_takes_codes_and_ranges() {
        let spec = parse(with("expectStatus", json!([204, "400-404"]))).unwrap();
        assert!(spec.expects(204) && spec.expects(401) && !spec.expects(200));
        assert_eq!(
            serde_json::to_value(&spec).unwrap()["expectStatus"],
            json!([204, "400-404"])
        );
        for bad in [
            json!([]),
            json!([99]),
            json!(["300-200"]),
            json!(["2xx"]),
            json!([600]),
        ] {
            assert!(
                parse(with("expectStatus", bad.clone())).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn rejects_what_it_cannot_check() {
        let cases = [
            with("url", json!("ftp://example.com/")),
            with("url", json!("not a url")),
            with("url", json!("file:///etc/passwd")),
            with("intervalMs", json!(999)),
            with("intervalMs", json!(86_400_001u64)),
            with("timeoutMs", json!(30000)),
            with("timeoutMs", json!(0)),
            with("maxRetries", json!(21)),
            with("maxRetries", json!(-1)),
            with("backoffMultiplier", json!(0.5)),
            with("backoffMultiplier", json!(11)),
            with("method", json!("TRACE")),
            with("headers", json!({"bad name": "x"})),
            with("headers", json!({"Content-Length": "1"})),
            with("headers", json!({"x-a": "line\nbreak"})),
            with("headers", json!({"x-a": "café"})),
            with("headers", json!({"x-a": "tab\there"})),
            with("headers", json!({"x-a": "del\u{7f}"})),
            with("unknown", json!(1)),
        ];
        for body in cases {
            assert!(parse(body.clone()).is_err(), "{body} accepted");
        }
        let spec = parse(with("method", json!("head"))).unwrap();
        assert_eq!(spec.http_method(), Method::HEAD);
        let lower = SpecLimits {
            min_interval: Duration::from_millis(20),
        };
        let mut fast = with("intervalMs", json!(50));
        fast["timeoutMs"] = json!(20);
        let fast: MonitorSpec = serde_json::from_value(fast).unwrap();
        assert!(fast.clone().validated(&LIMITS).is_err());
        assert!(fast.validated(&lower).is_ok());
    }
}

//! Socket.IO CONNECT auth payloads (`{token, since}`), the token verified as
//! every transport verifies client tokens.
#![no_main]

use libfuzzer_sys::fuzz_target;
use statushub::{auth::Jwt, parse};
use std::sync::LazyLock;

static JWT: LazyLock<Jwt> = LazyLock::new(|| Jwt::new("fuzz-secret"));

fuzz_target!(|data: &[u8]| {
    let _ = parse::socketio_auth(&JWT, data);
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = parse::client_token(&JWT, token);
    }
});

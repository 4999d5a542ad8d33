//! `/ws` client text frames (`auth`, `subscribe`, `ping`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A WebSocket text frame is UTF-8 (tungstenite refuses others before we see them).
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = statushub::parse::ws_client_frame(text);
    }
});

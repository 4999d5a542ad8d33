//! Query strings and resume points: `events?since=&limit=&token=`, the SSE
//! stream's `?since=&token=` and its `Last-Event-ID` header. Input: the
//! query, then (after the first NUL byte, if any) the header's bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use statushub::parse;

fuzz_target!(|data: &[u8]| {
    let (query, header) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    let _ = parse::events_query(query);
    let _ = parse::sse_resume(query, header);
});

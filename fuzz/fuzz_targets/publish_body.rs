//! Every JSON body the API parses: the first byte picks the endpoint, the
//! rest is the body (`phone-tests`, `credential-tests`, `events`, a monitor,
//! a status override).
#![no_main]

use libfuzzer_sys::fuzz_target;
use statushub::parse;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => drop(parse::phone_test(body)),
        1 => drop(parse::credential_test(body)),
        2 => {
            // Stored data must read back as JSON.
            if let Ok((_, stored)) = parse::custom_event(body) {
                serde_json_check(&stored);
            }
        }
        3 => drop(parse::monitor_spec(body)),
        _ => drop(parse::status_override(body)),
    }
});

fn serde_json_check(stored: &str) {
    assert!(
        parse::custom_event(format!("{{\"event\":\"x\",\"data\":{stored}}}").as_bytes()).is_ok(),
        "accepted data does not parse again: {stored}"
    );
}

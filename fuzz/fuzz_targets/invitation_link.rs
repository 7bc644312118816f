//! Invitation links received from other people.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tropa_e2e::Invitation;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = Invitation::from_link(s);
    }
});

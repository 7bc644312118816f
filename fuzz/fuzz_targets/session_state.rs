//! A session as stored in the client's profile (a tampered or truncated
//! record): it parses to a typed error, or to a session that serialises back
//! to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tropa_e2e::Session;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = Session::from_bytes(data) {
        let again = s.to_bytes();
        let s2 = Session::from_bytes(&again).expect("a serialised session parses");
        assert!(*s2.to_bytes() == *again);
    }
});

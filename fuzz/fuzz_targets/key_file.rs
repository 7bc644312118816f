//! The profile's key file, the one file read before any passphrase check:
//! a tampered or truncated one gives a typed error, and no stored Argon2
//! parameter can exceed the limits (so a planted file cannot make an unlock
//! take unbounded memory or time).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(params) = tropa_client::store::fuzzing::parse_key_file(data) {
        for p in params {
            assert!(p.validate().is_ok());
        }
    }
});

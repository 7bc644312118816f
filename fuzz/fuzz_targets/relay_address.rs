//! Relay addresses typed or pasted by users, and carried in invitations.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tropa_proto::RelayAddress;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(a) = s.parse::<RelayAddress>()
    {
        // Whatever parses must print back to something that parses the same.
        assert_eq!(a.to_string().parse::<RelayAddress>().ok(), Some(a));
    }
});

//! Short links typed, pasted or scanned by users (docs/protocol.md §11).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tropa_e2e::ShortLink;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(link) = s.parse::<ShortLink>()
    {
        // Only the canonical form parses (case and surrounding whitespace
        // aside), so whatever parses prints back to exactly its input...
        let printed = link.to_string();
        assert_eq!(printed, s.trim().to_ascii_uppercase());
        // ...which parses to the same link.
        assert_eq!(printed.parse::<ShortLink>().ok(), Some(link));
    }
});

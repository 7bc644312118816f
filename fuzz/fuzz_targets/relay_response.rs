//! What a client decodes from a relay (which may be hostile).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tropa_proto::framing::decode;
use tropa_proto::relay::Response;

fuzz_target!(|data: &[u8]| {
    let _ = decode::<Response>(data);
});

//! What the relay decodes from every stream: a frame, a request, and the
//! recipient command inside a signed command.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use tropa_proto::framing::{FrameDecoder, decode};
use tropa_proto::relay::{RecipientCommand, Request, request};

fuzz_target!(|data: &[u8]| {
    if let Ok((req, _)) = decode::<Request>(data)
        && let Some(request::Command::Signed(s)) = req.command
    {
        let _ = RecipientCommand::decode(s.command.as_ref());
    }
    let mut dec = FrameDecoder::new();
    for chunk in data.chunks(7) {
        if dec.push(chunk).is_err() {
            return;
        }
        while let Ok(Some(_)) = dec.next_frame::<Request>() {}
    }
});

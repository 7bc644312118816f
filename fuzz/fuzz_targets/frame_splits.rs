//! The incremental frame decoder fed a byte stream in pieces the fuzzer
//! chooses: it must give exactly the frames the one-shot decoder gives,
//! whatever the split, and a typed error (never a panic, never an
//! allocation beyond the frame limit) on anything else.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use tropa_proto::framing::{FrameDecoder, decode};
use tropa_proto::relay::{Request, Response};

#[derive(Arbitrary, Debug)]
struct Input {
    response: bool,
    cuts: Vec<u16>,
    stream: Vec<u8>,
}

/// Frames decoded one-shot, front to back, until the first error.
fn whole<M: prost::Message + Default + PartialEq>(mut buf: &[u8]) -> Vec<M> {
    let mut out = Vec::new();
    while let Ok((m, used)) = decode::<M>(buf) {
        out.push(m);
        buf = &buf[used..];
    }
    out
}

fn pieces<M: prost::Message + Default + PartialEq>(input: &Input) -> Vec<M> {
    let mut dec = FrameDecoder::new();
    let mut out = Vec::new();
    let mut rest = input.stream.as_slice();
    let mut cuts = input.cuts.iter().copied().cycle();
    while !rest.is_empty() {
        let n = usize::from(cuts.next().unwrap_or(u16::MAX)).clamp(1, rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        if dec.push(piece).is_err() {
            return out;
        }
        loop {
            match dec.next_frame::<M>() {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                Err(_) => return out,
            }
        }
    }
    out
}

fuzz_target!(|input: Input| {
    if input.response {
        let a = pieces::<Response>(&input);
        let b = whole::<Response>(&input.stream);
        assert!(a == b, "the split changed the frames");
    } else {
        let a = pieces::<Request>(&input);
        let b = whole::<Request>(&input.stream);
        assert!(a == b, "the split changed the frames");
    }
});

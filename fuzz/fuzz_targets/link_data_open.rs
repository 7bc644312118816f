//! Link data that a (hostile) relay hands back for a short link
//! (docs/protocol.md §11), opened with the two links of the test vectors
//! (`client/e2e/testdata/links.txt`).
//!
//! Input: a mode byte, then its payload. Bit 2 of the mode picks the link
//! (invite or address); the low two bits pick what the payload is:
//! - `0`, `3`: link data as received. Only the genuine data may open.
//! - `1`: a message sealed under the link's own key, so the fuzzer reaches
//!   the checks behind the AEAD (padding, the invitation's decoding, the
//!   relay agreement). What opens names the link's relay and survives
//!   sealing and opening again.
//! - `2`: a list of (u16 position, xor) flips of the genuine data. A
//!   changed byte never opens.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use tropa_e2e::fuzzing::seal_link_message;
use tropa_e2e::{LINK_DATA_SIZE, LinkDataError, ShortLink, open_link_data, seal_link_data};

const VECTORS: &str = include_str!("../../client/e2e/testdata/links.txt");

struct Fixture {
    links: Vec<ShortLink>,
    data: Vec<Vec<u8>>,
}

fn values(key: &str) -> Vec<&'static str> {
    VECTORS
        .lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix(" = "))
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let links: Vec<ShortLink> = values("link")[..2]
            .iter()
            .map(|l| l.parse().expect("vector link"))
            .collect();
        let data: Vec<Vec<u8>> = values("link_data")[..2].iter().map(|d| unhex(d)).collect();
        for (l, d) in links.iter().zip(&data) {
            open_link_data(l, d).expect("the vectors open");
        }
        Fixture { links, data }
    })
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, payload)) = input.split_first() else {
        return;
    };
    let f = fixture();
    let which = usize::from((mode >> 2) & 1);
    let (link, genuine) = (&f.links[which], &f.data[which]);
    match mode & 3 {
        1 => {
            let mut rng = StdRng::seed_from_u64(u64::from(mode));
            let Ok(data) = seal_link_message(&mut rng, link.secret(), link.kind(), payload) else {
                return;
            };
            match open_link_data(link, &data) {
                Ok(inv) => {
                    assert!(link.matches_relay(inv.relay()));
                    let again = seal_link_data(&mut rng, link.secret(), link.kind(), &inv)
                        .expect("an opened invitation fits again");
                    assert_eq!(open_link_data(link, &again).ok(), Some(inv));
                }
                Err(e) => assert!(
                    matches!(
                        e,
                        LinkDataError::Malformed
                            | LinkDataError::BadInvitation(_)
                            | LinkDataError::RelayMismatch
                    ),
                    "{e:?}"
                ),
            }
        }
        2 => {
            let mut data = genuine.clone();
            for flip in payload.chunks_exact(3) {
                let pos = usize::from(u16::from_be_bytes([flip[0], flip[1]])) % LINK_DATA_SIZE;
                data[pos] ^= flip[2];
            }
            let res = open_link_data(link, &data);
            if data == *genuine {
                assert!(res.is_ok());
            } else {
                assert_eq!(res.err(), Some(LinkDataError::Undecryptable));
            }
        }
        _ => {
            if open_link_data(link, payload).is_ok() {
                assert_eq!(payload, genuine.as_slice(), "only the genuine data opens");
            }
        }
    }
});

//! Short links: the text codec (canonical, case-insensitive, one error per
//! malformed case), the QR and length budget, and link data (round trip,
//! tampering, wrong kind, wrong secret, relay agreement).

use proptest::prelude::*;
use qrcode::{EcLevel, QrCode, Version};
use tropa_proto::{Fingerprint, Host};

use super::*;
use crate::primitives::seal_in_place;
use crate::test_rng::TestRng;
use crate::tests::{NOW, TTL};
use crate::{Identity, InviteParams, PendingInvitation};

fn fingerprint() -> Fingerprint {
    Fingerprint::of_spki(b"tropa short link test relay")
}

fn relay_at(host: &str, port: u16) -> RelayAddress {
    format!("tropa://{}@{host}:{port}", fingerprint())
        .parse()
        .unwrap()
}

fn invitation_on(rng: &mut TestRng, relay: RelayAddress) -> Invitation {
    let identity = Identity::generate(rng);
    PendingInvitation::create(
        rng,
        &identity,
        InviteParams {
            relay,
            sender_id: vec![7; 24],
            reply_sender_auth: [8; 32],
            now: NOW,
            ttl_secs: TTL,
        },
    )
    .unwrap()
    .1
}

fn link(kind: LinkKind, host: &str, port: u16, secret: u8) -> ShortLink {
    ShortLink::new(
        kind,
        &relay_at(host, port),
        LinkSecret::from_bytes([secret; 16]),
    )
}

/// RFC 4648 §10 base32 vectors, unpadded: the encoding the links use.
#[test]
fn base32_is_rfc4648_without_padding() {
    for (raw, b32) in [
        ("", ""),
        ("f", "MY"),
        ("fo", "MZXQ"),
        ("foo", "MZXW6"),
        ("foob", "MZXW6YQ"),
        ("fooba", "MZXW6YTB"),
        ("foobar", "MZXW6YTBOI"),
    ] {
        assert_eq!(BASE32_NOPAD.encode(raw.as_bytes()), b32);
        assert_eq!(BASE32_NOPAD.decode(b32.as_bytes()).unwrap(), raw.as_bytes());
    }
}

#[test]
fn round_trips_every_host_kind_and_ignores_case_and_whitespace() {
    for (kind, host) in [
        (LinkKind::Invite, "relay.example.org"),
        (LinkKind::Address, "203.0.113.7"),
        (LinkKind::Invite, "[2001:db8::1]"),
        (LinkKind::Address, "[::1]"),
        (LinkKind::Invite, "localhost"),
    ] {
        let l = link(kind, host, 4433, 0x5c);
        let text = l.to_string();
        assert_eq!(text, text.to_ascii_uppercase(), "printed upper case");
        assert!(text.starts_with(&format!("TROPA:{}/", kind.letter())));
        assert!(ShortLink::is_short_link(&text));
        assert_eq!(text.parse::<ShortLink>().unwrap(), l);
        let messy = format!("  \t{}\n", text.to_ascii_lowercase());
        assert_eq!(messy.parse::<ShortLink>().unwrap(), l, "{messy}");
        assert_eq!(l.port(), 4433);
        assert_eq!(l.host_port(), format!("{host}:4433"));
        assert!(l.matches_relay(&relay_at(host, 4433)));
        assert!(!l.matches_relay(&relay_at(host, 4434)));
    }
    let named = link(LinkKind::Invite, "relay.example.org", 443, 1);
    assert_eq!(named.host(), &Host::Name("relay.example.org".into()));
    let fp = fingerprint().0;
    assert_eq!(named.fingerprint_prefix().0[..], fp[..16]);
    assert!(named.matches_fingerprint(&fingerprint()));
    let mut other = fp;
    other[15] ^= 1;
    assert!(!named.matches_fingerprint(&Fingerprint(other)));
    // Only the first 16 bytes are pinned by the link.
    other = fp;
    other[16] ^= 1;
    assert!(named.matches_fingerprint(&Fingerprint(other)));
    assert!(!ShortLink::is_short_link("tropa:invite#AAAA"));
    assert!(!ShortLink::is_short_link("TROPA:"));
}

#[test]
fn rejects_each_malformed_case() {
    let good = link(LinkKind::Invite, "relay.example", 4433, 9).to_string();
    let parts: Vec<&str> = good.split('/').collect();
    let (fp, secret) = (parts[2], parts[3]);
    let with = |hp: &str| format!("TROPA:I/{hp}/{fp}/{secret}");
    let bad_trailing = {
        // 26 characters whose last one carries non-zero unused bits.
        let mut s = fp.to_owned();
        s.pop();
        s.push('7');
        s
    };
    use ShortLinkError::*;
    let cases: Vec<(String, ShortLinkError)> = vec![
        (format!("{good}{}", "A".repeat(MAX_SHORT_LINK_LEN)), TooLong),
        ("".into(), BadScheme),
        (good.replacen("TROPA:", "TROPE:", 1), BadScheme),
        (good.replacen("TROPA:", "tropa://", 1), BadKind),
        (good.replacen(":I/", ":X/", 1), BadKind),
        (good.replacen(":I/", ":II/", 1), BadKind),
        ("tropa:invite#CAESQCsg".into(), BadKind),
        ("TROPA:I".into(), BadLayout),
        (format!("TROPA:I/RELAY.EXAMPLE:4433/{fp}"), BadLayout),
        (format!("{good}/"), BadLayout),
        (format!("{good}/X"), BadLayout),
        (with("RELAY.EXAMPLE"), BadPort),
        (with(":4433"), BadHost),
        (with("BAD_HOST:4433"), BadHost),
        (with("999.1.1.1:4433"), BadHost),
        (with("2001:DB8::1:4433"), BadHost),
        (with("[0::1]:4433"), BadHost),
        (with("[::0001]:4433"), BadHost),
        (with("RELAY.EXAMPLE:0"), BadPort),
        (with("RELAY.EXAMPLE:04433"), BadPort),
        (with("RELAY.EXAMPLE:+4433"), BadPort),
        (with("RELAY.EXAMPLE:65536"), BadPort),
        (with("RELAY.EXAMPLE:"), BadPort),
        (
            format!("TROPA:I/RELAY.EXAMPLE:4433/{}/{secret}", &fp[1..]),
            BadFingerprint,
        ),
        (
            format!("TROPA:I/RELAY.EXAMPLE:4433/{fp}A/{secret}"),
            BadFingerprint,
        ),
        (
            format!("TROPA:I/RELAY.EXAMPLE:4433/{}0/{secret}", &fp[1..]),
            BadFingerprint,
        ),
        (
            format!("TROPA:I/RELAY.EXAMPLE:4433/{bad_trailing}/{secret}"),
            BadFingerprint,
        ),
        (
            format!("TROPA:I/RELAY.EXAMPLE:4433/{fp}/{}", &secret[2..]),
            BadSecret,
        ),
        (
            format!("TROPA:I/RELAY.EXAMPLE:4433/{fp}/{}1", &secret[1..]),
            BadSecret,
        ),
        (
            format!("TROPA:I/RELAY.EXAMPLE:4433/{fp}/{bad_trailing}"),
            BadSecret,
        ),
    ];
    for (input, want) in cases {
        assert_eq!(input.parse::<ShortLink>(), Err(want), "{input}");
    }
}

#[test]
fn debug_never_shows_the_secret() {
    let l = link(LinkKind::Address, "relay.example", 4433, 0xab);
    let secret_b32 = BASE32_NOPAD.encode(l.secret().as_bytes());
    for shown in [format!("{l:?}"), format!("{:?}", l.secret())] {
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains(&secret_b32), "{shown}");
        assert!(!shown.to_lowercase().contains("abab"), "{shown}");
    }
}

/// The budget: a link to a relay with a 30-character host is at
/// most 100 characters and its QR code (alphanumeric mode, EC level M) is
/// version 5 at most, 37 modules wide.
#[test]
fn a_link_with_a_30_character_host_fits_100_characters_and_a_37_module_qr() {
    let host = "relay-number-one.example.org.a";
    assert_eq!(host.len(), 30);
    let mut rng = TestRng::new(b"qr budget");
    let mut widest = 0;
    // Random secrets (digit runs in base32 can make a code smaller, so a
    // fixed secret could flatter it), both kinds, the longest port.
    for i in 0..64 {
        let kind = if i % 2 == 0 {
            LinkKind::Invite
        } else {
            LinkKind::Address
        };
        let l = ShortLink::new(kind, &relay_at(host, 65535), LinkSecret::generate(&mut rng));
        let text = l.to_string();
        let qr = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).unwrap();
        if i == 0 {
            eprintln!(
                "short link: {} characters, QR {:?} at EC M, {} modules: {}...",
                text.len(),
                qr.version(),
                qr.width(),
                &text[..text.len() - 26]
            );
        }
        assert!(text.len() <= 100, "{} characters", text.len());
        assert!(
            matches!(qr.version(), Version::Normal(v) if v <= 5),
            "{:?}",
            qr.version()
        );
        widest = widest.max(qr.width());
        assert!(
            text.bytes()
                .all(|b| b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:".contains(&b)),
            "only QR alphanumeric characters"
        );
    }
    eprintln!("widest of 64 random links: {widest} modules");
    assert!(widest <= 37);
}

#[test]
fn link_data_round_trips_for_both_kinds() {
    let mut rng = TestRng::new(b"link data");
    let inv = invitation_on(&mut rng, relay_at("relay.example", 4433));
    for kind in [LinkKind::Invite, LinkKind::Address] {
        let l = ShortLink::for_invitation(&mut rng, kind, &inv);
        assert!(l.matches_relay(inv.relay()));
        let data = seal_link_data(&mut rng, l.secret(), kind, &inv).unwrap();
        assert_eq!(data.len(), LINK_DATA_SIZE);
        let again = seal_link_data(&mut rng, l.secret(), kind, &inv).unwrap();
        assert_ne!(data, again, "a fresh nonce every time");
        let parsed: ShortLink = l.to_string().parse().unwrap();
        assert_eq!(open_link_data(&parsed, &data).unwrap(), inv);
        assert_eq!(open_link_data(&parsed, &again).unwrap(), inv);
        assert_ne!(l.locator(), *l.secret().key(), "locator and key differ");
    }
}

#[test]
fn tampered_wrong_or_misdirected_link_data_never_opens() {
    let mut rng = TestRng::new(b"link data tamper");
    let inv = invitation_on(&mut rng, relay_at("relay.example", 4433));
    let l = ShortLink::for_invitation(&mut rng, LinkKind::Invite, &inv);
    let data = seal_link_data(&mut rng, l.secret(), LinkKind::Invite, &inv).unwrap();
    // Nonce, length prefix, invitation, padding, last padding byte, tag.
    for pos in [0, 11, 12, 13, 14, 500, 1600, 2000, 2031, 2032, 2047] {
        let mut bad = data;
        bad[pos] ^= 0x01;
        assert_eq!(
            open_link_data(&l, &bad),
            Err(LinkDataError::Undecryptable),
            "byte {pos}"
        );
    }
    assert_eq!(
        open_link_data(&l, &data[..2047]),
        Err(LinkDataError::BadSize)
    );
    assert_eq!(
        open_link_data(&l, &[data.as_slice(), &[0]].concat()),
        Err(LinkDataError::BadSize)
    );
    // Another secret (another link's data under a guessed locator).
    let other = ShortLink::new(
        LinkKind::Invite,
        inv.relay(),
        LinkSecret::generate(&mut rng),
    );
    assert_eq!(
        open_link_data(&other, &data),
        Err(LinkDataError::Undecryptable)
    );
    // The same secret under the other kind.
    let as_address = ShortLink::new(LinkKind::Address, inv.relay(), l.secret().clone());
    assert_eq!(
        open_link_data(&as_address, &data),
        Err(LinkDataError::WrongKind)
    );
    // A link naming another relay (host, port or fingerprint) than the
    // invitation inside, with the right secret.
    let mut fp_changed = relay_at("relay.example", 4433);
    fp_changed.fingerprint.0[0] ^= 1;
    for relay in [
        relay_at("other.example", 4433),
        relay_at("relay.example", 4434),
        fp_changed,
    ] {
        let misdirected = ShortLink::new(LinkKind::Invite, &relay, l.secret().clone());
        assert_eq!(
            open_link_data(&misdirected, &data),
            Err(LinkDataError::RelayMismatch)
        );
    }
    assert_eq!(open_link_data(&l, &data).unwrap(), inv);
}

/// Seals a whole 2020-byte body as link data (bypassing the length prefix).
fn seal_body(l: &ShortLink, body: &[u8]) -> Vec<u8> {
    let nonce = [3u8; NONCE_LEN];
    let mut buf = body.to_vec();
    let tag = seal_in_place(
        &l.secret().key(),
        &nonce,
        &[&link_ad(l.kind(), &l.locator())],
        &mut buf,
    );
    [&nonce[..], &buf, &tag].concat()
}

#[test]
fn authentic_but_malformed_contents_are_refused() {
    let mut rng = TestRng::new(b"link data malformed");
    let inv = invitation_on(&mut rng, relay_at("relay.example", 4433));
    let l = ShortLink::for_invitation(&mut rng, LinkKind::Address, &inv);
    let encoded = inv.to_encoded();
    let body_len = LINK_DATA_SIZE - NONCE_LEN - TAG_LEN;
    let mut body = vec![0u8; body_len];
    body[..2].copy_from_slice(&(encoded.len() as u16).to_be_bytes());
    body[2..2 + encoded.len()].copy_from_slice(&encoded);
    assert_eq!(open_link_data(&l, &seal_body(&l, &body)).unwrap(), inv);
    let mut bad = body.clone();
    bad[body_len - 1] = 1;
    assert_eq!(
        open_link_data(&l, &seal_body(&l, &bad)),
        Err(LinkDataError::Malformed),
        "non-zero padding"
    );
    let mut bad = body.clone();
    bad[..2].copy_from_slice(&(body_len as u16 - 1).to_be_bytes());
    assert_eq!(
        open_link_data(&l, &seal_body(&l, &bad)),
        Err(LinkDataError::Malformed),
        "length past the end"
    );
    let garbage = seal_plaintext(&mut rng, l.secret(), LinkKind::Address, b"\xff\xff").unwrap();
    assert_eq!(
        open_link_data(&l, &garbage),
        Err(LinkDataError::BadInvitation(LinkError::BadProtobuf))
    );
    let too_long = vec![0u8; MAX_LINK_INVITATION_LEN + 1];
    assert_eq!(
        seal_plaintext(&mut rng, l.secret(), LinkKind::Address, &too_long),
        Err(LinkDataError::InvitationTooLarge)
    );
    let fits = vec![0u8; MAX_LINK_INVITATION_LEN];
    assert!(seal_plaintext(&mut rng, l.secret(), LinkKind::Address, &fits).is_ok());
}

/// The largest invitation a parsed relay address allows (a 253-character
/// host name and a 128-character creation password) still fits.
#[test]
fn the_largest_invitation_fits_in_link_data() {
    let mut rng = TestRng::new(b"largest invitation");
    let label = "a".repeat(63);
    let host = format!("{label}.{label}.{label}.{}", "b".repeat(61));
    assert_eq!(host.len(), 253);
    let relay: RelayAddress = format!("tropa://{}:{}@{host}:65535", fingerprint(), "p".repeat(128))
        .parse()
        .unwrap();
    let mut inv = invitation_on(&mut rng, relay);
    inv.created_at = u64::MAX - 1;
    inv.expires_at = u64::MAX;
    let len = inv.to_encoded().len();
    eprintln!("largest encoded invitation: {len} of {MAX_LINK_INVITATION_LEN} bytes");
    assert!(len <= MAX_LINK_INVITATION_LEN);
    let l = ShortLink::for_invitation(&mut rng, LinkKind::Invite, &inv);
    assert!(l.to_string().len() <= MAX_SHORT_LINK_LEN);
    let data = seal_link_data(&mut rng, l.secret(), LinkKind::Invite, &inv).unwrap();
    assert_eq!(open_link_data(&l, &data).unwrap(), inv);
}

fn arb_host() -> impl Strategy<Value = Host> {
    prop_oneof![
        any::<std::net::Ipv4Addr>().prop_map(|ip| Host::Ip(ip.into())),
        any::<std::net::Ipv6Addr>().prop_map(|ip| Host::Ip(ip.into())),
        "[a-z][a-z0-9]{0,10}(\\.[a-z][a-z0-9-]{0,8}[a-z0-9]){0,3}".prop_map(Host::Name),
    ]
}

proptest! {
    /// Print then parse gives the same link, whatever the case it is typed in.
    #[test]
    fn codec_round_trip(
        address in any::<bool>(),
        host in arb_host(),
        port in 1u16..,
        fp in any::<[u8; 16]>(),
        secret in any::<[u8; 16]>(),
    ) {
        let kind = if address { LinkKind::Address } else { LinkKind::Invite };
        let l = ShortLink { kind, host, port, fingerprint_prefix: FingerprintPrefix(fp), secret: LinkSecret::from_bytes(secret) };
        let text = l.to_string();
        prop_assert_eq!(text.parse::<ShortLink>(), Ok(l.clone()));
        prop_assert_eq!(text.to_ascii_lowercase().parse::<ShortLink>(), Ok(l));
    }

    /// Whatever parses prints back to exactly its input, upper-cased and trimmed.
    #[test]
    fn what_parses_is_canonical(
        s in "[ ]?(TROPA|tropa):[IAia]/([a-zA-Z][a-zA-Z0-9.-]{0,12}|[0-9]{1,3}(\\.[0-9]{1,3}){3}|\\[[0-9a-fA-F:]{2,12}\\]):[0-9]{1,5}/[A-Z2-7]{25}[AEIMQUY4]/[a-z2-7]{25}[aeimquy4]\n?"
    ) {
        // Scheme, kind, fingerprint and secret are well-formed by
        // construction: only the host or port can be refused.
        match s.parse::<ShortLink>() {
            Ok(l) => prop_assert_eq!(l.to_string(), s.trim().to_ascii_uppercase()),
            Err(e) => prop_assert!(
                matches!(e, ShortLinkError::BadHost | ShortLinkError::BadPort),
                "{:?}",
                e
            ),
        }
    }
}

//! Relay addresses: `tropa://<fingerprint>[:<password>]@<host>:<port>`.
//!
//! The fingerprint is the unpadded base64url SHA-256 of the relay's
//! SubjectPublicKeyInfo (S11): a client accepts exactly that key and trusts no
//! certificate authority. The optional password is the operator's mailbox
//! creation password; it is limited to URL-unreserved characters so an address
//! can be copied, typed and put in a QR code without escaping.
//!
//! Parsing never resolves names or touches the network.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// URL scheme of relay addresses.
pub const SCHEME: &str = "tropa://";

/// SHA-256 of a relay's SubjectPublicKeyInfo (DER).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Fingerprint of a DER-encoded SubjectPublicKeyInfo.
    pub fn of_spki(spki_der: &[u8]) -> Self {
        Self(Sha256::digest(spki_der).into())
    }
}

impl Fingerprint {
    /// The first [`FingerprintPrefix::LEN`] bytes, as a short link carries them.
    pub fn prefix(&self) -> FingerprintPrefix {
        let mut p = [0u8; FingerprintPrefix::LEN];
        p.copy_from_slice(&self.0[..FingerprintPrefix::LEN]);
        FingerprintPrefix(p)
    }

    /// Whether this fingerprint starts with `prefix`.
    pub fn starts_with(&self, prefix: &FingerprintPrefix) -> bool {
        self.0[..FingerprintPrefix::LEN] == prefix.0
    }
}

/// The first 16 bytes of a relay's [`Fingerprint`]: what a short link
/// carries to pin the relay. Finding another key whose fingerprint starts
/// with the same 128 bits is a second preimage on 128 bits of SHA-256,
/// out of reach. A client that connects with a prefix accepts the relay's
/// key only if its fingerprint starts with it, and then learns the full
/// fingerprint (and so the full [`RelayAddress`]) from the handshake.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FingerprintPrefix(pub [u8; FingerprintPrefix::LEN]);

impl FingerprintPrefix {
    /// Length in bytes.
    pub const LEN: usize = 16;
}

impl fmt::Debug for FingerprintPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FingerprintPrefix({})", URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let raw = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| AddressError::BadFingerprint)?;
        let arr: [u8; 32] = raw.try_into().map_err(|_| AddressError::BadFingerprint)?;
        Ok(Self(arr))
    }
}

/// Where the relay is: an IP literal or a DNS name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A DNS name (lower-cased, resolved by the client when it connects).
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

impl FromStr for Host {
    type Err = AddressError;

    /// An IPv4 address, a bracketed IPv6 address (`[2001:db8::1]`), or a
    /// DNS name; nothing else (no scheme, no port, no bare IPv6).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(v6) = s.strip_prefix('[') {
            let ip = v6.strip_suffix(']').ok_or(AddressError::BadHost)?;
            let ip: std::net::Ipv6Addr = ip.parse().map_err(|_| AddressError::BadHost)?;
            return Ok(Host::Ip(IpAddr::V6(ip)));
        }
        match s.parse::<std::net::Ipv4Addr>() {
            Ok(ip) => Ok(Host::Ip(IpAddr::V4(ip))),
            Err(_) if valid_dns_name(s) => Ok(Host::Name(s.to_ascii_lowercase())),
            Err(_) => Err(AddressError::BadHost),
        }
    }
}

/// A parsed relay address.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RelayAddress {
    /// The pinned key of the relay.
    pub fingerprint: Fingerprint,
    /// Mailbox creation password, if the operator set one.
    pub password: Option<String>,
    /// Host of the relay.
    pub host: Host,
    /// UDP port of the relay.
    pub port: u16,
}

// Debug hides the creation password: addresses end up in logs and error chains.
impl fmt::Debug for RelayAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayAddress")
            .field("fingerprint", &self.fingerprint)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("host", &self.host)
            .field("port", &self.port)
            .finish()
    }
}

/// Why a string is not a relay address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    /// It does not start with `tropa://`.
    #[error("a relay address starts with tropa://")]
    BadScheme,
    /// There is no `@` between the fingerprint and the host.
    #[error("a relay address looks like tropa://FINGERPRINT@HOST:PORT (no '@' found)")]
    MissingAt,
    /// The fingerprint is not 43 base64url characters (32 bytes).
    #[error("the relay fingerprint must be 43 base64url characters")]
    BadFingerprint,
    /// The password has characters outside `A-Z a-z 0-9 - . _ ~` or is empty.
    #[error("the relay password may only use letters, digits and - . _ ~")]
    BadPassword,
    /// The host part is empty or not a valid IP or DNS name.
    #[error("the relay host is not a valid IP address or DNS name")]
    BadHost,
    /// The port is missing, zero or not a number.
    #[error("the relay address needs a port from 1 to 65535")]
    BadPort,
}

fn valid_password(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 128
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// A host name as DNS allows it; the last label may not be all digits
/// (RFC 3696 §2), so a mistyped IPv4 address like `999.1.1.1` is refused
/// instead of being taken for a name.
fn valid_dns_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && !n
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        && n.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl FromStr for RelayAddress {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let rest = s
            .get(..SCHEME.len())
            .filter(|p| p.eq_ignore_ascii_case(SCHEME))
            .map(|_| &s[SCHEME.len()..])
            .ok_or(AddressError::BadScheme)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (userinfo, hostport) = rest.rsplit_once('@').ok_or(AddressError::MissingAt)?;
        let (fp, password) = match userinfo.split_once(':') {
            Some((fp, pw)) => {
                if !valid_password(pw) {
                    return Err(AddressError::BadPassword);
                }
                (fp, Some(pw.to_owned()))
            }
            None => (userinfo, None),
        };
        let fingerprint = fp.parse()?;
        let (host, port) = if hostport.starts_with('[') {
            let (v6, port) = hostport.split_once("]:").ok_or(AddressError::BadPort)?;
            (format!("{v6}]").parse::<Host>()?, port)
        } else {
            let (host, port) = hostport.rsplit_once(':').ok_or(AddressError::BadPort)?;
            (host.parse::<Host>()?, port)
        };
        let port: u16 = port.parse().map_err(|_| AddressError::BadPort)?;
        if port == 0 {
            return Err(AddressError::BadPort);
        }
        Ok(Self {
            fingerprint,
            password,
            host,
            port,
        })
    }
}

impl fmt::Display for RelayAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.fingerprint)?;
        if let Some(pw) = &self.password {
            write!(f, ":{pw}")?;
        }
        write!(f, "@{}:{}", self.host, self.port)
    }
}

impl RelayAddress {
    /// The address for a relay listening on `addr` with the given key.
    pub fn new(fingerprint: Fingerprint, addr: SocketAddr) -> Self {
        Self {
            fingerprint,
            password: None,
            host: Host::Ip(addr.ip()),
            port: addr.port(),
        }
    }

    /// The socket address if the host is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self.host {
            Host::Ip(ip) => Some(SocketAddr::new(ip, self.port)),
            Host::Name(_) => None,
        }
    }

    /// `host:port` for name resolution (brackets around IPv6).
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The same relay without the creation password, for display to people
    /// who should be able to deposit but not create mailboxes.
    pub fn without_password(&self) -> Self {
        Self {
            password: None,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FP: &str = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU";

    #[test]
    fn a_prefix_matches_only_its_own_fingerprints() {
        let fp: Fingerprint = FP.parse().expect("fp");
        let p = fp.prefix();
        assert!(fp.starts_with(&p));
        assert_eq!(&p.0[..], &fp.0[..16]);
        let mut other = fp;
        other.0[31] ^= 1;
        assert!(other.starts_with(&p), "only the first 16 bytes count");
        other.0[15] ^= 1;
        assert!(!other.starts_with(&p));
    }

    #[test]
    fn hosts_are_ip_literals_or_dns_names_only() {
        for ok in [
            "203.0.113.7",
            "[2001:db8::1]",
            "relay.example.org",
            "localhost",
        ] {
            assert!(ok.parse::<Host>().is_ok(), "{ok}");
        }
        for bad in [
            "2001:db8::1",
            "https://relay.example.org",
            "relay.example.org:4433",
            "",
            "[2001:db8::1",
            "relay..example",
            "-relay.example",
            "relay example",
            "999.1.1.1",
            "10.0.0.256",
            "1.2.3",
        ] {
            assert_eq!(bad.parse::<Host>(), Err(AddressError::BadHost), "{bad}");
        }
    }

    #[test]
    fn parses_ipv4_ipv6_name_password() {
        let a: RelayAddress = format!("tropa://{FP}@127.0.0.1:4433").parse().expect("v4");
        assert_eq!(a.socket_addr(), Some("127.0.0.1:4433".parse().expect("sa")));
        assert_eq!(a.to_string(), format!("tropa://{FP}@127.0.0.1:4433"));
        let b: RelayAddress = format!("tropa://{FP}:s3cret-pw@[::1]:9")
            .parse()
            .expect("v6");
        assert_eq!(b.password.as_deref(), Some("s3cret-pw"));
        assert_eq!(b.to_string(), format!("tropa://{FP}:s3cret-pw@[::1]:9"));
        let c: RelayAddress = format!("TROPA://{FP}@Relay.Example.org:443/")
            .parse()
            .expect("name");
        assert_eq!(c.host, Host::Name("relay.example.org".into()));
        assert!(!format!("{b:?}").contains("s3cret"));
    }

    #[test]
    fn rejects_each_malformed_case() {
        let cases = [
            ("http://x@1.2.3.4:1", AddressError::BadScheme),
            ("", AddressError::BadScheme),
            (&format!("tropa://{FP}"), AddressError::MissingAt),
            ("tropa://abc@1.2.3.4:1", AddressError::BadFingerprint),
            (
                &format!("tropa://{FP}x@1.2.3.4:1"),
                AddressError::BadFingerprint,
            ),
            (
                &format!("tropa://{FP}:@1.2.3.4:1"),
                AddressError::BadPassword,
            ),
            (
                &format!("tropa://{FP}:a b@1.2.3.4:1"),
                AddressError::BadPassword,
            ),
            (&format!("tropa://{FP}@:1"), AddressError::BadHost),
            (&format!("tropa://{FP}@bad_host:1"), AddressError::BadHost),
            (&format!("tropa://{FP}@[zz]:1"), AddressError::BadHost),
            (&format!("tropa://{FP}@1.2.3.4"), AddressError::BadPort),
            (&format!("tropa://{FP}@1.2.3.4:0"), AddressError::BadPort),
            (
                &format!("tropa://{FP}@1.2.3.4:99999"),
                AddressError::BadPort,
            ),
            (&format!("tropa://{FP}@[::1]"), AddressError::BadPort),
        ];
        for (input, want) in cases {
            assert_eq!(input.parse::<RelayAddress>(), Err(want), "{input}");
        }
    }

    fn arb_host() -> impl Strategy<Value = Host> {
        prop_oneof![
            any::<std::net::Ipv4Addr>().prop_map(|ip| Host::Ip(ip.into())),
            any::<std::net::Ipv6Addr>().prop_map(|ip| Host::Ip(ip.into())),
            "[a-z][a-z0-9]{0,10}(\\.[a-z][a-z0-9-]{0,8}[a-z0-9]){0,3}".prop_map(Host::Name),
        ]
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(
            fp in any::<[u8; 32]>(),
            pw in proptest::option::of("[A-Za-z0-9._~-]{1,30}"),
            host in arb_host(),
            port in 1u16..,
        ) {
            let a = RelayAddress { fingerprint: Fingerprint(fp), password: pw, host, port };
            let back: RelayAddress = a.to_string().parse().expect("round trip");
            prop_assert_eq!(back, a);
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,80}") {
            let _ = s.parse::<RelayAddress>();
        }
    }
}

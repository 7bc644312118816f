//! How to reach a relay: over which transport, through which proxy. Plain
//! values a profile can store and a command line can parse; the
//! connecting itself is in `dial`.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use zeroize::Zeroizing;

/// The transport a connection runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// QUIC over UDP (the protocol's first profile).
    Quic,
    /// TLS 1.3 over TCP with HTTP/2 streams (docs/relay-protocol.md §11):
    /// where UDP is blocked, and always through a SOCKS5 proxy.
    Tcp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Quic => "quic",
            Transport::Tcp => "tcp",
        })
    }
}

/// A transport or transport choice that is not one of the known names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown transport {0:?}: expected auto, quic or tcp")]
pub struct UnknownTransport(pub String);

impl FromStr for Transport {
    type Err = UnknownTransport;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match TransportChoice::from_str(s)? {
            TransportChoice::Quic => Ok(Transport::Quic),
            TransportChoice::Tcp => Ok(Transport::Tcp),
            TransportChoice::Auto => Err(UnknownTransport(s.to_owned())),
        }
    }
}

/// Which transport to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TransportChoice {
    /// QUIC, and TCP when QUIC gets no answer within
    /// [`crate::QUIC_FALLBACK_AFTER`] (or the other way round when
    /// [`ConnectOptions::prefer`] says TCP worked last time); TCP only
    /// through a SOCKS5 proxy.
    #[default]
    Auto,
    /// QUIC only.
    Quic,
    /// TCP only.
    Tcp,
}

impl fmt::Display for TransportChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportChoice::Auto => "auto",
            TransportChoice::Quic => "quic",
            TransportChoice::Tcp => "tcp",
        })
    }
}

impl FromStr for TransportChoice {
    type Err = UnknownTransport;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(TransportChoice::Auto),
            "quic" => Ok(TransportChoice::Quic),
            "tcp" => Ok(TransportChoice::Tcp),
            _ => Err(UnknownTransport(s.to_owned())),
        }
    }
}

/// A SOCKS5 proxy (Tor's is `127.0.0.1:9050`). Every connection through it
/// runs over TCP, and the relay's host name is handed to the proxy to
/// resolve, never resolved here.
///
/// With credentials the proxy is offered both username/password and no
/// authentication, so a proxy that wants none still works. Tor's
/// `IsolateSOCKSAuth` (on by default) puts each distinct credential pair on
/// its own circuit: different credentials, different exit, unlinkable at
/// the relay.
#[derive(Clone, PartialEq, Eq)]
pub struct Socks5 {
    /// The proxy's `host:port` (an IPv6 address in brackets). This name,
    /// unlike the relay's, is resolved locally.
    pub proxy: String,
    /// Username and password (each 1 to 255 bytes, RFC 1929).
    pub credentials: Option<(String, Zeroizing<String>)>,
}

impl fmt::Debug for Socks5 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The username can be as telling as the password (Tor isolation
        // tokens are per contact), so neither is shown.
        f.debug_struct("Socks5")
            .field("proxy", &self.proxy)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// `socks5://host:port`, without the credentials (for messages and logs;
/// keep the string the user gave to store it).
impl fmt::Display for Socks5 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "socks5://{}", self.proxy)
    }
}

/// Why a SOCKS5 proxy string does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Socks5ParseError {
    /// A scheme other than `socks5://` (or `socks5h://`).
    #[error("a SOCKS5 proxy is socks5://[user:password@]host:port or host:port")]
    Scheme,
    /// The host is missing or not a host name or IP address.
    #[error("the SOCKS5 proxy's host is not a host name or IP address")]
    Host,
    /// The port is missing, zero or not a number below 65536.
    #[error("the SOCKS5 proxy needs a port from 1 to 65535")]
    Port,
    /// The credentials are not `user:password` with each part 1 to 255
    /// bytes (after percent-decoding).
    #[error("SOCKS5 credentials are user:password, each 1 to 255 bytes")]
    Credentials,
}

impl FromStr for Socks5 {
    type Err = Socks5ParseError;

    /// Parses `socks5://[user:password@]host:port` (`socks5h://` means the
    /// same: the proxy always resolves the relay's name) or a bare
    /// `host:port`. The user and password may be percent-encoded (`%40`
    /// for `@`); a trailing `/` is ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let rest = match s.split_once("://") {
            Some((scheme, rest))
                if scheme.eq_ignore_ascii_case("socks5")
                    || scheme.eq_ignore_ascii_case("socks5h") =>
            {
                rest
            }
            Some(_) => return Err(Socks5ParseError::Scheme),
            None => s,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        // The last `@` ends the credentials: a password may hold one.
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let proxy = host_port(hostport)?;
        let credentials = userinfo
            .map(|u| {
                let (user, pass) = u.split_once(':').ok_or(Socks5ParseError::Credentials)?;
                let user = percent_decode(user)?;
                let pass = Zeroizing::new(percent_decode(pass)?);
                let fits = |v: &str| (1..=255).contains(&v.len());
                if fits(&user) && fits(&pass) {
                    Ok((user, pass))
                } else {
                    Err(Socks5ParseError::Credentials)
                }
            })
            .transpose()?;
        Ok(Socks5 { proxy, credentials })
    }
}

/// Checks `host:port` and returns it normalised (a lower-case name).
fn host_port(s: &str) -> Result<String, Socks5ParseError> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return if addr.port() == 0 {
            Err(Socks5ParseError::Port)
        } else {
            Ok(addr.to_string())
        };
    }
    if s.starts_with('[') {
        // An IPv6 address that did not parse as one, with its port.
        return Err(match s.rsplit_once("]:") {
            Some((ip, _)) if ip[1..].parse::<std::net::Ipv6Addr>().is_ok() => {
                Socks5ParseError::Port
            }
            _ => Socks5ParseError::Host,
        });
    }
    let (host, port) = s.rsplit_once(':').ok_or(Socks5ParseError::Port)?;
    let port: u16 = port.parse().map_err(|_| Socks5ParseError::Port)?;
    if port == 0 {
        return Err(Socks5ParseError::Port);
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(Socks5ParseError::Host);
    }
    Ok(format!("{}:{port}", host.to_ascii_lowercase()))
}

/// Decodes `%XX` escapes; any other `%` is an error.
fn percent_decode(s: &str) -> Result<String, Socks5ParseError> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next(), bytes.next()];
            let [Some(h), Some(l)] = hex else {
                return Err(Socks5ParseError::Credentials);
            };
            let digit = |c: u8| (c as char).to_digit(16);
            let (Some(h), Some(l)) = (digit(h), digit(l)) else {
                return Err(Socks5ParseError::Credentials);
            };
            out.push(u8::try_from(h * 16 + l).map_err(|_| Socks5ParseError::Credentials)?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).map_err(|_| Socks5ParseError::Credentials)
}

/// How [`crate::RelayClient::connect_with`] reaches a relay. The default is
/// [`TransportChoice::Auto`], no proxy, nothing remembered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Which transport(s) to try.
    pub transport: TransportChoice,
    /// Go through this SOCKS5 proxy (TCP only: with
    /// [`TransportChoice::Quic`] connecting fails with
    /// [`crate::ConnectError::QuicThroughSocks5`]).
    pub socks5: Option<Socks5>,
    /// The transport that worked last time with this relay, remembered by
    /// the caller ([`crate::RelayClient::transport`]): with
    /// [`TransportChoice::Auto`] it is tried first. Ignored otherwise.
    pub prefer: Option<Transport>,
    /// The local address to connect from (`None`: any). Tests use it to
    /// show a relay several client addresses on one host.
    pub local: Option<SocketAddr>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn transport_names_round_trip() {
        for c in [
            TransportChoice::Auto,
            TransportChoice::Quic,
            TransportChoice::Tcp,
        ] {
            assert_eq!(c.to_string().parse::<TransportChoice>().unwrap(), c);
        }
        assert_eq!(
            " TCP ".parse::<TransportChoice>().unwrap(),
            TransportChoice::Tcp
        );
        assert_eq!(TransportChoice::default(), TransportChoice::Auto);
        for bad in ["", "udp", "quic,tcp", "tor"] {
            assert_eq!(
                bad.parse::<TransportChoice>(),
                Err(UnknownTransport(bad.into()))
            );
        }
        for t in [Transport::Quic, Transport::Tcp] {
            assert_eq!(t.to_string().parse::<Transport>().unwrap(), t);
        }
        assert!(
            "auto".parse::<Transport>().is_err(),
            "auto is a choice, not a transport"
        );
    }

    fn creds(s: &Socks5) -> Option<(&str, &str)> {
        s.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    #[test]
    fn socks5_forms_parse() {
        let tor: Socks5 = "127.0.0.1:9050".parse().unwrap();
        assert_eq!((tor.proxy.as_str(), creds(&tor)), ("127.0.0.1:9050", None));
        let url: Socks5 = "socks5://127.0.0.1:9050".parse().unwrap();
        assert_eq!(url, tor);
        let h: Socks5 = "SOCKS5H://LocalHost:1080/".parse().unwrap();
        assert_eq!(h.proxy, "localhost:1080");
        let v6: Socks5 = "socks5://[::1]:9050".parse().unwrap();
        assert_eq!(v6.proxy, "[::1]:9050");
        let with: Socks5 = "socks5://alice:s3cret@proxy.example:1080".parse().unwrap();
        assert_eq!(with.proxy, "proxy.example:1080");
        assert_eq!(creds(&with), Some(("alice", "s3cret")));
        // The last @ ends the credentials; the first : splits them; %XX decodes.
        let odd: Socks5 = "socks5://a%3Ab:p@ss:w%25rd@127.0.0.1:9050".parse().unwrap();
        assert_eq!(creds(&odd), Some(("a:b", "p@ss:w%rd")));
        assert_eq!(odd.to_string(), "socks5://127.0.0.1:9050");
    }

    #[test]
    fn socks5_garbage_is_a_typed_error() {
        use Socks5ParseError as E;
        let cases = [
            ("", E::Port),
            ("127.0.0.1", E::Port),
            ("127.0.0.1:", E::Port),
            ("127.0.0.1:0", E::Port),
            ("host:70000", E::Port),
            ("host:9050x", E::Port),
            ("[::1]", E::Host),
            ("[::1]:", E::Port),
            ("[zz]:1", E::Host),
            (":9050", E::Host),
            ("bad host:9050", E::Host),
            ("a..b:9050", E::Host),
            ("http://127.0.0.1:8080", E::Scheme),
            ("socks4://127.0.0.1:9050", E::Scheme),
            ("socks5://user@127.0.0.1:9050", E::Credentials),
            ("socks5://user:@127.0.0.1:9050", E::Credentials),
            ("socks5://:pass@127.0.0.1:9050", E::Credentials),
            ("socks5://u:%zz@127.0.0.1:9050", E::Credentials),
            ("socks5://u:%4@127.0.0.1:9050", E::Credentials),
            ("socks5://u:%ff@127.0.0.1:9050", E::Credentials),
        ];
        for (s, want) in cases {
            assert_eq!(s.parse::<Socks5>(), Err(want), "{s:?}");
        }
        let long = format!("socks5://{}:p@127.0.0.1:9050", "u".repeat(256));
        assert_eq!(long.parse::<Socks5>(), Err(E::Credentials));
    }

    #[test]
    fn socks5_debug_shows_no_credentials() {
        let s: Socks5 = "socks5://contact-7f3a:hunter2@127.0.0.1:9050"
            .parse()
            .unwrap();
        let shown = format!(
            "{s:?} {s} {:?}",
            ConnectOptions {
                socks5: Some(s.clone()),
                ..ConnectOptions::default()
            }
        );
        assert!(shown.contains("127.0.0.1:9050"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        for secret in ["contact-7f3a", "hunter2"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}

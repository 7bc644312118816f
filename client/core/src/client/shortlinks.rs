//! Short links (`TROPA:I/HOST:PORT/FP/SECRET`, docs/protocol.md §11):
//! turning one into the invitation it stands for.
//!
//! The link's data lives on the inviter's relay. Resolving it connects to
//! `HOST:PORT` pinned by the link's 128-bit fingerprint prefix, so the
//! only request, `GetLink(locator)`, goes to no relay but the one the link
//! names (S11); nothing else is sent to it, and nothing about this profile.
//! The data then opens only with the link's key, and the invitation inside
//! must name that same relay (host, port, and the full fingerprint the
//! connection proved). This happens outside the engine: it needs a
//! connection pinned by a prefix, which the engine's relay links are not.

use std::time::Duration;

use tropa_e2e::{Invitation, LinkDataError, LinkKind, ShortLink, ShortLinkError, open_link_data};
use tropa_proto::relay::ErrorCode;
use tropa_relay_client::{ConnectError, RelayClient, RequestError};
use zeroize::Zeroizing;

use super::{Client, Network};
use crate::error::{ClientError, RelayError};

/// Longest wait for the close of the link's connection to leave.
const CLOSE_FLUSH: Duration = Duration::from_millis(150);

/// What a short link stands for, fetched and checked.
pub struct ResolvedLink {
    /// A one-time invitation or an intake address.
    pub kind: LinkKind,
    /// The invitation the link's data holds, checked against the link and
    /// the relay that served it. Its expiry is not checked here.
    pub invitation: Invitation,
}

impl std::fmt::Debug for ResolvedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedLink")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Why a short link could not be turned into an invitation.
#[derive(Debug, thiserror::Error)]
pub enum LinkResolveError {
    /// Not a well-formed short link (garbage, cut short, mistyped layout).
    #[error("invalid invitation link: {0}")]
    BadLink(#[from] ShortLinkError),
    /// The link's relay could not be reached.
    #[error("cannot reach the relay this link names ({0}); try again later")]
    Unreachable(RelayError),
    /// Whoever answers at the link's address holds another key than the
    /// link names: the link is damaged (a mistyped host, port or
    /// fingerprint), or someone is in the middle. Nothing was fetched.
    #[error(
        "the relay at this link's address has another key than the link names: the link is damaged, or someone is in the middle. Nothing was fetched"
    )]
    WrongKey,
    /// The relay holds no data for this link (`NO_LINK`).
    #[error(
        "this link no longer works: it was already used, has expired or was withdrawn (or it is mistyped). Ask for a new one"
    )]
    Gone,
    /// The relay refused the fetch (busy, rate-limited).
    #[error("the link's relay refused: {0}")]
    Refused(RelayError),
    /// The data does not open with the link, or names another relay than
    /// the link: tampered with, or not this link's.
    #[error("the link's data does not match the link (damaged or tampered with): {0}")]
    NotMatching(LinkDataError),
    /// A short link handed to the engine as it is: front ends resolve it
    /// first ([`Client::accept`] and [`crate::SyncHandle::accept`] do).
    #[error("this short link must be fetched from its relay before it is accepted")]
    NotResolved,
    /// An intake address, where a one-time invitation was expected.
    #[error(
        "this is an organisation's public address (TROPA:A/...), not a one-time invitation: write to it with a first message (`tropa accept --name ALIAS` asks for one)"
    )]
    Address,
}

impl LinkResolveError {
    /// Whether the link itself is at fault (damaged, used, not matching),
    /// as opposed to the network or a busy relay (worth trying again).
    pub fn is_bad_link(&self) -> bool {
        !matches!(
            self,
            LinkResolveError::Unreachable(_) | LinkResolveError::Refused(_)
        )
    }
}

fn connect_error(e: ConnectError) -> LinkResolveError {
    match RelayError::from(e) {
        RelayError::WrongKey => LinkResolveError::WrongKey,
        other => LinkResolveError::Unreachable(other),
    }
}

fn request_error(e: RequestError) -> LinkResolveError {
    if e.code() == Some(ErrorCode::NoLink) {
        return LinkResolveError::Gone;
    }
    match RelayError::from(e) {
        e @ RelayError::Refused { .. } => LinkResolveError::Refused(e),
        e => LinkResolveError::Unreachable(e),
    }
}

impl Client {
    /// Fetches and opens a short link's data: parses `link`, connects to
    /// its relay pinned by the link's fingerprint prefix (nothing is sent
    /// before the relay proved its key), asks for the data under the
    /// link's locator, and opens it with the link's key. Needs no profile.
    ///
    /// # Errors
    /// [`LinkResolveError`]: not a short link, relay unreachable or with
    /// another key, data gone (used, expired or withdrawn), data that does
    /// not match the link.
    pub async fn resolve_link(link: &str, net: &Network) -> Result<ResolvedLink, LinkResolveError> {
        let link: ShortLink = link.parse()?;
        resolve(&link, net).await
    }
}

async fn resolve(link: &ShortLink, net: &Network) -> Result<ResolvedLink, LinkResolveError> {
    let prefix = link.fingerprint_prefix();
    // A connection of its own (own SOCKS credentials, so its own circuit).
    let opts = crate::shell::connect_options(net, None, None, &mut Default::default());
    let conn = RelayClient::connect_prefix_with(link.host(), link.port(), &prefix, &opts)
        .await
        .map_err(connect_error)?;
    let fetched = conn.get_link(&link.locator()).await;
    let relay = conn.address().clone();
    conn.close_within(CLOSE_FLUSH).await;
    let data = fetched.map_err(request_error)?;
    let invitation = open_link_data(link, &data).map_err(LinkResolveError::NotMatching)?;
    // The data names the relay by its whole fingerprint: it must be the
    // key this connection proved, not only one with the same prefix.
    if invitation.relay().fingerprint != relay.fingerprint {
        return Err(LinkResolveError::NotMatching(LinkDataError::RelayMismatch));
    }
    Ok(ResolvedLink {
        kind: link.kind(),
        invitation,
    })
}

/// The long link of an invitation given either way: a long
/// `tropa:invite#` link as it is, a short one-time `TROPA:I/...` link
/// resolved through its relay. What the engine's accept takes.
///
/// # Errors
/// [`ClientError::Link`] for a short link that does not resolve, or one
/// of an intake address.
pub(crate) async fn invitation_link(
    link: &str,
    net: &Network,
) -> Result<Zeroizing<String>, ClientError> {
    if !ShortLink::is_short_link(link) {
        return Ok(Zeroizing::new(link.trim().to_owned()));
    }
    let short: ShortLink = link.parse().map_err(LinkResolveError::from)?;
    match short.kind() {
        LinkKind::Invite => {
            let resolved = resolve(&short, net).await?;
            Ok(Zeroizing::new(resolved.invitation.to_link()))
        }
        // An address takes a contact request with a first message, which
        // an accept has not: front ends send one instead
        // (`Client::send_request`, `Command::SendRequest`).
        LinkKind::Address => Err(LinkResolveError::Address.into()),
    }
}

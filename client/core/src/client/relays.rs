//! Work that needs relays, each run by the engine in the shell until done:
//! a sync, a send to one contact, an invitation, an accept. Long-running
//! front ends use [`crate::SyncHandle`] instead.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rand::Rng as _;
use tokio::sync::{mpsc, oneshot};

use super::{Client, INVITE_TTL_SECS};
use crate::engine::{Command, Engine, EngineConfig, InviteLinks, Isolation, Mode, Outcome};
use crate::error::ClientError;
use crate::shell::{self, CommandMsg, Exits};
use crate::sync::{ONE_SHOT_LIMIT, SyncEvent, SyncOptions, SyncReport};

/// How long a `send` waits for the relay, by default, before leaving the
/// text queued: a front end says so at once instead of hanging.
pub const SEND_LIMIT: Duration = Duration::from_secs(6);

/// What became of a text handed to [`Client::send`].
#[derive(Clone, Debug)]
pub struct Sent {
    /// Its message id (hex).
    pub id: String,
    /// Whether the contact's relay accepted it in time. If not, it stays
    /// queued and a later sync delivers it.
    pub deposited: bool,
    /// What the attempt did (unreachable or refusing relays).
    pub report: SyncReport,
}

impl Client {
    /// A sync engine on this profile (for a shell of one's own, such as a
    /// simulation; front ends use the methods below or [`crate::SyncHandle`]).
    pub fn engine(&self, mode: Mode, opts: SyncOptions) -> Engine {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        self.engine_seeded(mode, opts, seed)
    }

    /// [`engine`](Self::engine) with a fixed seed for its random numbers
    /// (simulations only: a real profile needs unpredictable ones).
    pub fn engine_seeded(&self, mode: Mode, opts: SyncOptions, seed: [u8; 32]) -> Engine {
        Engine::new(EngineConfig {
            repo: self.repo.clone(),
            identity: self.identity.clone(),
            relay: self.relay.clone(),
            opts,
            mode,
            seed,
            isolation: self
                .network()
                .map(|n| n.isolation())
                .unwrap_or(Isolation::Contact),
        })
    }

    /// Receives and delivers until caught up (or for `opts.wait`),
    /// reporting events as they happen. Relays that cannot be reached are
    /// reported and skipped; when waiting they are retried with backoff.
    ///
    /// # Errors
    /// Storage errors only; network trouble is reported, not fatal.
    pub async fn sync(
        &mut self,
        opts: SyncOptions,
        events: Option<mpsc::UnboundedSender<SyncEvent>>,
    ) -> Result<SyncReport, ClientError> {
        let wait = opts.wait;
        let net = self.network()?;
        let mut engine = self.engine(Mode::Sync, opts);
        let exits = Exits {
            when_finished: wait.is_none(),
            deadline: Instant::now() + wait.unwrap_or(ONE_SHOT_LIMIT),
            stop: None,
        };
        shell::run(&mut engine, net, events, None, Vec::new(), exits).await?;
        Ok(engine.report().clone())
    }

    /// Runs one command with an engine that delivers only what it queues.
    pub(super) async fn run_command(
        &mut self,
        command: Command,
        limit: Duration,
    ) -> Result<(Outcome, SyncReport), ClientError> {
        let net = self.network()?;
        let mut engine = self.engine(Mode::Deliver(BTreeSet::new()), SyncOptions::default());
        let (reply, rx) = oneshot::channel();
        let exits = Exits {
            when_finished: true,
            deadline: Instant::now() + limit,
            stop: None,
        };
        let first = vec![CommandMsg {
            command,
            reply: Some(reply),
        }];
        shell::run(&mut engine, net, None, None, first, exits).await?;
        let outcome = rx
            .await
            .unwrap_or(Err(ClientError::Corrupt("the command did not finish")))?;
        Ok((outcome, engine.report().clone()))
    }

    /// Queues a text for `alias` durably and tries to deposit it on that
    /// contact's relay at once, over one connection, subscribing to nothing.
    /// Returns the message id (hex) and what the attempt did: a refused or
    /// unreachable relay leaves the text queued for `sync`.
    ///
    /// # Errors
    /// Unknown or not yet established contact, empty or too long text,
    /// storage. Network trouble is in the report.
    pub async fn send(
        &mut self,
        alias: &str,
        text: &str,
        limit: Duration,
    ) -> Result<Sent, ClientError> {
        let command = Command::Send {
            alias: alias.to_owned(),
            text: text.to_owned(),
        };
        let (Outcome::Queued { id }, report) = self.run_command(command, limit).await? else {
            return Err(ClientError::Corrupt("unexpected outcome"));
        };
        let deposited = self
            .messages(Some(alias))?
            .iter()
            .find(|m| m.id == id)
            .is_some_and(|m| m.status != crate::client::MessageStatus::Queued);
        Ok(Sent {
            id,
            deposited,
            report,
        })
    }

    /// Deletes a contact, or cancels an invitation nobody accepted yet:
    /// everything of theirs on this device goes, and our mailboxes for them
    /// are deleted on the relay (best effort: one left behind expires
    /// unused).
    ///
    /// # Errors
    /// Unknown contact, storage.
    pub async fn forget(&mut self, alias: &str) -> Result<(), ClientError> {
        let command = Command::Forget {
            alias: alias.to_owned(),
        };
        self.run_command(command, SEND_LIMIT).await.map(|_| ())
    }

    /// Creates a mailbox on this profile's relay and a one-time invitation
    /// for it. Returns the long `tropa:invite#` link and the alias given to
    /// whoever accepts it; [`invite_links`](Self::invite_links) also gives
    /// the short link.
    ///
    /// # Errors
    /// [`ClientError`] for a bad or taken alias, or relay failures.
    pub async fn invite(&mut self, alias: Option<&str>) -> Result<(String, String), ClientError> {
        self.invite_with_ttl(alias, INVITE_TTL_SECS).await
    }

    /// [`invite`](Self::invite) with a validity other than
    /// [`INVITE_TTL_SECS`] seconds.
    ///
    /// # Errors
    /// As [`invite`](Self::invite).
    pub async fn invite_with_ttl(
        &mut self,
        alias: Option<&str>,
        ttl_secs: u64,
    ) -> Result<(String, String), ClientError> {
        let links = self.invite_links(alias, ttl_secs).await?;
        Ok((links.long, links.alias))
    }

    /// Creates a mailbox on this profile's relay and a one-time invitation
    /// for it valid `ttl_secs`, and stores the invitation's short-link data
    /// on the relay. Returns the short link (`None` if the relay does not
    /// store link data: an older relay), the long link and the alias.
    ///
    /// # Errors
    /// As [`invite`](Self::invite).
    pub async fn invite_links(
        &mut self,
        alias: Option<&str>,
        ttl_secs: u64,
    ) -> Result<InviteLinks, ClientError> {
        let command = Command::Invite {
            alias: alias.map(str::to_owned),
            ttl_secs,
        };
        self.run_command(command, ONE_SHOT_LIMIT)
            .await?
            .0
            .into_invite_links()
    }

    /// Accepts an invitation, given as a short `TROPA:I/...` link (its data
    /// fetched from its relay first: [`Client::resolve_link`]) or a long
    /// `tropa:invite#` link: creates and secures the reply mailbox on this
    /// profile's relay, starts the session and queues `Hello`, then tries to
    /// deliver it. Returns whether the Hello was delivered now (else `sync`
    /// delivers it later).
    ///
    /// # Errors
    /// [`ClientError`]: bad or expired link, a short link that does not
    /// resolve ([`ClientError::Link`]: gone, damaged, relay unreachable),
    /// alias problems, a changed identity for an existing alias (refused),
    /// relay failures.
    pub async fn accept(&mut self, link: &str, alias: &str) -> Result<bool, ClientError> {
        // Before the network: a bad alias fails at once.
        super::check_alias(alias)?;
        let link = super::invitation_link(link, &self.network()?).await?;
        let command = Command::Accept {
            link: link.as_str().to_owned(),
            alias: alias.to_owned(),
        };
        match self.run_command(command, ONE_SHOT_LIMIT).await? {
            (Outcome::Accepted { delivered, .. }, _) => Ok(delivered),
            _ => Err(ClientError::Corrupt("unexpected outcome")),
        }
    }
}

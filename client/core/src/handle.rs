//! [`SyncHandle`]: a sync that keeps running for a long-lived front end
//! (`tropa chat`, the desktop app). Start it on a profile; send it commands
//! (texts, invitations, accepts) and get their results; read its
//! [`SyncEvent`]s as they happen; stop it.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::client::{Client, Network};
use crate::engine::{Command, InviteLinks, Mode, Outcome};
use crate::error::{ClientError, RelayError};
use crate::shell::{self, CommandMsg, Exits};
use crate::sync::{SyncEvent, SyncOptions, SyncReport};

/// A sync running in the background on the current tokio runtime.
pub struct SyncHandle {
    commands: mpsc::UnboundedSender<CommandMsg>,
    /// How links are resolved (`None`: the settings could not be read).
    net: Option<Network>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<SyncReport, ClientError>>,
}

impl std::fmt::Debug for SyncHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncHandle")
    }
}

/// The answer to a command sent with [`SyncHandle::submit`].
pub type Pending = oneshot::Receiver<Result<Outcome, ClientError>>;

/// Hands commands to a running sync from any thread (see
/// [`SyncHandle::submitter`]).
#[derive(Clone)]
pub struct Submitter(mpsc::UnboundedSender<CommandMsg>, Option<Network>);

impl std::fmt::Debug for Submitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Submitter")
    }
}

impl Submitter {
    /// Hands over `command`; the receiver yields its result (an error if
    /// the sync has stopped).
    pub fn submit(&self, command: Command) -> Pending {
        let (reply, rx) = oneshot::channel();
        let _ = self.0.send(CommandMsg {
            command,
            reply: Some(reply),
        });
        rx
    }

    /// Accepts an invitation link, a short one fetched from its relay first
    /// (on a connection of its own, not the sync's); yields whether the
    /// handshake was delivered.
    ///
    /// # Errors
    /// As [`Client::accept`].
    pub async fn accept(&self, link: &str, alias: &str) -> Result<bool, ClientError> {
        crate::client::check_alias(alias)?;
        let link = crate::client::invitation_link(link, net(self.1.as_ref())?).await?;
        answer(self.submit(Command::Accept {
            link: link.as_str().to_owned(),
            alias: alias.to_owned(),
        }))
        .await?
        .into_accepted()
    }

    /// Sends a contact request with the first message `text` to the
    /// organisation whose address is `link` (`TROPA:A/...`), fetched from
    /// its relay first; yields whether the address's relay has it now.
    ///
    /// # Errors
    /// As [`Client::send_request`].
    pub async fn send_request(
        &self,
        link: &str,
        alias: &str,
        text: &str,
    ) -> Result<bool, ClientError> {
        crate::client::check_alias(alias)?;
        if text.trim().is_empty() {
            return Err(ClientError::EmptyText);
        }
        let address = crate::client::address_invitation(link, net(self.1.as_ref())?).await?;
        match answer(self.submit(Command::SendRequest {
            address: address.to_string(),
            alias: alias.to_owned(),
            text: text.to_owned(),
        }))
        .await?
        {
            Outcome::RequestSent { delivered, .. } => Ok(delivered),
            _ => Err(ClientError::Corrupt("unexpected outcome")),
        }
    }
}

/// The result a [`Pending`] brings (an error if the sync stopped first).
///
/// # Errors
/// The command's error, or the sync stopped.
pub async fn answer(pending: Pending) -> Result<Outcome, ClientError> {
    pending.await.unwrap_or_else(|_| Err(stopped()))
}

/// The settings links are resolved with: the sync's own, which it could
/// read, or else nothing (never a direct connection instead of a proxy).
fn net(net: Option<&Network>) -> Result<&Network, ClientError> {
    net.ok_or(ClientError::Corrupt("network settings"))
}

fn stopped() -> ClientError {
    ClientError::Relay(RelayError::Unreachable {
        detail: "the sync stopped".into(),
    })
}

impl SyncHandle {
    /// Starts listening on every mailbox of `client` and delivering its
    /// outbox, until [`stop`](Self::stop). `opts.wait` is ignored (it runs
    /// until stopped). Must be called within a tokio runtime.
    pub fn start(
        client: &Client,
        opts: SyncOptions,
    ) -> (SyncHandle, mpsc::UnboundedReceiver<SyncEvent>) {
        let opts = SyncOptions {
            wait: Some(Duration::MAX),
            ..opts
        };
        // A setting that cannot be read stops the run before it connects:
        // never a silent direct connection instead of the proxy.
        let net = client.network();
        let link_net = net.as_ref().ok().cloned();
        let mut engine = client.engine(Mode::Sync, opts);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let exits = Exits {
                when_finished: false,
                deadline: Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600),
                stop: Some(stop_rx),
            };
            shell::run(
                &mut engine,
                net?,
                Some(events),
                Some(commands_rx),
                Vec::new(),
                exits,
            )
            .await?;
            Ok(engine.report().clone())
        });
        (
            SyncHandle {
                commands,
                net: link_net,
                stop: Some(stop),
                task,
            },
            events_rx,
        )
    }

    /// Hands a command to the sync without waiting; the receiver yields its
    /// result.
    pub fn submit(&self, command: Command) -> Pending {
        self.submitter().submit(command)
    }

    /// Something other threads can submit commands with.
    pub fn submitter(&self) -> Submitter {
        Submitter(self.commands.clone(), self.net.clone())
    }

    async fn ask(&self, command: Command) -> Result<Outcome, ClientError> {
        answer(self.submit(command)).await
    }

    /// Queues a text durably and delivers it; returns its message id (hex)
    /// once queued.
    ///
    /// # Errors
    /// Unknown or not yet established contact, empty or too long text,
    /// storage.
    pub async fn send(&self, alias: &str, text: &str) -> Result<String, ClientError> {
        self.ask(Command::Send {
            alias: alias.to_owned(),
            text: text.to_owned(),
        })
        .await?
        .into_queued()
    }

    /// Makes a one-time invitation; returns the long link and the alias
    /// ([`invite_links`](Self::invite_links) also gives the short link).
    ///
    /// # Errors
    /// As [`Client::invite`].
    pub async fn invite(&self, alias: Option<&str>) -> Result<(String, String), ClientError> {
        let links = self.invite_links(alias).await?;
        Ok((links.long, links.alias))
    }

    /// Makes a one-time invitation; returns its short link (if the relay
    /// stores link data), its long link and the alias.
    ///
    /// # Errors
    /// As [`Client::invite`].
    pub async fn invite_links(&self, alias: Option<&str>) -> Result<InviteLinks, ClientError> {
        self.ask(Command::Invite {
            alias: alias.map(str::to_owned),
            ttl_secs: crate::client::INVITE_TTL_SECS,
        })
        .await?
        .into_invite_links()
    }

    /// Accepts an invitation, short or long link (a short one is resolved
    /// first, on a connection of its own); returns whether the handshake
    /// was delivered.
    ///
    /// # Errors
    /// As [`Client::accept`].
    pub async fn accept(&self, link: &str, alias: &str) -> Result<bool, ClientError> {
        crate::client::check_alias(alias)?;
        let link = crate::client::invitation_link(link, net(self.net.as_ref())?).await?;
        self.ask(Command::Accept {
            link: link.as_str().to_owned(),
            alias: alias.to_owned(),
        })
        .await?
        .into_accepted()
    }

    /// Stops: commands already submitted are carried out first (their texts
    /// queued durably), deposits in flight get a moment to finish.
    ///
    /// # Errors
    /// Storage errors of the run.
    pub async fn stop(mut self) -> Result<SyncReport, ClientError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.unwrap_or_else(|_| Err(stopped()))
    }
}

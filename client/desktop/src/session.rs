//! The thin I/O shell of an unlocked desk: the profile ([`Client`]), its
//! sync running on a tokio runtime of its own ([`SyncHandle`]), and the
//! replies of commands coming back. The UI thread never waits on the
//! network: commands are handed over, and their replies and the sync's
//! events arrive as [`Msg`]s, each followed by a call to the wake function
//! (which asks egui for a frame).
//!
//! It decides nothing about protocol: that is the engine's, inside
//! `tropa-client`.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use tropa_client::{
    Client, ClientError, Command, Outcome, ProfileError, Submitter, SyncEvent, SyncHandle,
    SyncOptions,
};
use zeroize::Zeroizing;

/// Asks the UI for a frame (from any thread).
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// Something that arrived for the UI.
pub enum Msg {
    /// The sync reported something.
    Event(SyncEvent),
    /// A text was queued durably (or refused).
    Sent {
        /// To whom.
        alias: String,
        /// The text (to show as queued).
        text: Zeroizing<String>,
        /// Its message id, or why not.
        result: Result<String, ClientError>,
    },
    /// An invitation was made: (link, alias).
    Invited(Result<(String, String), ClientError>),
    /// An invitation was accepted: whether the handshake left already.
    Accepted {
        /// The alias given.
        alias: String,
        /// Delivered now (or queued), or why not.
        result: Result<bool, ClientError>,
    },
    /// A contact request was accepted (the requester is a contact now).
    RequestAccepted {
        /// The alias given.
        alias: String,
        /// The handshake left already (or is queued), or why not.
        result: Result<bool, ClientError>,
    },
    /// A contact request to an organisation's address was sent.
    RequestSent {
        /// What we call the organisation.
        alias: String,
        /// Delivered now (or queued), or why not.
        result: Result<bool, ClientError>,
    },
}

/// An unlocked profile with its sync running.
pub struct Session {
    client: Client,
    runtime: Option<tokio::runtime::Runtime>,
    sync: Option<SyncHandle>,
    submitter: Submitter,
    tx: mpsc::Sender<Msg>,
    rx: mpsc::Receiver<Msg>,
    wake: Wake,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session")
    }
}

/// Why the sync could not start.
#[derive(Debug, thiserror::Error)]
#[error("could not start the background sync: {0}")]
pub struct StartError(#[from] std::io::Error);

impl Session {
    /// Starts the sync of `client` on a runtime of its own.
    ///
    /// # Errors
    /// The runtime could not be built.
    pub fn start(client: Client, wake: Wake) -> Result<Session, StartError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tropa-sync")
            .enable_all()
            .build()?;
        let (sync, mut events) = {
            let _in = runtime.enter();
            SyncHandle::start(&client, SyncOptions::default())
        };
        let (tx, rx) = mpsc::channel();
        let forward = tx.clone();
        let w = wake.clone();
        runtime.spawn(async move {
            while let Some(ev) = events.recv().await {
                if forward.send(Msg::Event(ev)).is_err() {
                    break;
                }
                w();
            }
        });
        Ok(Session {
            submitter: sync.submitter(),
            client,
            runtime: Some(runtime),
            sync: Some(sync),
            tx,
            rx,
            wake,
        })
    }

    /// The profile.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Everything that arrived since the last call.
    pub fn poll(&self) -> Vec<Msg> {
        self.rx.try_iter().collect()
    }

    fn submit(
        &self,
        command: Command,
        done: impl FnOnce(Result<Outcome, ClientError>) -> Msg + Send + 'static,
    ) {
        let pending = self.submitter.submit(command);
        let tx = self.tx.clone();
        let wake = self.wake.clone();
        if let Some(rt) = &self.runtime {
            rt.spawn(async move {
                let _ = tx.send(done(tropa_client::answer(pending).await));
                wake();
            });
        }
    }

    /// Queues `text` for `alias`; [`Msg::Sent`] follows.
    pub fn send(&self, alias: &str, text: &str) {
        let (a, t) = (alias.to_owned(), Zeroizing::new(text.to_owned()));
        self.submit(
            Command::Send {
                alias: alias.to_owned(),
                text: text.to_owned(),
            },
            move |r| Msg::Sent {
                alias: a,
                text: t,
                result: r.and_then(Outcome::into_queued),
            },
        );
    }

    /// Makes an invitation; [`Msg::Invited`] follows.
    pub fn invite(&self, alias: Option<&str>) {
        self.submit(
            Command::Invite {
                alias: alias.map(str::to_owned),
                ttl_secs: tropa_client::client::INVITE_TTL_SECS,
            },
            // The short link when the relay stores link data, else the long one.
            |r| {
                Msg::Invited(
                    r.and_then(Outcome::into_invite_links)
                        .map(|l| (l.link().to_owned(), l.alias)),
                )
            },
        );
    }

    /// Accepts an invitation link (a short one is fetched from its relay
    /// first); [`Msg::Accepted`] follows.
    pub fn accept(&self, link: &str, alias: &str) {
        let (link, alias) = (Zeroizing::new(link.to_owned()), alias.to_owned());
        let submitter = self.submitter.clone();
        self.spawn(async move {
            let result = submitter.accept(&link, &alias).await;
            Msg::Accepted { alias, result }
        });
    }

    /// Runs `work` on the sync's runtime; its message goes to the UI.
    fn spawn(&self, work: impl std::future::Future<Output = Msg> + Send + 'static) {
        let tx = self.tx.clone();
        let wake = self.wake.clone();
        if let Some(rt) = &self.runtime {
            rt.spawn(async move {
                let _ = tx.send(work.await);
                wake();
            });
        }
    }

    /// Accepts contact request `id` as `alias`; [`Msg::RequestAccepted`]
    /// follows.
    pub fn accept_request(&self, id: &str, alias: &str) {
        let a = alias.to_owned();
        self.submit(
            Command::AcceptRequest {
                id: id.to_owned(),
                alias: alias.to_owned(),
            },
            move |r| Msg::RequestAccepted {
                alias: a,
                result: r.and_then(Outcome::into_accepted),
            },
        );
    }

    /// Sends a contact request with the first message `text` to the
    /// organisation whose address is `link` (`TROPA:A/...`), fetched from
    /// its relay first; [`Msg::RequestSent`] follows.
    pub fn send_request(&self, link: &str, alias: &str, text: &str) {
        let (link, alias) = (Zeroizing::new(link.to_owned()), alias.to_owned());
        let text = Zeroizing::new(text.to_owned());
        let submitter = self.submitter.clone();
        self.spawn(async move {
            let result = submitter.send_request(&link, &alias, &text).await;
            Msg::RequestSent { alias, result }
        });
    }

    /// Stops the sync (texts already handed over are queued durably first)
    /// and closes the profile, on a thread of its own so the UI does not
    /// wait; returns at once. The decrypted data the UI held is the
    /// caller's to drop.
    pub fn close(self) -> std::thread::JoinHandle<()> {
        self.shut(true)
    }

    /// [`close`](Self::close) for a profile just wiped: nothing is written
    /// to it any more.
    pub fn close_wiped(self) -> std::thread::JoinHandle<()> {
        self.shut(false)
    }

    fn shut(mut self, purge: bool) -> std::thread::JoinHandle<()> {
        let sync = self.sync.take();
        let runtime = self.runtime.take();
        std::thread::spawn(move || {
            if let (Some(rt), Some(sync)) = (runtime, sync) {
                let _ = rt.block_on(async {
                    tokio::time::timeout(Duration::from_secs(3), sync.stop()).await
                });
                rt.shutdown_timeout(Duration::from_secs(1));
            }
            // Messages whose timer ran out while the desk was open go from
            // the disk now, off the UI thread (the next unlock would).
            if purge {
                let _ = self.client.purge_expired();
            }
            drop(self);
        })
    }
}

/// Opens (Argon2 takes a second or more) or creates a profile on a
/// background thread; the UI polls for the result.
pub struct Opening {
    rx: mpsc::Receiver<Result<Client, ProfileError>>,
}

impl std::fmt::Debug for Opening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opening")
    }
}

impl Opening {
    /// Runs `work` on its own thread.
    pub fn run(
        wake: Wake,
        work: impl FnOnce() -> Result<Client, ProfileError> + Send + 'static,
    ) -> Opening {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(work());
            wake();
        });
        Opening { rx }
    }

    /// The result, once there.
    pub fn poll(&self) -> Option<Result<Client, ProfileError>> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(mpsc::TryRecvError::Empty) => None,
            Err(mpsc::TryRecvError::Disconnected) => Some(Err(ProfileError::Storage(
                "the unlock stopped unexpectedly".into(),
            ))),
        }
    }
}

//! The tokio shell around the [`Engine`]: connections, subscription
//! readers, requests in flight, a tick. It makes no protocol decision: it
//! carries out the engine's [`Action`]s on real connections and turns what
//! happens into [`Input`]s.
//!
//! Subscription readers feed a bounded channel, so a relay or a backlog
//! cannot make the client read ahead of what the engine has processed
//! (backpressure through QUIC flow control).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::RngExt as _;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tropa_relay_client::{ConnectOptions, Event, RelayClient, RequestError, Socks5, Transport};
use zeroize::Zeroizing;

use crate::client::Network;
use crate::engine::{
    Action, Command, Engine, Input, Outcome, RelayKey, Reply, Request, SubEvent, Ticket,
};
use crate::error::{ClientError, RelayError};
use crate::sync::SyncEvent;

/// Subscription events read ahead of the engine, all mailboxes together.
const DELIVERY_BACKLOG: usize = 8;
/// Longest wait, at the end of a run, for close frames to leave.
const CLOSE_FLUSH: Duration = Duration::from_millis(150);
/// How long requests in flight may still finish once a run is told to stop.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Unix seconds now.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A command from a front end, with where its result goes.
pub(crate) struct CommandMsg {
    pub(crate) command: Command,
    pub(crate) reply: Option<oneshot::Sender<Result<Outcome, ClientError>>>,
}

/// How a run ends.
pub(crate) struct Exits {
    /// Leave when the engine is finished (a one-shot run).
    pub(crate) when_finished: bool,
    /// Leave at this instant at the latest.
    pub(crate) deadline: Instant,
    /// Leave when this fires (or its sender is dropped).
    pub(crate) stop: Option<oneshot::Receiver<()>>,
}

enum Done {
    Connected(RelayKey, Result<RelayClient, RelayError>),
    Input(Input),
}

/// The options for connection `key`. Through a proxy, each connection
/// the engine keeps apart gets SOCKS credentials of its own, made up for
/// this run, so Tor (`IsolateSOCKSAuth`, on by default) gives it a circuit
/// of its own: the relay then sees another exit for each contact. A proxy
/// configured with a password of its own gets that password on every
/// connection instead (it would refuse others).
pub(crate) fn connect_options(
    net: &Network,
    key: Option<&RelayKey>,
    prefer: Option<Transport>,
    circuits: &mut HashMap<RelayKey, Socks5>,
) -> ConnectOptions {
    let fresh = |s: &Socks5| {
        let mut rng = rand::rng();
        let user: [u8; 16] = rng.random();
        let pass: [u8; 16] = rng.random();
        Socks5 {
            proxy: s.proxy.clone(),
            credentials: Some((hex::encode(user), Zeroizing::new(hex::encode(pass)))),
        }
    };
    let socks5 = net.socks5.as_ref().map(|s| {
        if s.credentials.is_some() {
            return s.clone();
        }
        match key {
            Some(k) => circuits
                .entry(k.clone())
                .or_insert_with(|| fresh(s))
                .clone(),
            None => fresh(s),
        }
    });
    ConnectOptions {
        transport: net.transport,
        socks5,
        prefer,
        ..ConnectOptions::default()
    }
}

struct Shell {
    net: Network,
    /// SOCKS credentials per connection (see [`connect_options`]).
    circuits: HashMap<RelayKey, Socks5>,
    links: HashMap<RelayKey, Arc<RelayClient>>,
    readers: HashMap<RelayKey, Vec<JoinHandle<()>>>,
    tasks: JoinSet<Done>,
    subs_tx: mpsc::Sender<Input>,
    ready: Vec<Input>,
    replies: HashMap<Ticket, oneshot::Sender<Result<Outcome, ClientError>>>,
    events: Option<mpsc::UnboundedSender<SyncEvent>>,
    next_ticket: Ticket,
}

fn unreachable(detail: &str) -> RelayError {
    RelayError::Unreachable {
        detail: detail.to_owned(),
    }
}

async fn perform(c: &RelayClient, request: Request) -> Result<Reply, RequestError> {
    match request {
        Request::Create { auth, dh, password } => c
            .create_mailbox(&auth, &dh, password.as_deref())
            .await
            .map(Reply::Created),
        Request::CreateIntake { auth, dh, password } => c
            .create_intake_mailbox(&auth, &dh, password.as_deref())
            .await
            .map(Reply::Created),
        Request::Deposit {
            sender_id,
            envelope,
            signer,
        } => c
            .deposit(&sender_id, envelope, signer.as_ref())
            .await
            .map(|()| Reply::Done),
        Request::Ack {
            mailbox,
            auth,
            envelope_id,
        } => c
            .ack(&auth, &mailbox, &envelope_id)
            .await
            .map(|()| Reply::Done),
        Request::Secure {
            mailbox,
            auth,
            sender,
        } => c
            .secure(&auth, &mailbox, &sender)
            .await
            .map(|()| Reply::Done),
        Request::Delete { mailbox, auth } => c.delete(&auth, &mailbox).await.map(|()| Reply::Done),
        Request::PutLink {
            locator,
            data,
            owner,
            ttl_secs,
            password,
        } => c
            .put_link(&owner, &locator, data, ttl_secs, password.as_deref())
            .await
            .map(Reply::LinkStored),
        Request::DeleteLink { locator, owner } => {
            c.delete_link(&owner, &locator).await.map(|()| Reply::Done)
        }
    }
}

fn sub_event(ev: Result<Option<Event>, RequestError>) -> SubEvent {
    match ev {
        Ok(Some(Event::Delivery(d))) => SubEvent::Delivery(d),
        Ok(Some(Event::Idle)) => SubEvent::Idle,
        Ok(None) => SubEvent::Ended(unreachable("the relay ended the subscription")),
        Err(e) => SubEvent::Ended(e.into()),
    }
}

impl Shell {
    fn execute(&mut self, engine: &mut Engine, action: Action) {
        match action {
            Action::Connect {
                relay,
                address,
                prefer,
            } => {
                let opts = connect_options(&self.net, Some(&relay), prefer, &mut self.circuits);
                self.tasks.spawn(async move {
                    let c = RelayClient::connect_with(&address, &opts)
                        .await
                        .map_err(Into::into);
                    Done::Connected(relay, c)
                });
            }
            Action::Disconnect { relay } => self.close(engine, &relay),
            Action::Subscribe {
                relay,
                mailbox,
                auth,
            } => {
                let Some(c) = self.links.get(&relay).cloned() else {
                    self.ready.push(Input::Subscription {
                        relay,
                        mailbox,
                        event: SubEvent::Refused(unreachable("not connected")),
                    });
                    return;
                };
                let tx = self.subs_tx.clone();
                let key = relay.clone();
                let reader = tokio::spawn(async move {
                    let input = |event| Input::Subscription {
                        relay: key.clone(),
                        mailbox,
                        event,
                    };
                    match c.subscribe(&auth, &mailbox).await {
                        Ok(sub) => {
                            if tx.send(input(SubEvent::Started)).await.is_ok() {
                                sub.forward(tx, |ev| input(sub_event(ev))).await;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(input(SubEvent::Refused(e.into()))).await;
                        }
                    }
                });
                self.readers.entry(relay).or_default().push(reader);
            }
            Action::Request { op, relay, request } => {
                let Some(c) = self.links.get(&relay).cloned() else {
                    self.ready.push(Input::Done {
                        op,
                        result: Err(unreachable("not connected")),
                    });
                    return;
                };
                self.tasks.spawn(async move {
                    let result = perform(&c, request).await.map_err(Into::into);
                    Done::Input(Input::Done { op, result })
                });
            }
            Action::Emit(ev) => {
                if let Some(tx) = &self.events {
                    let _ = tx.send(ev);
                }
            }
            Action::Complete { ticket, result } => {
                if let Some(reply) = self.replies.remove(&ticket) {
                    let _ = reply.send(result);
                }
            }
        }
    }

    fn close(&mut self, engine: &mut Engine, relay: &RelayKey) {
        for r in self.readers.remove(relay).unwrap_or_default() {
            r.abort();
        }
        if let Some(c) = self.links.remove(relay) {
            let (sent, received) = c.traffic();
            engine.count_traffic(sent, received);
            c.abort();
        }
    }

    fn command(&mut self, msg: CommandMsg) -> Input {
        self.next_ticket += 1;
        if let Some(reply) = msg.reply {
            self.replies.insert(self.next_ticket, reply);
        }
        Input::Command {
            ticket: self.next_ticket,
            command: msg.command,
        }
    }
}

/// Runs `engine` on the network until `exits` says so: first `first`,
/// then whatever arrives on `commands`; reports what happened on `events`.
///
/// # Errors
/// Storage errors only.
pub(crate) async fn run(
    engine: &mut Engine,
    net: Network,
    events: Option<mpsc::UnboundedSender<SyncEvent>>,
    mut commands: Option<mpsc::UnboundedReceiver<CommandMsg>>,
    first: Vec<CommandMsg>,
    mut exits: Exits,
) -> Result<(), ClientError> {
    let (subs_tx, mut subs_rx) = mpsc::channel(DELIVERY_BACKLOG);
    let mut shell = Shell {
        net,
        circuits: HashMap::new(),
        links: HashMap::new(),
        readers: HashMap::new(),
        tasks: JoinSet::new(),
        subs_tx,
        ready: Vec::new(),
        replies: HashMap::new(),
        events,
        next_ticket: 0,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut inputs = vec![Input::Start];
    for msg in first {
        inputs.push(shell.command(msg));
    }
    // Once asked to stop: the deadline for requests still in flight.
    let mut stopping: Option<Instant> = None;
    loop {
        for input in inputs.drain(..) {
            for a in engine.handle(input, now())? {
                shell.execute(engine, a);
            }
        }
        if !shell.ready.is_empty() {
            inputs.append(&mut shell.ready);
            continue;
        }
        match stopping {
            Some(until) if !engine.requests_in_flight() || Instant::now() >= until => break,
            Some(_) => {}
            None if exits.when_finished && engine.finished() => break,
            None => {}
        }
        let stop = async {
            match exits.stop.as_mut() {
                Some(s) => {
                    let _ = s.await;
                }
                None => std::future::pending().await,
            }
        };
        let deadline = stopping.unwrap_or(exits.deadline);
        tokio::select! {
            Some(input) = subs_rx.recv() => inputs.push(input),
            Some(done) = shell.tasks.join_next() => match done {
                Ok(Done::Connected(relay, Ok(c))) => {
                    let transport = c.transport();
                    shell.links.insert(relay.clone(), Arc::new(c));
                    inputs.push(Input::Connected { relay, transport });
                }
                Ok(Done::Connected(relay, Err(error))) => {
                    inputs.push(Input::ConnectFailed { relay, error });
                }
                Ok(Done::Input(input)) => inputs.push(input),
                Err(_) => {}
            },
            cmd = async {
                match commands.as_mut() {
                    Some(c) => c.recv().await,
                    None => std::future::pending().await,
                }
            } => match cmd {
                Some(msg) => inputs.push(shell.command(msg)),
                None => commands = None,
            },
            _ = tick.tick() => inputs.push(Input::Tick),
            () = stop => {
                exits.stop = None;
                // Commands already sent are carried out (a line typed just
                // before leaving is queued durably); what must not be lost
                // is kept; deposits in flight get a moment to finish.
                if let Some(c) = commands.as_mut() {
                    c.close();
                    while let Ok(msg) = c.try_recv() {
                        inputs.push(shell.command(msg));
                    }
                }
                commands = None;
                inputs.push(Input::Stop);
                stopping = Some(Instant::now() + STOP_GRACE);
            }
            () = tokio::time::sleep_until(deadline.into()) => {
                if stopping.is_some() {
                    break;
                }
                inputs.push(Input::Stop);
                stopping = Some(Instant::now() + STOP_GRACE);
            }
        }
    }
    let open: Vec<Arc<RelayClient>> = shell.links.values().cloned().collect();
    let relays: Vec<RelayKey> = shell.links.keys().cloned().collect();
    for relay in relays {
        shell.close(engine, &relay);
    }
    // Let the close frames go out before the process may exit.
    let mut closing = JoinSet::new();
    for c in open {
        closing.spawn(async move { c.close_within(CLOSE_FLUSH).await });
    }
    while closing.join_next().await.is_some() {}
    // Commands that could not finish learn why.
    for (_, reply) in shell.replies.drain() {
        let _ = reply.send(Err(ClientError::Relay(unreachable("the sync stopped"))));
    }
    shell.tasks.abort_all();
    Ok(())
}

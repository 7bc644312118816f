//! The desk's state and every action a handler can take, without egui: the
//! screens (first run, unlock, the desk), the forms' contents, the dialogs,
//! idle locking. The UI in [`crate::ui`] only draws this and calls its
//! methods; tests drive it directly or through the UI.
//!
//! Locking drops the unlocked profile and every decrypted string this
//! state holds (forms, drafts, conversations, notes).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tropa_client::{CaseStatus, Client, ClientError, KdfParams, ProfileError, SafetyView, Verdict};
use tropa_proto::RelayAddress;
use zeroize::{Zeroize, Zeroizing};

use crate::model::{Follow, Workspace};
use crate::session::{Msg, Opening, Session, Wake};

/// Default minutes of inactivity before the desk locks itself.
pub const DEFAULT_LOCK_MINUTES: u32 = 5;

/// How the desk starts.
#[derive(Clone, Debug)]
pub struct Options {
    /// The profile directory.
    pub home: PathBuf,
    /// Lock after this long without input (None: never).
    pub lock_after: Option<Duration>,
    /// Argon2 cost for a new profile.
    pub kdf: KdfParams,
}

/// The first-run form.
#[derive(Default)]
pub struct NewProfile {
    /// Display name.
    pub name: String,
    /// Relay address (`tropa://KEY@HOST:PORT`).
    pub relay: String,
    /// Passphrase.
    pub passphrase: Zeroizing<String>,
    /// Passphrase again.
    pub repeat: Zeroizing<String>,
}

/// The dialog open over the desk.
pub enum Dialog {
    /// None.
    None,
    /// Making an invitation: the alias, then the link.
    Invite {
        /// The alias to give the contact.
        alias: String,
        /// The link once made.
        link: Option<Zeroizing<String>>,
        /// Waiting for the sync.
        busy: bool,
    },
    /// Accepting a pasted link (or writing to an organisation's address).
    Accept {
        /// The link.
        link: Zeroizing<String>,
        /// The alias to give the contact.
        alias: String,
        /// For an organisation's address (`TROPA:A/...`): the first
        /// message of the contact request.
        message: Zeroizing<String>,
        /// Waiting for the sync.
        busy: bool,
    },
    /// The intake list: contact requests to the public address.
    Requests {
        /// The name typed for each request, by short id.
        names: std::collections::HashMap<String, String>,
        /// The request being accepted (short id).
        busy: Option<String>,
    },
    /// The safety number of a case.
    Verify {
        /// Whose.
        alias: String,
        /// The number.
        safety: SafetyView,
        /// Digits the other person reads out (optional check).
        typed: String,
    },
    /// Wiping the profile: the handler types the confirmation word.
    Wipe {
        /// What they typed.
        typed: String,
    },
    /// Settings.
    Settings {
        /// Minutes before locking, as typed (0 = never).
        minutes: String,
    },
}

/// The case panel's forms.
#[derive(Default)]
pub struct CaseForms {
    /// A note being written.
    pub note: Zeroizing<String>,
    /// Evaluator name.
    pub evaluator: String,
    /// Verdict chosen.
    pub verdict: Option<Verdict>,
    /// Comment.
    pub comment: Zeroizing<String>,
}

/// An unlocked desk.
pub struct Desk {
    /// The profile and its sync.
    pub session: Session,
    /// Cases and conversations in memory.
    pub ws: Workspace,
    /// What is being typed to the selected case.
    pub draft: Zeroizing<String>,
    /// The case panel's forms.
    pub forms: CaseForms,
    /// The open dialog.
    pub dialog: Dialog,
    /// The last error of an action, shown until the next action.
    pub error: Option<String>,
    /// Texts that could not be queued, by case, until that case is opened
    /// again (then they go back into its message box).
    pub unsent: std::collections::HashMap<String, Zeroizing<String>>,
    /// When disappearing messages were last dropped from the view.
    pub expired_at: Option<Instant>,
    /// Contact requests waiting on the public address, oldest first.
    pub requests: Vec<tropa_client::RequestView>,
    /// The public address's link, if the profile has one.
    pub address: Option<Zeroizing<String>>,
}

/// Which screen is up.
pub enum Screen {
    /// No profile yet.
    FirstRun {
        /// The form.
        form: NewProfile,
        /// Create without checking the relay answers.
        offline: bool,
    },
    /// Asking for the passphrase.
    Unlock {
        /// The passphrase being typed.
        passphrase: Zeroizing<String>,
    },
    /// Argon2 is running.
    Opening(Opening),
    /// The desk.
    Desk(Box<Desk>),
}

/// The word typed to confirm a wipe.
pub const WIPE_WORD: &str = "WIPE";

/// The whole app's state.
pub struct App {
    opts: Options,
    wake: Wake,
    /// The screen.
    pub screen: Screen,
    /// A message about the last thing that failed on the lock screens.
    pub message: Option<String>,
    last_input: Instant,
    /// The same by the wall clock, which (unlike `Instant` on Linux) also
    /// runs while the computer is suspended.
    last_input_wall: std::time::SystemTime,
    /// The UI must forget its widgets' state (text fields keep their text
    /// and undo history in egui's memory): after a lock, wipe or unlock.
    forget_ui: bool,
    /// Sessions being closed in the background.
    closing: Vec<std::thread::JoinHandle<()>>,
}

fn plain(e: &ClientError) -> String {
    e.to_string()
}

fn profile_message(e: &ProfileError) -> String {
    match e {
        ProfileError::WrongPassphrase => "Wrong passphrase. Nothing was changed; try again.".into(),
        ProfileError::Locked => {
            "This profile is open in another program (tropa or tropa-desk). Close it there first."
                .into()
        }
        other => other.to_string(),
    }
}

impl App {
    /// The app for `opts.home`: the unlock screen if a profile is there,
    /// the first-run screen if not.
    pub fn new(opts: Options, wake: Wake) -> App {
        let screen = Self::locked_screen(&opts);
        App {
            opts,
            wake,
            screen,
            message: None,
            last_input: Instant::now(),
            last_input_wall: std::time::SystemTime::now(),
            forget_ui: false,
            closing: Vec::new(),
        }
    }

    fn locked_screen(opts: &Options) -> Screen {
        if Client::exists(&opts.home) {
            Screen::Unlock {
                passphrase: Zeroizing::default(),
            }
        } else {
            Screen::FirstRun {
                form: NewProfile::default(),
                offline: false,
            }
        }
    }

    /// The options it runs with.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The desk, when unlocked.
    pub fn desk(&mut self) -> Option<&mut Desk> {
        match &mut self.screen {
            Screen::Desk(d) => Some(d),
            _ => None,
        }
    }

    /// Starts unlocking with the passphrase typed on the unlock screen.
    pub fn unlock(&mut self) {
        if let Screen::Unlock { passphrase } = &mut self.screen {
            if passphrase.is_empty() {
                self.message = Some("Type your passphrase.".into());
                return;
            }
            let p = std::mem::take(passphrase);
            self.message = None;
            // A profile locked a moment ago may still be closing (its sync
            // finishing a deposit): wait for it, or the store is still
            // held and the unlock fails as "open in another program".
            let closing = std::mem::take(&mut self.closing);
            let home = self.opts.home.clone();
            self.screen = Screen::Opening(Opening::run(self.wake.clone(), move || {
                for c in closing {
                    let _ = c.join();
                }
                // The desk's first read (snapshot) purges expired messages.
                Client::open_unpurged(&home, p.as_bytes())
            }));
        }
    }

    /// Creates the profile from the first-run form.
    pub fn create(&mut self) {
        let Screen::FirstRun { form, offline } = &mut self.screen else {
            return;
        };
        if *form.passphrase != *form.repeat {
            self.message = Some("The two passphrases differ.".into());
            return;
        }
        let relay: RelayAddress = match form.relay.trim().parse() {
            Ok(r) => r,
            Err(e) => {
                self.message = Some(format!("Relay address: {e}"));
                return;
            }
        };
        let name = form.name.trim().to_owned();
        let passphrase = std::mem::take(&mut form.passphrase);
        form.repeat.zeroize();
        let (home, kdf, check) = (self.opts.home.clone(), self.opts.kdf, !*offline);
        self.message = None;
        let closing = std::mem::take(&mut self.closing);
        self.screen = Screen::Opening(Opening::run(self.wake.clone(), move || {
            // A wiped profile may still be closing in the background.
            for c in closing {
                let _ = c.join();
            }
            if check {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| ProfileError::Storage(e.to_string()))?;
                rt.block_on(Client::check_relay(&relay, &tropa_client::Network::default())).map_err(|e| {
                    ProfileError::Storage(format!(
                        "the relay did not answer as expected: {e} (check the address, or tick \"create without checking\")"
                    ))
                })?;
            }
            Client::init(&home, passphrase.as_bytes(), &name, &relay, kdf)
        }));
    }

    /// Locks: the profile closes and every decrypted string goes.
    pub fn lock(&mut self) {
        self.forget_ui = true;
        if let Screen::Desk(desk) =
            std::mem::replace(&mut self.screen, Self::locked_screen(&self.opts))
        {
            let desk = *desk;
            let Desk { session, ws, .. } = desk;
            drop(ws);
            self.closing.push(session.close());
        }
    }

    /// Waits for profiles being closed (at exit, so queued texts are safe).
    pub fn finish(&mut self) {
        self.lock();
        for h in self.closing.drain(..) {
            let _ = h.join();
        }
    }

    /// Whether it is locked (no profile open).
    pub fn is_locked(&self) -> bool {
        !matches!(self.screen, Screen::Desk(_))
    }

    /// Notes user input (for idle locking). Call it after [`tick`]
    /// (Self::tick) in a frame, so input that ends a long idle time does
    /// not count as activity before the idle check has run.
    pub fn touched(&mut self, now: Instant) {
        self.last_input = now;
        self.last_input_wall = std::time::SystemTime::now();
    }

    /// Whether the UI must forget its widgets' state now (once).
    pub fn take_forget_ui(&mut self) -> bool {
        std::mem::take(&mut self.forget_ui)
    }

    fn idle(&self, now: Instant) -> Duration {
        let wall = std::time::SystemTime::now()
            .duration_since(self.last_input_wall)
            .unwrap_or_default();
        now.saturating_duration_since(self.last_input).max(wall)
    }

    /// Sets the idle lock (None: never).
    pub fn set_lock_after(&mut self, after: Option<Duration>) {
        self.opts.lock_after = after;
    }

    /// Runs once per frame: unlock results, sync messages, idle lock.
    pub fn tick(&mut self, now: Instant) {
        self.closing.retain(|h| !h.is_finished());
        if let Screen::Opening(op) = &self.screen
            && let Some(result) = op.poll()
        {
            match result {
                Ok(client) => {
                    if let Err(e) = self.adopt(client) {
                        self.message = Some(e);
                        self.screen = Self::locked_screen(&self.opts);
                    }
                }
                Err(e) => {
                    self.message = Some(profile_message(&e));
                    self.screen = Self::locked_screen(&self.opts);
                }
            }
        }
        if let Some(after) = self.opts.lock_after
            && !self.is_locked()
            && self.idle(now) >= after
        {
            self.lock();
            self.message = Some("Locked after inactivity.".into());
        }
        if let Some(desk) = self.desk() {
            desk.pump();
            if desk
                .expired_at
                .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1))
            {
                desk.expired_at = Some(now);
                desk.ws.expire(tropa_client_now());
            }
        }
    }

    /// Opens the desk on an unlocked profile: starts its sync and loads
    /// every case and message into memory.
    ///
    /// # Errors
    /// Why not, in words (the sync could not start, storage).
    pub fn adopt(&mut self, client: Client) -> Result<(), String> {
        self.forget_ui = true;
        self.touched(Instant::now());
        let session = Session::start(client, self.wake.clone()).map_err(|e| e.to_string())?;
        match load(session.client()) {
            Ok(ws) => {
                self.screen = Screen::Desk(Box::new(Desk {
                    session,
                    ws,
                    draft: Zeroizing::default(),
                    forms: CaseForms::default(),
                    dialog: Dialog::None,
                    error: None,
                    unsent: std::collections::HashMap::new(),
                    expired_at: None,
                    requests: Vec::new(),
                    address: None,
                }));
                if let Some(d) = self.desk() {
                    d.reload_requests();
                }
                Ok(())
            }
            Err(e) => {
                self.closing.push(session.close());
                Err(plain(&e))
            }
        }
    }

    /// Wipes the profile, if the wipe dialog holds the confirmation word.
    pub fn wipe(&mut self) {
        let confirmed = matches!(
            self.desk().map(|d| &d.dialog),
            Some(Dialog::Wipe { typed }) if typed.trim() == WIPE_WORD
        );
        if !confirmed {
            if let Some(d) = self.desk() {
                d.error = Some(format!("Type {WIPE_WORD} to confirm."));
            }
            return;
        }
        if let Screen::Desk(desk) =
            std::mem::replace(&mut self.screen, Self::locked_screen(&self.opts))
        {
            let Desk { session, ws, .. } = *desk;
            drop(ws);
            // Crypto-erase first, at once (S9: under a second), while the
            // sync may still be busy: erasing the key file works on an open
            // store, and whatever the closing sync writes afterwards lands
            // in deleted files nobody can decrypt.
            let wiped = Client::wipe(&self.opts.home);
            self.closing.push(session.close_wiped());
            self.message = Some(match wiped {
                Ok(()) => "The profile was wiped.".into(),
                Err(e) => format!("Wipe failed: {e}"),
            });
        }
        self.forget_ui = true;
        self.screen = Self::locked_screen(&self.opts);
    }
}

/// Everything the desk shows, from one pass over the store (which also
/// deletes messages whose timer ran out: the desk opens unpurged).
fn load(client: &Client) -> Result<Workspace, ClientError> {
    let (cases, messages) = client.snapshot()?;
    Ok(Workspace::new(cases, messages))
}

impl Desk {
    fn pump(&mut self) {
        let mut reload = false;
        for msg in self.session.poll() {
            match msg {
                Msg::Event(ev) => match self.ws.apply(&ev) {
                    Follow::Reload => reload = true,
                    Follow::MarkRead(id) => self.mark_read(vec![id]),
                    Follow::Requests => self.reload_requests(),
                    Follow::None => {}
                },
                Msg::RequestAccepted { alias, result } => {
                    if let Dialog::Requests { busy, .. } = &mut self.dialog {
                        *busy = None;
                    }
                    match result {
                        Ok(delivered) => {
                            self.error = (!delivered).then(|| {
                                format!(
                                    "{alias} added; the reply is queued until their relay answers."
                                )
                            });
                            reload = true;
                        }
                        Err(e) => self.error = Some(plain(&e)),
                    }
                    self.reload_requests();
                }
                Msg::RequestSent { alias, result } => {
                    match result {
                        Ok(delivered) => {
                            self.dialog = Dialog::None;
                            self.error = Some(if delivered {
                                format!(
                                    "Request sent to {alias}. They become a contact once they accept it."
                                )
                            } else {
                                format!(
                                    "The request to {alias} is queued: their address takes none now. It goes out later."
                                )
                            });
                        }
                        Err(e) => {
                            if let Dialog::Accept { busy, .. } = &mut self.dialog {
                                *busy = false;
                            }
                            self.error = Some(plain(&e));
                        }
                    }
                    reload = true;
                }
                Msg::Sent {
                    alias,
                    text,
                    result,
                } => match result {
                    Ok(id) => {
                        self.ws.add_outgoing(&alias, id, &text, tropa_client_now());
                    }
                    Err(e) => {
                        self.error = Some(format!(
                            "Not sent to {alias}: {}. The text is back in its message box.",
                            plain(&e)
                        ));
                        // Back into the box it came from: never into
                        // another case's, where Enter would send it to
                        // the wrong person.
                        if self.ws.selected() == Some(alias.as_str()) && self.draft.is_empty() {
                            *self.draft = text.to_string();
                        } else {
                            self.unsent.insert(alias, text);
                        }
                    }
                },
                Msg::Invited(result) => match (&mut self.dialog, result) {
                    (Dialog::Invite { link, busy, alias }, Ok((l, a))) => {
                        *link = Some(Zeroizing::new(l));
                        *alias = a;
                        *busy = false;
                        reload = true;
                    }
                    (_, Ok(_)) => reload = true,
                    (d, Err(e)) => {
                        if let Dialog::Invite { busy, .. } = d {
                            *busy = false;
                        }
                        self.error = Some(plain(&e));
                    }
                },
                Msg::Accepted { alias, result } => {
                    match result {
                        Ok(delivered) => {
                            self.dialog = Dialog::None;
                            self.error = if delivered {
                                None
                            } else {
                                Some(format!(
                                    "{alias} added; the reply is queued until their relay answers."
                                ))
                            };
                            self.ws.select(Some(&alias));
                        }
                        Err(e) => {
                            if let Dialog::Accept { busy, .. } = &mut self.dialog {
                                *busy = false;
                            }
                            self.error = Some(plain(&e));
                        }
                    }
                    reload = true;
                }
            }
        }
        if reload {
            self.reload();
        }
    }

    fn reload(&mut self) {
        match load(self.session.client()) {
            Ok(fresh) => {
                let filter = self.ws.filter().clone();
                let selected = self.ws.selected().map(str::to_owned);
                self.ws = fresh;
                self.ws.set_filter(filter);
                let unread = self.ws.select(selected.as_deref());
                if !unread.is_empty() {
                    self.mark_read(unread);
                }
            }
            Err(e) => self.error = Some(plain(&e)),
        }
    }

    fn report(&mut self, r: Result<(), ClientError>) -> bool {
        match r {
            Ok(()) => {
                self.error = None;
                true
            }
            Err(e) => {
                self.error = Some(plain(&e));
                false
            }
        }
    }

    fn refresh_case(&mut self, alias: &str) {
        match self.session.client().case(alias) {
            Ok(c) => self.ws.update_case(c),
            Err(e) => self.error = Some(plain(&e)),
        }
    }

    fn mark_read(&mut self, ids: Vec<String>) {
        if let Some(a) = self.ws.selected().map(str::to_owned) {
            let r = self.session.client().mark_read_ids(&a, &ids);
            if let Err(e) = r {
                self.error = Some(plain(&e));
            }
        }
    }

    /// Opens the case `alias` (marks its messages read).
    pub fn select(&mut self, alias: &str) {
        if self.ws.selected() != Some(alias) {
            self.draft.zeroize();
            self.forms = CaseForms::default();
        }
        let unread = self.ws.select(Some(alias));
        self.mark_read(unread);
        if let Some(text) = self.unsent.remove(alias) {
            self.draft = text;
        }
    }

    /// Moves the selection by `by` rows.
    pub fn move_selection(&mut self, by: isize) {
        if let Some(a) = self.ws.move_selection(by) {
            self.select(&a);
        }
    }

    /// Sends the draft to the selected case.
    pub fn send(&mut self) {
        let Some(alias) = self.ws.selected().map(str::to_owned) else {
            return;
        };
        let text = self.draft.trim().to_owned();
        if text.is_empty() {
            return;
        }
        self.session.send(&alias, &text);
        self.draft.zeroize();
        self.draft.clear();
        self.error = None;
    }

    /// Sets the selected case's status.
    pub fn set_status(&mut self, status: CaseStatus) {
        let Some(alias) = self.ws.selected().map(str::to_owned) else {
            return;
        };
        let r = self.session.client().set_case_status(&alias, status);
        if self.report(r) {
            self.refresh_case(&alias);
        }
    }

    /// Stars or unstars the selected case.
    pub fn toggle_star(&mut self) {
        let Some(alias) = self.ws.selected().map(str::to_owned) else {
            return;
        };
        let starred = self.ws.case(&alias).is_some_and(|c| c.summary.starred);
        let r = self.session.client().set_starred(&alias, !starred);
        if self.report(r) {
            self.refresh_case(&alias);
        }
    }

    /// Adds the note being written to the selected case.
    pub fn add_note(&mut self) {
        let Some(alias) = self.ws.selected().map(str::to_owned) else {
            return;
        };
        let r = self
            .session
            .client()
            .add_case_note(&alias, &self.forms.note);
        if self.report(r) {
            self.forms.note.zeroize();
            self.forms.note.clear();
            self.refresh_case(&alias);
        }
    }

    /// Records the evaluation in the form on the selected case.
    pub fn add_evaluation(&mut self) {
        let Some(alias) = self.ws.selected().map(str::to_owned) else {
            return;
        };
        let Some(verdict) = self.forms.verdict else {
            self.error = Some("Choose an outcome: pass, fail or inconclusive.".into());
            return;
        };
        let r = self.session.client().add_evaluation(
            &alias,
            &self.forms.evaluator,
            verdict,
            &self.forms.comment,
        );
        if self.report(r) {
            self.forms = CaseForms::default();
            self.refresh_case(&alias);
        }
    }

    /// Clears the identity alert of the selected case.
    pub fn acknowledge_alert(&mut self) {
        let Some(alias) = self.ws.selected().map(str::to_owned) else {
            return;
        };
        let r = self.session.client().acknowledge_identity_alert(&alias);
        if self.report(r) {
            self.refresh_case(&alias);
        }
    }

    /// Opens the invitation dialog.
    pub fn open_invite(&mut self) {
        self.error = None;
        self.dialog = Dialog::Invite {
            alias: String::new(),
            link: None,
            busy: false,
        };
    }

    /// Makes the invitation the dialog describes.
    pub fn invite(&mut self) {
        if let Dialog::Invite { alias, busy, link } = &mut self.dialog
            && !*busy
            && link.is_none()
        {
            let a = alias.trim();
            self.session.invite((!a.is_empty()).then_some(a));
            *busy = true;
        }
    }

    /// Opens the accept dialog.
    pub fn open_accept(&mut self) {
        self.error = None;
        self.dialog = Dialog::Accept {
            link: Zeroizing::default(),
            alias: String::new(),
            message: Zeroizing::default(),
            busy: false,
        };
    }

    /// Accepts the link pasted in the dialog; for an organisation's
    /// address, sends it a contact request with the first message.
    pub fn accept(&mut self) {
        if let Dialog::Accept {
            link,
            alias,
            message,
            busy,
        } = &mut self.dialog
            && !*busy
        {
            let (l, a) = (link.trim().to_owned(), alias.trim().to_owned());
            if l.is_empty() || a.is_empty() {
                self.error = Some("Paste the link and give the contact a name.".into());
                return;
            }
            if tropa_client::client::is_address_link(&l) {
                if message.trim().is_empty() {
                    self.error = Some(
                        "This is an organisation's address: write them a first message.".into(),
                    );
                    return;
                }
                self.session.send_request(&l, &a, message.trim());
            } else {
                self.session.accept(&l, &a);
            }
            *busy = true;
        }
    }

    /// Reads the contact requests (and the address) from the profile.
    pub fn reload_requests(&mut self) {
        let client = self.session.client();
        match (client.requests(), client.address()) {
            (Ok(requests), Ok(address)) => {
                self.requests = requests;
                self.address = address.map(|a| Zeroizing::new(a.link.clone()));
            }
            (Err(e), _) | (_, Err(e)) => self.error = Some(plain(&e)),
        }
    }

    /// Opens the intake list.
    pub fn open_requests(&mut self) {
        self.error = None;
        self.reload_requests();
        self.dialog = Dialog::Requests {
            names: std::collections::HashMap::new(),
            busy: None,
        };
    }

    fn request_id(&self, short_id: &str) -> Option<String> {
        self.requests
            .iter()
            .find(|r| r.short_id == short_id)
            .map(|r| r.id.clone())
    }

    /// Accepts the request `short_id` of the intake list under the name
    /// typed for it.
    pub fn accept_request(&mut self, short_id: &str) {
        let Some(id) = self.request_id(short_id) else {
            return;
        };
        let Dialog::Requests { names, busy } = &mut self.dialog else {
            return;
        };
        if busy.is_some() {
            return;
        }
        let name = names.get(short_id).map_or("", |n| n.trim()).to_owned();
        if name.is_empty() {
            self.error = Some("Give the requester a name first.".into());
            return;
        }
        self.session.accept_request(&id, &name);
        *busy = Some(short_id.to_owned());
        self.error = None;
    }

    /// Rejects the request `short_id`: it is deleted, nothing is sent.
    pub fn reject_request(&mut self, short_id: &str) {
        let Some(id) = self.request_id(short_id) else {
            return;
        };
        let r = self.session.client().reject_request(&id);
        if self.report(r) {
            self.reload_requests();
        }
    }

    /// Opens the safety number of the selected case.
    pub fn open_verify(&mut self) {
        let Some(alias) = self.ws.selected().map(str::to_owned) else {
            return;
        };
        match self.session.client().safety(&alias) {
            Ok(safety) => {
                self.error = None;
                self.dialog = Dialog::Verify {
                    alias,
                    safety,
                    typed: String::new(),
                };
            }
            Err(e) => self.error = Some(plain(&e)),
        }
    }

    /// Marks the case in the verify dialog as verified (checking the typed
    /// digits when some were typed).
    pub fn confirm_verified(&mut self) {
        let Dialog::Verify { alias, typed, .. } = &self.dialog else {
            return;
        };
        let alias = alias.clone();
        let typed = typed.trim().to_owned();
        let r = self
            .session
            .client()
            .confirm_verified(&alias, (!typed.is_empty()).then_some(typed.as_str()));
        if self.report(r) {
            self.dialog = Dialog::None;
            self.refresh_case(&alias);
        }
    }

    /// Closes the dialog.
    pub fn close_dialog(&mut self) {
        self.dialog = Dialog::None;
        self.error = None;
    }
}

fn tropa_client_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

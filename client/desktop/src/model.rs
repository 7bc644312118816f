//! The unlocked desk's data in memory: every case with its conversation,
//! the list as filtered, searched and sorted, the selection, and which
//! relays are down. Pure: no I/O, no egui. It changes only through its
//! methods (loaded once at unlock, then kept current by sync events and
//! the handler's own actions), so a frame reads it without touching disk.
//!
//! It holds decrypted text; dropping it wipes every string it owns.

use std::collections::{BTreeSet, HashMap};

use tropa_client::{CaseStatus, CaseView, MessageStatus, MessageView, SyncEvent};
use zeroize::Zeroize;

/// Which cases the list shows. `Debug` leaves out the search words (names
/// and words from notes and messages).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this status (None: all).
    pub status: Option<CaseStatus>,
    /// Only starred cases.
    pub starred_only: bool,
    /// Words to find in aliases, notes and message text (ignoring case).
    pub query: String,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("status", &self.status)
            .field("starred_only", &self.starred_only)
            .field("query", &"<redacted>")
            .finish()
    }
}

/// What an event needs from the shell beyond the model's own change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Follow {
    /// Nothing.
    None,
    /// Contacts came or went: reload the cases from the profile.
    Reload,
    /// A message arrived in the open conversation: mark it read (its id).
    MarkRead(String),
    /// A contact request arrived: reload the intake list.
    Requests,
}

/// The desk's cases and conversations.
#[derive(Default)]
pub struct Workspace {
    cases: Vec<CaseView>,
    conversations: HashMap<String, Vec<MessageView>>,
    /// Per case (same index as `cases`): alias, notes and message text,
    /// lowercased, for search.
    haystacks: Vec<String>,
    filter: Filter,
    /// Indices into `cases`, in list order.
    visible: Vec<usize>,
    selected: Option<String>,
    /// Receipts that arrived before their message's `Queued` reply.
    early: HashMap<String, MessageStatus>,
    down: BTreeSet<String>,
    notices: Vec<String>,
}

impl Drop for Workspace {
    fn drop(&mut self) {
        for h in &mut self.haystacks {
            h.zeroize();
        }
        self.filter.query.zeroize();
        for m in self.conversations.values_mut().flatten() {
            m.text.zeroize();
            m.alias.zeroize();
        }
        for n in &mut self.notices {
            n.zeroize();
        }
    }
}

fn haystack(case: &CaseView, messages: &[MessageView]) -> String {
    let mut h = case.summary.alias.to_lowercase();
    for n in &case.notes {
        h.push('\n');
        h.push_str(&n.text.to_lowercase());
    }
    for m in messages {
        h.push('\n');
        h.push_str(&m.text.to_lowercase());
    }
    h
}

impl Workspace {
    /// The desk over `cases` and `messages` (every message, any contact).
    pub fn new(cases: Vec<CaseView>, messages: Vec<MessageView>) -> Self {
        let mut ws = Workspace::default();
        ws.load(cases, messages);
        ws
    }

    /// Replaces the cases and conversations (keeping filter and selection).
    pub fn load(&mut self, cases: Vec<CaseView>, messages: Vec<MessageView>) {
        let mut conversations: HashMap<String, Vec<MessageView>> = HashMap::new();
        for m in messages {
            conversations.entry(m.alias.clone()).or_default().push(m);
        }
        self.haystacks = cases
            .iter()
            .map(|c| {
                haystack(
                    c,
                    conversations
                        .get(&c.summary.alias)
                        .map_or(&[][..], Vec::as_slice),
                )
            })
            .collect();
        self.cases = cases;
        self.conversations = conversations;
        if let Some(s) = &self.selected
            && !self.cases.iter().any(|c| &c.summary.alias == s)
        {
            self.selected = None;
        }
        self.refresh();
    }

    /// Replaces one case's details (after the handler changed it).
    pub fn update_case(&mut self, case: CaseView) {
        if let Some(i) = self.index(&case.summary.alias) {
            self.cases[i] = case;
            self.haystacks[i] = haystack(
                &self.cases[i],
                self.conversations
                    .get(&self.cases[i].summary.alias)
                    .map_or(&[][..], Vec::as_slice),
            );
            self.refresh();
        }
    }

    fn index(&self, alias: &str) -> Option<usize> {
        self.cases.iter().position(|c| c.summary.alias == alias)
    }

    /// Recomputes the list: filter, search, most recent activity first.
    fn refresh(&mut self) {
        let query = self.filter.query.trim().to_lowercase();
        let mut visible: Vec<usize> = (0..self.cases.len())
            .filter(|&i| {
                let s = &self.cases[i].summary;
                self.filter.status.is_none_or(|st| s.status == st)
                    && (!self.filter.starred_only || s.starred)
                    && (query.is_empty() || self.haystacks[i].contains(&query))
            })
            .collect();
        visible.sort_by(|&a, &b| {
            let (a, b) = (&self.cases[a].summary, &self.cases[b].summary);
            b.last_activity
                .cmp(&a.last_activity)
                .then_with(|| a.alias.cmp(&b.alias))
        });
        self.visible = visible;
    }

    /// The filter in force.
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// Sets the filter.
    pub fn set_filter(&mut self, filter: Filter) {
        if filter != self.filter {
            self.filter.query.zeroize();
            self.filter = filter;
            self.refresh();
        }
    }

    /// The cases the list shows, in order.
    pub fn visible(&self) -> impl ExactSizeIterator<Item = &CaseView> + '_ {
        self.visible.iter().map(|&i| &self.cases[i])
    }

    /// Every case.
    pub fn cases(&self) -> &[CaseView] {
        &self.cases
    }

    /// The case called `alias`.
    pub fn case(&self, alias: &str) -> Option<&CaseView> {
        self.index(alias).map(|i| &self.cases[i])
    }

    /// The conversation with `alias`, oldest first.
    pub fn conversation(&self, alias: &str) -> &[MessageView] {
        self.conversations.get(alias).map_or(&[], Vec::as_slice)
    }

    /// The selected case.
    pub fn selected(&self) -> Option<&str> {
        self.selected.as_deref()
    }

    /// Selects `alias` (or nothing); its unread count drops to zero.
    /// Returns the ids of the messages that were unread, for the shell to
    /// mark read in the profile.
    pub fn select(&mut self, alias: Option<&str>) -> Vec<String> {
        self.selected = alias.map(str::to_owned);
        alias.map(|a| self.mark_read(a)).unwrap_or_default()
    }

    /// Counts the messages of `alias` as read; returns the ids of those
    /// that were unread.
    pub fn mark_read(&mut self, alias: &str) -> Vec<String> {
        if let Some(i) = self.index(alias) {
            self.cases[i].summary.unread = 0;
        }
        let mut ids = Vec::new();
        for m in self.conversations.get_mut(alias).into_iter().flatten() {
            if m.status == MessageStatus::Unread {
                m.status = MessageStatus::Read;
                ids.push(m.id.clone());
            }
        }
        ids
    }

    /// Moves the selection `by` rows in the list (arrow keys), staying in
    /// the list; with nothing selected, selects the first row.
    pub fn move_selection(&mut self, by: isize) -> Option<String> {
        if self.visible.is_empty() {
            return None;
        }
        let at = self
            .selected
            .as_deref()
            .and_then(|s| self.visible().position(|c| c.summary.alias == s));
        let next = match at {
            None => 0,
            Some(i) => i
                .saturating_add_signed(by)
                .min(self.visible.len().saturating_sub(1)),
        };
        let alias = self.cases[self.visible[next]].summary.alias.clone();
        self.select(Some(&alias));
        Some(alias)
    }

    /// A text the handler queued: it joins the conversation as `queued`.
    pub fn add_outgoing(&mut self, alias: &str, id: String, text: &str, at: u64) {
        let status = self.early.remove(&id).unwrap_or(MessageStatus::Queued);
        let view = MessageView {
            id,
            alias: alias.to_owned(),
            incoming: false,
            text: text.to_owned(),
            status,
            at,
            sent_at: at,
            expires_at: 0,
        };
        if let Some(i) = self.index(alias) {
            let s = &mut self.cases[i].summary;
            s.messages += 1;
            if status != MessageStatus::Delivered {
                s.pending += 1;
            }
            s.last_activity = s.last_activity.max(at);
            self.haystacks[i].push('\n');
            self.haystacks[i].push_str(&text.to_lowercase());
        }
        self.conversations
            .entry(alias.to_owned())
            .or_default()
            .push(view);
        self.refresh();
    }

    fn set_status(&mut self, alias: &str, id: &str, status: MessageStatus) {
        let Some(m) = self
            .conversations
            .get_mut(alias)
            .and_then(|c| c.iter_mut().find(|m| m.id == id))
        else {
            self.early.insert(id.to_owned(), status);
            return;
        };
        let was_pending = matches!(m.status, MessageStatus::Queued | MessageStatus::Sent);
        // A receipt can overtake the relay's acceptance: never go back.
        if m.status == MessageStatus::Delivered {
            return;
        }
        m.status = status;
        if was_pending
            && status == MessageStatus::Delivered
            && let Some(i) = self.index(alias)
        {
            let s = &mut self.cases[i].summary;
            s.pending = s.pending.saturating_sub(1);
        }
    }

    /// Applies what the sync reports.
    pub fn apply(&mut self, event: &SyncEvent) -> Follow {
        match event {
            SyncEvent::Received(m) => {
                let open = self.selected.as_deref() == Some(m.alias.as_str());
                if let Some(i) = self.index(&m.alias) {
                    let s = &mut self.cases[i].summary;
                    s.messages += 1;
                    if !open {
                        s.unread += 1;
                    }
                    s.last_activity = s.last_activity.max(m.at);
                    self.haystacks[i].push('\n');
                    self.haystacks[i].push_str(&m.text.to_lowercase());
                }
                let mut m = m.clone();
                let id = m.id.clone();
                if open {
                    m.status = MessageStatus::Read;
                }
                self.conversations
                    .entry(m.alias.clone())
                    .or_default()
                    .push(m);
                self.refresh();
                if open {
                    Follow::MarkRead(id)
                } else {
                    Follow::None
                }
            }
            SyncEvent::Sent { alias, id } => {
                self.set_status(alias, id, MessageStatus::Sent);
                Follow::None
            }
            SyncEvent::Delivered { alias, id } => {
                self.set_status(alias, id, MessageStatus::Delivered);
                Follow::None
            }
            SyncEvent::Joined { .. }
            | SyncEvent::InvitationExpired { .. }
            | SyncEvent::ContactRemoved { .. }
            | SyncEvent::ContactBroken { .. } => {
                self.notice_of(event);
                Follow::Reload
            }
            SyncEvent::Dropped { .. } | SyncEvent::Refused { .. } => {
                self.notice_of(event);
                Follow::None
            }
            SyncEvent::RequestReceived { .. } => Follow::Requests,
            // Junk on a public address is counted on it, not announced:
            // a flood would bury the notices that matter.
            SyncEvent::MailboxRefused { .. } | SyncEvent::RequestDropped { .. } => Follow::None,
            SyncEvent::Unreachable { relay, .. } => {
                self.down.insert(relay.clone());
                Follow::None
            }
            SyncEvent::Reachable { relay } => {
                self.down.remove(relay);
                Follow::None
            }
        }
    }

    fn notice_of(&mut self, event: &SyncEvent) {
        let text = match event {
            SyncEvent::Joined { alias } => format!("{alias} accepted your invitation"),
            SyncEvent::InvitationExpired { alias } => {
                format!("the invitation for {alias} expired unused")
            }
            SyncEvent::ContactRemoved { alias } => format!(
                "{alias} was removed: their relay refused the reply (the invitation was used or expired)"
            ),
            SyncEvent::ContactBroken { alias } => format!(
                "{alias}: their mailbox is gone; nothing more can be sent. Ask for a new invitation"
            ),
            SyncEvent::Dropped { alias, reason } => {
                format!("a message for {alias} was dropped: {reason}")
            }
            SyncEvent::Refused { alias, error } => {
                format!("{alias}'s relay refused a message for now ({error}); it stays queued")
            }
            _ => return,
        };
        self.notices.push(text);
        if self.notices.len() > 5 {
            self.notices.remove(0);
        }
    }

    /// Drops messages whose disappearing timer ran out by `now` (Unix
    /// seconds) from the conversations, counts and search text; returns
    /// whether any went.
    pub fn expire(&mut self, now: u64) -> bool {
        let mut touched = Vec::new();
        for (alias, conv) in &mut self.conversations {
            let before = conv.len();
            conv.retain(|m| m.expires_at == 0 || m.expires_at > now);
            if conv.len() != before {
                touched.push(alias.clone());
            }
        }
        for alias in &touched {
            let Some(i) = self.index(alias) else { continue };
            let conv = self.conversations.get(alias).map_or(&[][..], Vec::as_slice);
            let s = &mut self.cases[i].summary;
            s.messages = conv.len();
            s.unread = conv
                .iter()
                .filter(|m| m.status == MessageStatus::Unread)
                .count();
            s.pending = conv
                .iter()
                .filter(|m| matches!(m.status, MessageStatus::Queued | MessageStatus::Sent))
                .count();
            let fresh = haystack(&self.cases[i], conv);
            self.haystacks[i].zeroize();
            self.haystacks[i] = fresh;
        }
        if !touched.is_empty() {
            self.refresh();
        }
        !touched.is_empty()
    }

    /// Relays that cannot be reached now.
    pub fn unreachable(&self) -> &BTreeSet<String> {
        &self.down
    }

    /// Things the sync reported that the handler should see.
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    /// Dismisses the notices.
    pub fn clear_notices(&mut self) {
        for n in &mut self.notices {
            n.zeroize();
        }
        self.notices.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tropa_client::{CaseSummary, RelayError};

    fn case(alias: &str, status: CaseStatus, last: u64, note: &str) -> CaseView {
        CaseView {
            summary: CaseSummary {
                alias: alias.into(),
                status,
                starred: alias.starts_with('s'),
                unread: 0,
                pending: 0,
                messages: 0,
                last_activity: last,
                established: true,
                verified: false,
                broken: false,
                identity_alert_at: 0,
            },
            notes: if note.is_empty() {
                vec![]
            } else {
                vec![tropa_client::Note {
                    at: last,
                    text: note.into(),
                }]
            },
            evaluations: vec![],
            clearing_blocked: None,
        }
    }

    fn msg(alias: &str, id: &str, text: &str, at: u64, incoming: bool) -> MessageView {
        MessageView {
            id: id.into(),
            alias: alias.into(),
            incoming,
            text: text.into(),
            status: if incoming {
                MessageStatus::Unread
            } else {
                MessageStatus::Queued
            },
            at,
            sent_at: at,
            expires_at: 0,
        }
    }

    fn aliases(ws: &Workspace) -> Vec<String> {
        ws.visible().map(|c| c.summary.alias.clone()).collect()
    }

    fn sample() -> Workspace {
        Workspace::new(
            vec![
                case("amal", CaseStatus::Vetting, 10, "passport lost in Van"),
                case("bashir", CaseStatus::New, 30, ""),
                case("sami", CaseStatus::Cleared, 20, ""),
            ],
            vec![msg("bashir", "01", "I am in Tbilisi now", 30, true)],
        )
    }

    #[test]
    fn the_list_sorts_by_activity_and_filters_and_searches() {
        let mut ws = sample();
        assert_eq!(aliases(&ws), ["bashir", "sami", "amal"]);
        ws.set_filter(Filter {
            status: Some(CaseStatus::Vetting),
            ..Filter::default()
        });
        assert_eq!(aliases(&ws), ["amal"]);
        ws.set_filter(Filter {
            starred_only: true,
            ..Filter::default()
        });
        assert_eq!(aliases(&ws), ["sami"]);
        // Search reaches notes and message text, ignoring case.
        for (q, want) in [("VAN", "amal"), ("tbilisi", "bashir"), ("sAm", "sami")] {
            ws.set_filter(Filter {
                query: q.into(),
                ..Filter::default()
            });
            assert_eq!(aliases(&ws), [want], "query {q}");
        }
        ws.set_filter(Filter {
            query: "nowhere".into(),
            ..Filter::default()
        });
        assert!(aliases(&ws).is_empty());
    }

    #[test]
    fn debug_leaves_out_the_search_words() {
        let f = Filter {
            query: "izmir brother".into(),
            ..Filter::default()
        };
        assert!(!format!("{f:?}").contains("izmir"));
    }

    #[test]
    fn arrows_move_the_selection_within_the_list() {
        let mut ws = sample();
        assert_eq!(ws.move_selection(1).as_deref(), Some("bashir"));
        // Selecting reads it: its unread ids go to the profile once.
        assert!(ws.select(Some("bashir")).is_empty());
        ws.load(
            ws.cases().to_vec(),
            vec![msg("bashir", "01", "I am in Tbilisi now", 30, true)],
        );
        assert_eq!(ws.select(Some("bashir")), vec!["01".to_owned()]);
        assert_eq!(ws.move_selection(1).as_deref(), Some("sami"));
        assert_eq!(ws.move_selection(5).as_deref(), Some("amal"));
        assert_eq!(ws.move_selection(-9).as_deref(), Some("bashir"));
        // Selecting a case reads it.
        assert_eq!(ws.case("bashir").unwrap().summary.unread, 0);
    }

    #[test]
    fn events_keep_counts_order_and_states_current() {
        let mut ws = sample();
        ws.select(Some("sami"));
        let incoming = msg("amal", "02", "Checkpoint closed", 40, true);
        assert_eq!(ws.apply(&SyncEvent::Received(incoming)), Follow::None);
        assert_eq!(aliases(&ws)[0], "amal", "new activity goes first");
        assert_eq!(ws.case("amal").unwrap().summary.unread, 1);
        // In the open conversation it arrives read.
        let open = msg("sami", "03", "ok", 50, true);
        assert_eq!(
            ws.apply(&SyncEvent::Received(open)),
            Follow::MarkRead("03".into())
        );
        assert_eq!(ws.case("sami").unwrap().summary.unread, 0);
        assert_eq!(ws.conversation("sami")[0].status, MessageStatus::Read);

        // A receipt that overtakes the queued reply still lands.
        let delivered = SyncEvent::Delivered {
            alias: "sami".into(),
            id: "04".into(),
        };
        ws.apply(&delivered);
        ws.add_outgoing("sami", "04".into(), "see you", 60);
        assert_eq!(ws.conversation("sami")[1].status, MessageStatus::Delivered);
        assert_eq!(ws.case("sami").unwrap().summary.pending, 0);
        ws.add_outgoing("sami", "05".into(), "bring papers", 61);
        assert_eq!(ws.case("sami").unwrap().summary.pending, 1);
        ws.apply(&SyncEvent::Sent {
            alias: "sami".into(),
            id: "05".into(),
        });
        assert_eq!(ws.conversation("sami")[2].status, MessageStatus::Sent);
        ws.apply(&SyncEvent::Delivered {
            alias: "sami".into(),
            id: "05".into(),
        });
        ws.apply(&SyncEvent::Sent {
            alias: "sami".into(),
            id: "05".into(),
        });
        assert_eq!(
            ws.conversation("sami")[2].status,
            MessageStatus::Delivered,
            "never back from delivered"
        );
        assert_eq!(ws.case("sami").unwrap().summary.pending, 0);

        // The banner's state.
        let relay = "127.0.0.1:4433".to_owned();
        ws.apply(&SyncEvent::Unreachable {
            relay: relay.clone(),
            error: RelayError::WrongKey,
        });
        assert!(ws.unreachable().contains(&relay));
        ws.apply(&SyncEvent::Reachable { relay });
        assert!(ws.unreachable().is_empty());
        assert_eq!(
            ws.apply(&SyncEvent::Joined {
                alias: "new".into()
            }),
            Follow::Reload
        );
        assert_eq!(ws.notices().len(), 1);

        // A disappearing message goes from the view, counts and search.
        let mut gone = msg("amal", "09", "burn after reading", 70, true);
        gone.expires_at = 80;
        ws.apply(&SyncEvent::Received(gone));
        assert_eq!(ws.case("amal").unwrap().summary.unread, 2);
        assert!(!ws.expire(79));
        assert!(ws.expire(80));
        assert_eq!(ws.case("amal").unwrap().summary.unread, 1);
        assert!(ws.conversation("amal").iter().all(|m| m.id != "09"));
        ws.set_filter(Filter {
            query: "burn after".into(),
            ..Filter::default()
        });
        assert_eq!(ws.visible().len(), 0);
    }
}

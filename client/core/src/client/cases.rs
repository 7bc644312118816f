//! Case work: what a handler records about each contact while vetting
//! them (DESIGN §1, §7). One case per contact: a status, private notes, a
//! vetting record of evaluations, a star. All of it lives in the encrypted
//! profile and is never sent to anyone, the contact included.
//!
//! The rule that protects relocations lives here, not in a front end: a
//! case becomes `cleared` (or `relocating`) only once two evaluators with
//! different names have passed it and no evaluator's latest word is
//! `fail` ([`VettingError`]).

use std::collections::{BTreeMap, HashMap};

use zeroize::Zeroize;

use super::Client;
use crate::client::MessageView;
use crate::error::ClientError;
use crate::records::{
    CaseRecord, CaseStatusRecord, ContactRecord, ContactState, EvaluationRecord, MessageRecord,
    NoteRecord, Status, VerdictRecord,
};
use crate::redact::redacted_debug;
use crate::repo::Changes;
use crate::shell::now;

/// Contact id → alias.
type Aliases = HashMap<Vec<u8>, String>;

/// Longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 10_000;
/// Longest evaluator name, in characters.
pub const MAX_EVALUATOR_CHARS: usize = 64;
/// Longest evaluation comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 2_000;
/// Passing evaluators (different names) a case needs to be cleared.
pub const EVALUATORS_TO_CLEAR: usize = 2;

/// Where a case stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CaseStatus {
    /// Nothing done yet.
    New,
    /// Being vetted.
    Vetting,
    /// Vetted by two evaluators and cleared.
    Cleared,
    /// Being relocated.
    Relocating,
    /// Closed.
    Closed,
}

impl CaseStatus {
    /// Every status, in the order a case moves through them.
    pub const ALL: [CaseStatus; 5] = [
        CaseStatus::New,
        CaseStatus::Vetting,
        CaseStatus::Cleared,
        CaseStatus::Relocating,
        CaseStatus::Closed,
    ];

    /// The word shown and typed: `new`, `vetting`, `cleared`, `relocating`,
    /// `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::New => "new",
            CaseStatus::Vetting => "vetting",
            CaseStatus::Cleared => "cleared",
            CaseStatus::Relocating => "relocating",
            CaseStatus::Closed => "closed",
        }
    }

    /// Whether this status needs the two-evaluator rule.
    pub fn needs_clearing(self) -> bool {
        matches!(self, CaseStatus::Cleared | CaseStatus::Relocating)
    }

    fn of(v: i32) -> Self {
        match CaseStatusRecord::try_from(v) {
            Ok(CaseStatusRecord::Vetting) => CaseStatus::Vetting,
            Ok(CaseStatusRecord::Cleared) => CaseStatus::Cleared,
            Ok(CaseStatusRecord::Relocating) => CaseStatus::Relocating,
            Ok(CaseStatusRecord::Closed) => CaseStatus::Closed,
            Ok(CaseStatusRecord::New) | Err(_) => CaseStatus::New,
        }
    }

    fn record(self) -> CaseStatusRecord {
        match self {
            CaseStatus::New => CaseStatusRecord::New,
            CaseStatus::Vetting => CaseStatusRecord::Vetting,
            CaseStatus::Cleared => CaseStatusRecord::Cleared,
            CaseStatus::Relocating => CaseStatusRecord::Relocating,
            CaseStatus::Closed => CaseStatusRecord::Closed,
        }
    }
}

impl std::fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CaseStatus {
    type Err = VettingError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CaseStatus::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or(VettingError::UnknownStatus)
    }
}

/// The outcome of one evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The evaluator vouches for the person.
    Pass,
    /// The evaluator does not.
    Fail,
    /// Not decided yet.
    Inconclusive,
}

impl Verdict {
    /// Every verdict.
    pub const ALL: [Verdict; 3] = [Verdict::Pass, Verdict::Fail, Verdict::Inconclusive];

    /// The word shown and typed: `pass`, `fail`, `inconclusive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    fn of(v: i32) -> Self {
        match VerdictRecord::try_from(v) {
            Ok(VerdictRecord::Pass) => Verdict::Pass,
            Ok(VerdictRecord::Fail) => Verdict::Fail,
            Ok(VerdictRecord::Inconclusive) | Err(_) => Verdict::Inconclusive,
        }
    }

    fn record(self) -> VerdictRecord {
        match self {
            Verdict::Pass => VerdictRecord::Pass,
            Verdict::Fail => VerdictRecord::Fail,
            Verdict::Inconclusive => VerdictRecord::Inconclusive,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Verdict {
    type Err = VettingError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Verdict::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or(VettingError::UnknownVerdict)
    }
}

/// What case work refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VettingError {
    /// Clearing (or relocating) needs two evaluators with different names
    /// whose latest evaluation is `pass`.
    #[error(
        "a case is cleared only after 2 evaluators with different names passed it; \
         this one has {passes}"
    )]
    NeedsTwoEvaluations {
        /// Evaluators (by name) whose latest evaluation is `pass`.
        passes: usize,
    },
    /// An evaluator's latest evaluation is `fail`.
    #[error("an evaluator's latest evaluation is fail; it must be revisited before clearing")]
    FailedEvaluation,
    /// The evaluator name is empty, too long or has control characters.
    #[error("the evaluator name must be 1 to {MAX_EVALUATOR_CHARS} printable characters")]
    BadEvaluator,
    /// The note is empty, too long or has control characters other than
    /// line breaks and tabs.
    #[error("a note must be 1 to {MAX_NOTE_CHARS} characters")]
    BadNote,
    /// The comment is too long or has control characters.
    #[error("a comment must be at most {MAX_COMMENT_CHARS} characters")]
    BadComment,
    /// Not one of `new`, `vetting`, `cleared`, `relocating`, `closed`.
    #[error("the status must be new, vetting, cleared, relocating or closed")]
    UnknownStatus,
    /// Not one of `pass`, `fail`, `inconclusive`.
    #[error("the outcome must be pass, fail or inconclusive")]
    UnknownVerdict,
}

/// A private note.
#[derive(Clone, PartialEq, Eq)]
pub struct Note {
    /// Unix seconds.
    pub at: u64,
    /// The note.
    pub text: String,
}

/// One evaluation.
#[derive(Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// Who evaluated.
    pub evaluator: String,
    /// Unix seconds.
    pub at: u64,
    /// Outcome.
    pub verdict: Verdict,
    /// Why.
    pub comment: String,
}

/// A case as the case list shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct CaseSummary {
    /// The contact's alias.
    pub alias: String,
    /// Status.
    pub status: CaseStatus,
    /// Starred.
    pub starred: bool,
    /// Unread incoming messages.
    pub unread: usize,
    /// Outgoing messages without receipt yet.
    pub pending: usize,
    /// Messages in the conversation.
    pub messages: usize,
    /// Unix seconds of the last message or change to the case.
    pub last_activity: u64,
    /// Whether the handshake completed.
    pub established: bool,
    /// Whether the safety number was confirmed.
    pub verified: bool,
    /// Nothing can be sent to them any more (their mailbox is gone).
    pub broken: bool,
    /// Unix seconds when someone offered another identity key under this
    /// contact's alias (S10), until acknowledged; 0 otherwise.
    pub identity_alert_at: u64,
}

/// A case with its notes and vetting record.
#[derive(Clone, PartialEq, Eq)]
pub struct CaseView {
    /// What the list shows.
    pub summary: CaseSummary,
    /// Private notes, oldest first.
    pub notes: Vec<Note>,
    /// Evaluations, oldest first.
    pub evaluations: Vec<Evaluation>,
    /// Why the case cannot be cleared now (None: it can).
    pub clearing_blocked: Option<VettingError>,
}

redacted_debug!(Note: at);
redacted_debug!(Evaluation: at, verdict);
redacted_debug!(CaseSummary: status, starred, unread, pending, messages, last_activity);
redacted_debug!(CaseView: summary, clearing_blocked);

impl Drop for Note {
    fn drop(&mut self) {
        self.text.zeroize();
    }
}

impl Drop for Evaluation {
    fn drop(&mut self) {
        self.evaluator.zeroize();
        self.comment.zeroize();
    }
}

impl Drop for CaseSummary {
    fn drop(&mut self) {
        self.alias.zeroize();
    }
}

/// Whether `evaluations` allow clearing: two evaluators (names compared
/// ignoring case and surrounding space) whose latest word is `pass`, and
/// none whose latest word is `fail`.
///
/// # Errors
/// The [`VettingError`] that blocks it.
pub fn check_clearing(evaluations: &[Evaluation]) -> Result<(), VettingError> {
    let mut latest: BTreeMap<String, Verdict> = BTreeMap::new();
    for e in evaluations {
        latest.insert(evaluator_key(&e.evaluator), e.verdict);
    }
    if latest.values().any(|v| *v == Verdict::Fail) {
        return Err(VettingError::FailedEvaluation);
    }
    let passes = latest.values().filter(|v| **v == Verdict::Pass).count();
    if passes < EVALUATORS_TO_CLEAR {
        return Err(VettingError::NeedsTwoEvaluations { passes });
    }
    Ok(())
}

/// The name an evaluator is counted by: compatibility-normalised (NFKC:
/// full-width and other look-alike forms fold to one), lowercased, spaces
/// collapsed. Invisible characters are refused when a name is recorded.
/// Look-alikes across scripts (Latin "a", Cyrillic "а") are not folded.
fn evaluator_key(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    let folded: String = name.nfkc().collect::<String>().to_lowercase();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn printable(s: &str, allow_breaks: bool) -> bool {
    !s.chars().any(|c| {
        (c.is_control() && !(allow_breaks && (c == '\n' || c == '\t')))
            || crate::display::is_bidi_control(c)
    })
}

/// Per contact: unread, pending, message count and last message time, in
/// one pass over the messages.
#[derive(Default, Clone, Copy)]
pub(crate) struct Tally {
    pub unread: usize,
    pub pending: usize,
    pub messages: usize,
    pub last_at: u64,
}

pub(crate) fn tally(msgs: &[MessageRecord], t: u64) -> HashMap<&[u8], Tally> {
    let mut out: HashMap<&[u8], Tally> = HashMap::new();
    for m in msgs {
        if m.expires_at != 0 && m.expires_at <= t {
            continue;
        }
        let e = out.entry(m.contact_id.as_slice()).or_default();
        e.messages += 1;
        e.last_at = e.last_at.max(m.at);
        match Status::try_from(m.status) {
            Ok(Status::Unread) => e.unread += 1,
            Ok(Status::Queued | Status::Sent) => e.pending += 1,
            _ => {}
        }
    }
    out
}

fn summary(c: &ContactRecord, case: Option<&CaseRecord>, t: Tally) -> CaseSummary {
    CaseSummary {
        alias: c.alias.clone(),
        status: case.map_or(CaseStatus::New, |r| CaseStatus::of(r.status)),
        starred: case.is_some_and(|r| r.starred),
        unread: t.unread,
        pending: t.pending,
        messages: t.messages,
        last_activity: t
            .last_at
            .max(case.map_or(0, |r| r.updated_at))
            .max(c.created_at),
        established: c.state == ContactState::Established as i32,
        verified: c.verified,
        broken: c.broken,
        identity_alert_at: case.map_or(0, |r| r.identity_alert_at),
    }
}

fn evaluations(r: &CaseRecord) -> Vec<Evaluation> {
    r.evaluations
        .iter()
        .map(|e| Evaluation {
            evaluator: e.evaluator.clone(),
            at: e.at,
            verdict: Verdict::of(e.verdict),
            comment: e.comment.clone(),
        })
        .collect()
}

fn view(c: &ContactRecord, record: Option<&CaseRecord>, t: Tally) -> CaseView {
    let evaluations = record.map(evaluations).unwrap_or_default();
    CaseView {
        summary: summary(c, record, t),
        notes: record
            .map(|r| {
                r.notes
                    .iter()
                    .map(|n| Note {
                        at: n.at,
                        text: n.text.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        clearing_blocked: check_clearing(&evaluations).err(),
        evaluations,
    }
}

impl Client {
    /// Every case (one per contact), most recent activity first.
    ///
    /// # Errors
    /// Storage errors.
    pub fn cases(&self) -> Result<Vec<CaseSummary>, ClientError> {
        let msgs = self.repo.messages()?;
        let (views, _) = self.views_of(&msgs, now())?;
        Ok(views.into_iter().map(|v| v.summary).collect())
    }

    /// Everything a desk shows, from one pass over the messages: every case
    /// with its notes and vetting record (most recent activity first) and
    /// every message (oldest first). Messages whose disappearing timer ran
    /// out are deleted in the same pass (what [`Client::open`] does first;
    /// see [`Client::open_unpurged`]).
    ///
    /// # Errors
    /// Storage errors.
    pub fn snapshot(&self) -> Result<(Vec<CaseView>, Vec<MessageView>), ClientError> {
        let t = now();
        let mut msgs = self.repo.messages()?;
        self.drop_expired(&mut msgs, t)?;
        let (cases, aliases) = self.views_of(&msgs, t)?;
        let messages = msgs
            .iter()
            .map(|m| super::views::message_view(m, &aliases))
            .collect();
        Ok((cases, messages))
    }

    /// Every case's view over `msgs`, most recent activity first, and the
    /// alias of every contact id.
    fn views_of(
        &self,
        msgs: &[MessageRecord],
        t: u64,
    ) -> Result<(Vec<CaseView>, Aliases), ClientError> {
        let tallies = tally(msgs, t);
        let records: HashMap<Vec<u8>, CaseRecord> = self.repo.cases()?.into_iter().collect();
        let contacts = self.repo.contacts()?;
        let mut views: Vec<CaseView> = contacts
            .iter()
            .map(|c| {
                let t = tallies.get(c.id.as_slice()).copied().unwrap_or_default();
                view(c, records.get(&c.id), t)
            })
            .collect();
        views.sort_by(|a, b| {
            b.summary
                .last_activity
                .cmp(&a.summary.last_activity)
                .then_with(|| a.summary.alias.cmp(&b.summary.alias))
        });
        let aliases = contacts
            .iter()
            .map(|c| (c.id.clone(), c.alias.clone()))
            .collect();
        Ok((views, aliases))
    }

    /// The case of `alias` (any case), with notes and evaluations.
    ///
    /// # Errors
    /// Unknown contact, storage.
    pub fn case(&self, alias: &str) -> Result<CaseView, ClientError> {
        let c = self.contact_by_alias(alias)?;
        let record = self.repo.case(&c.id)?;
        let msgs: Vec<MessageRecord> = self
            .repo
            .messages()?
            .into_iter()
            .filter(|m| m.contact_id == c.id)
            .collect();
        let t = tally(&msgs, now())
            .get(c.id.as_slice())
            .copied()
            .unwrap_or_default();
        Ok(view(&c, record.as_ref(), t))
    }

    /// Reads the case record of `alias`, lets `change` edit it, stores it.
    fn edit_case(
        &self,
        alias: &str,
        change: impl FnOnce(&mut CaseRecord) -> Result<(), VettingError>,
    ) -> Result<(), ClientError> {
        let c = self.contact_by_alias(alias)?;
        let mut record = self.repo.case(&c.id)?.unwrap_or_default();
        change(&mut record)?;
        record.updated_at = now();
        let mut changes = Changes::new();
        changes.put_case(&c.id, &record);
        self.repo.apply(changes)
    }

    /// Moves the case of `alias` to `status`. `cleared` and `relocating`
    /// need the two-evaluator rule ([`check_clearing`]).
    ///
    /// # Errors
    /// [`VettingError`] when the rule blocks it; unknown contact; storage.
    pub fn set_case_status(&self, alias: &str, status: CaseStatus) -> Result<(), ClientError> {
        self.edit_case(alias, |r| {
            if status.needs_clearing() {
                check_clearing(&evaluations(r))?;
            }
            r.status = status.record() as i32;
            Ok(())
        })
    }

    /// Adds a private note to the case of `alias`.
    ///
    /// # Errors
    /// [`VettingError::BadNote`]; unknown contact; storage.
    pub fn add_case_note(&self, alias: &str, text: &str) -> Result<(), ClientError> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > MAX_NOTE_CHARS || !printable(text, true) {
            return Err(VettingError::BadNote.into());
        }
        self.edit_case(alias, |r| {
            r.notes.push(NoteRecord {
                at: now(),
                text: text.to_owned(),
            });
            Ok(())
        })
    }

    /// Records an evaluation of the case of `alias`. If the case was cleared
    /// (or relocating) and no longer meets the rule, it goes back to
    /// vetting.
    ///
    /// # Errors
    /// [`VettingError::BadEvaluator`] or [`VettingError::BadComment`];
    /// unknown contact; storage.
    pub fn add_evaluation(
        &self,
        alias: &str,
        evaluator: &str,
        verdict: Verdict,
        comment: &str,
    ) -> Result<(), ClientError> {
        let evaluator = evaluator.trim();
        let n = evaluator.chars().count();
        if n == 0
            || n > MAX_EVALUATOR_CHARS
            || !printable(evaluator, false)
            || evaluator.chars().any(crate::display::is_invisible)
        {
            return Err(VettingError::BadEvaluator.into());
        }
        let comment = comment.trim();
        if comment.chars().count() > MAX_COMMENT_CHARS || !printable(comment, true) {
            return Err(VettingError::BadComment.into());
        }
        self.edit_case(alias, |r| {
            r.evaluations.push(EvaluationRecord {
                evaluator: evaluator.to_owned(),
                at: now(),
                verdict: verdict.record() as i32,
                comment: comment.to_owned(),
            });
            // A cleared (or relocating) case that no longer meets the rule,
            // after a fail say, goes back to vetting: the status never
            // claims more than the record supports.
            if CaseStatus::of(r.status).needs_clearing() && check_clearing(&evaluations(r)).is_err()
            {
                r.status = CaseStatusRecord::Vetting as i32;
            }
            Ok(())
        })
    }

    /// Stars or unstars the case of `alias`.
    ///
    /// # Errors
    /// Unknown contact; storage.
    pub fn set_starred(&self, alias: &str, starred: bool) -> Result<(), ClientError> {
        self.edit_case(alias, |r| {
            r.starred = starred;
            Ok(())
        })
    }

    /// Clears the identity-change alert of `alias` once the handler has
    /// dealt with it (verified the person another way).
    ///
    /// # Errors
    /// Unknown contact; storage.
    pub fn acknowledge_identity_alert(&self, alias: &str) -> Result<(), ClientError> {
        self.edit_case(alias, |r| {
            r.identity_alert_at = 0;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ev(name: &str, verdict: Verdict) -> Evaluation {
        Evaluation {
            evaluator: name.into(),
            at: 0,
            verdict,
            comment: String::new(),
        }
    }

    #[test]
    fn clearing_needs_two_different_passing_evaluators() {
        use Verdict::*;
        assert_eq!(
            check_clearing(&[]),
            Err(VettingError::NeedsTwoEvaluations { passes: 0 })
        );
        // The same person twice (case and spaces aside) is one evaluator.
        assert_eq!(
            check_clearing(&[ev("Amira", Pass), ev(" amira ", Pass)]),
            Err(VettingError::NeedsTwoEvaluations { passes: 1 })
        );
        assert_eq!(
            check_clearing(&[ev("Amira", Pass), ev("Jonas", Inconclusive)]),
            Err(VettingError::NeedsTwoEvaluations { passes: 1 })
        );
        assert_eq!(
            check_clearing(&[ev("Amira", Pass), ev("Jonas", Pass)]),
            Ok(())
        );
        // Width and spacing variants of a name are the same evaluator.
        assert_eq!(
            check_clearing(&[ev("Amira K", Pass), ev("ＡＭＩＲＡ\u{a0} k", Pass)]),
            Err(VettingError::NeedsTwoEvaluations { passes: 1 })
        );
        // A fail blocks, until that evaluator's later word replaces it.
        let failed = [ev("Amira", Pass), ev("Jonas", Pass), ev("Lea", Fail)];
        assert_eq!(check_clearing(&failed), Err(VettingError::FailedEvaluation));
        let mut revisited = failed.to_vec();
        revisited.push(ev("lea", Pass));
        assert_eq!(check_clearing(&revisited), Ok(()));
    }

    #[test]
    fn words_parse_ignoring_case() {
        assert_eq!("Cleared".parse::<CaseStatus>(), Ok(CaseStatus::Cleared));
        assert_eq!("FAIL".parse::<Verdict>(), Ok(Verdict::Fail));
        assert_eq!(
            "done".parse::<CaseStatus>(),
            Err(VettingError::UnknownStatus)
        );
        for s in CaseStatus::ALL {
            assert_eq!(s.as_str().parse::<CaseStatus>(), Ok(s));
            assert_eq!(CaseStatus::of(s.record() as i32), s);
        }
        for v in Verdict::ALL {
            assert_eq!(v.as_str().parse::<Verdict>(), Ok(v));
            assert_eq!(Verdict::of(v.record() as i32), v);
        }
    }
}

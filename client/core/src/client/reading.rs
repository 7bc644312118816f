//! Reading on a small screen: which contacts have new messages
//! ([`Client::inbox`]), a conversation a page at a time ([`Client::page`]),
//! everyone's new messages a few at a time ([`Client::unread`]), marking as
//! read exactly what was shown ([`Client::mark_shown_read`]), and search
//! over one's own messages ([`Client::search`]).
//!
//! Search works on the messages as every view reads them, decrypted in
//! memory, and writes nothing: no index, no record of what was searched.
//! The lowercased copies of text it compares are zeroized when dropped.

use std::collections::{HashMap, VecDeque};

use zeroize::Zeroizing;

use super::Client;
use super::views::{ContactInfo, MessageView, message_view};
use crate::error::ClientError;
use crate::records::{MessageRecord, Status};
use crate::redact::redacted_debug;
use crate::repo::Changes;
use crate::shell::now;

/// A contact as the inbox shows it: its counts and when it last had a
/// message.
#[derive(Clone, PartialEq, Eq)]
pub struct InboxEntry {
    /// The contact, with its unread count.
    pub contact: ContactInfo,
    /// Unix seconds (this device's clock) of its latest message, either
    /// way; 0 if there is none.
    pub last_at: u64,
    /// Unix seconds of its latest unread message; 0 if there is none.
    pub last_unread_at: u64,
}

/// One page of a conversation: page 1 is the newest messages.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// The messages of the page, oldest first.
    pub messages: Vec<MessageView>,
    /// How many messages come before the page (on the pages after it).
    pub older: usize,
    /// How many of those are unread (not shown, so not marked read).
    pub older_unread: usize,
    /// How many messages come after the page (on the pages before it).
    pub newer: usize,
}

/// The oldest unread messages of every contact, at most as many as asked.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Unread {
    /// The messages, oldest first.
    pub messages: Vec<MessageView>,
    /// Unread messages left after these.
    pub more: usize,
}

/// A message that contains what was searched for.
#[derive(Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// The message.
    pub message: MessageView,
    /// Where the first match starts in `message.text` (byte offset).
    pub start: usize,
    /// Where it ends (byte offset, exclusive).
    pub end: usize,
}

/// What [`Client::search`] found.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SearchResults {
    /// The newest hits (as many as asked for), oldest first.
    pub hits: Vec<SearchHit>,
    /// How many messages matched in all.
    pub total: usize,
}

redacted_debug!(InboxEntry: contact, last_at, last_unread_at);
redacted_debug!(Page: messages, older, older_unread, newer);
redacted_debug!(Unread: messages, more);
redacted_debug!(SearchHit: message, start, end);
redacted_debug!(SearchResults: hits, total);

/// Text folded for a search that ignores case, with, for each byte of
/// the folded text, where its character starts in the original (folding
/// changes lengths: "İ" becomes two characters).
fn fold(text: &str) -> (Zeroizing<String>, Vec<usize>) {
    let mut folded = Zeroizing::new(String::with_capacity(text.len()));
    let mut origin = Vec::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        for l in c.to_lowercase() {
            folded.push(l);
            origin.resize(folded.len(), i);
        }
    }
    (folded, origin)
}

/// The byte range in `text` of the first match of `needle` (already
/// folded, not empty), ignoring case. A match that begins or ends inside
/// the folding of one character covers that whole character.
fn find_folded(text: &str, needle: &str) -> Option<(usize, usize)> {
    let (folded, origin) = fold(text);
    let at = folded.find(needle)?;
    let start = *origin.get(at)?;
    let last = *origin.get(at + needle.len() - 1)?;
    let end = last + text.get(last..)?.chars().next()?.len_utf8();
    Some((start, end))
}

/// `s` as one line a terminal can show: controls and bidirectional
/// overrides escaped, newlines and tabs as spaces.
fn flat(s: &str) -> Vec<char> {
    crate::display::neutralise(s)
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .collect()
}

impl SearchHit {
    /// The message text as one line of at most `width` characters around
    /// the match, with `…` where text was left out, made safe for a
    /// terminal (see [`crate::display::neutralise`]). About a third of the
    /// room goes to what precedes the match, the rest to what follows.
    pub fn excerpt(&self, width: usize) -> String {
        let text = &self.message.text;
        let (Some(pre), Some(mid), Some(post)) = (
            text.get(..self.start),
            text.get(self.start..self.end),
            text.get(self.end..),
        ) else {
            return String::new();
        };
        window(&flat(pre), &flat(mid), &flat(post), width)
    }
}

/// `pre`, `mid` and `post` cut to `width` characters, keeping all of `mid`
/// that fits and marking each cut with `…`.
fn window(pre: &[char], mid: &[char], post: &[char], width: usize) -> String {
    let all = || pre.iter().chain(mid).chain(post).collect::<String>();
    if pre.len() + mid.len() + post.len() <= width {
        return all();
    }
    let lead = usize::from(!pre.is_empty());
    if mid.len() + lead + usize::from(!post.is_empty()) > width {
        // The match alone is too long: its beginning, then `…`.
        let keep = width.saturating_sub(lead + 1);
        let mut out = String::new();
        if lead == 1 && width > 1 {
            out.push('…');
        }
        out.extend(mid.iter().take(keep));
        if width > 0 {
            out.push('…');
        }
        return out;
    }
    let room = width - mid.len();
    let mut before = pre.len().min(room / 3);
    let mut after = post.len().min(room - before);
    before = pre.len().min(room - after);
    // Each cut costs a character for its `…`; take it from the longer side.
    // Bounded: every turn shortens one side.
    loop {
        let cuts = usize::from(before < pre.len()) + usize::from(after < post.len());
        if before + after + cuts <= room {
            break;
        }
        if after > 0 && after >= before {
            after -= 1;
        } else if before > 0 {
            before -= 1;
        } else {
            break;
        }
    }
    let mut out = String::new();
    if before < pre.len() {
        // A cut inside a word moves back to a space when the kept part
        // has one: "…the checkpoint" reads better than "…n the checkpoint".
        let mut kept = &pre[pre.len() - before..];
        if pre[pre.len() - before - 1].is_alphanumeric()
            && let Some(space) = kept.iter().position(|c| *c == ' ')
        {
            kept = &kept[space..];
        }
        out.push('…');
        out.extend(kept.iter().skip_while(|c| **c == ' '));
    } else {
        out.extend(pre);
    }
    out.extend(mid);
    if after < post.len() {
        let mut kept = &post[..after];
        if post[after].is_alphanumeric()
            && let Some(space) = kept.iter().rposition(|c| *c == ' ')
        {
            kept = &kept[..space];
        }
        out.push_str(kept.iter().collect::<String>().trim_end());
        out.push('…');
    } else {
        out.extend(post);
    }
    out
}

fn live(m: &MessageRecord, t: u64) -> bool {
    m.expires_at == 0 || m.expires_at > t
}

fn is_unread(m: &MessageRecord) -> bool {
    m.status == Status::Unread as i32
}

impl Client {
    fn aliases(&self) -> Result<HashMap<Vec<u8>, String>, ClientError> {
        Ok(self
            .repo
            .contacts()?
            .into_iter()
            .map(|c| (c.id.clone(), c.alias.clone()))
            .collect())
    }

    /// Every contact with its unread count and latest activity: those
    /// with unread messages first (the latest unread first), then the
    /// others (the latest activity first; those without messages last,
    /// by alias). One pass over the messages.
    ///
    /// # Errors
    /// Storage errors.
    pub fn inbox(&self) -> Result<Vec<InboxEntry>, ClientError> {
        let msgs = self.repo.messages()?;
        let t = now();
        // Per contact, the latest message and the latest unread one, as
        // (seq, at): order by seq, the order of arrival (messages fetched
        // in one sync share their second), and show `at`.
        type Latest = ((u64, u64), (u64, u64));
        let mut latest: HashMap<&[u8], Latest> = HashMap::new();
        for m in msgs.iter().filter(|m| live(m, t)) {
            let e = latest.entry(m.contact_id.as_slice()).or_default();
            e.0 = e.0.max((m.seq, m.at));
            if is_unread(m) {
                e.1 = e.1.max((m.seq, m.at));
            }
        }
        let by_alias: HashMap<String, Latest> = self
            .repo
            .contacts()?
            .into_iter()
            .map(|c| {
                let l = latest.get(c.id.as_slice()).copied().unwrap_or_default();
                (c.alias.clone(), l)
            })
            .collect();
        let mut out: Vec<(InboxEntry, Latest)> = self
            .contacts_of(&msgs)?
            .into_iter()
            .map(|contact| {
                let l = by_alias.get(&contact.alias).copied().unwrap_or_default();
                let entry = InboxEntry {
                    contact,
                    last_at: l.0.1,
                    last_unread_at: l.1.1,
                };
                (entry, l)
            })
            .collect();
        out.sort_by(|(a, la), (b, lb)| {
            (b.contact.unread > 0)
                .cmp(&(a.contact.unread > 0))
                .then(lb.1.cmp(&la.1))
                .then(lb.0.cmp(&la.0))
                .then(a.contact.alias.cmp(&b.contact.alias))
        });
        Ok(out.into_iter().map(|(e, _)| e).collect())
    }

    /// Page `page` (1 = the newest) of the conversation with `alias`, with
    /// `per_page` messages a page (`usize::MAX`: all in one page). A page
    /// past the oldest is empty.
    ///
    /// # Errors
    /// Unknown contact, storage.
    pub fn page(&self, alias: &str, per_page: usize, page: usize) -> Result<Page, ClientError> {
        let c = self.contact_by_alias(alias)?;
        let aliases = self.aliases()?;
        let t = now();
        let msgs: Vec<MessageRecord> = self
            .repo
            .messages()?
            .into_iter()
            .filter(|m| m.contact_id == c.id && live(m, t))
            .collect();
        let per_page = per_page.max(1);
        let end = msgs
            .len()
            .saturating_sub(page.saturating_sub(1).saturating_mul(per_page));
        let start = end.saturating_sub(per_page);
        Ok(Page {
            messages: msgs[start..end]
                .iter()
                .map(|m| message_view(m, &aliases))
                .collect(),
            older: start,
            older_unread: msgs[..start].iter().filter(|m| is_unread(m)).count(),
            newer: msgs.len() - end,
        })
    }

    /// The oldest `limit` unread messages of every contact, in the order
    /// they arrived, and how many more there are.
    ///
    /// # Errors
    /// Storage.
    pub fn unread(&self, limit: usize) -> Result<Unread, ClientError> {
        let aliases = self.aliases()?;
        let t = now();
        let mut out = Unread::default();
        for m in self.repo.messages()? {
            if !is_unread(&m) || !live(&m, t) {
                continue;
            }
            if out.messages.len() < limit {
                out.messages.push(message_view(&m, &aliases));
            } else {
                out.more += 1;
            }
        }
        Ok(out)
    }

    /// Marks as read the messages of `shown` (what a front end showed)
    /// and nothing else, and resets the dropped-envelope counter of
    /// `alias` (or of every contact), whose warning the front end showed
    /// with them.
    ///
    /// # Errors
    /// Storage.
    pub fn mark_shown_read(
        &self,
        alias: Option<&str>,
        shown: &[MessageView],
    ) -> Result<(), ClientError> {
        let only = alias.map(|a| self.contact_by_alias(a)).transpose()?;
        let contacts = self.repo.contacts()?;
        let mut changes = Changes::new();
        for m in shown
            .iter()
            .filter(|m| m.status == super::MessageStatus::Unread)
        {
            let (Some(c), Ok(id)) = (
                contacts.iter().find(|c| c.alias == m.alias),
                hex::decode(&m.id),
            ) else {
                continue;
            };
            if let Some(mut rec) = self.repo.message_by_id(&c.id, &id)?
                && is_unread(&rec)
            {
                rec.status = Status::Read as i32;
                changes.put_message(&rec);
            }
        }
        for mut c in contacts {
            if c.dropped > 0 && only.as_ref().is_none_or(|o| o.id == c.id) {
                c.dropped = 0;
                changes.put_contact(&c);
            }
        }
        self.repo.apply(changes)
    }

    /// Messages (with `alias`, or with everyone) whose text contains
    /// `query`, ignoring case: the newest `limit` of them, oldest first,
    /// and how many matched in all. An empty or blank query matches
    /// nothing. Decrypts in memory only and writes nothing.
    ///
    /// # Errors
    /// Unknown contact, storage.
    pub fn search(
        &self,
        query: &str,
        alias: Option<&str>,
        limit: usize,
    ) -> Result<SearchResults, ClientError> {
        let only = alias.map(|a| self.contact_by_alias(a)).transpose()?;
        let needle = fold(query.trim()).0;
        let mut out = SearchResults::default();
        if needle.is_empty() || limit == 0 {
            return Ok(out);
        }
        let aliases = self.aliases()?;
        let t = now();
        // Only the newest `limit` hits are kept, so a common word in a
        // handler's 100,000 messages does not hold them all decrypted.
        let mut hits = VecDeque::new();
        for m in self.repo.messages()? {
            if only.as_ref().is_some_and(|c| c.id != m.contact_id) || !live(&m, t) {
                continue;
            }
            let Some((start, end)) = find_folded(&m.text, &needle) else {
                continue;
            };
            out.total += 1;
            if hits.len() == limit {
                hits.pop_front();
            }
            hits.push_back(SearchHit {
                message: message_view(&m, &aliases),
                start,
                end,
            });
        }
        out.hits = hits.into();
        Ok(out)
    }
}

#[cfg(test)]
#[path = "reading_tests.rs"]
mod tests;

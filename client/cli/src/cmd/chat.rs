//! `chat`: a live conversation on a running sync ([`SyncHandle`]), in the
//! [`Console`]. Each line typed (or piped) is queued durably before the
//! next is read, and gets a number whose state is shown as it changes:
//! `#3 queued`, `#3 sent`, `#3 delivered`. Leaving (/quit, Ctrl-D, end of
//! input) stops the sync only after every line is queued.
//!
//! [`Conversation`] is also what `shell`'s `/chat` runs.

use std::collections::HashMap;

use tropa_client::{Client, Command, Outcome, SyncEvent, SyncHandle, SyncOptions};

use crate::cmd::console::{Console, Line, Words};
use crate::cmd::runtime;
use crate::input::open;
use crate::output::{clean, event, message, time_zone};
use crate::{Cli, CliError};

/// Shown when a chat starts.
pub(crate) const CHAT_HELP: &str = "Enter sends a line; /quit or Ctrl-D\nleaves";

/// One conversation on screen: which lines we sent (by message id) and
/// which of the sync's events concern it.
pub(crate) struct Conversation {
    alias: String,
    numbers: HashMap<String, usize>,
    sent: usize,
}

impl Conversation {
    /// Opens the conversation with `alias` (any case) and shows its last
    /// messages (marked read) and a banner.
    pub(crate) fn open(client: &Client, alias: &str, console: &Console) -> Result<Self, CliError> {
        let alias = client.contact(alias)?.alias;
        let history = client.messages(Some(&alias))?;
        for m in history.iter().rev().take(10).rev() {
            console.show(&message(m));
        }
        client.mark_read(Some(&alias))?;
        console.say(&format!(
            "-- chat with {} --\n{CHAT_HELP}\ntimes: {}",
            clean(&alias),
            time_zone()
        ));
        Ok(Conversation {
            alias,
            numbers: HashMap::new(),
            sent: 0,
        })
    }

    /// The prompt.
    pub(crate) fn prompt(&self) -> String {
        format!("{}> ", clean(&self.alias))
    }

    /// Queues `text` (durably, before returning) and says so.
    pub(crate) async fn send(&mut self, handle: &SyncHandle, console: &Console, text: &str) {
        let pending = handle.submit(Command::Send {
            alias: self.alias.clone(),
            text: text.to_owned(),
        });
        match pending.await {
            Ok(Ok(Outcome::Queued { id })) => {
                self.sent += 1;
                self.numbers.insert(id, self.sent);
                console.say(&format!("  #{} queued", self.sent));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => console.say(&format!("  not sent: {}", clean(&e.to_string()))),
            Err(_) => console.say("  not sent: the sync stopped"),
        }
    }

    /// Shows what an event means here.
    pub(crate) fn show(&self, ev: &SyncEvent, console: &Console) {
        match ev {
            SyncEvent::Received(m) if m.alias == self.alias => console.show(&message(m)),
            other => {
                if let Some(s) = self.event(other) {
                    console.say(&s);
                }
            }
        }
    }

    /// What an event means here, as a status line: this conversation's messages and line
    /// states, a one-line notice for other people's messages, relays that
    /// cannot be reached; nothing about other contacts' trouble.
    pub(crate) fn event(&self, ev: &SyncEvent) -> Option<String> {
        let ours = |a: &str| a == self.alias;
        match ev {
            SyncEvent::Received(m) if ours(&m.alias) => None,
            SyncEvent::Received(m) => Some(format!("(new message from {})", clean(&m.alias))),
            SyncEvent::Sent { alias, id } if ours(alias) => {
                self.numbers.get(id).map(|n| format!("  #{n} sent"))
            }
            SyncEvent::Delivered { alias, id } if ours(alias) => {
                self.numbers.get(id).map(|n| format!("  #{n} delivered"))
            }
            SyncEvent::Refused { alias, .. }
            | SyncEvent::ContactBroken { alias }
            | SyncEvent::Dropped { alias, .. }
                if ours(alias) =>
            {
                event(ev)
            }
            SyncEvent::Unreachable { .. } => {
                Some("(a relay cannot be reached; retrying)".to_owned())
            }
            SyncEvent::Reachable { .. } => Some("(the relay answers again)".to_owned()),
            _ => None,
        }
    }
}

/// What a line typed in a chat does.
pub(crate) enum ChatLine {
    /// Send it.
    Text(String),
    /// Leave the chat.
    Leave,
    /// Nothing (empty line, or help shown).
    Nothing,
}

pub(crate) fn chat_line(line: &Line, console: &Console) -> ChatLine {
    match line {
        Line::End => ChatLine::Leave,
        Line::Text(t) => match t.trim() {
            "/quit" | "/leave" | "/back" => ChatLine::Leave,
            "/help" => {
                console.say(CHAT_HELP);
                ChatLine::Nothing
            }
            "" => ChatLine::Nothing,
            _ => ChatLine::Text(t.trim().to_owned()),
        },
    }
}

pub(crate) fn chat(cli: &Cli, alias: &str) -> Result<(), CliError> {
    let client = open(cli)?;
    // Fail on an unknown alias before the terminal is taken over.
    let alias = client.contact(alias)?.alias;
    let prompt = format!("{}> ", clean(&alias));
    runtime()?.block_on(async {
        let mut console = Console::start(Words::default());
        let mut conv = match Conversation::open(&client, &alias, &console) {
            Ok(c) => c,
            Err(e) => {
                console.finish();
                return Err(e);
            }
        };
        let (handle, mut events) = SyncHandle::start(&client, SyncOptions::default());
        console.resume(&prompt);
        loop {
            tokio::select! {
                line = console.next() => {
                    match chat_line(&line, &console) {
                        ChatLine::Leave => break,
                        ChatLine::Text(t) => conv.send(&handle, &console, &t).await,
                        ChatLine::Nothing => {}
                    }
                    console.resume(&prompt);
                }
                ev = events.recv() => match ev {
                    Some(ev) => conv.show(&ev, &console),
                    None => {
                        console.say("(the sync stopped; press Enter)");
                        break;
                    }
                },
            }
        }
        console.finish();
        handle.stop().await?;
        Ok::<_, CliError>(())
    })?;
    // What arrived during the chat was shown live.
    client.mark_read(Some(&alias))?;
    Ok(())
}

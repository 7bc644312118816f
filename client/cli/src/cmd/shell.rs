//! `shell`: one unlock for a whole session. A sync runs in the background
//! while it is open (messages arrive live), and commands are typed at a
//! `tropa>` prompt with Tab completion for commands and aliases. Its
//! history lives in memory only. `/chat ALIAS` enters a conversation
//! ([`Conversation`]) and `/quit` there comes back.

use std::sync::{Arc, Mutex};

use tropa_client::{Client, Command, SyncHandle, SyncOptions};

use crate::cmd::chat::{ChatLine, Conversation, chat_line};
use crate::cmd::console::{Console, Line, Words};
use crate::cmd::contacts::contact_line;
use crate::cmd::runtime;
use crate::input::open;
use crate::output::{clean, event, message, time_zone};
use crate::{Cli, CliError};

const PROMPT: &str = "tropa> ";

/// `/help`: every command in one screen of 40 columns.
const HELP: &str = "\
/contacts         who you talk to
/read [ALIAS]     messages (all new ones)
/send ALIAS TEXT  send one message
/chat ALIAS       talk live (/quit back)
/invite [ALIAS]   make a link
/accept ALIAS LINK  accept a link
/verify ALIAS     show the safety number
/quit             leave (or Ctrl-D)";

const COMMANDS: [&str; 9] = [
    "/contacts",
    "/read",
    "/send",
    "/chat",
    "/invite",
    "/accept",
    "/verify",
    "/help",
    "/quit",
];

/// Where the shell is.
enum Mode {
    Commands,
    Chat(Conversation),
}

struct Shell<'a> {
    client: &'a Client,
    handle: SyncHandle,
    console: Console,
    aliases: Arc<Mutex<Vec<String>>>,
    mode: Mode,
}

pub(crate) fn shell(cli: &Cli) -> Result<(), CliError> {
    let client = open(cli)?;
    eprintln!(
        "-- tropa shell --\n/help lists commands; Ctrl-D leaves\ntimes: {}",
        time_zone()
    );
    runtime()?.block_on(async {
        let (handle, mut events) = SyncHandle::start(&client, SyncOptions::default());
        let aliases = Arc::new(Mutex::new(Vec::new()));
        let words = Words {
            commands: COMMANDS.to_vec(),
            take_alias: vec!["/read", "/send", "/chat", "/verify"],
            aliases: aliases.clone(),
        };
        let mut sh = Shell {
            client: &client,
            handle,
            console: Console::start(words),
            aliases,
            mode: Mode::Commands,
        };
        sh.refresh_aliases();
        sh.console.resume(PROMPT);
        loop {
            tokio::select! {
                line = sh.console.next() => {
                    if !sh.line(line).await {
                        break;
                    }
                    let prompt = match &sh.mode {
                        Mode::Commands => PROMPT.to_owned(),
                        Mode::Chat(c) => c.prompt(),
                    };
                    sh.console.resume(&prompt);
                }
                ev = events.recv() => match ev {
                    Some(ev) => sh.event(&ev),
                    None => {
                        sh.console.say("(the sync stopped; press Enter)");
                        break;
                    }
                },
            }
        }
        sh.console.finish();
        sh.handle.stop().await
    })?;
    Ok(())
}

impl Shell<'_> {
    fn say(&self, s: &str) {
        self.console.say(s);
    }

    fn refresh_aliases(&self) {
        if let (Ok(list), Ok(mut a)) = (self.client.contacts(), self.aliases.lock()) {
            *a = list.into_iter().map(|c| c.alias).collect();
        }
    }

    fn event(&mut self, ev: &tropa_client::SyncEvent) {
        match (&self.mode, ev) {
            (Mode::Chat(c), ev) => c.show(ev, &self.console),
            (Mode::Commands, tropa_client::SyncEvent::Received(m)) => {
                self.console.show(&message(m));
            }
            (Mode::Commands, other) => {
                if let Some(s) = event(other) {
                    self.say(&s);
                }
            }
        }
        if matches!(
            ev,
            tropa_client::SyncEvent::Joined { .. } | tropa_client::SyncEvent::ContactRemoved { .. }
        ) {
            self.refresh_aliases();
        }
    }

    /// Handles a line; `false` to leave the shell.
    async fn line(&mut self, line: Line) -> bool {
        if let Mode::Chat(conv) = &mut self.mode {
            match chat_line(&line, &self.console) {
                ChatLine::Leave => {
                    let _ = self.client.mark_read(None);
                    self.mode = Mode::Commands;
                    self.say("-- back in the shell --");
                }
                ChatLine::Text(t) => conv.send(&self.handle, &self.console, &t).await,
                ChatLine::Nothing => {}
            }
            return true;
        }
        let Line::Text(text) = line else {
            return false;
        };
        let text = text.trim();
        let (command, rest) = text.split_once(' ').unwrap_or((text, ""));
        let rest = rest.trim();
        if let Err(e) = self.command(command, rest).await {
            self.say(&format!("tropa: {}", clean(&e.to_string())));
        }
        command != "/quit"
    }

    async fn command(&mut self, command: &str, rest: &str) -> Result<(), CliError> {
        let (first, after) = rest.split_once(' ').unwrap_or((rest, ""));
        match command {
            "" => {}
            "/help" => self.say(HELP),
            "/quit" => {}
            "/contacts" => {
                let list = self.client.contacts()?;
                if list.is_empty() {
                    self.say("no contacts yet: /invite");
                }
                for c in list {
                    self.console.show(&contact_line(&c));
                }
            }
            "/read" => {
                let alias = (!first.is_empty()).then_some(first);
                let msgs = self.client.messages(alias)?;
                let shown: Vec<_> = match alias {
                    Some(_) => msgs.iter().rev().take(20).rev().collect(),
                    None => msgs
                        .iter()
                        .filter(|m| crate::output::is_unread(m))
                        .collect(),
                };
                if shown.is_empty() {
                    self.say("no new messages");
                }
                for m in shown {
                    self.console.show(&message(m));
                }
                self.client.mark_read(alias)?;
            }
            "/send" => {
                if first.is_empty() || after.trim().is_empty() {
                    return Err(CliError::Usage("/send ALIAS TEXT".into()));
                }
                let alias = self.client.contact(first)?.alias;
                self.handle.send(&alias, after.trim()).await?;
                self.say(&format!("  queued for {}", clean(&alias)));
            }
            "/chat" => {
                let conv = Conversation::open(self.client, first, &self.console)?;
                self.mode = Mode::Chat(conv);
            }
            "/invite" => {
                let alias = (!first.is_empty()).then_some(first);
                let links = self.handle.invite_links(alias).await?;
                let (link, alias) = (links.link().to_owned(), links.alias);
                self.console.show(&link);
                self.say(&format!(
                    "one-time link for {}; valid 7 days. Send it privately.",
                    clean(&alias)
                ));
                self.refresh_aliases();
            }
            "/accept" => {
                if first.is_empty() || after.trim().is_empty() {
                    return Err(CliError::Usage("/accept ALIAS LINK".into()));
                }
                let delivered = self.handle.accept(after.trim(), first).await?;
                self.say(&if delivered {
                    format!(
                        "{} added; compare safety numbers: /verify {}",
                        clean(first),
                        clean(first)
                    )
                } else {
                    format!(
                        "{} added; their relay is unreachable, retrying",
                        clean(first)
                    )
                });
                self.refresh_aliases();
            }
            "/verify" => {
                let sn = self.client.safety(first)?;
                for row in sn.groups.chunks(4) {
                    self.console.show(&row.join(" "));
                }
                self.say("compare in person; then `tropa verify ALIAS --confirm`");
            }
            "/delete" => {
                let alias = self.client.contact(first)?.alias;
                let pending = self.handle.submit(Command::Forget { alias });
                pending
                    .await
                    .map_err(|_| CliError::Usage("the sync stopped".into()))??;
                self.refresh_aliases();
                self.say("deleted");
            }
            other if other.starts_with('/') => {
                return Err(CliError::Usage(format!(
                    "no command {other}; /help lists them"
                )));
            }
            _ => {
                return Err(CliError::Usage(
                    "commands start with /: /send ALIAS TEXT, /chat ALIAS, /help".into(),
                ));
            }
        }
        Ok(())
    }
}

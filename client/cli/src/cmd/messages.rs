//! `send`, `sync`, `read`, `search`, and `tropa` alone (who wrote):
//! messages. What is counted, paged and searched comes from
//! `tropa-client`; this file only chooses what to print.

use std::time::Duration;

use tropa_client::SyncOptions;

use crate::cmd::runtime;
use crate::input::{home_dir, open, secret_input};
use crate::output::{
    WIDTH, clean, inbox_lines, message_json, print_event, print_message, search_lines, shell_word,
    time_zone,
};
use crate::{Cli, CliError};

pub(crate) fn send(
    cli: &Cli,
    alias: &str,
    text: Option<&str>,
    timeout: u64,
) -> Result<(), CliError> {
    let mut client = open(cli)?;
    let text = secret_input(&client, text, "Message: ", "message text")?;
    let limit = Duration::from_secs(timeout.max(1));
    let sent = runtime()?.block_on(client.send(alias, &text, limit))?;
    if sent.deposited {
        eprintln!("sent to {alias}");
        return Ok(());
    }
    if !sent.report.broken.is_empty() {
        return Err(tropa_client::ClientError::ContactBroken(alias.to_owned()).into());
    }
    const LATER: &str = "`tropa sync` delivers it later";
    let why = if let Some(r) = sent.report.refused.first() {
        format!("the relay refused it for now ({}); {LATER}", clean(r))
    } else if !sent.report.wrong_key.is_empty() {
        // Said as `sync` says it: a rotated key and a machine in the middle
        // look the same from here. `sync` will not fix it by itself.
        format!(
            "{}; it stays queued: check the address with whoever gave it to you",
            tropa_client::RelayError::WrongKey
        )
    } else if !sent.report.unreachable.is_empty() {
        format!("the relay cannot be reached; {LATER}")
    } else {
        format!(
            "the relay did not answer within {} s; {LATER}",
            limit.as_secs()
        )
    };
    Err(CliError::Queued {
        alias: alias.to_owned(),
        why,
    })
}

pub(crate) fn sync(
    cli: &Cli,
    wait: Option<u64>,
    verbose: bool,
    resend_after: u64,
) -> Result<(), CliError> {
    let mut client = open(cli)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let opts = SyncOptions {
        wait: wait.map(Duration::from_secs),
        resend_after: Duration::from_secs(resend_after),
        ..SyncOptions::default()
    };
    let report = runtime()?.block_on(async {
        let printer = async {
            while let Some(ev) = rx.recv().await {
                if verbose {
                    print_event(&ev);
                }
            }
        };
        let (r, ()) = tokio::join!(client.sync(opts, Some(tx)), printer);
        r
    })?;
    println!(
        "{} new, {} delivered, {} joined{}",
        report.received,
        report.delivered,
        report.joined,
        if report.dropped > 0 {
            format!(", {} DROPPED (tampered)", report.dropped)
        } else {
            String::new()
        }
    );
    for alias in &report.removed {
        eprintln!(
            "{} removed: their relay refused your reply (the invitation was used or expired)",
            clean(alias)
        );
    }
    if report.requests > 0 {
        eprintln!(
            "{} new contact request{}: `tropa requests`",
            report.requests,
            if report.requests == 1 { "" } else { "s" }
        );
    }
    if report.requests_dropped > 0 {
        eprintln!(
            "{} invalid contact requests dropped",
            report.requests_dropped
        );
    }
    let broken: Vec<String> = client
        .contacts()?
        .into_iter()
        .filter(|c| c.broken)
        .map(|c| clean(&c.alias))
        .collect();
    if !broken.is_empty() {
        eprintln!(
            "cannot be reached any more: {} (ask for a new invitation; `tropa contacts delete` removes them)",
            broken.join(", ")
        );
    }
    if verbose {
        for m in &report.misbehaving {
            eprintln!("relay misbehaving: {}", clean(m));
        }
        eprintln!(
            "bytes: {} sent, {} received",
            report.bytes_sent, report.bytes_received
        );
        for line in connection_lines(&report.connections) {
            eprintln!("{line}");
        }
    }
    if !report.wrong_key.is_empty() {
        return Err(CliError::Network(format!(
            "{}: {}",
            tropa_client::RelayError::WrongKey,
            report.wrong_key.join(", ")
        )));
    }
    if !report.unreachable.is_empty() {
        // Through a proxy, the proxy is the likelier culprit (Tor not
        // started yet, or still building its circuits).
        let via = match client.network()?.socks5 {
            Some(p) => format!(" through the SOCKS5 proxy {p} (is it running?)"),
            None => String::new(),
        };
        return Err(CliError::Network(format!(
            "cannot reach the relay{via}: {}",
            report.unreachable.join(", ")
        )));
    }
    if !report.refused.is_empty() {
        return Err(CliError::Network(format!(
            "refused, will retry: {}",
            clean(&report.refused.join("; "))
        )));
    }
    Ok(())
}

/// How many messages `read` and `search` show when not told: a phone
/// screen or two, not a whole history.
const DEFAULT_LAST: usize = 20;

/// How many contacts `tropa` alone lists: all with new messages, then
/// the others until this many lines; the rest in one line.
const INBOX_LINES: usize = 10;

/// `-n` as a count: given, or the default on a screen, or everything for
/// a script reading `--json`.
fn limit(cli: &Cli, last: Option<u32>) -> usize {
    match last {
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None if cli.json => usize::MAX,
        None => DEFAULT_LAST,
    }
}

/// `tropa` alone: who wrote. Contacts with new messages first, then the
/// others, one line each, and what to type next.
pub(crate) fn inbox(cli: &Cli) -> Result<(), CliError> {
    if !tropa_client::Client::exists(&home_dir(cli)?) {
        return Err(CliError::NoProfileYet);
    }
    let client = open(cli)?;
    let entries = client.inbox()?;
    if cli.json {
        for e in &entries {
            let c = &e.contact;
            println!(
                "{}",
                serde_json::json!({
                    "alias": c.alias,
                    "unread": c.unread,
                    "last_at": e.last_at,
                    "state": if c.broken {
                        "broken"
                    } else if c.established {
                        "established"
                    } else {
                        "invited"
                    },
                    "verified": c.verified,
                    "pending": c.pending,
                })
            );
        }
        return Ok(());
    }
    if entries.is_empty() {
        eprintln!("no contacts yet: `tropa invite`, or");
        eprintln!("`tropa accept --name ALIAS` a link");
        return Ok(());
    }
    let with_new = entries.iter().filter(|e| e.contact.unread > 0).count();
    let shown = entries.len().min(with_new.max(INBOX_LINES));
    for line in inbox_lines(&entries[..shown], WIDTH) {
        println!("{line}");
    }
    if shown < entries.len() {
        println!("and {} more: tropa contacts", entries.len() - shown);
    }
    match entries.first().filter(|e| e.contact.unread > 0) {
        Some(e) => eprintln!("next: tropa read {}", shell_word(&e.contact.alias)),
        None => eprintln!("nothing new. Write: tropa send ALIAS"),
    }
    Ok(())
}

/// `read`: a page of the conversation with ALIAS, or everyone's new
/// messages; marks as read what it showed, and nothing more.
pub(crate) fn read(
    cli: &Cli,
    alias: Option<&str>,
    last: Option<u32>,
    page: u32,
) -> Result<(), CliError> {
    let client = open(cli)?;
    let n = limit(cli, last);
    let (shown, hints) = match alias {
        Some(a) => {
            let page = usize::try_from(page).unwrap_or(usize::MAX);
            let p = client.page(a, n, page)?;
            // Hints name the contact as stored, not as typed.
            let stored = p.messages.first().map_or(a, |m| m.alias.as_str());
            let hints = page_hints(stored, last, page, &p);
            (p.messages, hints)
        }
        None => {
            let u = client.unread(n)?;
            let mut hints = Vec::new();
            if u.messages.is_empty() {
                hints.push("no new messages".to_owned());
            } else if u.more > 0 {
                let n = last.map(|n| format!(" -n {n}")).unwrap_or_default();
                hints.push(hint(
                    &format!("{} more new:", u.more),
                    &format!("tropa read{n}"),
                ));
            }
            (u.messages, hints)
        }
    };
    if !cli.json && !shown.is_empty() {
        eprintln!("(times {}, when sent)", time_zone());
    }
    for m in &shown {
        print_message(m, cli.json);
    }
    if !cli.json {
        for h in &hints {
            eprintln!("{h}");
        }
    }
    for c in client.contacts()? {
        if c.dropped > 0 && alias.is_none_or(|a| a.to_lowercase() == c.alias.to_lowercase()) {
            eprintln!(
                "WARNING: {} message(s) for {} were tampered with and dropped",
                c.dropped,
                clean(&c.alias)
            );
        }
    }
    client.mark_shown_read(alias, &shown)?;
    Ok(())
}

/// A hint: what it is for, then the command to type; on two lines when
/// one would not fit the screen.
fn hint(label: &str, command: &str) -> String {
    if label.chars().count() + 1 + command.chars().count() <= WIDTH {
        format!("{label} {command}")
    } else {
        format!("{label}\n  {command}")
    }
}

/// What to type for the pages around `p` (page `page` of `alias`).
fn page_hints(alias: &str, last: Option<u32>, page: usize, p: &tropa_client::Page) -> Vec<String> {
    let n = last.map(|n| format!(" -n {n}")).unwrap_or_default();
    let cmd = |k: usize| format!("tropa read {}{n} --page {k}", shell_word(alias));
    let mut hints = Vec::new();
    if p.messages.is_empty() {
        if p.newer == 0 {
            hints.push(format!("no messages with {} yet", clean(alias)));
        } else {
            let per = last.map_or(DEFAULT_LAST, |n| usize::try_from(n).unwrap_or(1));
            let pages = p.newer.div_ceil(per);
            hints.push(hint(
                &format!(
                    "only {pages} page{}; the oldest:",
                    if pages == 1 { "" } else { "s" }
                ),
                &cmd(pages),
            ));
        }
        return hints;
    }
    if p.older > 0 {
        hints.push(hint("older:", &cmd(page + 1)));
        if p.older_unread > 0 {
            hints.push(format!("  {} new among them", p.older_unread));
        }
    }
    if p.newer > 0 {
        hints.push(hint("newer:", &cmd(page - 1)));
    }
    hints
}

/// `search`: messages containing the text, one line each; in memory only.
pub(crate) fn search(
    cli: &Cli,
    text: Option<&str>,
    alias: Option<&str>,
    last: Option<u32>,
) -> Result<(), CliError> {
    let client = open(cli)?;
    let query = secret_input(&client, text, "Search for: ", "search text")?;
    if query.trim().is_empty() {
        return Err(CliError::Usage("nothing to search for".into()));
    }
    let found = client.search(&query, alias, limit(cli, last))?;
    if cli.json {
        for h in &found.hits {
            let mut v = message_json(&h.message);
            let chars = |end: usize| h.message.text.get(..end).map_or(0, |s| s.chars().count());
            v["match_start"] = chars(h.start).into();
            v["match_end"] = chars(h.end).into();
            println!("{v}");
        }
        return Ok(());
    }
    for line in search_lines(&found.hits, WIDTH) {
        println!("{line}");
    }
    if found.total == 0 {
        eprintln!("no message contains that");
    } else if found.total > found.hits.len() {
        eprintln!(
            "{} older: add -n {} to see all",
            found.total - found.hits.len(),
            found.total
        );
    }
    Ok(())
}

/// `sync -v`: how many connections went to each relay, over what, e.g.
/// `over tcp (3): relay.example.org:4433` (short, for 40 columns).
fn connection_lines(connections: &[(String, String)]) -> Vec<String> {
    let mut counts: std::collections::BTreeMap<(&str, &str), usize> =
        std::collections::BTreeMap::new();
    for (relay, transport) in connections {
        *counts
            .entry((relay.as_str(), transport.as_str()))
            .or_default() += 1;
    }
    counts
        .into_iter()
        .map(|((relay, transport), n)| {
            // The host and port: the key is the address's tail.
            let shown = relay.rsplit('@').next().unwrap_or(relay);
            format!("over {transport} ({n}): {}", clean(shown))
        })
        .collect()
}

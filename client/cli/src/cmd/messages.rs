//! `send`, `sync`, `read`: messages.

use std::time::Duration;

use tropa_client::SyncOptions;

use crate::cmd::runtime;
use crate::input::{open, secret_input};
use crate::output::{clean, is_unread, print_event, print_message, time_zone};
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
    }
    if !report.wrong_key.is_empty() {
        return Err(CliError::Network(format!(
            "{}: {}",
            tropa_client::RelayError::WrongKey,
            report.wrong_key.join(", ")
        )));
    }
    if !report.unreachable.is_empty() {
        return Err(CliError::Network(format!(
            "cannot reach the relay: {}",
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

pub(crate) fn read(cli: &Cli, alias: Option<&str>) -> Result<(), CliError> {
    let client = open(cli)?;
    let msgs = client.messages(alias)?;
    let shown: Vec<_> = if alias.is_some() {
        msgs
    } else {
        msgs.into_iter().filter(is_unread).collect()
    };
    if shown.is_empty() && !cli.json {
        eprintln!("no new messages");
    } else if !cli.json {
        eprintln!("(times {}, when sent)", time_zone());
    }
    for m in &shown {
        print_message(m, cli.json);
    }
    for c in client.contacts()? {
        if c.dropped > 0 && alias.is_none_or(|a| a == c.alias) {
            eprintln!(
                "WARNING: {} message(s) for {} were tampered with and dropped",
                c.dropped,
                clean(&c.alias)
            );
        }
    }
    client.mark_read(alias)?;
    Ok(())
}

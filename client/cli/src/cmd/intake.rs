//! `address` and `requests`: the public intake address of an
//! organisation and the contact requests that arrive on it; and the other
//! side, `accept TROPA:A/...`, which sends a request with a first message.

use std::io::{IsTerminal as _, Write as _};

use tropa_client::{Client, ClientError, IntakeError};
use zeroize::Zeroizing;

use crate::cmd::runtime;
use crate::input::{open, secret_input};
use crate::output::{WIDTH, clean, fit, print_link_qr, when, when_short};
use crate::{Cli, CliError};

/// `address create`.
pub(crate) fn address_create(cli: &Cli) -> Result<(), CliError> {
    let mut client = open(cli)?;
    let link = runtime()?.block_on(client.create_address())?;
    println!("{link}");
    if !cli.json {
        print_link_qr(&link);
    }
    eprintln!(
        "your public address: publish it. Each use arrives as a contact request; `tropa sync`, then `tropa requests`."
    );
    Ok(())
}

/// `address` and `address show`.
pub(crate) fn address_show(cli: &Cli) -> Result<(), CliError> {
    let client = open(cli)?;
    let Some(a) = client.address()? else {
        return Err(ClientError::from(IntakeError::NoAddress).into());
    };
    if cli.json {
        println!(
            "{}",
            serde_json::json!({
                "link": a.link,
                "created_at": a.created_at,
                "link_expires_at": a.link_expires_at,
                "requests": a.requests,
                "dropped": a.dropped,
                "overflow": a.overflow,
            })
        );
        return Ok(());
    }
    println!("{}", a.link);
    print_link_qr(&a.link);
    eprintln!(
        "{} request{} waiting: `tropa requests`",
        a.requests,
        if a.requests == 1 { "" } else { "s" }
    );
    if a.link_expires_at > 0 {
        eprintln!(
            "the relay keeps the link until {}; `tropa sync` renews it",
            when(a.link_expires_at)
        );
    }
    if a.dropped > 0 {
        eprintln!("{} invalid requests were dropped", a.dropped);
    }
    if a.overflow > 0 {
        eprintln!(
            "{} requests were dropped: too many were waiting. Accept or reject some",
            a.overflow
        );
    }
    Ok(())
}

/// `address delete`.
pub(crate) fn address_delete(cli: &Cli, yes: bool) -> Result<(), CliError> {
    let mut client = open(cli)?;
    if client.address()?.is_none() {
        return Err(ClientError::from(IntakeError::NoAddress).into());
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::Usage("not deleted: confirm with --yes".into()));
        }
        eprint!("Delete your public address and every request waiting? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Err(CliError::Usage("not deleted".into()));
        }
    }
    let confirmed = runtime()?.block_on(client.delete_address())?;
    eprintln!("address deleted: its link no longer works; your contacts stay");
    if !confirmed {
        eprintln!("the relay could not be told yet: `tropa sync` tells it");
    }
    Ok(())
}

/// One request in the list: `ID  TIME  sn DIGITS`, then its message,
/// indented, on one line of at most [`WIDTH`] columns.
fn request_lines(r: &tropa_client::RequestView, now: u64) -> [String; 2] {
    let mut head = format!(
        "{}  {}  sn {}",
        r.short_id,
        when_short(r.received_at),
        r.safety_prefix
    );
    if r.expires_at < now {
        head.push_str("  expired");
    } else if let Some(a) = &r.known_as {
        head.push_str(&format!("  is {}", clean(a)));
    }
    let first = r.text.lines().next().unwrap_or_default();
    [
        fit(&head, WIDTH),
        format!("  {}", fit(&clean(first), WIDTH - 2)),
    ]
}

/// `requests` (and `requests list`).
pub(crate) fn requests_list(cli: &Cli) -> Result<(), CliError> {
    let client = open(cli)?;
    let list = client.requests()?;
    if list.is_empty() && !cli.json {
        if client.address()?.is_none() {
            eprintln!("no requests: you have no public address (`tropa address create`)");
        } else {
            eprintln!("no requests waiting (`tropa sync` fetches new ones)");
        }
    }
    let now = now();
    for r in &list {
        if cli.json {
            println!(
                "{}",
                serde_json::json!({
                    "id": r.id,
                    "short_id": r.short_id,
                    "safety": r.safety_prefix,
                    "received_at": r.received_at,
                    "expires_at": r.expires_at,
                    "known_as": r.known_as,
                    "text": r.text,
                })
            );
        } else {
            for line in request_lines(r, now) {
                println!("{line}");
            }
        }
    }
    if !list.is_empty() && !cli.json {
        eprintln!("`tropa requests accept ID --name ALIAS` or `tropa requests reject ID`");
    }
    Ok(())
}

/// `requests accept ID --name ALIAS`.
pub(crate) fn requests_accept(cli: &Cli, id: &str, alias: &str) -> Result<(), CliError> {
    let mut client = open(cli)?;
    let delivered = runtime()?.block_on(client.accept_request(id, alias))?;
    if delivered {
        eprintln!("{alias} added. Compare safety numbers: `tropa verify {alias}`");
    } else {
        eprintln!("{alias} added; their relay is unreachable, `tropa sync` will retry");
    }
    Ok(())
}

/// `requests reject ID`.
pub(crate) fn requests_reject(cli: &Cli, id: &str) -> Result<(), CliError> {
    let client = open(cli)?;
    client.reject_request(id)?;
    eprintln!("request {} rejected; nothing was sent to them", clean(id));
    Ok(())
}

/// `accept TROPA:A/... --name ORG`: a contact request to an organisation's
/// address. `input` is the link as given, or as pasted or piped: what
/// follows its first line is the first message; without any, it is asked
/// for (a terminal prompt, or a pipe), never taken from the command line.
pub(crate) fn send_request(client: &mut Client, input: &str, alias: &str) -> Result<(), CliError> {
    let (link, rest) = input.split_once('\n').unwrap_or((input, ""));
    let text = if rest.trim().is_empty() {
        secret_input(
            client,
            None,
            &format!(
                "This is an organisation's address. Your first message to {alias} (they read it before they answer; at most {} bytes): ",
                tropa_client::client::MAX_REQUEST_TEXT_LEN
            ),
            "first message",
        )?
    } else {
        Zeroizing::new(rest.trim().to_owned())
    };
    let delivered = runtime()?.block_on(client.send_request(link.trim(), alias, &text))?;
    if delivered {
        eprintln!(
            "request sent to {alias}: they see your message and your key. Once they accept, `tropa sync` adds them."
        );
        Ok(())
    } else {
        Err(CliError::Queued {
            alias: alias.to_owned(),
            why: "the address takes no request now; `tropa sync` sends it later".into(),
        })
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_fits_40_columns_and_neutralises_its_text() {
        let r = tropa_client::RequestView {
            id: "ab".repeat(32),
            short_id: "abababab".into(),
            safety_prefix: "12345 67890".into(),
            text: "I am a conscript in Rostov and I want to leave before the \u{202e} call-up\nsecond line".into(),
            received_at: 1_750_000_000,
            expires_at: u64::MAX,
            known_as: Some("a-very-long-alias-of-thirty-two-c".into()),
        };
        let lines = request_lines(&r, 1_750_000_000);
        for l in &lines {
            assert!(l.chars().count() <= WIDTH, "{l:?}");
        }
        assert!(lines[0].starts_with("abababab "), "{lines:?}");
        assert!(lines[1].starts_with("  I am a conscript"), "{lines:?}");
        assert!(!lines[1].contains('\u{202e}'), "{lines:?}");
        assert!(!lines[1].contains("second line"), "{lines:?}");
    }
}

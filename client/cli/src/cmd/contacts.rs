//! `invite`, `accept`, `contacts`, `verify`, `timer`: who you talk to.

use std::io::{IsTerminal as _, Write as _};

use crate::cmd::runtime;
use crate::input::{open, secret_input};
use crate::output::{clean, print_link_qr, print_qr, when};
use crate::{Cli, CliError};

/// `invite`: the short link (and its QR code), or with `--long` the long
/// one, which works without fetching anything from the relay.
pub(crate) fn invite(cli: &Cli, alias: Option<&str>, qr: bool, long: bool) -> Result<(), CliError> {
    let mut client = open(cli)?;
    let links =
        runtime()?.block_on(client.invite_links(alias, tropa_client::client::INVITE_TTL_SECS))?;
    let link = if long { &links.long } else { links.link() };
    println!("{link}");
    if qr {
        if long {
            print_qr(link.as_bytes());
        } else {
            print_link_qr(link);
        }
    }
    if links.short.is_none() && !long {
        eprintln!(
            "your relay does not keep short links (an older version): this is the long link, which works as well"
        );
    }
    eprintln!(
        "one-time link for {}; valid 7 days. Send it privately.",
        clean(&links.alias)
    );
    Ok(())
}

/// `invite --list`: invitations nobody accepted yet.
pub(crate) fn invitations(cli: &Cli) -> Result<(), CliError> {
    let client = open(cli)?;
    let open_ones: Vec<_> = client
        .contacts()?
        .into_iter()
        .filter(|c| c.invitation_expires_at > 0)
        .collect();
    if open_ones.is_empty() && !cli.json {
        eprintln!("no open invitations");
    }
    for c in open_ones {
        if cli.json {
            println!(
                "{}",
                serde_json::json!({"alias": c.alias, "expires_at": c.invitation_expires_at})
            );
        } else {
            println!(
                "{} (until {})",
                clean(&c.alias),
                when(c.invitation_expires_at)
            );
        }
    }
    Ok(())
}

/// `contacts delete` and `invite --cancel`.
pub(crate) fn delete(cli: &Cli, alias: &str, yes: bool, invitation: bool) -> Result<(), CliError> {
    let mut client = open(cli)?;
    let c = client.contact(alias)?;
    let alias = c.alias.as_str();
    if invitation && c.invitation_expires_at == 0 {
        return Err(CliError::Usage(format!(
            "{alias} is a contact, not an open invitation; `tropa contacts delete {alias}`"
        )));
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::Usage("not deleted: confirm with --yes".into()));
        }
        eprint!("Delete {alias} and every message with them? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Err(CliError::Usage("not deleted".into()));
        }
    }
    runtime()?.block_on(client.forget(alias))?;
    if invitation {
        eprintln!("invitation for {alias} cancelled; its link no longer works");
    } else {
        eprintln!("{alias} deleted");
    }
    Ok(())
}

/// `contacts rename`.
pub(crate) fn rename(cli: &Cli, alias: &str, new_alias: &str) -> Result<(), CliError> {
    let client = open(cli)?;
    client.rename_contact(alias, new_alias)?;
    eprintln!("{alias} is now {new_alias}");
    Ok(())
}

pub(crate) fn accept(cli: &Cli, link: Option<&str>, alias: &str) -> Result<(), CliError> {
    let mut client = open(cli)?;
    let link = secret_input(&client, link, "Paste the link: ", "link")?;
    if tropa_client::client::is_address_link(link.lines().next().unwrap_or_default()) {
        // An organisation's address: a contact request with a first message.
        return crate::cmd::intake::send_request(&mut client, &link, alias);
    }
    let delivered = runtime()?.block_on(client.accept(link.trim(), alias))?;
    if delivered {
        eprintln!("{alias} added. Compare safety numbers: `tropa verify {alias}`");
    } else {
        eprintln!("{alias} added; their relay is unreachable, `tropa sync` will retry");
    }
    Ok(())
}

pub(crate) fn list(cli: &Cli) -> Result<(), CliError> {
    let client = open(cli)?;
    let contacts = client.contacts()?;
    // With several relays, each contact's is worth a line of its own.
    let spread = client.relays()?.len() > 1;
    if contacts.is_empty() && !cli.json {
        eprintln!("no contacts yet: `tropa invite` or `tropa accept`");
    }
    for c in contacts {
        if cli.json {
            println!(
                "{}",
                serde_json::json!({
                    "alias": c.alias,
                    "state": if c.broken {
                        "broken"
                    } else if c.established {
                        "established"
                    } else {
                        "invited"
                    },
                    "verified": c.verified,
                    "unread": c.unread,
                    "pending": c.pending,
                    "timer_secs": c.timer_secs,
                    "dropped": c.dropped,
                    "relay": c.relay,
                })
            );
            continue;
        }
        println!("{}", contact_line(&c));
        if spread && !c.relay.is_empty() {
            println!("  via {}", crate::output::clean(&c.relay));
        }
    }
    Ok(())
}

pub(crate) fn verify(
    cli: &Cli,
    alias: &str,
    confirm: bool,
    digits: Option<&str>,
    qr: bool,
) -> Result<(), CliError> {
    let client = open(cli)?;
    let sn = client.safety(alias)?;
    for row in sn.groups.chunks(4) {
        println!("{}", row.join(" "));
    }
    if qr {
        print_qr(&sn.qr_payload);
    }
    if confirm {
        client.confirm_verified(alias, digits)?;
        eprintln!("{alias} is now verified");
    } else if sn.verified {
        eprintln!("{alias} is verified");
    } else {
        eprintln!("compare with {alias} in person; if equal: --confirm");
    }
    Ok(())
}

pub(crate) fn timer(cli: &Cli, alias: &str, seconds: u32) -> Result<(), CliError> {
    let client = open(cli)?;
    client.set_timer(alias, seconds)?;
    if seconds == 0 {
        eprintln!("messages to {alias} are kept");
    } else {
        eprintln!("messages to {alias} disappear after {seconds} s");
    }
    Ok(())
}

/// A contact on one line: alias, then state and counts.
pub(crate) fn contact_line(c: &tropa_client::ContactInfo) -> String {
    let mut flags = Vec::new();
    if c.broken {
        flags.push("UNREACHABLE: ask for a new invitation".to_owned());
    } else if !c.established {
        flags.push("invited".to_owned());
    } else if c.verified {
        flags.push("verified".to_owned());
    } else {
        flags.push("unverified".to_owned());
    }
    if c.unread > 0 {
        flags.push(format!("{} new", c.unread));
    }
    if c.pending > 0 {
        flags.push(format!("{} pending", c.pending));
    }
    if c.dropped > 0 {
        flags.push(format!("{} DROPPED", c.dropped));
    }
    format!("{} ({})", clean(&c.alias), flags.join(", "))
}

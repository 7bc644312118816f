//! `config`: the profile's settings: whether data is metered, and how
//! relays are reached (transport, SOCKS5 proxy, connection isolation).

use tropa_client::{Isolation, TransportChoice, isolation_name, parse_isolation};

use crate::input::open;
use crate::{Cli, CliError};

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// `tropa config`: every setting, one per line (`--json`: one object). The
/// proxy is shown without its credentials; flags of this run are not
/// settings and are left out.
pub(crate) fn show(cli: &Cli) -> Result<(), CliError> {
    let client = open(cli)?;
    let metered = client.metered()?;
    let net = client.saved_network()?;
    let transport = net.transport.to_string();
    let socks5 = net.socks5.as_ref().map(ToString::to_string);
    let isolation = isolation_name(net.isolation());
    if cli.json {
        println!(
            "{}",
            serde_json::json!({
                "metered": metered,
                "transport": transport,
                "socks5": socks5,
                "isolation": isolation,
            })
        );
    } else {
        println!("metered: {}", on_off(metered));
        println!("transport: {transport}");
        println!("socks5: {}", socks5.as_deref().unwrap_or("off"));
        let why = if net.isolation_setting.is_some() {
            ""
        } else {
            " (default)"
        };
        println!("isolation: {isolation}{why}");
    }
    Ok(())
}

/// Said after every change of a network setting. A duress unlock makes a
/// fresh profile with the network settings of the moment the duress
/// passphrase was set; whether one is set cannot be known (by design), so
/// this is always said.
fn duress_hint() {
    eprintln!("a duress passphrase keeps the settings");
    eprintln!("of when it was set: set it again to keep");
    eprintln!("these (`tropa passphrase --duress`)");
}

/// `tropa config metered on|off`.
pub(crate) fn set_metered(cli: &Cli, on: bool) -> Result<(), CliError> {
    let client = open(cli)?;
    client.set_metered(on)?;
    let hold = tropa_client::sync::MAX_RECEIPT_HOLD.as_secs() / 60;
    eprintln!("metered: {}", on_off(on));
    if on {
        eprintln!("receipts wait up to {hold} min for a");
        eprintln!("reply to carry them");
    } else {
        eprintln!("receipts go out at once");
    }
    Ok(())
}

/// `tropa config transport auto|quic|tcp`.
pub(crate) fn set_transport(cli: &Cli, transport: TransportChoice) -> Result<(), CliError> {
    let client = open(cli)?;
    if transport == TransportChoice::Quic && client.saved_network()?.socks5.is_some() {
        return Err(CliError::Usage(
            "QUIC cannot go through the SOCKS5 proxy; `tropa config socks5 off` first".into(),
        ));
    }
    client.set_transport(transport)?;
    eprintln!("transport: {transport}");
    duress_hint();
    Ok(())
}

/// `tropa config socks5 HOST:PORT|off`.
pub(crate) fn set_socks5(cli: &Cli, proxy: &str) -> Result<(), CliError> {
    let client = open(cli)?;
    if proxy.trim().eq_ignore_ascii_case("off") {
        client.set_socks5(None)?;
        eprintln!("socks5: off (connecting directly)");
        duress_hint();
        return Ok(());
    }
    let parsed = proxy
        .parse::<tropa_client::Socks5>()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    if client.saved_network()?.transport == TransportChoice::Quic {
        return Err(CliError::Usage(
            "QUIC cannot go through a SOCKS5 proxy; `tropa config transport tcp` first".into(),
        ));
    }
    client.set_socks5(Some(proxy))?;
    let net = client.saved_network()?;
    if let Some(s) = &net.socks5 {
        eprintln!("socks5: {s}");
    }
    eprintln!("every connection goes through it (TCP)");
    if net.isolation() == Isolation::Contact {
        eprintln!("each contact on its own connection");
        if parsed.credentials.is_some() {
            // Tor puts connections on separate circuits by their SOCKS
            // login; with one login for all, they share a circuit.
            eprintln!("but the proxy's password is the same on");
            eprintln!("all of them: Tor puts them on one");
            eprintln!("circuit (for Tor, leave it out)");
        }
    }
    duress_hint();
    Ok(())
}

/// `tropa config isolation contact|profile|default`.
pub(crate) fn set_isolation(cli: &Cli, mode: &str) -> Result<(), CliError> {
    let setting =
        match mode.trim() {
            "default" => None,
            other => Some(parse_isolation(other).ok_or_else(|| {
                CliError::Usage("isolation is contact, profile or default".into())
            })?),
        };
    let client = open(cli)?;
    client.set_isolation(setting)?;
    let now = client.saved_network()?.isolation();
    eprintln!("isolation: {}", isolation_name(now));
    duress_hint();
    Ok(())
}

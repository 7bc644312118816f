//! `init`, `passphrase`, `wipe`: the profile itself.

use std::io::Write as _;

use tropa_client::error::{ClientError, ProfileError};
use tropa_client::{Client, KdfParams, Network};

use tropa_proto::RelayAddress;

use crate::cmd::runtime;
use crate::input::{home_dir, new_passphrase, open, passphrase, scripted_passphrase};
use crate::{Cli, CliError};

/// Checks that the relay answers with the key its address names, before
/// anything is saved (through the proxy and transport given).
fn check_relay(relay: &RelayAddress, net: &Network) -> Result<(), CliError> {
    eprintln!("checking the relay...");
    runtime()?
        .block_on(Client::check_relay(relay, net))
        .map_err(CliError::BadRelay)
}

pub(crate) fn init(
    cli: &Cli,
    name: &str,
    relay: &str,
    (kdf_memory_mib, kdf_passes): (u32, u32),
    offline: bool,
) -> Result<(), CliError> {
    let home = home_dir(cli)?;
    let relay: RelayAddress = relay.parse().map_err(ClientError::BadRelay)?;
    let kdf = KdfParams {
        m_cost_kib: kdf_memory_mib.saturating_mul(1024),
        t_cost: kdf_passes,
        p_cost: 1,
    };
    kdf.validate()
        .map_err(|e| CliError::Usage(format!("passphrase hashing: {e}")))?;
    if Client::exists(&home) {
        return Err(ProfileError::Exists.into());
    }
    // Flags given at init are kept: a profile made through Tor goes on
    // through Tor.
    let net = Network {
        transport: cli.transport.unwrap_or_default(),
        socks5: cli.socks5()?,
        isolation_setting: None,
    };
    if !offline {
        check_relay(&relay, &net)?;
    }
    let pass = if scripted_passphrase(cli) {
        passphrase(cli, "")?
    } else {
        new_passphrase("New passphrase")?
    };
    let client = Client::init(&home, pass.as_bytes(), name, &relay, kdf)?;
    if let Some(t) = cli.transport {
        client.set_transport(t)?;
    }
    if let Some(s) = &cli.socks5 {
        client.set_socks5(Some(s))?;
        eprintln!(
            "proxy: {}",
            net.socks5
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        );
    }
    eprintln!("profile created in {}", home.display());
    eprintln!("next: `tropa invite` or `tropa accept --name ALIAS`");
    Ok(())
}

pub(crate) fn change_passphrase(cli: &Cli, duress: bool) -> Result<(), CliError> {
    let client = open(cli)?;
    if duress {
        let p = new_passphrase("Duress passphrase")?;
        client.set_duress(p.as_bytes())?;
        eprintln!("duress passphrase set");
    } else {
        let p = new_passphrase("New passphrase")?;
        client.change_passphrase(p.as_bytes(), None)?;
        eprintln!("passphrase changed");
    }
    Ok(())
}

pub(crate) fn wipe(cli: &Cli, yes: bool) -> Result<(), CliError> {
    let home = home_dir(cli)?;
    if !Client::exists(&home) {
        return Err(ProfileError::NoProfile.into());
    }
    if !yes {
        eprint!("Destroy the profile in {}? Type WIPE: ", home.display());
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        if line.trim() != "WIPE" {
            return Err(CliError::Usage("not wiped".into()));
        }
    }
    Client::wipe(&home).map_err(|e| CliError::Wipe(e.to_string()))?;
    eprintln!("wiped");
    Ok(())
}

pub(crate) fn show_relay(cli: &Cli) -> Result<(), CliError> {
    let client = open(cli)?;
    println!("{}", client.relay().without_password());
    Ok(())
}

pub(crate) fn set_relay(cli: &Cli, address: &str, offline: bool) -> Result<(), CliError> {
    let relay: RelayAddress = address.parse().map_err(ClientError::BadRelay)?;
    let mut client = open(cli)?;
    if !offline {
        check_relay(&relay, &client.network()?)?;
    }
    client.set_relay(&relay)?;
    eprintln!("new invitations and accepted links now use this relay");
    Ok(())
}

/// `tropa relays`: every relay new contacts may go on, the main one first.
pub(crate) fn list_relays(cli: &Cli) -> Result<(), CliError> {
    let client = open(cli)?;
    for (i, r) in client.relays()?.iter().enumerate() {
        let r = r.without_password().to_string();
        if cli.json {
            println!("{}", serde_json::json!({ "relay": r, "main": i == 0 }));
        } else {
            println!("{r}");
        }
    }
    Ok(())
}

/// `tropa relays add ADDRESS`: checked first (through the profile's
/// transport and proxy), like `relay set`.
pub(crate) fn add_relay(cli: &Cli, address: &str, offline: bool) -> Result<(), CliError> {
    let relay: RelayAddress = address.parse().map_err(ClientError::BadRelay)?;
    let client = open(cli)?;
    if !offline {
        check_relay(&relay, &client.network()?)?;
    }
    if client.add_relay(&relay)? {
        let n = client.relays()?.len();
        eprintln!("new contacts are now spread over {n} relays");
    } else {
        eprintln!("already one of your relays");
    }
    Ok(())
}

/// `tropa relays remove ADDRESS`.
pub(crate) fn remove_relay(cli: &Cli, address: &str) -> Result<(), CliError> {
    let relay: RelayAddress = address.parse().map_err(ClientError::BadRelay)?;
    let client = open(cli)?;
    if client
        .relays()?
        .first()
        .is_some_and(|m| m.without_password() == relay.without_password())
    {
        return Err(CliError::Usage(
            "that is your main relay: change it with `tropa relay set`".into(),
        ));
    }
    if client.remove_relay(&relay)? {
        eprintln!("no new contacts on it; those there stay");
        Ok(())
    } else {
        Err(CliError::Usage(
            "not one of your relays (see `tropa relays`)".into(),
        ))
    }
}

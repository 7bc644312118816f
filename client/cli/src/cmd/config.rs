//! `config`: the profile's settings (for now, whether data is metered).

use crate::input::open;
use crate::{Cli, CliError};

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// `tropa config`: every setting, one per line (`--json`: one object).
pub(crate) fn show(cli: &Cli) -> Result<(), CliError> {
    let client = open(cli)?;
    let metered = client.metered()?;
    if cli.json {
        println!("{}", serde_json::json!({ "metered": metered }));
    } else {
        println!("metered: {}", on_off(metered));
    }
    Ok(())
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

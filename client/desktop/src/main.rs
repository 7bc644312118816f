//! `tropa-desk`: the handlers' desktop app. See the crate docs of
//! `tropa_desk` and README.md.

// A binary turns errors into one line on stderr.
#![allow(clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tropa_client::KdfParams;
use tropa_desk::{App, DeskApp, Options, app::DEFAULT_LOCK_MINUTES};

/// Tropa desk: vet and help the people in your cases, end to end
/// encrypted. Your profile (contacts, cases, notes, messages) stays on this
/// computer, encrypted under your passphrase.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Profile directory (default: the system's data directory for
    /// tropa-desk). Use a separate one from the phone CLI's.
    #[arg(long, env = "TROPA_DESK_HOME")]
    home: Option<PathBuf>,
    /// Lock after this many minutes without input (0 = never).
    #[arg(long, default_value_t = DEFAULT_LOCK_MINUTES)]
    lock_minutes: u32,
}

fn default_home() -> Option<PathBuf> {
    directories::ProjectDirs::from("org", "tropa", "tropa-desk").map(|d| d.data_dir().to_owned())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(home) = cli.home.or_else(default_home) else {
        eprintln!("tropa-desk: no home directory found; pass --home DIR");
        return ExitCode::from(2);
    };
    let opts = Options {
        home,
        lock_after: (cli.lock_minutes > 0)
            .then(|| Duration::from_secs(u64::from(cli.lock_minutes) * 60)),
        kdf: KdfParams::default(),
    };
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Tropa desk")
            .with_inner_size([1200.0, 760.0]),
        ..Default::default()
    };
    let result = eframe::run_native(
        "tropa-desk",
        native,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let wake = Arc::new(move || ctx.request_repaint());
            Ok(Box::new(DeskApp(App::new(opts, wake))))
        }),
    );
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tropa-desk: cannot open a window: {e}");
            ExitCode::from(1)
        }
    }
}

//! `chat`: a live conversation on a running sync ([`SyncHandle`]). Lines
//! typed (or piped) are handed to the sync as they come; leaving stops the
//! sync only after every one of them is queued durably.

use std::io::BufRead as _;

use tropa_client::{Command, SyncHandle, SyncOptions};

use crate::cmd::runtime;
use crate::input::open;
use crate::output::{clean, print_event, print_message};
use crate::{Cli, CliError};

pub(crate) fn chat(cli: &Cli, alias: &str) -> Result<(), CliError> {
    let client = open(cli)?;
    // Fail early on an unknown alias.
    let history = client.messages(Some(alias))?;
    for m in history.iter().rev().take(10).rev() {
        print_message(m, false);
    }
    client.mark_read(Some(alias))?;
    eprintln!("-- chat with {alias}; Ctrl-D to leave --");
    let rt = runtime()?;
    rt.block_on(async {
        let (handle, mut events) = SyncHandle::start(&client, SyncOptions::default());
        let submit = handle.submitter();
        let (quit_tx, mut quit) = tokio::sync::oneshot::channel::<()>();
        let target = alias.to_owned();
        // stdin is blocking: read it on its own thread, handing each line
        // over as it comes.
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                let text = line.trim().to_owned();
                if text == "/quit" {
                    break;
                }
                if text.is_empty() {
                    continue;
                }
                let result = submit.submit(Command::Send {
                    alias: target.clone(),
                    text,
                });
                if let Ok(Err(e)) = result.blocking_recv() {
                    eprintln!("not sent: {}", clean(&e.to_string()));
                }
            }
            let _ = quit_tx.send(());
        });
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(ev) => print_event(&ev, true),
                    None => break,
                },
                _ = &mut quit => break,
            }
        }
        handle.stop().await
    })?;
    // What arrived during the chat was shown live.
    client.mark_read(Some(alias))?;
    Ok(())
}

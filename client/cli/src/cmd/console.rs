//! The interactive terminal of `chat` and `shell`: a line editor
//! (rustyline) that prints what arrives *above* the line being typed and
//! redraws it, so an incoming message never splices into a half-typed one.
//! History lives in memory only (message text must not land in a file).
//! Without a terminal (lines piped in) it reads plain lines and prints
//! plainly.
//!
//! Lines are read on their own thread. After each line the reader waits
//! until the caller has dealt with it and says whether to read on, so the
//! answer to a command comes before the next prompt and the terminal is
//! never left in raw mode by a reader still waiting when we exit.

use std::io::{BufRead as _, IsTerminal as _};
use std::sync::{Arc, Mutex};

use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};
use tokio::sync::mpsc;

/// What the user did.
pub(crate) enum Line {
    /// Typed (or piped) a line.
    Text(String),
    /// Ctrl-D, Ctrl-C, or the end of piped input: leave.
    End,
}

/// What the reader does next.
enum Next {
    Read(String),
    Stop,
}

/// Words Tab completes: commands at the start of a line, and contact
/// aliases after a command that takes one.
#[derive(Clone, Default)]
pub(crate) struct Words {
    /// Commands such as `/send`.
    pub(crate) commands: Vec<&'static str>,
    /// Commands whose first argument is an alias.
    pub(crate) take_alias: Vec<&'static str>,
    /// Current aliases (updated as contacts change).
    pub(crate) aliases: Arc<Mutex<Vec<String>>>,
}

impl Completer for Words {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let before = line.get(..pos).unwrap_or(line);
        let start = before.rfind(' ').map_or(0, |i| i + 1);
        let word = &before[start..];
        let words: Vec<&str> = before.split_whitespace().collect();
        let candidates = if start == 0 {
            self.commands
                .iter()
                .filter(|c| c.starts_with(word))
                .map(|c| format!("{c} "))
                .collect()
        } else if words.len() <= 2 && words.first().is_some_and(|c| self.take_alias.contains(c)) {
            let lower = word.to_lowercase();
            self.aliases
                .lock()
                .map(|a| {
                    a.iter()
                        .filter(|a| a.to_lowercase().starts_with(&lower))
                        .map(|a| format!("{a} "))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok((start, candidates))
    }
}

impl Hinter for Words {
    type Hint = String;
}
impl Highlighter for Words {}
impl Validator for Words {}
impl Helper for Words {}

/// The running console.
pub(crate) struct Console {
    lines: mpsc::UnboundedReceiver<Line>,
    next: std::sync::mpsc::Sender<Next>,
    printer: Option<Mutex<Box<dyn rustyline::ExternalPrinter + Send>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Console {
    /// Gets ready to read lines (the first [`resume`](Self::resume) shows
    /// the prompt); Tab completes `words`.
    pub(crate) fn start(words: Words) -> Console {
        let (tx, lines) = mpsc::unbounded_channel();
        let (next, go) = std::sync::mpsc::channel();
        let editor = if std::io::stdin().is_terminal() {
            Editor::<Words, DefaultHistory>::new().ok()
        } else {
            None
        };
        let (printer, reader) = match editor {
            Some(mut rl) => {
                rl.set_helper(Some(words));
                let printer = rl
                    .create_external_printer()
                    .ok()
                    .map(|p| Mutex::new(Box::new(p) as Box<dyn rustyline::ExternalPrinter + Send>));
                let reader = std::thread::spawn(move || read_edited(rl, &tx, &go));
                (printer, reader)
            }
            None => (None, std::thread::spawn(move || read_plain(&tx, &go))),
        };
        Console {
            lines,
            next,
            printer,
            reader: Some(reader),
        }
    }

    /// The next line (`End` once the reader is gone).
    pub(crate) async fn next(&mut self) -> Line {
        self.lines.recv().await.unwrap_or(Line::End)
    }

    /// Reads the next line, with this prompt.
    pub(crate) fn resume(&self, prompt: &str) {
        let _ = self.next.send(Next::Read(prompt.to_owned()));
    }

    /// Prints a status line above the line being typed (or plainly, on
    /// stderr).
    pub(crate) fn say(&self, text: &str) {
        if !self.above(text) {
            eprintln!("{text}");
        }
    }

    /// Prints content (messages, lists) above the line being typed (or
    /// plainly, on stdout, where scripts read it).
    pub(crate) fn show(&self, text: &str) {
        if !self.above(text) {
            println!("{text}");
        }
    }

    fn above(&self, text: &str) -> bool {
        let Some(p) = &self.printer else {
            return false;
        };
        if let Ok(mut p) = p.lock() {
            let _ = p.print(format!("{text}\n"));
        }
        true
    }

    /// Stops the reader (it waits for [`resume`](Self::resume) before each
    /// line, so it is not in the middle of one) and restores the terminal.
    pub(crate) fn finish(mut self) {
        let _ = self.next.send(Next::Stop);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

fn read_edited(
    mut rl: Editor<Words, DefaultHistory>,
    tx: &mpsc::UnboundedSender<Line>,
    go: &std::sync::mpsc::Receiver<Next>,
) {
    while let Ok(Next::Read(prompt)) = go.recv() {
        let line = match rl.readline(&prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = rl.add_history_entry(line.as_str());
                }
                Line::Text(line)
            }
            Err(ReadlineError::Interrupted | ReadlineError::Eof) | Err(_) => Line::End,
        };
        if tx.send(line).is_err() {
            return;
        }
    }
}

fn read_plain(tx: &mpsc::UnboundedSender<Line>, go: &std::sync::mpsc::Receiver<Next>) {
    let stdin = std::io::stdin();
    while let Ok(Next::Read(_)) = go.recv() {
        let mut line = String::new();
        let read = match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => Line::End,
            Ok(_) => Line::Text(line.trim_end_matches(['\r', '\n']).to_owned()),
        };
        if tx.send(read).is_err() {
            return;
        }
    }
}

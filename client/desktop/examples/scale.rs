//! Profiling example for issue 10's scale targets, and the maker of the
//! demo profile the screenshots use.
//!
//! ```text
//! cargo run --release -p tropa-desk --example scale -- [CASES] [MESSAGES]
//! cargo run --release -p tropa-desk --example scale -- --demo DIR
//! ```
//!
//! The first form fills a real encrypted profile in a temporary directory
//! with CASES contacts (default 500) of MESSAGES messages each (default
//! 200), then measures, side by side in one run:
//! * Argon2 alone (a refused unlock with the profile's parameters);
//! * first frame after unlock, Argon2 excluded: opening the store,
//!   loading the desk (every case and message decrypted, in one pass) and
//!   its first egui pass;
//! * a frame of the case list: mean, median, p99 and max of 300 frames,
//!   each an egui pass and the tessellation of its shapes (what eframe
//!   does on the UI thread; the GPU upload and draw are left out);
//! * opening a case with unread messages (marking them read, a frame).
//!
//! The second form writes a small demo profile (a dozen cases with notes,
//! evaluations and conversations, passphrase `demo lantern quarry velvet`)
//! into DIR for screenshots. Neither touches the network.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use tropa_client::records::{
    CaseRecord, CaseStatusRecord, ContactRecord, ContactState, Direction, EvaluationRecord,
    MessageRecord, NoteRecord, Status, VerdictRecord,
};
use tropa_client::repo::{Changes, Repo};
use tropa_client::store::{Opened, Vault};
use tropa_client::{Client, KdfParams};
use tropa_desk::app::{App, Options};

const PASS: &str = "demo lantern quarry velvet";
const NOW: u64 = 1_795_000_000;

fn relay() -> tropa_proto::RelayAddress {
    format!("tropa://{}@127.0.0.1:4433", "A".repeat(43))
        .parse()
        .unwrap()
}

struct Demo {
    alias: String,
    status: CaseStatusRecord,
    starred: bool,
    notes: Vec<&'static str>,
    evaluations: Vec<(&'static str, VerdictRecord, &'static str)>,
    messages: Vec<(bool, String)>,
    unread: usize,
}

fn fill(home: &Path, cases: &[Demo]) {
    let vault = match Vault::open(home, PASS.as_bytes()).unwrap() {
        Opened::Unlocked(v) => v,
        Opened::Duress { .. } => unreachable!(),
    };
    let repo = Repo::new(Arc::new(vault));
    let mut seq = 0u64;
    for (n, c) in cases.iter().enumerate() {
        let id = (n as u128).to_be_bytes().to_vec();
        let mut changes = Changes::new();
        let mut contact = ContactRecord::default();
        contact.id = id.clone();
        contact.alias = c.alias.clone();
        contact.state = ContactState::Established as i32;
        contact.identity = vec![0; 64];
        contact.created_at = NOW - 90 * 86_400;
        changes.put_contact(&contact);
        let mut case = CaseRecord {
            status: c.status as i32,
            starred: c.starred,
            updated_at: NOW - 86_400 * (n as u64 % 30),
            ..CaseRecord::default()
        };
        for (i, t) in c.notes.iter().enumerate() {
            case.notes.push(NoteRecord {
                at: NOW - 86_400 * (20 - i as u64),
                text: (*t).to_owned(),
            });
        }
        for (i, (who, v, why)) in c.evaluations.iter().enumerate() {
            case.evaluations.push(EvaluationRecord {
                evaluator: (*who).to_owned(),
                at: NOW - 86_400 * (10 - i as u64),
                verdict: *v as i32,
                comment: (*why).to_owned(),
            });
        }
        changes.put_case(&id, &case);
        let total = c.messages.len();
        for (i, (incoming, text)) in c.messages.iter().enumerate() {
            seq += 1;
            let at = NOW - 600 * (total - i) as u64 - 3_600 * n as u64;
            let status = if *incoming {
                if i + c.unread >= total {
                    Status::Unread
                } else {
                    Status::Read
                }
            } else if i + 1 == total {
                Status::Sent
            } else {
                Status::Delivered
            };
            changes.put_message(&MessageRecord {
                id: seq.to_be_bytes().repeat(2),
                contact_id: id.clone(),
                direction: if *incoming {
                    Direction::In
                } else {
                    Direction::Out
                } as i32,
                text: text.clone(),
                status: status as i32,
                at,
                expires_at: 0,
                seq,
                sent_at: at,
            });
            if i % 100 == 99 {
                repo.apply(std::mem::take(&mut changes)).unwrap();
            }
        }
        repo.apply(changes).unwrap();
    }
}

fn new_profile(home: &Path, kdf: KdfParams) {
    drop(Client::init(home, PASS.as_bytes(), "Refuge desk", &relay(), kdf).unwrap());
}

fn scale(cases: usize, messages: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("desk");
    let kdf = KdfParams::default();
    new_profile(&home, kdf);
    let statuses = [
        CaseStatusRecord::New,
        CaseStatusRecord::Vetting,
        CaseStatusRecord::Cleared,
        CaseStatusRecord::Relocating,
        CaseStatusRecord::Closed,
    ];
    let demo: Vec<Demo> = (0..cases)
        .map(|n| Demo {
            alias: format!("case-{n:03}"),
            status: statuses[n % 5],
            starred: n % 7 == 0,
            notes: vec!["met through the Istanbul office", "brother in Izmir"],
            evaluations: vec![("Amira", VerdictRecord::Pass, "documents match")],
            messages: (0..messages)
                .map(|i| {
                    (
                        i % 2 == 0,
                        format!(
                            "message {i} of case {n}: where are you staying tonight, is it safe?"
                        ),
                    )
                })
                .collect(),
            unread: n % 3,
        })
        .collect();
    let t = Instant::now();
    fill(&home, &demo);
    println!(
        "filled {cases} cases x {messages} messages in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Argon2 alone, with the profile's parameters (a refused unlock costs
    // exactly the derivation).
    let t = Instant::now();
    let _ = Vault::open(&home, b"not the passphrase");
    let argon2 = t.elapsed();
    println!(
        "Argon2 alone: {:.0} ms (m={} KiB, t={})",
        ms(argon2),
        kdf.m_cost_kib,
        kdf.t_cost
    );

    // Baseline, side by side: the raw pass over the store that any reader
    // of these messages pays (open, authenticate and decrypt every message
    // record; no decoding), on a store just opened.
    let raw = {
        let v = match Vault::open(&home, PASS.as_bytes()).unwrap() {
            Opened::Unlocked(v) => v,
            Opened::Duress { .. } => unreachable!(),
        };
        let t = Instant::now();
        let n = tropa_client::store::Kv::iter(&v, "messages").unwrap().len();
        assert_eq!(n, cases * messages);
        t.elapsed()
    };

    // The desk's unlock, cold (the store just opened, as after a real
    // unlock): open, start the sync, load every case and message, first
    // egui pass.
    let t = Instant::now();
    let client = Client::open_unpurged(&home, PASS.as_bytes()).unwrap();
    let unlock = t.elapsed();
    let opts = Options {
        home: home.clone(),
        lock_after: None,
        kdf,
    };
    let mut app = App::new(opts, Arc::new(|| {}));
    let t = Instant::now();
    app.adopt(client).unwrap();
    let load = t.elapsed();
    let mut h = Harness::builder()
        .with_size([1280.0, 900.0])
        .with_max_steps(4)
        .build_ui_state(|ui, app: &mut App| tropa_desk::ui::draw(app, ui), app);
    let first = t.elapsed();
    let beyond_argon2 = unlock.saturating_sub(argon2) + first;
    println!(
        "first frame after unlock, Argon2 excluded: {:.0} ms (opening the store {:.0} ms, \
         loading the desk {:.0} ms, first egui pass {:.0} ms)",
        ms(beyond_argon2),
        ms(unlock.saturating_sub(argon2)),
        ms(load),
        ms(first - load)
    );
    println!(
        "  baseline: raw decrypting pass over the messages {:.0} ms; the desk's load is {:.2}x it",
        ms(raw),
        load.as_secs_f64() / raw.as_secs_f64()
    );

    // Where the load goes, warm: one pass over the store, then the desk's
    // in-memory conversations and search text.
    let client = h.state_mut().desk().unwrap().session.client();
    let t = Instant::now();
    let (c, m) = client.snapshot().unwrap();
    let snap = t.elapsed();
    let t = Instant::now();
    let ws = tropa_desk::model::Workspace::new(c, m);
    println!(
        "  warm: snapshot {:.0} ms, in-memory desk {:.0} ms",
        ms(snap),
        ms(t.elapsed())
    );
    drop(ws);

    // Frames of the case list (and proof that it shows rows).
    let rows = {
        use egui_kittest::kittest::Queryable as _;
        h.query_all_by(|n| n.label().is_some_and(|l| l.starts_with("case-")))
            .count()
    };
    println!("case list rows on screen: {rows}");
    let n = 300;
    let mut frames = Vec::with_capacity(n);
    let mut meshes = 0;
    for _ in 0..n {
        let f = Instant::now();
        h.step();
        // What a renderer gets: the pass's shapes tessellated into meshes
        // (eframe does this on the UI thread too; only the GPU upload and
        // draw are left out).
        let shapes = h.output().shapes.clone();
        let ppp = h.output().pixels_per_point;
        meshes = h.ctx.tessellate(shapes, ppp).len();
        frames.push(f.elapsed());
    }
    report("case list frame (egui pass + tessellation)", &mut frames);
    println!("  ({meshes} meshes per frame)");

    // Opening a case: selecting it marks its unread messages read in the
    // profile (by id, not by reading every message).
    let aliases: Vec<String> = h
        .state_mut()
        .desk()
        .unwrap()
        .ws
        .cases()
        .iter()
        .filter(|c| c.summary.unread > 0)
        .take(20)
        .map(|c| c.summary.alias.clone())
        .collect();
    let mut opens = Vec::new();
    for a in &aliases {
        let t = Instant::now();
        h.state_mut().desk().unwrap().select(a);
        h.step();
        opens.push(t.elapsed());
    }
    report(
        "opening a case with unread messages (select + frame)",
        &mut opens,
    );
    h.state_mut().finish();
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{what}: mean {:.2} ms, median {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
        ms(mean),
        ms(at(0.5)),
        ms(at(0.99)),
        ms(at(1.0)),
        samples.len()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn demo(dir: &Path) {
    use CaseStatusRecord::*;
    use VerdictRecord::*;
    new_profile(dir, KdfParams::default());
    let talk = |lines: &[&str]| -> Vec<(bool, String)> {
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| (i % 2 == 0, (*l).to_owned()))
            .collect()
    };
    let mk = |alias: &str, status, starred, unread, notes, evaluations, lines: &[&str]| Demo {
        alias: alias.to_owned(),
        status,
        starred,
        notes,
        evaluations,
        messages: talk(lines),
        unread,
    };
    let cases = vec![
        mk(
            "Karim",
            Vetting,
            true,
            1,
            vec![
                "First contact through the Istanbul office. Left his unit in March.",
                "Brother in Izmir; call on Tuesdays only.",
            ],
            vec![
                ("Amira", Pass, "Documents match his account of the unit."),
                (
                    "Jonas",
                    Inconclusive,
                    "Second interview needed: dates unclear.",
                ),
            ],
            &[
                "Hello, this is Karim. The office gave me this link.",
                "Welcome Karim. You are safe to write here. Where are you now?",
                "In Tbilisi, near the central station. I have no passport.",
                "Understood. Do not show your military card to anyone.",
                "Can we talk on Thursday? My phone has little data.",
            ],
        ),
        mk(
            "Bashir",
            New,
            false,
            2,
            vec![],
            vec![],
            &[
                "Hello? Someone said you help people like me.",
                "Yes. Tell us only what you are comfortable with.",
                "I left three weeks ago.",
            ],
        ),
        mk(
            "Sami",
            Cleared,
            true,
            0,
            vec!["Cleared after two interviews."],
            vec![
                ("Amira", Pass, "Consistent."),
                ("Lea", Pass, "Verified through family."),
            ],
            &[
                "Thank you for everything.",
                "The next step is the visa appointment.",
            ],
        ),
        mk(
            "Oleh",
            Relocating,
            false,
            0,
            vec!["Flight booked for the 14th."],
            vec![("Jonas", Pass, "Ok."), ("Lea", Pass, "Ok.")],
            &["I have the ticket.", "Good. Keep it offline."],
        ),
        mk(
            "Yusuf",
            Vetting,
            false,
            3,
            vec!["Story changes between calls."],
            vec![("Amira", Fail, "Unit name does not exist.")],
            &[
                "Please answer soon.",
                "We will, give us a few days.",
                "I am waiting.",
                "Hello?",
            ],
        ),
        mk(
            "Dmytro",
            New,
            false,
            1,
            vec![],
            vec![],
            &["Is this the right place?"],
        ),
        mk(
            "Ali",
            Vetting,
            false,
            0,
            vec![],
            vec![("Lea", Pass, "Good first interview.")],
            &[
                "Here are the dates you asked for.",
                "Thank you, we are checking.",
            ],
        ),
        mk(
            "Hamid",
            Closed,
            false,
            0,
            vec!["Moved on his own; case closed."],
            vec![],
            &["I found another way. Thank you.", "Take care, Hamid."],
        ),
        mk("Rustam", New, false, 0, vec![], vec![], &["Hello"]),
        mk(
            "Tariq",
            Vetting,
            true,
            2,
            vec!["Needs medical help first."],
            vec![],
            &[
                "My leg is worse.",
                "We are finding a doctor near you.",
                "Thank you",
                "When?",
            ],
        ),
        mk(
            "Artem",
            Cleared,
            false,
            0,
            vec![],
            vec![("Jonas", Pass, "-"), ("Amira", Pass, "-")],
            &["Waiting for news."],
        ),
        mk(
            "Nizar",
            New,
            false,
            1,
            vec![],
            vec![],
            &["Can you help my cousin too?"],
        ),
    ];
    fill(dir, &cases);
    println!("demo profile in {} (passphrase: {PASS})", dir.display());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--demo") {
        let dir = args.get(1).expect("--demo DIR");
        demo(Path::new(dir));
        return;
    }
    let cases = args.first().map_or(500, |a| a.parse().expect("CASES"));
    let messages = args.get(1).map_or(200, |a| a.parse().expect("MESSAGES"));
    scale(cases, messages);
}

//! The real desk app driven by its labels (egui_kittest, no GPU, no
//! display) against a real `tropa-relay` process, with a real `tropa` CLI
//! profile on the other end: what a handler does on their first day.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use tropa_client::{CaseStatus, KdfParams};
use tropa_desk::app::{App, Options, Screen};
use tropa_tests::{Profile, RelayProcess, relay_on_fixed_port};

const PASS: &str = "heron lantern quarry velvet";

fn app(home: &Path, lock_after: Option<Duration>) -> App {
    App::new(
        Options {
            home: home.to_owned(),
            lock_after,
            kdf: KdfParams::insecure_for_tests(),
        },
        Arc::new(|| {}),
    )
}

fn harness(app: App) -> Harness<'static, App> {
    Harness::builder()
        .with_size([1280.0, 900.0])
        .with_max_steps(20)
        .build_ui_state(|ui, app: &mut App| tropa_desk::ui::draw(app, ui), app)
}

/// Steps frames until `done` holds (bounded: 30 s).
#[track_caller]
fn until(
    h: &mut Harness<'static, App>,
    what: &str,
    done: impl Fn(&mut Harness<'static, App>) -> bool,
) {
    until_within(h, what, Duration::from_secs(30), done);
}

#[track_caller]
fn until_within(
    h: &mut Harness<'static, App>,
    what: &str,
    limit: Duration,
    done: impl Fn(&mut Harness<'static, App>) -> bool,
) {
    let start = Instant::now();
    loop {
        h.step();
        if done(h) {
            return;
        }
        assert!(start.elapsed() < limit, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn type_into(h: &mut Harness<'static, App>, label: &str, text: &str) {
    // Windows and panels settle their layout over a few frames: act on
    // where things are, not where they were.
    h.run_steps(3);
    h.get_by_label(label).focus();
    h.step();
    h.get_by_label(label).type_text(text);
    h.step();
}

fn click(h: &mut Harness<'static, App>, label: &str) {
    h.run_steps(3);
    h.get_by_label(label).click_accesskit();
    h.step();
    h.step();
}

/// Clicks the row of case `alias` in the case list (a button whose label
/// starts with the alias, after an optional star).
fn click_case(h: &mut Harness<'static, App>, alias: &str) {
    h.run_steps(3);
    h.get_by(|n| {
        n.role() == egui::accesskit::Role::Button
            && n.label()
                .is_some_and(|l| l.trim_start_matches("* ").starts_with(alias))
    })
    .click_accesskit();
    h.step();
    h.step();
}

fn shows(h: &Harness<'static, App>, text: &str) -> bool {
    h.query_all_by_label_contains(text).next().is_some()
}

fn unlock(h: &mut Harness<'static, App>, pass: &str) {
    type_into(h, "Passphrase", pass);
    click(h, "Unlock");
}

fn unlocked(h: &mut Harness<'static, App>) -> bool {
    matches!(h.state().screen, Screen::Desk(_))
}

/// First run, invite a CLI contact, messages both ways (the incoming one
/// live), the two-evaluation rule, notes across a restart, and locking.
#[test]
fn a_handler_creates_a_profile_invites_chats_and_works_a_case() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let home = dir.path().join("desk");
    let mut h = harness(app(&home, None));

    // First run: a profile with the relay's address.
    assert!(shows(&h, "Create your Tropa profile"));
    type_into(&mut h, "Your name (shown to nobody)", "Refuge desk");
    type_into(
        &mut h,
        "Relay address (tropa://…)",
        &relay.address.to_string(),
    );
    type_into(&mut h, "New passphrase", PASS);
    type_into(&mut h, "Passphrase again", PASS);
    click(&mut h, "Create profile");
    until(&mut h, "the desk after creating", unlocked);

    // Invite: the link is shown (text and QR), the CLI accepts it.
    click(&mut h, "Invite");
    type_into(&mut h, "Name for this contact", "Karim");
    click(&mut h, "Create invitation");
    until(&mut h, "the invitation link", |h| {
        matches!(
            &h.state_mut().desk().unwrap().dialog,
            tropa_desk::app::Dialog::Invite { link: Some(_), .. }
        )
    });
    let link = match &h.state_mut().desk().unwrap().dialog {
        tropa_desk::app::Dialog::Invite { link: Some(l), .. } => l.to_string(),
        _ => unreachable!(),
    };
    // The short link (the test relay stores link data).
    assert!(link.starts_with("TROPA:I/"), "{link}");
    assert!(shows(&h, "Copy link"));
    h.run_steps(3);
    eprintln!("close rect {:?}", h.get_by_label("Close").rect());
    click(&mut h, "Close");
    eprintln!(
        "dialog none: {}",
        matches!(
            h.state_mut().desk().unwrap().dialog,
            tropa_desk::app::Dialog::None
        )
    );
    let karim = Profile::init(dir.path(), "karim", &relay.address);
    karim.tropa(&["accept", &link, "--name", "desk"]).ok();
    // The desk's running sync sees him join, live.
    until(&mut h, "Karim to join", |h| {
        h.state_mut()
            .desk()
            .and_then(|d| d.ws.case("Karim").map(|c| c.summary.established))
            .unwrap_or(false)
    });

    // Desk → CLI.
    click_case(&mut h, "Karim");
    assert_eq!(h.state_mut().desk().unwrap().ws.selected(), Some("Karim"));
    type_into(&mut h, "Message", "Hello Karim, where are you now?");
    click(&mut h, "Send");
    until(&mut h, "the text to be accepted by the relay", |h| {
        shows(h, "Hello Karim, where are you now?")
            && (h.query_by_label("sent").is_some() || h.query_by_label("delivered").is_some())
    });
    karim.tropa(&["sync"]).ok();
    let got = karim.read_json(Some("desk"));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["text"], "Hello Karim, where are you now?");
    until(&mut h, "the receipt", |h| {
        h.query_by_label("delivered").is_some()
    });

    // CLI → desk: appears while the app runs.
    // With a right-to-left override in it: shown as an escape, so it
    // cannot reorder what the handler reads.
    karim
        .tropa_input(
            &["send", "desk"],
            "In Tbilisi, near the station \u{202e}evil",
        )
        .ok();
    until(&mut h, "the incoming message, live", |h| {
        shows(h, "In Tbilisi, near the station \\u{202e}evil")
    });

    // Case work: cleared is refused until two evaluators passed.
    click(&mut h, "vetting");
    type_into(&mut h, "Evaluator", "Amira");
    click(&mut h, "pass");
    click(&mut h, "Record evaluation");
    click(&mut h, "cleared");
    assert!(shows(&h, "this one has 1"), "the refusal is shown");
    let status = |h: &mut Harness<'static, App>| {
        h.state_mut()
            .desk()
            .unwrap()
            .ws
            .case("Karim")
            .unwrap()
            .summary
            .status
    };
    assert_eq!(status(&mut h), CaseStatus::Vetting);
    type_into(&mut h, "Evaluator", "Jonas");
    click(&mut h, "pass");
    type_into(&mut h, "Comment", "interview consistent");
    click(&mut h, "Record evaluation");
    click(&mut h, "cleared");
    assert_eq!(status(&mut h), CaseStatus::Cleared);
    type_into(&mut h, "New note", "Brother in Izmir, call Tuesdays");
    click(&mut h, "Add note");
    assert!(shows(&h, "Brother in Izmir"));

    // Lock: the view and every decrypted string go.
    click(&mut h, "Lock");
    assert!(h.state().is_locked());
    assert!(!shows(&h, "Karim"));
    assert!(!shows(&h, "Brother in Izmir"));
    assert!(shows(&h, "Passphrase"));

    // Restart: the notes, evaluations and status are still there.
    h.state_mut().finish();
    drop(h);
    let mut h = harness(app(&home, None));
    unlock(&mut h, PASS);
    until(&mut h, "the desk after unlocking", unlocked);
    click_case(&mut h, "Karim");
    type_into(&mut h, "Message", "a draft about Izmir");
    // Keyboard: Ctrl+F searches notes too; the arrows select.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::F);
    h.step();
    h.get_by_label("Search (Ctrl+F)").type_text("izmir");
    h.run_steps(2);
    assert!(shows(&h, "1 of 1 cases"));
    h.get_by_label("Search (Ctrl+F)").type_text(" nowhere");
    h.run_steps(2);
    assert!(shows(&h, "0 of 1 cases"));
    click(&mut h, "Lock");
    // egui keeps text fields' contents and undo history in its memory: a
    // lock must not leave them for whoever unlocks next (Ctrl+Z).
    for field in ["case-search", "compose"] {
        assert!(
            egui::text_edit::TextEditState::load(&h.ctx, egui::Id::unique(field)).is_none(),
            "{field} survived the lock"
        );
    }
    unlock(&mut h, PASS);
    until(&mut h, "the desk after unlocking", unlocked);
    h.key_press(egui::Key::ArrowDown);
    h.run_steps(2);
    assert_eq!(h.state_mut().desk().unwrap().ws.selected(), Some("Karim"));
    assert!(shows(&h, "Brother in Izmir, call Tuesdays"));
    assert!(shows(&h, "Jonas"));
    assert_eq!(status(&mut h), CaseStatus::Cleared);

    // Wipe, with the typed confirmation.
    click(&mut h, "Settings");
    click(&mut h, "Wipe profile…");
    type_into(&mut h, "Type WIPE to confirm", "WIPE");
    click(&mut h, "Wipe now");
    assert!(shows(&h, "The profile was wiped"));
    assert!(shows(&h, "Create your Tropa profile"));
    assert!(!tropa_client::Client::exists(&home));
    h.state_mut().finish();
}

/// A wrong passphrase gets a clear message and changes nothing; idle
/// minutes lock the desk.
#[test]
fn a_wrong_passphrase_is_refused_and_idle_locks() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let p = Profile::init(dir.path(), "desk", &relay.address);

    let mut h = harness(app(&p.home, None));
    unlock(&mut h, "not the passphrase");
    until(&mut h, "the refusal", |h| shows(h, "Wrong passphrase"));
    assert!(h.state().is_locked());
    // Enter in the passphrase field unlocks, as people expect (it did
    // nothing under X11 once).
    type_into(&mut h, "Passphrase", &p.passphrase);
    h.key_press(egui::Key::Enter);
    h.run_steps(2);
    until(&mut h, "the desk after Enter", unlocked);
    h.state_mut().finish();
    drop(h);

    let mut h = harness(app(&p.home, Some(Duration::from_millis(300))));
    unlock(&mut h, &p.passphrase);
    until(&mut h, "the desk", unlocked);
    std::thread::sleep(Duration::from_millis(400));
    // The first input after the idle time must not count as activity that
    // keeps the desk open.
    h.key_press(egui::Key::A);
    h.step();
    assert!(
        h.state().is_locked(),
        "input after the idle time unlocked nothing"
    );
    assert!(shows(&h, "Locked after inactivity"));
    h.state_mut().finish();
}

/// A link made with the CLI, pasted into Accept link; then the relay goes
/// away (an operator restarts it): the banner says so, and goes when the
/// relay answers again.
#[test]
fn a_pasted_link_is_accepted_and_the_banner_follows_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    let relay = relay_on_fixed_port(&data);
    let desk = Profile::init(dir.path(), "desk", &relay.address);
    let sami = Profile::init(dir.path(), "sami", &relay.address);
    let link = sami
        .tropa(&["invite", "--name", "desk"])
        .ok()
        .stdout
        .trim()
        .to_owned();

    let mut h = harness(app(&desk.home, None));
    unlock(&mut h, &desk.passphrase);
    until(&mut h, "the desk", unlocked);
    click(&mut h, "Accept link");
    type_into(&mut h, "Invitation link", &link);
    type_into(&mut h, "Name for this contact", "Sami");
    click(&mut h, "Accept");
    until(&mut h, "Sami's case", |h| {
        h.state_mut().desk().unwrap().ws.case("Sami").is_some()
            && h.query_by_label("Invitation link").is_none()
    });
    assert!(sami.tropa(&["sync"]).ok().stdout.contains("1 joined"));

    assert!(!shows(&h, "Relay unreachable"));
    let (status, _) = relay.terminate(Duration::from_secs(10));
    assert!(status.is_some(), "the relay stops on SIGTERM");
    until(&mut h, "the unreachable banner", |h| {
        shows(h, "Relay unreachable")
    });
    let _relay = RelayProcess::start(&data);
    until_within(
        &mut h,
        "the banner to go once the relay answers",
        Duration::from_secs(90),
        |h| !shows(h, "Relay unreachable"),
    );
    h.state_mut().finish();
}

/// The intake list: requests to the desk's public address arrive while it
/// runs; one is accepted under the name the handler types (a case
/// appears, the requester joins, messages flow), the other rejected (gone,
/// nobody added on either side). And the other way: an organisation's
/// address pasted into Accept link asks for a first message and sends a
/// request.
#[test]
fn requests_to_the_public_address_are_accepted_or_rejected_in_the_intake_list() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"));
    let desk = Profile::init(dir.path(), "desk", &relay.address);
    let created = desk.tropa(&["address", "create"]).ok();
    let link = created.stdout.lines().next().unwrap().to_owned();
    let karim = Profile::init(dir.path(), "karim", &relay.address);
    let lena = Profile::init(dir.path(), "lena", &relay.address);

    let mut h = harness(app(&desk.home, None));
    unlock(&mut h, &desk.passphrase);
    until(&mut h, "the desk", unlocked);
    karim
        .tropa_input(
            &["accept", "--name", "refuge"],
            &format!("{link}\nKarim here, a conscript in Rostov"),
        )
        .ok();
    lena.tropa_input(
        &["accept", "--name", "refuge"],
        &format!("{link}\nLena, a medic in Belgorod"),
    )
    .ok();
    until(&mut h, "both requests, live", |h| {
        h.state_mut().desk().unwrap().requests.len() == 2
    });
    assert!(shows(&h, "2 waiting"));
    let short = |h: &mut Harness<'static, App>, text: &str| {
        h.state_mut()
            .desk()
            .unwrap()
            .requests
            .iter()
            .find(|r| r.text.starts_with(text))
            .map(|r| r.short_id.clone())
            .unwrap()
    };
    let (k, l) = (short(&mut h, "Karim"), short(&mut h, "Lena"));

    click(&mut h, "Requests");
    assert!(shows(&h, "Karim here, a conscript in Rostov"));
    assert!(shows(&h, "Lena, a medic in Belgorod"));
    // Accept asks for a name first.
    click(&mut h, &format!("Accept request {k}"));
    assert!(shows(&h, "Give the requester a name first."));
    type_into(&mut h, &format!("Name for request {k}"), "Karim");
    click(&mut h, &format!("Accept request {k}"));
    until(&mut h, "Karim's case, and his request gone", |h| {
        let d = h.state_mut().desk().unwrap();
        d.ws.case("Karim").is_some() && d.requests.len() == 1
    });
    click(&mut h, &format!("Reject request {l}"));
    assert!(h.state_mut().desk().unwrap().requests.is_empty());
    assert!(!shows(&h, "Lena, a medic in Belgorod"));
    click(&mut h, "Close");

    let joined = karim.tropa(&["sync"]).ok();
    assert!(joined.stdout.contains("1 joined"), "{joined:?}");
    let not = lena.tropa(&["sync"]).ok();
    assert!(not.stdout.contains("0 joined"), "{not:?}");
    karim
        .tropa_input(&["send", "refuge"], "I am at the station now")
        .ok();
    until(&mut h, "Karim's message, live", |h| {
        h.state_mut()
            .desk()
            .unwrap()
            .ws
            .conversation("Karim")
            .iter()
            .any(|m| m.text == "I am at the station now")
    });
    assert_eq!(h.state_mut().desk().unwrap().ws.cases().len(), 1);

    // The other way: the desk writes to another organisation's address.
    let ngo = Profile::init(dir.path(), "ngo", &relay.address);
    let ngo_link = ngo.tropa(&["address", "create"]).ok().stdout;
    let ngo_link = ngo_link.lines().next().unwrap();
    click(&mut h, "Accept link");
    type_into(&mut h, "Invitation link", ngo_link);
    type_into(&mut h, "Name for this contact", "NGO");
    click(&mut h, "Accept");
    assert!(shows(&h, "write them a first message"));
    type_into(&mut h, "First message", "We have a case for you");
    click(&mut h, "Accept");
    until(&mut h, "the request to be sent", |h| {
        shows(h, "Request sent to NGO")
    });
    ngo.tropa(&["sync"]).ok();
    let listed = ngo.tropa(&["requests", "--json"]).ok().stdout;
    assert!(listed.contains("We have a case for you"), "{listed}");
    h.state_mut().finish();
}

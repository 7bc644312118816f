//! Drawing the desk with egui. Everything here reads [`App`] and calls its
//! methods; no decision about cases, messages or keys is made here.
//!
//! Every input has a visible label, which is also its accessible name: the
//! tests find widgets by those labels, as a screen reader would.

mod desk;
mod dialogs;

use std::time::Instant;

use egui::{Align, Color32, Layout, RichText, TextEdit, Ui};

use crate::app::{App, Screen};

/// Colour of warnings.
pub(crate) const WARN: Color32 = Color32::from_rgb(0xc0, 0x39, 0x2b);

/// Draws one frame of `app` into `ui` (the whole window).
pub fn draw(app: &mut App, ui: &mut Ui) {
    let now = Instant::now();
    // The idle check first: input that ends a long idle time must not
    // count as activity that keeps the desk open.
    app.tick(now);
    if ui
        .ctx()
        .input(|i| !i.events.is_empty() || i.pointer.is_moving())
    {
        app.touched(now);
    }
    if app.take_forget_ui() {
        forget_widget_state(ui);
    }
    match &app.screen {
        Screen::FirstRun { .. } => first_run(app, ui),
        Screen::Unlock { .. } => unlock(app, ui),
        Screen::Opening(_) => opening(ui),
        Screen::Desk(_) => desk::draw(app, ui),
    }
    // Idle locking needs a frame now and then even without input.
    if app.options().lock_after.is_some() && !app.is_locked() {
        ui.ctx()
            .request_repaint_after(std::time::Duration::from_secs(5));
    }
    // Locked or wiped by a button of this frame: forget now, not next frame.
    if app.take_forget_ui() {
        forget_widget_state(ui);
    }
}

/// egui keeps text fields' contents (and undo history) in its memory:
/// after locking or unlocking, that memory goes.
fn forget_widget_state(ui: &Ui) {
    ui.ctx().memory_mut(|m| m.data.clear());
}

fn centred(ui: &mut Ui, add: impl FnOnce(&mut Ui)) {
    egui::CentralPanel::default().show(ui, |ui| {
        ui.with_layout(Layout::top_down(Align::Center), |ui| {
            ui.add_space(ui.available_height() * 0.15);
            ui.set_max_width(420.0);
            add(ui);
        });
    });
}

fn message(app: &App, ui: &mut Ui) {
    if let Some(m) = &app.message {
        ui.add_space(8.0);
        ui.label(RichText::new(m).color(WARN));
    }
}

fn labelled_field(ui: &mut Ui, label: &str, text: &mut String, password: bool) -> egui::Response {
    let l = ui.label(label);
    ui.add(
        TextEdit::singleline(text)
            .password(password)
            .desired_width(f32::INFINITY),
    )
    .labelled_by(l.id)
}

fn unlock(app: &mut App, ui: &mut Ui) {
    let mut go = false;
    centred(ui, |ui| {
        ui.heading("Tropa desk");
        ui.label(format!("Profile: {}", app.options().home.display()));
        ui.add_space(12.0);
        if let Screen::Unlock { passphrase } = &mut app.screen {
            let r = labelled_field(ui, "Passphrase", passphrase, true);
            if !r.has_focus() && !ui.ctx().memory(|m| m.focused().is_some()) {
                r.request_focus();
            }
            // Enter unlocks, whether or not the field kept its focus.
            if (r.lost_focus() || r.has_focus()) && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                go = true;
            }
        }
        ui.add_space(8.0);
        if ui.button("Unlock").clicked() {
            go = true;
        }
        message(app, ui);
    });
    if go {
        app.unlock();
    }
}

fn first_run(app: &mut App, ui: &mut Ui) {
    let mut go = false;
    centred(ui, |ui| {
        ui.heading("Create your Tropa profile");
        ui.label(
            "Everything is stored encrypted on this computer under your passphrase. \
             Choose a long one (four or more unrelated words).",
        );
        ui.add_space(12.0);
        if let Screen::FirstRun { form, offline } = &mut app.screen {
            labelled_field(ui, "Your name (shown to nobody)", &mut form.name, false);
            labelled_field(ui, "Relay address (tropa://…)", &mut form.relay, false);
            labelled_field(ui, "New passphrase", &mut form.passphrase, true);
            labelled_field(ui, "Passphrase again", &mut form.repeat, true);
            ui.checkbox(offline, "Create without checking the relay answers");
        }
        ui.add_space(8.0);
        if ui.button("Create profile").clicked() {
            go = true;
        }
        message(app, ui);
    });
    if go {
        app.create();
    }
}

fn opening(ui: &mut Ui) {
    centred(ui, |ui| {
        ui.spinner();
        ui.label("Unlocking… (deriving the key from your passphrase takes a moment)");
    });
}

/// A time as the desk shows it: local, day and month, hours and minutes.
pub(crate) fn when(secs: u64) -> String {
    use chrono::{Local, TimeZone as _};
    i64::try_from(secs)
        .ok()
        .and_then(|s| Local.timestamp_opt(s, 0).single())
        .map_or_else(|| "?".into(), |t| t.format("%d %b %H:%M").to_string())
}

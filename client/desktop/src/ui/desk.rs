//! The unlocked desk: top bar with the relay banner, the case list, the
//! conversation, and the case panel.

use egui::{Color32, Key, RichText, ScrollArea, TextEdit, Ui};
use tropa_client::display::neutralise;
use tropa_client::{CaseStatus, MessageStatus, Verdict};

use super::{WARN, dialogs, when};
use crate::app::{App, Desk, Dialog};
use crate::model::Filter;

const SEARCH_ID: &str = "case-search";
const COMPOSE_ID: &str = "compose";

/// What the top bar asks of the app itself.
enum Top {
    None,
    Lock,
}

pub(super) fn draw(app: &mut App, ui: &mut Ui) {
    let name = app
        .desk()
        .map(|d| d.session.client().name().to_owned())
        .unwrap_or_default();
    let mut top = Top::None;
    let mut wipe = false;
    let mut lock_after = None;
    if let Some(desk) = app.desk() {
        egui::Panel::top("top").show(ui, |ui| {
            top = top_bar(desk, ui, &name);
        });
        keyboard(desk, ui);
        egui::Panel::left("cases")
            .resizable(true)
            .default_size(300.0)
            .show(ui, |ui| case_list(desk, ui));
        if desk.ws.selected().is_some() {
            egui::Panel::right("case")
                .resizable(true)
                .default_size(320.0)
                .show(ui, |ui| case_panel(desk, ui));
        }
        egui::CentralPanel::default().show(ui, |ui| conversation(desk, ui));
        let out = dialogs::draw(desk, ui);
        wipe = out.wipe;
        lock_after = out.lock_after;
    }
    if let Some(after) = lock_after {
        app.set_lock_after(after);
    }
    if wipe {
        app.wipe();
    }
    if let Top::Lock = top {
        app.lock();
    }
}

fn top_bar(desk: &mut Desk, ui: &mut Ui, name: &str) -> Top {
    let mut out = Top::None;
    ui.horizontal(|ui| {
        ui.strong(format!("Tropa desk · {name}"));
        ui.separator();
        if ui.button("Invite").clicked() {
            desk.open_invite();
        }
        if ui.button("Accept link").clicked() {
            desk.open_accept();
        }
        if ui.button("Requests").clicked() {
            desk.open_requests();
        }
        if !desk.requests.is_empty() {
            ui.strong(format!("{} waiting", desk.requests.len()));
        }
        if ui.button("Settings").clicked() {
            desk.error = None;
            desk.dialog = Dialog::Settings {
                minutes: String::new(),
            };
        }
        if ui.button("Lock").clicked() {
            out = Top::Lock;
        }
    });
    if !desk.ws.unreachable().is_empty() {
        let relays: Vec<&str> = desk.ws.unreachable().iter().map(String::as_str).collect();
        egui::Frame::new()
            .fill(Color32::from_rgb(0xfd, 0xed, 0xc4))
            .inner_margin(6.0)
            .show(ui, |ui| {
                ui.label(
                    RichText::new(format!(
                        "Relay unreachable ({}): retrying. New messages stay queued and go out when it answers.",
                        relays.join(", ")
                    ))
                    .color(Color32::from_rgb(0x6b, 0x4a, 0x00)),
                );
            });
    }
    if let Some(e) = &desk.error {
        ui.label(RichText::new(e).color(WARN));
    }
    let mut dismiss = false;
    for n in desk.ws.notices() {
        ui.horizontal(|ui| {
            ui.label(neutralise(n));
            if ui.small_button("Dismiss").clicked() {
                dismiss = true;
            }
        });
    }
    if dismiss {
        desk.ws.clear_notices();
    }
    ui.add_space(2.0);
    out
}

fn keyboard(desk: &mut Desk, ui: &mut Ui) {
    if !matches!(desk.dialog, Dialog::None) {
        return;
    }
    let ctx = ui.ctx().clone();
    if ctx.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, Key::F)) {
        ctx.memory_mut(|m| m.request_focus(egui::Id::unique(SEARCH_ID)));
    }
    let typing = ctx.memory(|m| m.focused()).is_some_and(|id| {
        id != egui::Id::unique(SEARCH_ID) || ctx.input(|i| i.key_pressed(Key::Enter))
    });
    if typing {
        return;
    }
    let (down, up, enter) = ctx.input(|i| {
        (
            i.key_pressed(Key::ArrowDown),
            i.key_pressed(Key::ArrowUp),
            i.key_pressed(Key::Enter),
        )
    });
    if down {
        desk.move_selection(1);
    }
    if up {
        desk.move_selection(-1);
    }
    if enter && desk.ws.selected().is_some() {
        ctx.memory_mut(|m| m.request_focus(egui::Id::unique(COMPOSE_ID)));
    }
}

fn case_list(desk: &mut Desk, ui: &mut Ui) {
    let mut filter: Filter = desk.ws.filter().clone();
    let l = ui.label("Search (Ctrl+F)");
    ui.add(
        TextEdit::singleline(&mut filter.query)
            .id(egui::Id::unique(SEARCH_ID))
            .hint_text("names, notes, messages")
            .desired_width(f32::INFINITY),
    )
    .labelled_by(l.id);
    ui.horizontal(|ui| {
        egui::ComboBox::from_label("Status filter")
            .selected_text(filter.status.map_or("all", CaseStatus::as_str))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut filter.status, None, "all");
                for s in CaseStatus::ALL {
                    ui.selectable_value(&mut filter.status, Some(s), s.as_str());
                }
            });
        ui.checkbox(&mut filter.starred_only, "Starred only");
    });
    desk.ws.set_filter(filter);
    ui.label(format!(
        "{} of {} cases",
        desk.ws.visible().len(),
        desk.ws.cases().len()
    ));
    ui.separator();
    let rows = desk.ws.visible().len();
    let row_h = ui.text_style_height(&egui::TextStyle::Body) * 2.0 + 10.0;
    let mut clicked = None;
    ScrollArea::vertical()
        .auto_shrink([false, false])
        .show_rows(ui, row_h, rows, |ui, range| {
            ui.with_layout(egui::Layout::top_down_justified(egui::Align::LEFT), |ui| {
                let selected = desk.ws.selected().map(str::to_owned);
                for c in desk.ws.visible().skip(range.start).take(range.len()) {
                    let s = &c.summary;
                    let r = ui.add(
                        egui::Button::selectable(
                            selected.as_deref() == Some(s.alias.as_str()),
                            row_text(ui, s),
                        )
                        .min_size(egui::vec2(ui.available_width(), row_h - 4.0)),
                    );
                    if r.clicked() {
                        clicked = Some(s.alias.clone());
                    }
                }
            });
        });
    if let Some(a) = clicked {
        desk.select(&a);
    }
}

/// A case list row: star, alias in bold when unread, the unread count in
/// colour; below it the status, last activity and any alert.
fn row_text(ui: &Ui, s: &tropa_client::CaseSummary) -> egui::text::LayoutJob {
    use egui::text::{LayoutJob, TextFormat};
    let style = ui.style();
    let body = egui::TextStyle::Body.resolve(style);
    let small = egui::TextStyle::Small.resolve(style);
    // The second line a little smaller than the name, still readable.
    let body_small = egui::FontId::proportional(body.size * 0.85);
    let strong = style.visuals.strong_text_color();
    let normal = style.visuals.text_color();
    let weak = style.visuals.weak_text_color();
    let mut job = LayoutJob::default();
    let star = if s.starred { "* " } else { "" };
    let colour = if s.unread > 0 { strong } else { normal };
    job.append(
        &format!("{star}{}", s.alias),
        0.0,
        TextFormat::simple(body.clone(), colour),
    );
    if s.unread > 0 {
        job.append(
            &format!("{} new", s.unread),
            8.0,
            TextFormat::simple(body, Color32::from_rgb(0x4e, 0x9a, 0xf1)),
        );
    }
    if s.identity_alert_at != 0 {
        job.append("KEY ALERT", 8.0, TextFormat::simple(small.clone(), WARN));
    }
    job.append(
        &format!("\n{} · {}", s.status, when(s.last_activity)),
        0.0,
        TextFormat::simple(body_small, weak),
    );
    job
}

fn status_word(s: MessageStatus) -> &'static str {
    match s {
        MessageStatus::Queued => "queued",
        MessageStatus::Sent => "sent",
        MessageStatus::Delivered => "delivered",
        MessageStatus::Unread | MessageStatus::Read => "",
    }
}

fn conversation(desk: &mut Desk, ui: &mut Ui) {
    let Some(alias) = desk.ws.selected().map(str::to_owned) else {
        ui.centered_and_justified(|ui| {
            ui.label("Choose a case on the left (Up, Down and Enter), or invite someone.");
        });
        return;
    };
    let Some(case) = desk.ws.case(&alias) else {
        return;
    };
    let s = &case.summary;
    ui.heading(neutralise(&s.alias));
    if !s.established {
        ui.label("Waiting for them to accept the invitation.");
    }
    if s.broken {
        ui.label(
            RichText::new(
                "Their mailbox is gone: nothing more can be sent. Ask for a new invitation.",
            )
            .color(WARN),
        );
    }
    ui.separator();
    let compose_h = 90.0;
    ScrollArea::vertical()
        .stick_to_bottom(true)
        .auto_shrink([false, false])
        .max_height(ui.available_height() - compose_h)
        .show(ui, |ui| {
            for m in desk.ws.conversation(&alias) {
                let who = if m.incoming { s.alias.as_str() } else { "you" };
                ui.horizontal_wrapped(|ui| {
                    ui.label(RichText::new(format!("{} {who}", when(m.at))).weak());
                    if !m.incoming {
                        ui.label(RichText::new(status_word(m.status)).italics().weak());
                    }
                });
                ui.label(neutralise(&m.text));
                ui.add_space(4.0);
            }
        });
    ui.separator();
    if s.identity_alert_at != 0 {
        // S10: nothing is sent while someone may be impersonating them.
        ui.label(
            RichText::new("Sending is paused until the key warning on the right is dealt with.")
                .color(WARN),
        );
        return;
    }
    let mut send = false;
    ui.horizontal(|ui| {
        let l = ui.label("Message");
        let r = ui
            .add(
                TextEdit::multiline(&mut *desk.draft)
                    .id(egui::Id::unique(COMPOSE_ID))
                    .desired_rows(2)
                    .desired_width(ui.available_width() - 70.0)
                    .hint_text("Enter sends, Shift+Enter starts a new line"),
            )
            .labelled_by(l.id);
        if r.has_focus() && ui.input_mut(|i| i.consume_key(egui::Modifiers::NONE, Key::Enter)) {
            send = true;
        }
        if ui.button("Send").clicked() {
            send = true;
        }
    });
    if send {
        desk.send();
    }
}

fn case_panel(desk: &mut Desk, ui: &mut Ui) {
    let Some(alias) = desk.ws.selected().map(str::to_owned) else {
        return;
    };
    let Some(case) = desk.ws.case(&alias).cloned() else {
        return;
    };
    let s = &case.summary;
    let mut status = None;
    let (mut star, mut verify, mut note, mut evaluate, mut ack) =
        (false, false, false, false, false);
    ScrollArea::vertical().show(ui, |ui| {
        ui.heading("Case");
        if s.identity_alert_at != 0 {
            egui::Frame::new()
                .fill(Color32::from_rgb(0xfa, 0xdb, 0xd8))
                .inner_margin(8.0)
                .show(ui, |ui| {
                    ui.label(
                        RichText::new(format!(
                            "WARNING: someone offered a DIFFERENT identity key for {} ({}). \
                             This may be an impostor. Do not continue until you have \
                             verified the person another way.",
                            s.alias,
                            when(s.identity_alert_at)
                        ))
                        .color(WARN)
                        .strong(),
                    );
                    ack = ui.button("I have dealt with this").clicked();
                });
        }
        ui.horizontal_wrapped(|ui| {
            ui.label("Status:");
            for st in CaseStatus::ALL {
                if ui.selectable_label(s.status == st, st.as_str()).clicked() && s.status != st {
                    status = Some(st);
                }
            }
        });
        if let Some(why) = &case.clearing_blocked {
            ui.label(RichText::new(format!("Cannot clear yet: {why}")).color(WARN));
        }
        ui.horizontal(|ui| {
            star = ui
                .button(if s.starred { "Unstar" } else { "Star" })
                .clicked();
            let v = if s.verified {
                "Verified (show number)"
            } else {
                "Verify safety number"
            };
            verify = ui.button(v).clicked();
        });
        ui.separator();
        ui.strong("Evaluations");
        if case.evaluations.is_empty() {
            ui.label(RichText::new("none yet").weak());
        }
        for e in &case.evaluations {
            ui.label(format!("{} · {} · {}", when(e.at), e.evaluator, e.verdict));
            if !e.comment.is_empty() {
                ui.label(RichText::new(&e.comment).weak());
            }
        }
        ui.add_space(4.0);
        labelled(ui, "Evaluator", &mut desk.forms.evaluator);
        ui.horizontal(|ui| {
            ui.label("Outcome:");
            for v in Verdict::ALL {
                ui.radio_value(&mut desk.forms.verdict, Some(v), v.as_str());
            }
        });
        let l = ui.label("Comment");
        ui.add(TextEdit::multiline(&mut *desk.forms.comment).desired_rows(2))
            .labelled_by(l.id);
        evaluate = ui.button("Record evaluation").clicked();
        ui.separator();
        ui.strong("Private notes (never sent)");
        for n in &case.notes {
            ui.label(RichText::new(when(n.at)).weak());
            ui.label(neutralise(&n.text));
        }
        let l = ui.label("New note");
        ui.add(TextEdit::multiline(&mut *desk.forms.note).desired_rows(3))
            .labelled_by(l.id);
        note = ui.button("Add note").clicked();
    });
    if let Some(st) = status {
        desk.set_status(st);
    }
    if star {
        desk.toggle_star();
    }
    if verify {
        desk.open_verify();
    }
    if evaluate {
        desk.add_evaluation();
    }
    if note {
        desk.add_note();
    }
    if ack {
        desk.acknowledge_alert();
    }
}

pub(super) fn labelled(ui: &mut Ui, label: &str, text: &mut String) -> egui::Response {
    let l = ui.label(label);
    ui.add(TextEdit::singleline(text).desired_width(f32::INFINITY))
        .labelled_by(l.id)
}

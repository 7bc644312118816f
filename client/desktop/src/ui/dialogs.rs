//! Dialogs over the desk: invite (link and QR code), accept a link (or
//! write to an organisation's address), the intake list of contact
//! requests, verify a safety number (digits and QR code), settings, wipe.

use std::time::Duration;

use egui::{Color32, RichText, TextEdit, Ui, Vec2};

use super::{WARN, desk::labelled, when};
use crate::app::{Desk, Dialog, WIPE_WORD};
use tropa_client::display::neutralise;

/// What a dialog asks of the app.
#[derive(Default)]
pub(super) struct Out {
    pub wipe: bool,
    pub lock_after: Option<Option<Duration>>,
}

pub(super) fn draw(desk: &mut Desk, ui: &mut Ui) -> Out {
    let mut out = Out::default();
    if matches!(desk.dialog, Dialog::None) {
        return out;
    }
    let ctx = ui.ctx().clone();
    let mut close = false;
    let mut act = false;
    let mut to_wipe = false;
    // A request of the intake list to accept (true) or reject.
    let mut request_action: Option<(bool, String)> = None;
    let error = desk.error.clone();
    let requests = std::mem::take(&mut desk.requests);
    let address = desk.address.clone();
    // Small screens: the content scrolls, the Close button stays in view.
    let max_h = (ctx.content_rect().height() - 140.0).max(200.0);
    let r = egui::Modal::new(egui::Id::unique("dialog")).show(&ctx, |ui| {
        ui.set_max_width(900.0);
        egui::ScrollArea::vertical()
            .max_height(max_h)
            .show(ui, |ui| {
                match &mut desk.dialog {
                    Dialog::None => {}
                    Dialog::Invite { alias, link, busy } => {
                        ui.heading("Invite someone");
                        match link {
                            None => {
                                ui.label(
                                    "The link works once, for 7 days. Give it to one person over a \
                             channel you trust, or let them scan the QR code.",
                                );
                                labelled(ui, "Name for this contact", alias);
                                if *busy {
                                    ui.spinner();
                                } else {
                                    act = ui.button("Create invitation").clicked();
                                }
                            }
                            Some(link) => {
                                ui.label(format!(
                            "Invitation for {alias}: scan the code with their phone, or copy \
                             the link."
                        ));
                                ui.horizontal_top(|ui| {
                                    qr(ui, link.as_bytes());
                                    ui.vertical(|ui| {
                                        let mut shown = link.as_str();
                                        ui.add(
                                            TextEdit::multiline(&mut shown)
                                                .desired_rows(12)
                                                .desired_width(280.0),
                                        );
                                        if ui.button("Copy link").clicked() {
                                            ui.ctx().copy_text(link.to_string());
                                        }
                                    });
                                });
                            }
                        }
                    }
                    Dialog::Accept {
                        link,
                        alias,
                        message,
                        busy,
                    } => {
                        ui.heading("Accept an invitation");
                        let l = ui.label("Invitation link");
                        ui.add(
                            TextEdit::multiline(&mut **link)
                                .desired_rows(3)
                                .desired_width(f32::INFINITY),
                        )
                        .labelled_by(l.id);
                        labelled(ui, "Name for this contact", alias);
                        if tropa_client::client::is_address_link(link) {
                            ui.label(
                                "This is an organisation's public address: they receive a \
                                 contact request with your first message and your key, and \
                                 become a contact once they accept it.",
                            );
                            let l = ui.label("First message");
                            ui.add(
                                TextEdit::multiline(&mut **message)
                                    .desired_rows(3)
                                    .desired_width(f32::INFINITY),
                            )
                            .labelled_by(l.id);
                        }
                        if *busy {
                            ui.spinner();
                        } else {
                            act = ui.button("Accept").clicked();
                        }
                    }
                    Dialog::Requests { names, busy } => {
                        requests_list(
                            ui,
                            &requests,
                            address.as_ref().map(|a| a.as_str()),
                            names,
                            busy.as_deref(),
                            &mut request_action,
                        );
                    }
                    Dialog::Verify {
                        alias,
                        safety,
                        typed,
                    } => {
                        ui.heading(format!("Safety number with {alias}"));
                        ui.label(
                    "Compare it with theirs in person or on a call. If every digit matches, \
                     nobody is in the middle.",
                );
                        for row in safety.groups.chunks(4) {
                            ui.monospace(row.join("  "));
                        }
                        qr(ui, &safety.qr_payload);
                        if safety.verified {
                            ui.label(RichText::new("Already marked verified.").strong());
                        }
                        labelled(ui, "Digits they read out (optional check)", typed);
                        act = ui.button("Mark as verified").clicked();
                    }
                    Dialog::Wipe { typed } => {
                        ui.heading("Wipe this profile");
                        ui.label(
                    RichText::new(
                        "Every contact, case, note and message on this computer is destroyed \
                         for good. There is no undo.",
                    )
                    .color(WARN),
                );
                        labelled(ui, &format!("Type {WIPE_WORD} to confirm"), typed);
                        act = ui
                            .add_enabled(
                                typed.trim() == WIPE_WORD,
                                egui::Button::new(RichText::new("Wipe now").color(WARN)),
                            )
                            .clicked();
                    }
                    Dialog::Settings { minutes } => {
                        ui.heading("Settings");
                        labelled(ui, "Lock after idle minutes (0 = never)", minutes);
                        act = ui.button("Apply").clicked();
                        ui.separator();
                        // Switches dialogs below (not while this one is borrowed).
                        to_wipe = ui.button("Wipe profile…").clicked();
                    }
                }
            });
        if let Some(e) = &error {
            ui.label(RichText::new(e).color(WARN));
        }
        ui.separator();
        if ui.button("Close").clicked() {
            close = true;
        }
    });
    if r.should_close() {
        close = true;
    }
    desk.requests = requests;
    match request_action {
        Some((true, id)) => desk.accept_request(&id),
        Some((false, id)) => desk.reject_request(&id),
        None => {}
    }
    if act {
        match &desk.dialog {
            Dialog::Invite { .. } => desk.invite(),
            Dialog::Accept { .. } => desk.accept(),
            Dialog::Requests { .. } => {}
            Dialog::Verify { .. } => desk.confirm_verified(),
            Dialog::Wipe { .. } => out.wipe = true,
            Dialog::Settings { minutes } => match minutes.trim().parse::<u64>() {
                Ok(0) => {
                    out.lock_after = Some(None);
                    close = true;
                }
                Ok(m) if m <= 7 * 24 * 60 => {
                    out.lock_after = Some(Some(Duration::from_secs(m * 60)));
                    close = true;
                }
                Ok(_) => desk.error = Some("At most a week (10080 minutes).".into()),
                Err(_) => desk.error = Some("Minutes must be a whole number.".into()),
            },
            Dialog::None => {}
        }
    }
    if to_wipe {
        desk.error = None;
        desk.dialog = Dialog::Wipe {
            typed: String::new(),
        };
    } else if close {
        desk.close_dialog();
    }
    out
}

/// The intake list: each request with when it came, the first digits of
/// the safety number, the requester's first message, a name field and
/// Accept and Reject. Labels carry the request's short id, so a screen
/// reader (and a test) tells the rows apart.
fn requests_list(
    ui: &mut Ui,
    requests: &[tropa_client::RequestView],
    address: Option<&str>,
    names: &mut std::collections::HashMap<String, String>,
    busy: Option<&str>,
    action: &mut Option<(bool, String)>,
) {
    ui.heading("Contact requests");
    match address {
        Some(link) => {
            ui.label("Your public address (publish it; each use arrives here):");
            let mut shown = link;
            ui.add(TextEdit::singleline(&mut shown).desired_width(f32::INFINITY));
        }
        None => {
            ui.label("This profile has no public address (`tropa address create` makes one).");
        }
    }
    if requests.is_empty() {
        ui.label("No requests waiting.");
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for r in requests {
        ui.separator();
        let mut head = format!(
            "Request {} · {} · safety number starts {}",
            r.short_id,
            when(r.received_at),
            r.safety_prefix
        );
        if r.expires_at < now {
            head.push_str(" · expired");
        } else if let Some(a) = &r.known_as {
            head.push_str(&format!(" · already your contact {}", neutralise(a)));
        }
        ui.strong(head);
        ui.label(neutralise(&r.text));
        let name = names.entry(r.short_id.clone()).or_default();
        labelled(ui, &format!("Name for request {}", r.short_id), name);
        ui.horizontal(|ui| {
            if busy == Some(r.short_id.as_str()) {
                ui.spinner();
            } else {
                if ui
                    .button(format!("Accept request {}", r.short_id))
                    .clicked()
                {
                    *action = Some((true, r.short_id.clone()));
                }
                if ui
                    .button(format!("Reject request {}", r.short_id))
                    .clicked()
                {
                    *action = Some((false, r.short_id.clone()));
                }
            }
        });
    }
}

/// Draws `data` as a QR code, big enough to scan from a phone held up to
/// the screen (at least 4 pixels per module).
fn qr(ui: &mut Ui, data: &[u8]) {
    let Ok(code) = qrcode::QrCode::with_error_correction_level(data, qrcode::EcLevel::L) else {
        ui.label(RichText::new("(too long for a QR code)").color(WARN));
        return;
    };
    let n = code.width();
    let colors = code.to_colors();
    let quiet = 4;
    let module = (360.0 / (n + 2 * quiet) as f32).max(4.0);
    let side = module * (n + 2 * quiet) as f32;
    let (rect, _) = ui.allocate_exact_size(Vec2::splat(side), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, Color32::WHITE);
    for (i, c) in colors.iter().enumerate() {
        if *c == qrcode::Color::Dark {
            let (x, y) = ((i % n + quiet) as f32, (i / n + quiet) as f32);
            let min = rect.min + Vec2::new(x * module, y * module);
            painter.rect_filled(
                egui::Rect::from_min_size(min, Vec2::splat(module)),
                0.0,
                Color32::BLACK,
            );
        }
    }
}

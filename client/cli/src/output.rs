//! How `tropa` shows things on a 40-column phone screen: times, QR codes,
//! messages and events, with everything that comes from other people or
//! relays made safe for a terminal first.

use tropa_client::{MessageStatus, MessageView, SyncEvent};

pub(crate) fn hhmm(t: u64) -> String {
    let fmt = time::macros::format_description!("[month]-[day] [hour]:[minute]");
    i64::try_from(t)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|d| d.format(&fmt).ok())
        .unwrap_or_default()
}

pub(crate) fn print_qr(data: &[u8]) {
    match qrcode::QrCode::with_error_correction_level(data, qrcode::EcLevel::L) {
        Ok(code) => {
            let s = code
                .render::<qrcode::render::unicode::Dense1x2>()
                .quiet_zone(true)
                .build();
            println!("{s}");
        }
        Err(e) => eprintln!("cannot make a QR code: {e}"),
    }
}

/// Text from other people or from a relay, made safe for a terminal:
/// control characters and bidirectional overrides are shown as `\u{..}`
/// escapes (see [`tropa_client::display`]).
pub(crate) fn clean(s: &str) -> String {
    tropa_client::display::neutralise(s)
}

pub(crate) fn print_message(m: &MessageView, json: bool) {
    if json {
        let v = serde_json::json!({
            "id": m.id,
            "contact": m.alias,
            "direction": if m.incoming { "in" } else { "out" },
            "text": m.text,
            "status": m.status.as_str(),
            "at": m.at,
        });
        println!("{v}");
    } else if m.incoming {
        println!("{} {}:\n  {}", hhmm(m.at), clean(&m.alias), clean(&m.text));
    } else {
        println!(
            "{} me > {} [{}]:\n  {}",
            hhmm(m.at),
            clean(&m.alias),
            m.status.as_str(),
            clean(&m.text)
        );
    }
}

/// Whether a message counts as new for `read` without an alias.
pub(crate) fn is_unread(m: &MessageView) -> bool {
    m.status == MessageStatus::Unread
}

pub(crate) fn print_event(ev: &SyncEvent, show_messages: bool) {
    match ev {
        SyncEvent::Received(m) if show_messages => print_message(m, false),
        SyncEvent::Received(_) | SyncEvent::Sent { .. } => {}
        SyncEvent::Delivered { alias, .. } => eprintln!("delivered to {}", clean(alias)),
        SyncEvent::Joined { alias } => eprintln!("{} accepted your invitation", clean(alias)),
        SyncEvent::InvitationExpired { alias } => {
            eprintln!("the invitation for {} expired unused", clean(alias));
        }
        SyncEvent::Dropped { alias, reason } => {
            eprintln!(
                "WARNING: dropped a message for {}: {}",
                clean(alias),
                clean(reason)
            );
        }
        SyncEvent::Refused { alias, error } => {
            eprintln!(
                "delivery to {} refused: {}",
                clean(alias),
                clean(&error.to_string())
            );
        }
        SyncEvent::MailboxRefused { relay, error } => {
            eprintln!(
                "relay {relay}: a mailbox was refused: {}",
                clean(&error.to_string())
            );
        }
        SyncEvent::ContactBroken { alias } => {
            eprintln!(
                "{}: their mailbox is gone from their relay; nothing more is sent to them. Ask them for a new invitation",
                clean(alias)
            );
        }
        SyncEvent::ContactRemoved { alias } => {
            eprintln!(
                "{} removed: their relay refused your reply (the invitation was used or expired)",
                clean(alias)
            );
        }
        SyncEvent::Unreachable { relay, error } => {
            eprintln!("relay {relay}: {}", clean(&error.to_string()));
            eprintln!("  detail: {}", clean(error.detail()));
        }
    }
}

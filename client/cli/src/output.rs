//! How `tropa` shows things on a 40-column phone screen: times, QR codes,
//! messages and events, with everything that comes from other people or
//! relays made safe for a terminal first. Formatting returns strings, so
//! the interactive console can print them above its prompt.

use std::sync::OnceLock;

use chrono::{DateTime, Datelike as _, Local, TimeZone, Utc};
use tropa_client::{MessageStatus, MessageView, SyncEvent};

/// Whether times are shown in UTC (`--utc`) instead of local time; set
/// once at start.
static UTC: OnceLock<bool> = OnceLock::new();

pub(crate) fn show_utc(utc: bool) {
    let _ = UTC.set(utc);
}

fn utc() -> bool {
    UTC.get().copied().unwrap_or(false)
}

/// Which clock times are in, for a line such as "times: local (UTC+01:00)".
pub(crate) fn time_zone() -> String {
    if utc() {
        "UTC".to_owned()
    } else {
        format!("local, UTC{}", Local::now().format("%:z"))
    }
}

fn stamp<Tz: TimeZone>(t: DateTime<Tz>, now: DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    if t.date_naive() == now.date_naive() {
        t.format("%H:%M").to_string()
    } else if t.year() == now.year() {
        t.format("%-d %b %H:%M").to_string()
    } else {
        t.format("%-d %b %Y %H:%M").to_string()
    }
}

/// A time for a 40-column screen: "14:12" today, "29 Nov 14:12" this year,
/// with the year otherwise; local time unless `--utc`. Day before month
/// and the month in letters, so no order of numbers is ambiguous.
pub(crate) fn when(t: u64) -> String {
    let Some(secs) = i64::try_from(t).ok() else {
        return String::new();
    };
    if utc() {
        match Utc.timestamp_opt(secs, 0).single() {
            Some(d) => stamp(d, Utc::now()),
            None => String::new(),
        }
    } else {
        match Local.timestamp_opt(secs, 0).single() {
            Some(d) => stamp(d, Local::now()),
            None => String::new(),
        }
    }
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

/// Seconds between the sender's clock and arrival beyond which both times
/// are shown (a skewed clock, or a message that waited on the relay).
const SHOW_ARRIVAL_AFTER: u64 = 300;

/// A message as two lines: a header with its time, who, and for outgoing
/// messages their state; then the text, indented. An incoming message
/// shows when it was sent (the sender's clock), and also when it arrived
/// if that is more than five minutes apart.
pub(crate) fn message(m: &MessageView) -> String {
    let text = clean(&m.text).replace('\n', "\n  ");
    if m.incoming {
        let shown = if m.sent_at > 0 { m.sent_at } else { m.at };
        let arrived = if m.sent_at > 0 && m.sent_at.abs_diff(m.at) > SHOW_ARRIVAL_AFTER {
            format!(" (arrived {})", when(m.at))
        } else {
            String::new()
        };
        format!("{} {}{arrived}:\n  {text}", when(shown), clean(&m.alias))
    } else {
        format!(
            "{} me > {} [{}]:\n  {text}",
            when(m.at),
            clean(&m.alias),
            m.status.as_str(),
        )
    }
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
            "sent_at": m.sent_at,
        });
        println!("{v}");
    } else {
        println!("{}", message(m));
    }
}

/// Whether a message counts as new for `read` without an alias.
pub(crate) fn is_unread(m: &MessageView) -> bool {
    m.status == MessageStatus::Unread
}

/// What a sync event means for the user, in a line (or `None` for events
/// not worth a line). `Received` is left to the caller.
pub(crate) fn event(ev: &SyncEvent) -> Option<String> {
    Some(match ev {
        SyncEvent::Received(_) | SyncEvent::Sent { .. } => return None,
        SyncEvent::Delivered { alias, .. } => format!("delivered to {}", clean(alias)),
        SyncEvent::Joined { alias } => format!("{} accepted your invitation", clean(alias)),
        SyncEvent::InvitationExpired { alias } => {
            format!("the invitation for {} expired unused", clean(alias))
        }
        SyncEvent::Dropped { alias, reason } => format!(
            "WARNING: dropped a message for {}: {}",
            clean(alias),
            clean(reason)
        ),
        SyncEvent::Refused { alias, error } => format!(
            "delivery to {} refused for now: {}",
            clean(alias),
            clean(&error.to_string())
        ),
        SyncEvent::MailboxRefused { relay, error } => format!(
            "relay {relay}: a mailbox was refused: {}",
            clean(&error.to_string())
        ),
        SyncEvent::ContactBroken { alias } => format!(
            "{}: their mailbox is gone from their relay; nothing more is sent to them. Ask them for a new invitation",
            clean(alias)
        ),
        SyncEvent::ContactRemoved { alias } => format!(
            "{} removed: their relay refused your reply (the invitation was used or expired)",
            clean(alias)
        ),
        SyncEvent::Reachable { relay } => format!("relay {relay}: reachable again"),
        SyncEvent::Unreachable { relay, error } => format!(
            "relay {relay}: {}\n  detail: {}",
            clean(&error.to_string()),
            clean(error.detail())
        ),
    })
}

/// `sync -v`: every event as it happens (new messages are counted at the
/// end, and shown by `read`).
pub(crate) fn print_event(ev: &SyncEvent) {
    if let Some(line) = event(ev) {
        eprintln!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(sent_at: u64, at: u64) -> MessageView {
        MessageView {
            id: String::new(),
            alias: "bob".into(),
            incoming: true,
            text: "two\nlines".into(),
            status: MessageStatus::Unread,
            at,
            sent_at,
            expires_at: 0,
        }
    }

    /// The sender's time is shown; arrival too when they are far apart
    /// (a skewed clock, or a message that waited), never silently.
    #[test]
    fn incoming_messages_show_when_sent_and_arrival_when_far_apart() {
        show_utc(true);
        let t = 1_700_000_000; // 22:13 UTC
        assert_eq!(
            message(&incoming(t, t + 60)).lines().next(),
            Some(format!("{} bob:", when(t)).as_str())
        );
        let late = message(&incoming(t, t + 3600));
        assert!(
            late.contains(&format!("(arrived {})", when(t + 3600))),
            "{late}"
        );
        let unknown = message(&incoming(0, t));
        assert!(
            unknown.starts_with(&format!("{} bob:", when(t))),
            "{unknown}"
        );
        assert!(late.ends_with("  two\n  lines"), "{late}");
        assert!(when(t).ends_with("22:13"), "{}", when(t));
        assert!(when(t).contains("Nov 2023"), "{}", when(t));
    }
}

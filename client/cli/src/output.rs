//! How `tropa` shows things on a 40-column phone screen: times, QR codes,
//! messages and events, with everything that comes from other people or
//! relays made safe for a terminal first. Formatting returns strings, so
//! the interactive console can print them above its prompt.

use std::sync::OnceLock;

use chrono::{DateTime, Datelike as _, Local, TimeZone, Utc};
use tropa_client::{InboxEntry, MessageStatus, MessageView, SearchHit, SyncEvent};

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

/// Modules of the widest QR code of a short link that fits the phone
/// screen: version 5, 37 modules, plus one module of quiet zone on each
/// side makes 39 columns of [`WIDTH`].
pub(crate) const LINK_QR_MAX_MODULES: usize = 37;

/// A short link as a QR code at error correction level M, in half blocks
/// (one text line holds two rows of modules) with a quiet zone of one
/// module, for terminals with a dark background: light modules are drawn
/// as blocks, dark ones are left blank. A link of upper-case letters,
/// digits and `/:.` is all in the QR alphanumeric set, so a link of up to
/// 100 characters is version 5 at most. Returns the lines and the number
/// of modules across (without the quiet zone).
pub(crate) fn link_qr(link: &str) -> Result<(Vec<String>, usize), qrcode::types::QrError> {
    use qrcode::render::{Renderer, unicode::Dense1x2};
    let code = qrcode::QrCode::with_error_correction_level(link.as_bytes(), qrcode::EcLevel::M)?;
    let colors = code.to_colors();
    let image = Renderer::<Dense1x2>::new(&colors, code.width(), 1)
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .build();
    Ok((image.lines().map(str::to_owned).collect(), code.width()))
}

/// Prints [`link_qr`], with a word on stderr if it is wider than the phone
/// screen (a long relay host name, or an IPv6 one).
pub(crate) fn print_link_qr(link: &str) {
    match link_qr(link) {
        Ok((lines, modules)) => {
            for l in &lines {
                println!("{l}");
            }
            if modules > LINK_QR_MAX_MODULES {
                eprintln!(
                    "this QR code needs {} columns: widen the terminal to scan it",
                    modules + 2
                );
            }
        }
        Err(e) => eprintln!("cannot make a QR code: {e}"),
    }
}

#[cfg(test)]
mod link_qr_tests {
    use super::*;

    /// The half blocks give back exactly the code's modules (light ones as
    /// blocks) inside a light quiet zone of one module, and a link of 98
    /// characters (a 30-character host) fits 39 columns.
    #[test]
    fn a_link_qr_is_the_code_itself_in_39_columns() {
        let link = format!(
            "TROPA:I/RELAY-NUMBER-ONE.EXAMPLE.ORG.A:65535/{}/{}",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "234567ABCDEFGHIJKLMNOPQRST"
        );
        assert_eq!(link.len(), 98);
        let (lines, modules) = link_qr(&link).unwrap();
        assert_eq!(modules, LINK_QR_MAX_MODULES);
        let code = qrcode::QrCode::with_error_correction_level(link.as_bytes(), qrcode::EcLevel::M)
            .unwrap();
        let side = modules + 2;
        let light = |r: usize, c: usize| {
            if r == 0 || c == 0 || r > modules || c > modules {
                return true;
            }
            code[(c - 1, r - 1)] == qrcode::Color::Light
        };
        assert_eq!(lines.len(), side.div_ceil(2));
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(line.chars().count(), side);
            for (c, ch) in line.chars().enumerate() {
                let top = light(2 * i, c);
                let bottom = 2 * i + 1 < side && light(2 * i + 1, c);
                let want = match (top, bottom) {
                    (false, false) => ' ',
                    (true, false) => '\u{2580}',
                    (false, true) => '\u{2584}',
                    (true, true) => '\u{2588}',
                };
                assert_eq!(ch, want, "line {i} column {c}");
            }
        }
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

/// A message as `--json` prints it.
pub(crate) fn message_json(m: &MessageView) -> serde_json::Value {
    serde_json::json!({
        "id": m.id,
        "contact": m.alias,
        "direction": if m.incoming { "in" } else { "out" },
        "text": m.text,
        "status": m.status.as_str(),
        "at": m.at,
        "sent_at": m.sent_at,
    })
}

pub(crate) fn print_message(m: &MessageView, json: bool) {
    if json {
        println!("{}", message_json(m));
    } else {
        println!("{}", message(m));
    }
}

/// The width `tropa` writes for: a cheap phone in Termux.
pub(crate) const WIDTH: usize = 40;

/// A time for a list line, as short as it can be: "14:12" today,
/// "29 Nov" this year, "Nov 2023" before; local time unless `--utc`.
pub(crate) fn when_short(t: u64) -> String {
    fn short<Tz: TimeZone>(t: DateTime<Tz>, now: DateTime<Tz>) -> String
    where
        Tz::Offset: std::fmt::Display,
    {
        if t.date_naive() == now.date_naive() {
            t.format("%H:%M").to_string()
        } else if t.year() == now.year() {
            t.format("%-d %b").to_string()
        } else {
            t.format("%b %Y").to_string()
        }
    }
    let Some(secs) = i64::try_from(t).ok().filter(|s| *s > 0) else {
        return String::new();
    };
    if utc() {
        Utc.timestamp_opt(secs, 0)
            .single()
            .map(|d| short(d, Utc::now()))
    } else {
        Local
            .timestamp_opt(secs, 0)
            .single()
            .map(|d| short(d, Local::now()))
    }
    .unwrap_or_default()
}

/// `s` in at most `width` characters, ending in `…` when cut.
pub(crate) fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    if width > 0 {
        out.push('…');
    }
    out
}

/// An alias as it must be typed in a shell: as is when it is plain,
/// else in single quotes (aliases may hold spaces).
pub(crate) fn shell_word(alias: &str) -> String {
    let plain = !alias.is_empty()
        && alias
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '+'));
    if plain {
        clean(alias)
    } else {
        format!("'{}'", clean(alias).replace('\'', r"'\''"))
    }
}

/// The inbox (`tropa` alone) as lines of at most `width` columns: alias,
/// then "N new" (or the state of a contact that cannot be written to),
/// then when it last had a message. Columns line up.
pub(crate) fn inbox_lines(entries: &[InboxEntry], width: usize) -> Vec<String> {
    let rows: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| {
            let c = &e.contact;
            let label = if c.unread > 0 {
                format!("{} new", c.unread)
            } else if c.broken {
                "unreachable".to_owned()
            } else if !c.established {
                "invited".to_owned()
            } else {
                String::new()
            };
            (clean(&c.alias), label, when_short(e.last_at))
        })
        .collect();
    let widest = |f: fn(&(String, String, String)) -> &String| {
        rows.iter().map(|r| f(r).chars().count()).max().unwrap_or(0)
    };
    let (lw, tw) = (widest(|r| &r.1), widest(|r| &r.2));
    let gap = |w: usize| if w > 0 { w + 2 } else { 0 };
    let aw = widest(|r| &r.0).min(width.saturating_sub(gap(lw) + gap(tw)).max(4));
    rows.iter()
        .map(|(alias, label, time)| {
            let line = format!("{:<aw$}  {label:<lw$}  {time}", fit(alias, aw));
            line.trim_end().to_owned()
        })
        .collect()
}

/// Search hits as lines of at most `width` columns: when, who (`me>`
/// before the alias for what you sent), and the text around the match.
pub(crate) fn search_lines(hits: &[SearchHit], width: usize) -> Vec<String> {
    let times: Vec<String> = hits
        .iter()
        .map(|h| {
            let m = &h.message;
            when_short(if m.incoming && m.sent_at > 0 {
                m.sent_at
            } else {
                m.at
            })
        })
        .collect();
    let tw = times.iter().map(|t| t.chars().count()).max().unwrap_or(0);
    hits.iter()
        .zip(&times)
        .map(|(h, time)| {
            let m = &h.message;
            let who = if m.incoming {
                fit(&clean(&m.alias), 12)
            } else {
                format!("me>{}", fit(&clean(&m.alias), 9))
            };
            let prefix = format!("{time:<tw$} {who}: ");
            let room = width.saturating_sub(prefix.chars().count());
            format!("{prefix}{}", h.excerpt(room))
        })
        .collect()
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
        SyncEvent::RequestReceived { id } => format!("new contact request {id}"),
        SyncEvent::RequestDropped { reason } => {
            format!("dropped an invalid contact request: {}", clean(reason))
        }
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
    fn contact(alias: &str, unread: usize, established: bool) -> tropa_client::ContactInfo {
        tropa_client::ContactInfo {
            alias: alias.into(),
            established,
            verified: false,
            unread,
            pending: 0,
            timer_secs: 0,
            dropped: 0,
            broken: false,
            invitation_expires_at: 0,
            relay: String::new(),
        }
    }

    /// Inbox lines fit 40 columns whatever the alias, and line up.
    #[test]
    fn inbox_lines_fit_and_line_up() {
        show_utc(true);
        let now = u64::try_from(Utc::now().timestamp()).unwrap();
        let long = "Oleksandr from the second battalion"; // 35 characters
        let entries = [
            InboxEntry {
                contact: contact("bob", 12, true),
                last_at: now,
                last_unread_at: now,
            },
            InboxEntry {
                contact: contact(long, 0, true),
                last_at: now - 400 * 86_400,
                last_unread_at: 0,
            },
            InboxEntry {
                contact: contact("dave", 0, false),
                last_at: 0,
                last_unread_at: 0,
            },
        ];
        let lines = inbox_lines(&entries, WIDTH);
        for l in &lines {
            assert!(l.chars().count() <= WIDTH, "{l:?}");
        }
        assert!(lines[0].starts_with("bob "), "{lines:?}");
        assert!(lines[0].contains("  12 new"), "{lines:?}");
        assert!(lines[1].starts_with("Oleksandr"), "{lines:?}");
        assert!(lines[1].contains('…'), "{lines:?}");
        assert!(lines[2].ends_with("invited"), "{lines:?}");
        let column = |l: &str, what: &str| l.find(what).unwrap();
        assert_eq!(column(&lines[0], "12 new"), column(&lines[2], "invited"));
    }

    #[test]
    fn hints_quote_aliases_a_shell_would_split() {
        assert_eq!(shell_word("bob"), "bob");
        assert_eq!(shell_word("Anna K"), "'Anna K'");
        assert_eq!(shell_word("O'Neil"), r"'O'\''Neil'");
        assert_eq!(fit("checkpoint", 5), "chec…");
        assert_eq!(fit("six", 5), "six");
    }
}

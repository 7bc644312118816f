//! `case`: what a handler records about each contact while vetting them
//! (status, private notes, evaluations, a star). All of it stays in the
//! encrypted profile; the rule that a case is cleared only by two
//! evaluators lives in `tropa-client`, which refuses the change.

use serde_json::{Value, json};
use tropa_client::{CaseStatus, CaseSummary, CaseView, Client, Verdict};

use crate::input::{open, secret_input};
use crate::output::{clean, time_zone, when};
use crate::{Cli, CliError};

/// The screen this is made for.
const WIDTH: usize = 40;

/// What `tropa case ALIAS` is asked to change, made in the order of the
/// fields.
pub(crate) struct Changes<'a> {
    /// `--note TEXT` (`-`: prompt or pipe).
    pub note: Option<&'a str>,
    /// `--evaluate NAME --outcome O [--comment TEXT]`.
    pub evaluation: Option<(&'a str, Verdict, &'a str)>,
    /// `--status S`.
    pub status: Option<CaseStatus>,
    /// `--star` (true) or `--unstar` (false).
    pub star: Option<bool>,
    /// `--acknowledge-alert`.
    pub acknowledge_alert: bool,
}

/// One change, as made.
enum Step<'a> {
    Note(&'a str),
    Evaluate(&'a str, Verdict, &'a str),
    Status(CaseStatus),
    Star(bool),
    Acknowledge,
}

impl Changes<'_> {
    fn steps(&self) -> Vec<Step<'_>> {
        let mut steps = Vec::new();
        if let Some(n) = self.note {
            steps.push(Step::Note(n));
        }
        if let Some((name, verdict, comment)) = self.evaluation {
            steps.push(Step::Evaluate(name, verdict, comment));
        }
        if let Some(s) = self.status {
            steps.push(Step::Status(s));
        }
        if let Some(s) = self.star {
            steps.push(Step::Star(s));
        }
        if self.acknowledge_alert {
            steps.push(Step::Acknowledge);
        }
        steps
    }
}

impl Step<'_> {
    /// The option that asked for it.
    fn flag(&self) -> String {
        match self {
            Step::Note(_) => "--note".to_owned(),
            Step::Evaluate(..) => "--evaluate".to_owned(),
            Step::Status(s) => format!("--status {s}"),
            Step::Star(true) => "--star".to_owned(),
            Step::Star(false) => "--unstar".to_owned(),
            Step::Acknowledge => "--acknowledge-alert".to_owned(),
        }
    }

    /// Makes the change; the confirmation line.
    fn apply(&self, client: &Client, view: &CaseView) -> Result<String, CliError> {
        let alias = view.summary.alias.as_str();
        let shown = clean(alias);
        Ok(match self {
            Step::Note(text) => {
                if *text != "-" && client.first_notice("argv-note")? {
                    eprintln!(
                        "{}",
                        wrap(
                            "note: a note on the command line stays in your shell history; \
                             next time give --note - and type or pipe it in",
                            ""
                        )
                    );
                }
                // With `-`: a prompt on a terminal, else stdin to its end.
                let arg = if *text == "-" { None } else { Some(*text) };
                let text = match arg {
                    Some(t) => zeroize::Zeroizing::new(t.to_owned()),
                    None => secret_input(client, None, "Note: ", "note")?,
                };
                client.add_case_note(alias, &text)?;
                format!("private note added to {shown}")
            }
            Step::Evaluate(name, verdict, comment) => {
                client.add_evaluation(alias, name, *verdict, comment)?;
                format!("{shown}: {} says {verdict}", clean(name.trim()))
            }
            Step::Status(status) => {
                client.set_case_status(alias, *status)?;
                format!("{shown} is now {status}")
            }
            Step::Star(true) => {
                client.set_starred(alias, true)?;
                format!("{shown} starred")
            }
            Step::Star(false) => {
                client.set_starred(alias, false)?;
                format!("{shown} unstarred")
            }
            Step::Acknowledge => {
                let had = view.summary.identity_alert_at > 0;
                client.acknowledge_identity_alert(alias)?;
                if had {
                    format!("identity alert for {shown} cleared")
                } else {
                    format!("{shown} had no identity alert")
                }
            }
        })
    }
}

/// `tropa case`: every case, or those in `status`.
pub(crate) fn list(cli: &Cli, status: Option<CaseStatus>) -> Result<(), CliError> {
    let client = open(cli)?;
    let cases: Vec<CaseSummary> = client
        .cases()?
        .into_iter()
        .filter(|c| status.is_none_or(|s| c.status == s))
        .collect();
    if cli.json {
        let all: Vec<Value> = cases.iter().map(summary_json).collect();
        println!("{}", Value::Array(all));
        return Ok(());
    }
    if cases.is_empty() {
        match status {
            Some(s) => eprintln!("no case is {s}"),
            None => eprintln!("no cases: each contact has one"),
        }
        return Ok(());
    }
    eprintln!("(* starred; times {})", time_zone());
    for c in &cases {
        println!("{}", list_line(c));
    }
    Ok(())
}

/// `tropa case ALIAS [changes]`: shows the case, or makes the changes in
/// order and confirms each; the first refused one stops the rest.
pub(crate) fn case(cli: &Cli, alias: &str, changes: &Changes<'_>) -> Result<(), CliError> {
    let client = open(cli)?;
    // An unknown alias fails here, before anything is read or changed.
    let view = client.case(alias)?;
    let steps = changes.steps();
    if steps.is_empty() {
        if cli.json {
            println!("{}", view_json(&view));
        } else {
            eprintln!("(times {})", time_zone());
            println!("{}", view_text(&view));
        }
        return Ok(());
    }
    for (i, step) in steps.iter().enumerate() {
        match step.apply(&client, &view) {
            Ok(line) => eprintln!("{}", wrap(&line, "")),
            Err(e) => {
                let flags =
                    |s: &[Step<'_>]| s.iter().map(Step::flag).collect::<Vec<_>>().join(", ");
                eprintln!("{}", wrap(&format!("refused: {}", step.flag()), ""));
                if i > 0 {
                    eprintln!("{}", wrap(&format!("kept: {}", flags(&steps[..i])), ""));
                }
                if i + 1 < steps.len() {
                    eprintln!(
                        "{}",
                        wrap(&format!("not made: {}", flags(&steps[i + 1..])), "")
                    );
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

/// A case on one line (two if the alias is long): star, alias, status,
/// alerts, unread count, last activity.
fn list_line(c: &CaseSummary) -> String {
    let mut facts = vec![c.status.as_str().to_owned()];
    if c.identity_alert_at > 0 {
        facts.push("KEY ALERT".to_owned());
    }
    if c.broken {
        facts.push("unreachable".to_owned());
    } else if !c.established {
        facts.push("invited".to_owned());
    }
    if c.unread > 0 {
        facts.push(format!("{} new", c.unread));
    }
    facts.push(when(c.last_activity));
    let head = format!("{} {}:", if c.starred { '*' } else { ' ' }, clean(&c.alias));
    let tail = facts.join(", ");
    if head.chars().count() + 1 + tail.chars().count() <= WIDTH {
        format!("{head} {tail}")
    } else {
        format!("{head}\n{}", wrap(&tail, "    "))
    }
}

/// A case for the screen: status, contact, alerts, notes, evaluations.
fn view_text(v: &CaseView) -> String {
    let s = &v.summary;
    let mut out = Vec::new();
    let star = if s.starred { ", starred" } else { "" };
    out.push(wrap(
        &format!("{}: {}{star}", clean(&s.alias), s.status),
        "",
    ));
    let contact = if s.broken {
        "unreachable"
    } else if !s.established {
        "invited"
    } else if s.verified {
        "verified"
    } else {
        "unverified"
    };
    let mut counts = format!("{} messages", s.messages);
    if s.unread > 0 {
        counts.push_str(&format!(", {} new", s.unread));
    }
    if s.pending > 0 {
        counts.push_str(&format!(", {} pending", s.pending));
    }
    out.push(wrap(&format!("{contact}; {counts}"), ""));
    out.push(format!("last activity {}", when(s.last_activity)));
    if s.identity_alert_at > 0 {
        out.push(wrap(
            &format!(
                "KEY ALERT {}: someone offered another identity key as {}. Check with them another way, then --acknowledge-alert",
                when(s.identity_alert_at),
                clean(&s.alias)
            ),
            "",
        ));
    }
    if let Some(why) = &v.clearing_blocked {
        out.push(wrap(&format!("cannot be cleared yet: {why}"), ""));
    }
    if v.notes.is_empty() {
        out.push("no notes".to_owned());
    } else {
        out.push("notes (private):".to_owned());
        for n in &v.notes {
            out.push(format!("  {}", when(n.at)));
            out.push(wrap(&clean(&n.text), "    "));
        }
    }
    if v.evaluations.is_empty() {
        out.push("no evaluations".to_owned());
    } else {
        out.push("evaluations (private):".to_owned());
        for e in &v.evaluations {
            out.push(wrap(
                &format!("{} {}: {}", when(e.at), clean(&e.evaluator), e.verdict),
                "  ",
            ));
            if !e.comment.is_empty() {
                out.push(wrap(&clean(&e.comment), "    "));
            }
        }
    }
    out.join("\n")
}

fn summary_json(s: &CaseSummary) -> Value {
    json!({
        "alias": s.alias,
        "status": s.status.as_str(),
        "starred": s.starred,
        "unread": s.unread,
        "pending": s.pending,
        "messages": s.messages,
        "last_activity": s.last_activity,
        "established": s.established,
        "verified": s.verified,
        "broken": s.broken,
        "identity_alert": s.identity_alert_at > 0,
    })
}

fn view_json(v: &CaseView) -> Value {
    let mut out = summary_json(&v.summary);
    if let Some(o) = out.as_object_mut() {
        o.insert(
            "notes".into(),
            v.notes
                .iter()
                .map(|n| json!({"at": n.at, "text": n.text}))
                .collect(),
        );
        o.insert(
            "evaluations".into(),
            v.evaluations
                .iter()
                .map(|e| {
                    json!({
                        "at": e.at,
                        "evaluator": e.evaluator,
                        "outcome": e.verdict.as_str(),
                        "comment": e.comment,
                    })
                })
                .collect(),
        );
        o.insert(
            "clearing_blocked".into(),
            v.clearing_blocked
                .as_ref()
                .map_or(Value::Null, |e| Value::String(e.to_string())),
        );
    }
    out
}

/// `text` word-wrapped to [`WIDTH`] columns, each line starting with
/// `indent`; line breaks in `text` are kept, tabs become spaces, and a
/// word longer than a line is cut.
fn wrap(text: &str, indent: &str) -> String {
    let room = WIDTH.saturating_sub(indent.chars().count()).max(8);
    let mut lines: Vec<String> = Vec::new();
    for para in text.replace('\t', " ").split('\n') {
        let mut line = String::new();
        let mut used = 0;
        for word in para.split(' ').filter(|w| !w.is_empty()) {
            let mut word: Vec<char> = word.chars().collect();
            while !word.is_empty() {
                if used > 0 && used + 1 + word.len() > room {
                    lines.push(std::mem::take(&mut line));
                    used = 0;
                }
                if used > 0 {
                    line.push(' ');
                    used += 1;
                }
                let take = word.len().min(room - used);
                line.extend(word.drain(..take));
                used += take;
                if !word.is_empty() {
                    lines.push(std::mem::take(&mut line));
                    used = 0;
                }
            }
        }
        lines.push(line);
    }
    lines
        .iter()
        .map(|l| format!("{indent}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_fits_the_screen_and_keeps_words_and_breaks() {
        let text = "Met him at the station; he knows the unit and the commander's name.\n\
                    Second line\twith a tab, and averyveryveryveryveryveryveryveryverylongword.";
        let out = wrap(text, "    ");
        for l in out.lines() {
            assert!(l.chars().count() <= WIDTH, "{l:?}");
            assert!(l.starts_with("    "), "{l:?}");
        }
        assert!(out.contains("\n    Second line with a tab"), "{out}");
        let words: Vec<&str> = out.split_whitespace().collect();
        assert!(words.contains(&"commander's"), "{out}");
        assert_eq!(wrap("short", "  "), "  short");
        assert_eq!(wrap("", "  "), "  ");
    }
}

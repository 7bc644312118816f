//! `Debug` for the generated types that carry message text, passwords, keys
//! or mailbox IDs: the type name and nothing else. build.rs skips the
//! derived `Debug` for exactly these (its `REDACTED` list); a type missing
//! here fails to compile wherever it is formatted with `{:?}`.

use crate::{e2e, relay};

macro_rules! redacted {
    ($($t:ty => $name:literal),* $(,)?) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!($name, "(<redacted>)"))
            }
        }
    )*};
}

redacted!(
    e2e::Invitation => "Invitation",
    e2e::Hello => "Hello",
    e2e::Plaintext => "Plaintext",
    e2e::Content => "Content",
    e2e::Text => "Text",
    e2e::Receipt => "Receipt",
    e2e::ContactRequest => "ContactRequest",
    relay::CreateMailbox => "CreateMailbox",
    relay::MailboxCreated => "MailboxCreated",
    relay::Deposit => "Deposit",
    relay::SignedCommand => "SignedCommand",
    relay::RecipientCommand => "RecipientCommand",
    relay::Ack => "Ack",
    relay::Secure => "Secure",
    relay::Delivery => "Delivery",
    relay::PutLink => "PutLink",
    relay::GetLink => "GetLink",
    relay::DeleteLink => "DeleteLink",
    relay::LinkData => "LinkData",
);

// The oneofs inside redacted messages lose their derived Debug too (the
// build paths match by prefix): name the variant, show nothing of it.
impl std::fmt::Debug for e2e::content::Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            e2e::content::Body::Text(_) => "Text(<redacted>)",
            e2e::content::Body::Receipt(_) => "Receipt(<redacted>)",
        })
    }
}

impl std::fmt::Debug for relay::recipient_command::Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use relay::recipient_command::Action;
        f.write_str(match self {
            Action::Subscribe(_) => "Subscribe",
            Action::Ack(_) => "Ack(<redacted>)",
            Action::Secure(_) => "Secure(<redacted>)",
            Action::Delete(_) => "Delete",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// L5 of the security review: none of these may show what they carry.
    #[test]
    fn debug_shows_no_text_password_key_or_id() {
        let secret = "meet at the old station";
        let id = bytes::Bytes::from_static(&[0xab; 24]);
        let shown = [
            format!(
                "{:?}",
                e2e::Content {
                    id: vec![0xab; 16],
                    body: Some(e2e::content::Body::Text(e2e::Text {
                        text: secret.into(),
                        expire_after_secs: 0,
                        sent_at: 0,
                    })),
                }
            ),
            format!(
                "{:?}",
                e2e::Plaintext {
                    hello: Some(e2e::Hello {
                        reply_relay: secret.into(),
                        reply_sender_id: vec![0xab; 24],
                        sender_auth: vec![0xab; 32],
                    }),
                    content: None,
                    ..Default::default()
                }
            ),
            format!(
                "{:?}",
                e2e::Invitation {
                    relay: secret.into(),
                    inviter_identity: vec![0xab; 64],
                    ..Default::default()
                }
            ),
            format!(
                "{:?}",
                relay::Request {
                    version: 1,
                    command: Some(relay::request::Command::CreateMailbox(
                        relay::CreateMailbox {
                            password: secret.into(),
                            recipient_auth_pub: id.clone(),
                            recipient_dh_pub: id.clone(),
                            intake: false,
                        }
                    )),
                }
            ),
            format!(
                "{:?}",
                relay::Request {
                    version: 1,
                    command: Some(relay::request::Command::Deposit(relay::Deposit {
                        sender_id: id.clone(),
                        envelope: id.clone(),
                        signature: id.clone(),
                    })),
                }
            ),
            format!(
                "{:?}",
                relay::Response {
                    result: Some(relay::response::Result::Created(relay::MailboxCreated {
                        recipient_id: id.clone(),
                        sender_id: id.clone(),
                        relay_dh_pub: id.clone(),
                    })),
                }
            ),
            format!(
                "{:?}",
                relay::Request {
                    version: 1,
                    command: Some(relay::request::Command::PutLink(relay::PutLink {
                        locator: id.clone(),
                        data: id.clone(),
                        owner_auth_pub: id.clone(),
                        ttl_secs: 1,
                        signature: id.clone(),
                        password: secret.into(),
                    })),
                }
            ),
            format!(
                "{:?}",
                relay::Response {
                    result: Some(relay::response::Result::LinkData(relay::LinkData {
                        data: id.clone(),
                    })),
                }
            ),
            format!(
                "{:?}",
                relay::RecipientCommand {
                    recipient_id: id.clone(),
                    action: Some(relay::recipient_command::Action::Ack(relay::Ack {
                        envelope_id: id.clone(),
                        more_ids: vec![id.clone()],
                    })),
                }
            ),
        ];
        for s in &shown {
            assert!(!s.contains("station"), "{s}");
            // Derived Debug prints bytes as decimal lists: 0xab = 171.
            assert!(!s.contains("171"), "{s}");
            assert!(s.contains("redacted"), "{s}");
        }
        // What is safe to show still is.
        let err = format!(
            "{:?}",
            relay::Error {
                code: relay::ErrorCode::Quota as i32,
                message: "mailbox is full".into(),
            }
        );
        assert!(err.contains("mailbox is full"), "{err}");
    }
}

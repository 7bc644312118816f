//! A readable trace of one schedule, for debugging a failing seed:
//! `TROPA_SIM_TRACE=SEED`.

use super::*;

impl Sim {
    pub(super) fn debug_input(&self, n: usize, input: &Input) {
        if !self.debug {
            return;
        }
        let what = match input {
            Input::Start => "Start".to_owned(),
            Input::Tick => "Tick".to_owned(),
            Input::Stop => "Stop".to_owned(),
            Input::Connected { relay, .. } => format!("Connected {}", &relay.as_str()[8..12]),
            Input::ConnectFailed { .. } => "ConnectFailed".to_owned(),
            Input::Subscription { event, .. } => match event {
                SubEvent::Started => "Sub Started".into(),
                SubEvent::Refused(e) => format!("Sub Refused {e}"),
                SubEvent::Delivery(d) => {
                    format!("Sub Delivery {}", hex::encode(&d.envelope_id[..8]))
                }
                SubEvent::Idle => "Sub Idle".into(),
                SubEvent::Ended(e) => format!("Sub Ended {e}"),
            },
            Input::Done { op, result } => format!(
                "Done {op} {}",
                match result {
                    Ok(Reply::Created(_)) => "created".to_owned(),
                    Ok(Reply::Done) => "ok".to_owned(),
                    Ok(Reply::LinkStored(_)) => "link stored".to_owned(),
                    Err(e) => format!("{e}: {}", e.detail()),
                }
            ),
            Input::Command { command, .. } => format!("{command:?}"),
        };
        eprintln!("[{}] node {n} <- {what}", self.now - START);
    }

    pub(super) fn debug_action(&self, n: usize, a: &Action) {
        if !self.debug {
            return;
        }
        let what = match a {
            Action::Connect { .. } => "Connect".to_owned(),
            Action::Disconnect { .. } => "Disconnect".to_owned(),
            Action::Subscribe { .. } => "Subscribe".to_owned(),
            Action::Request { op, request, .. } => format!(
                "Request {op} {}",
                match request {
                    Request::Create { .. } => "create",
                    Request::CreateIntake { .. } => "create-intake",
                    Request::Deposit { .. } => "deposit",
                    Request::Ack { .. } => "ack",
                    Request::Secure { .. } => "secure",
                    Request::Delete { .. } => "delete",
                    Request::PutLink { .. } => "put-link",
                    Request::DeleteLink { .. } => "delete-link",
                }
            ),
            Action::Emit(e) => format!("{e:?}"),
            Action::Complete { result, .. } => format!("Complete {result:?}"),
        };
        eprintln!("[{}] node {n} -> {what}", self.now - START);
    }
}

//! The simulated network: carrying out an engine's actions against the
//! relay services, the subscriptions' pushes, and the faults (lost requests
//! and answers, redeliveries, rewinds, crashes, relay restarts, expiry).

use super::*;

impl Sim {
    /// Carries out one action of node `n`.
    pub(super) fn act(&mut self, n: usize, i: usize) {
        let action = self.nodes[n].actions.remove(i);
        match action {
            Action::Connect { relay, .. } => {
                let result = match self.relay_index(&relay) {
                    Some(r) => {
                        let mut binding = [0u8; 32];
                        self.rng.fill_bytes(&mut binding);
                        let peer = self.relays[r].service.peer(
                            binding,
                            self.nodes[n].address,
                            self.service_now(r),
                        );
                        let node = &mut self.nodes[n];
                        node.conns.retain(|(k, _)| *k != relay);
                        node.conns.push((
                            relay.clone(),
                            Conn {
                                relay: r,
                                peer,
                                binding,
                            },
                        ));
                        Input::Connected {
                            relay,
                            transport: tropa_relay_client::Transport::Quic,
                        }
                    }
                    None => Input::ConnectFailed {
                        relay,
                        error: lost(),
                    },
                };
                self.nodes[n].inbox.push(result);
            }
            Action::Disconnect { relay } => {
                let node = &mut self.nodes[n];
                if let Some(r) = node.conns.iter().position(|(k, _)| *k == relay) {
                    let (_, conn) = node.conns.remove(r);
                    node.subs.retain(|s| s.relay != conn.relay);
                }
            }
            Action::Subscribe {
                relay,
                mailbox,
                auth,
            } => {
                let event = match self.conn(n, &relay) {
                    None => SubEvent::Refused(lost()),
                    Some((r, binding)) => {
                        let req = requests::subscribe(&binding, &auth, &mailbox);
                        let now = self.service_now(r);
                        let node = &self.nodes[n];
                        let peer = &node
                            .conns
                            .iter()
                            .find(|(k, _)| *k == relay)
                            .expect("conn")
                            .1
                            .peer;
                        let service = &self.relays[r].service;
                        match service.settle(service.handle(req, peer, now)) {
                            Served::Subscribe { sub, .. } => {
                                let node = &mut self.nodes[n];
                                node.subs
                                    .retain(|s| !(s.relay == r && s.mailbox == mailbox));
                                node.subs.push(SimSub {
                                    relay: r,
                                    mailbox,
                                    sub,
                                    cursor: 0,
                                    idle_told: false,
                                });
                                SubEvent::Started
                            }
                            Served::Reply { response, .. } => SubEvent::Refused(
                                requests::ok(response).err().map_or_else(lost, Into::into),
                            ),
                            Served::Write { .. } => SubEvent::Refused(lost()),
                        }
                    }
                };
                self.nodes[n].inbox.push(Input::Subscription {
                    relay,
                    mailbox,
                    event,
                });
            }
            Action::Request { op, relay, request } => {
                let result = self.request(n, &relay, request);
                self.nodes[n].inbox.push(Input::Done { op, result });
            }
            Action::Emit(_) | Action::Complete { .. } => {}
        }
    }

    pub(super) fn conn(&self, n: usize, relay: &RelayKey) -> Option<(usize, [u8; 32])> {
        self.nodes[n]
            .conns
            .iter()
            .find(|(k, _)| k == relay)
            .map(|(_, c)| (c.relay, c.binding))
    }

    /// A request on the simulated network, perhaps lost on the way there
    /// or on the way back.
    pub(super) fn request(
        &mut self,
        n: usize,
        relay: &RelayKey,
        request: Request,
    ) -> Result<Reply, RelayError> {
        let Some((r, binding)) = self.conn(n, relay) else {
            return Err(lost());
        };
        if self.fault(0.05) {
            self.note("lost request", n);
            return Err(lost());
        }
        let (req, expect_created) = match request {
            Request::Create { auth, dh, password } => {
                (requests::create(&auth, &dh, password.as_deref()), true)
            }
            Request::CreateIntake { auth, dh, password } => (
                requests::create_intake(&auth, &dh, password.as_deref()),
                true,
            ),
            Request::Deposit {
                sender_id,
                envelope,
                signer,
            } => {
                self.out.envelopes += 1;
                (
                    requests::deposit(&sender_id, envelope, signer.as_ref()),
                    false,
                )
            }
            Request::Ack {
                mailbox,
                auth,
                envelope_id,
            } => (
                requests::ack(&binding, &auth, &mailbox, &envelope_id),
                false,
            ),
            Request::Secure {
                mailbox,
                auth,
                sender,
            } => (requests::secure(&binding, &auth, &mailbox, &sender), false),
            Request::Delete { mailbox, auth } => {
                (requests::delete(&binding, &auth, &mailbox), false)
            }
            Request::PutLink {
                locator,
                data,
                owner,
                ttl_secs,
                password,
            } => (
                requests::put_link(
                    &binding,
                    &owner,
                    &locator,
                    data,
                    ttl_secs,
                    password.as_deref(),
                ),
                false,
            ),
            Request::DeleteLink { locator, owner } => {
                (requests::delete_link(&binding, &owner, &locator), false)
            }
        };
        let now = self.service_now(r);
        let peer = &self.nodes[n]
            .conns
            .iter()
            .find(|(k, _)| k == relay)
            .expect("conn")
            .1
            .peer;
        let service = &self.relays[r].service;
        let Served::Reply { response, .. } = service.settle(service.handle(req, peer, now)) else {
            return Err(RelayError::Misbehaved {
                detail: "a subscription for a request".into(),
            });
        };
        if self.fault(0.05) {
            self.note("lost answer", n);
            return Err(lost());
        }
        if expect_created {
            return requests::created(response)
                .map(Reply::Created)
                .map_err(Into::into);
        }
        match response.result {
            Some(
                tropa_proto::relay::response::Result::Accepted(_)
                | tropa_proto::relay::response::Result::Ok(_),
            ) => Ok(Reply::Done),
            Some(tropa_proto::relay::response::Result::LinkStored(s)) => Ok(Reply::LinkStored(
                std::time::Duration::from_secs(u64::from(s.ttl_secs)),
            )),
            _ => Err(requests::ok(response).err().map_or_else(lost, Into::into)),
        }
    }

    pub(super) fn fault(&mut self, p: f64) -> bool {
        if self.faults_on && self.rng.random_bool(p) {
            self.out.faults += 1;
            true
        } else {
            false
        }
    }

    /// Pushes the next event of one subscription of node `n`: a delivery,
    /// or `Idle` once caught up. Sometimes redelivers (duplicates) or goes
    /// back to the start (old envelopes after new ones).
    pub(super) fn push(&mut self, n: usize, s: usize) {
        if self.fault(0.05) {
            self.note("rewind", n);
            self.nodes[n].subs[s].cursor = 0;
        }
        let sub = &self.nodes[n].subs[s];
        let (r, mailbox, cursor) = (sub.relay, sub.mailbox, sub.cursor);
        let next = self.relays[r]
            .service
            .next_delivery(&sub.sub, cursor)
            .expect("memory store");
        let relay = self.relays[r].key.clone();
        let event = match next {
            Some(d) => {
                self.out.envelopes += 1;
                let duplicate = self.fault(0.05);
                let sub = &mut self.nodes[n].subs[s];
                if !duplicate {
                    sub.cursor = d.next_seq;
                }
                sub.idle_told = false;
                match requests::event(d.frame) {
                    Ok(tropa_relay_client::Event::Delivery(d)) => SubEvent::Delivery(d),
                    _ => SubEvent::Idle,
                }
            }
            None => {
                self.nodes[n].subs[s].idle_told = true;
                SubEvent::Idle
            }
        };
        self.nodes[n].inbox.push(Input::Subscription {
            relay,
            mailbox,
            event,
        });
    }

    /// Whether subscription `s` of node `n` has something to push.
    pub(super) fn can_push(&self, n: usize, s: usize) -> bool {
        let sub = &self.nodes[n].subs[s];
        let pending = self.relays[sub.relay]
            .store
            .next_envelope(&sub.sub.recipient_id, sub.cursor)
            .map(|(e, _)| e.is_some())
            .unwrap_or(false);
        pending || !sub.idle_told
    }

    /// A node loses everything volatile: engine, connections, what was in
    /// flight.
    pub(super) fn crash(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        node.engine = None;
        node.actions.clear();
        node.inbox.clear();
        node.conns.clear();
        node.subs.clear();
    }

    /// A relay restarts: every connection to it ends.
    pub(super) fn restart_relay(&mut self, r: usize) {
        let key = self.relays[r].key.clone();
        for n in 0..2 {
            let node = &mut self.nodes[n];
            let had: Vec<MailboxId> = node
                .subs
                .iter()
                .filter(|s| s.relay == r)
                .map(|s| s.mailbox)
                .collect();
            node.subs.retain(|s| s.relay != r);
            node.conns.retain(|(k, _)| *k != key);
            for mailbox in had {
                node.inbox.push(Input::Subscription {
                    relay: key.clone(),
                    mailbox,
                    event: SubEvent::Ended(lost()),
                });
            }
        }
    }

    /// Stored envelopes older than an hour expire (a relay whose TTL ran
    /// out): the senders' resends must make up for them.
    pub(super) fn expire(&mut self, r: usize) {
        let relay = &mut self.relays[r];
        relay.hour += 2;
        let policy = SweepPolicy {
            ttl_hours: 1,
            idle_hours: u32::MAX,
            unused_hours: u32::MAX,
        };
        let _ = relay.store.sweep(relay.hour, &policy);
    }
}

//! Honey-credential matching: a detectors service that offered honey-credentials to a
//! name-poisoning responder reports the offer (`honey_credentials_offered`); the core,
//! which sees every node's login attempts, remembers the offers and raises one
//! `honey_credential_used` event (pseudo-node `core`, service `correlator`) when a login
//! attempt on any node carries one of them, linking the attacker back to the poisoning.
//!
//! Sans-IO: [`HoneyCredBook::observe`] takes a node's newly received events and returns
//! the events to record; `ingest.rs` calls it and stores them. Memory is bounded (offers
//! and reported uses are capped, the oldest forgotten first), and one use is reported
//! once per (offer, source address, node, service), whatever a brute forcer repeats.

use honeybee_proto::event::{Event, EventKind, HoneyCredentialUse, MAX_FIELD_LEN, clamp};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};

/// Offers remembered (the oldest forgotten first).
pub const MAX_OFFERS: usize = 4096;
/// Uses already reported, remembered so that repeats are not reported again.
pub const MAX_REPORTED: usize = 4096;

#[derive(Debug, Clone)]
struct Offer {
    username: String,
    domain: String,
    node: String,
    time_ms: i64,
    responder: IpAddr,
}

/// The key a login is matched on: lower-cased user name, exact password.
type Key = (String, String);

/// Offers seen and uses reported.
#[derive(Debug, Default)]
pub struct HoneyCredBook {
    offers: HashMap<Key, Offer>,
    order: VecDeque<Key>,
    reported: HashSet<(Key, Option<IpAddr>, String, String)>,
    reported_order: VecDeque<(Key, Option<IpAddr>, String, String)>,
}

/// The user part of a login name as a Windows-minded attacker may type it:
/// `DOMAIN\user`, `user@domain` or `user`, with the domain when one was given.
fn split_login(name: &str) -> (&str, Option<&str>) {
    if let Some((d, u)) = name.split_once('\\') {
        return (u, Some(d));
    }
    if let Some((u, d)) = name.split_once('@') {
        return (u, Some(d));
    }
    (name, None)
}

impl HoneyCredBook {
    /// The book as the store holds it: the newest [`MAX_OFFERS`] offers, so that a
    /// core restart (or another core on the same database) still links a later login
    /// to its poisoning. Uses already reported are not reloaded: after a restart, a use
    /// that goes on is reported once more.
    pub async fn load(store: &crate::store::Store) -> Result<Self, crate::store::StoreError> {
        let newest_first = store
            .query_events(&honeybee_proto::admin::EventQuery {
                node: None,
                service: None,
                kind: Some("honey_credentials_offered".into()),
                since_ms: None,
                limit: MAX_OFFERS as u32,
            })
            .await?;
        let mut book = HoneyCredBook::default();
        for stored in newest_first.iter().rev() {
            book.observe(stored.node.as_str(), [&stored.event]);
        }
        Ok(book)
    }

    pub fn len(&self) -> usize {
        self.offers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offers.is_empty()
    }

    /// Remembers an offer that reached a responder.
    pub fn offered(
        &mut self,
        node: &str,
        time_ms: i64,
        username: &str,
        domain: &str,
        password: &str,
        responder: IpAddr,
    ) {
        let key = (username.to_lowercase(), password.to_owned());
        let offer = Offer {
            username: username.to_owned(),
            domain: domain.to_owned(),
            node: node.to_owned(),
            time_ms,
            responder,
        };
        if self.offers.insert(key.clone(), offer).is_none() {
            self.order.push_back(key);
            while self.order.len() > MAX_OFFERS {
                if let Some(old) = self.order.pop_front() {
                    self.offers.remove(&old);
                }
            }
        }
    }

    /// The events of `node` just received: offers are remembered, login attempts matched.
    /// Returns the `honey_credential_used` events to record (source, kind).
    pub fn observe<'a>(
        &mut self,
        node: &str,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Vec<(Option<SocketAddr>, EventKind)> {
        let mut out = Vec::new();
        if node == crate::correlator::CORE_NODE {
            return out;
        }
        for e in events {
            match &e.kind {
                EventKind::HoneyCredentialsOffered(o) if o.outcome == "sent" => {
                    self.offered(
                        node,
                        e.time_ms,
                        &o.username,
                        &o.domain,
                        &o.password,
                        o.responder,
                    );
                }
                EventKind::AuthAttempt(a) => {
                    if self.offers.is_empty() {
                        continue;
                    }
                    let Some(password) = &a.password else {
                        continue;
                    };
                    let (user, domain) = split_login(&a.username);
                    let key = (user.to_lowercase(), password.clone());
                    let Some(offer) = self.offers.get(&key) else {
                        continue;
                    };
                    if domain.is_some_and(|d| {
                        !d.eq_ignore_ascii_case(&offer.domain)
                            && !d
                                .split('.')
                                .next()
                                .is_some_and(|first| first.eq_ignore_ascii_case(&offer.domain))
                    }) {
                        continue;
                    }
                    let src = e.src.map(|s| s.ip());
                    let seen = (key, src, node.to_owned(), e.service.clone());
                    if self.reported.contains(&seen) {
                        continue;
                    }
                    self.reported.insert(seen.clone());
                    self.reported_order.push_back(seen);
                    while self.reported_order.len() > MAX_REPORTED {
                        if let Some(old) = self.reported_order.pop_front() {
                            self.reported.remove(&old);
                        }
                    }
                    let c = |s: &str| clamp(s, MAX_FIELD_LEN);
                    out.push((
                        e.src,
                        EventKind::HoneyCredentialUsed(HoneyCredentialUse {
                            username: c(&offer.username),
                            domain: c(&offer.domain),
                            offered_by: c(&offer.node),
                            offered_at_ms: offer.time_ms,
                            responder: offer.responder,
                            node: c(node),
                            service: c(&e.service),
                            success: a.success,
                        }),
                    ));
                }
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use honeybee_proto::event::{AuthAttempt, AuthMethod, HoneyCredentialOffer};

    fn ev(seq: u64, service: &str, src: &str, kind: EventKind) -> Event {
        Event {
            seq,
            time_ms: 1_000 + seq as i64,
            service: service.into(),
            session: None,
            src: Some(src.parse().unwrap()),
            dst: None,
            kind,
        }
    }

    fn offer(user: &str, pass: &str, outcome: &str) -> EventKind {
        EventKind::HoneyCredentialsOffered(HoneyCredentialOffer {
            protocol: "http-ntlm".into(),
            username: user.into(),
            domain: "CORP".into(),
            password: pass.into(),
            responder: "10.0.0.66".parse().unwrap(),
            honey_name: "FILESRV07".into(),
            outcome: outcome.into(),
        })
    }

    fn login(user: &str, pass: &str) -> EventKind {
        EventKind::AuthAttempt(AuthAttempt {
            method: AuthMethod::Password,
            username: user.into(),
            password: Some(pass.into()),
            key_fingerprint: None,
            key_algorithm: None,
            client_version: None,
            success: false,
        })
    }

    #[test]
    fn a_login_with_offered_credentials_is_reported_once_per_source_node_and_service() {
        let mut b = HoneyCredBook::default();
        let r = b.observe(
            "office-1",
            &[
                ev(
                    1,
                    "detectors",
                    "10.0.0.66:0",
                    offer("j.miller", "Autumn2024!", "sent"),
                ),
                ev(2, "detectors", "10.0.0.67:0", offer("a.b", "x", "timeout")),
            ],
        );
        assert!(r.is_empty());
        assert_eq!(b.len(), 1, "only offers that reached the responder count");
        let evil = "192.0.2.9:40000";
        let r = b.observe(
            "web-1",
            &[
                ev(1, "ssh", evil, login("root", "Autumn2024!")),
                ev(2, "ssh", evil, login("j.miller", "autumn2024!")),
                ev(3, "ssh", evil, login("a.b", "x")),
                ev(4, "ssh", evil, login("CORP\\J.Miller", "Autumn2024!")),
                ev(5, "ssh", evil, login("j.miller", "Autumn2024!")),
                ev(6, "ftp", evil, login("j.miller@corp.local", "Autumn2024!")),
                ev(7, "ftp", evil, login("OTHER\\j.miller", "Autumn2024!")),
            ],
        );
        assert_eq!(r.len(), 2, "{r:?}");
        let EventKind::HoneyCredentialUsed(u) = &r[0].1 else {
            panic!("{r:?}")
        };
        assert_eq!(r[0].0, Some(evil.parse().unwrap()));
        assert_eq!(u.username, "j.miller");
        assert_eq!(u.offered_by, "office-1");
        assert_eq!(u.offered_at_ms, 1_001);
        assert_eq!(u.responder, "10.0.0.66".parse::<IpAddr>().unwrap());
        assert_eq!((u.node.as_str(), u.service.as_str()), ("web-1", "ssh"));
        let EventKind::HoneyCredentialUsed(u) = &r[1].1 else {
            panic!()
        };
        assert_eq!(u.service, "ftp");
        // The core's own events are never matched.
        assert!(
            b.observe(
                "core",
                &[ev(9, "ssh", evil, login("j.miller", "Autumn2024!"))]
            )
            .is_empty()
        );
    }

    #[test]
    fn memory_is_bounded_under_a_flood_of_offers_and_uses() {
        let mut b = HoneyCredBook::default();
        let offers: Vec<Event> = (0..MAX_OFFERS as u64 + 100)
            .map(|i| {
                ev(
                    i,
                    "detectors",
                    "10.0.0.66:0",
                    offer(&format!("u{i}"), "p", "sent"),
                )
            })
            .collect();
        b.observe("office-1", &offers);
        assert_eq!(b.len(), MAX_OFFERS);
        assert_eq!(b.order.len(), MAX_OFFERS);
        // The oldest are forgotten, the newest kept.
        assert!(
            b.observe("w", &[ev(1, "ssh", "192.0.2.1:1", login("u0", "p"))])
                .is_empty()
        );
        let logins: Vec<Event> = (0..MAX_REPORTED as u64 + 100)
            .map(|i| {
                ev(
                    i,
                    "ssh",
                    &format!("192.0.{}.{}:1", i / 250, i % 250),
                    login(&format!("u{}", MAX_OFFERS as u64 + 99), "p"),
                )
            })
            .collect();
        let r = b.observe("w", &logins);
        assert_eq!(r.len(), MAX_REPORTED + 100);
        assert_eq!(b.reported.len(), MAX_REPORTED);
        assert_eq!(b.reported_order.len(), MAX_REPORTED);
    }

    /// The whole path in a core: node `office-1` reports an offer, node `web-1` a login
    /// with those credentials (twice); the core stores one `honey_credential_used` event
    /// of node `core`, service `correlator`, naming both nodes and the responder.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_core_records_the_use_of_offered_credentials_once() {
        use honeybee_proto::NodeId;
        use honeybee_proto::admin::EventQuery;
        use honeybee_proto::event::EventBatch;
        use std::sync::Arc;
        let (dir, core) = crate::test_core("honeycred.test").await;
        let shared = core.shared();
        let labels = Arc::new(Vec::new());
        let batch = |events| EventBatch { events };
        let office = NodeId::new("office-1").unwrap();
        let web = NodeId::new("web-1").unwrap();
        crate::ingest::batch(
            shared,
            &office,
            &labels,
            batch(vec![ev(
                1,
                "detectors",
                "10.0.0.66:0",
                offer("j.miller", "Autumn2024!", "sent"),
            )]),
            crate::ingest::Turn::alone(),
        )
        .await
        .unwrap();
        let evil = "192.0.2.9:40000";
        crate::ingest::batch(
            shared,
            &web,
            &labels,
            batch(vec![
                ev(1, "ssh", evil, login("j.miller", "Autumn2024!")),
                ev(2, "ssh", evil, login("j.miller", "Autumn2024!")),
                ev(3, "ssh", evil, login("root", "toor")),
            ]),
            crate::ingest::Turn::alone(),
        )
        .await
        .unwrap();
        let used = shared
            .store
            .query_events(&EventQuery {
                kind: Some("honey_credential_used".into()),
                limit: 10,
                ..EventQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(used.len(), 1, "{used:?}");
        let doc = crate::json::event_json(&used[0]);
        assert_eq!(doc["observer"]["name"], "core", "{doc}");
        assert_eq!(doc["service"]["name"], crate::correlator::SERVICE);
        assert_eq!(doc["source"]["ip"], "192.0.2.9");
        let h = &doc["honeybee"]["honey_credentials"];
        assert_eq!(h["username"], "j.miller");
        assert_eq!(h["offered_by"], "office-1");
        assert_eq!(h["responder"], "10.0.0.66");
        assert_eq!(h["used_on_node"], "web-1");
        assert_eq!(h["used_on_service"], "ssh");
        core.shutdown().await;

        // A restarted core reloads the offer from the store: a later login on another
        // node is still linked to the poisoning.
        let mut cfg = crate::config::load(dir.path()).unwrap();
        cfg.shim_listen = None;
        let core = crate::Core::start_with(cfg).await.unwrap();
        let shared = core.shared();
        assert_eq!(shared.honey_creds.lock().unwrap().len(), 1);
        crate::ingest::batch(
            shared,
            &NodeId::new("web-2").unwrap(),
            &labels,
            batch(vec![ev(
                1,
                "ftp",
                evil,
                login("CORP\\j.miller", "Autumn2024!"),
            )]),
            crate::ingest::Turn::alone(),
        )
        .await
        .unwrap();
        let used = shared
            .store
            .query_events(&EventQuery {
                kind: Some("honey_credential_used".into()),
                limit: 10,
                ..EventQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(used.len(), 2, "{used:?}");
        let doc = crate::json::event_json(&used[0]);
        assert_eq!(
            doc["honeybee"]["honey_credentials"]["used_on_node"], "web-2",
            "{doc}"
        );
        assert_eq!(
            doc["honeybee"]["honey_credentials"]["offered_by"],
            "office-1"
        );
        core.shutdown().await;
    }
}

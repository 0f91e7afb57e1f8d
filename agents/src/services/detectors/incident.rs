//! Incidents, sans-IO: the packets of one anomaly about one subject (an IP, a MAC) become
//! one report with counts, not one event per packet.
//!
//! An incident opens at its first packet and is reported once, when it has been quiet
//! for `quiet_ms` (seen by [`IncidentBook::tick`]) or, if it goes on, `max_ms` after it
//! began (a new incident then starts at its next packet), so an endless spoof is still
//! reported. Memory is bounded: at most `max_open` incidents are open (more subjects are
//! counted in [`IncidentBook::overflow`], except priority ones such as the gateway's),
//! each keeps at most [`MAX_ALERT_MACS`] MACs and [`MAX_DETAILS`] detail strings.

use honeybee_proto::event::{MAX_ALERT_MACS, MAX_FIELD_LEN, NetworkAlert, clamp};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Distinct detail strings kept per incident.
pub const MAX_DETAILS: usize = 8;
/// Longest detail string kept.
const MAX_DETAIL_LEN: usize = 256;

/// An Ethernet MAC address.
pub type Mac = [u8; 6];

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_str(m: &Mac) -> String {
    let parts: Vec<String> = m.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

/// Which event an incident becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertClass {
    /// `poisoning_detected`.
    Poisoning,
    /// `network_anomaly`.
    Anomaly,
}

/// A finished incident, ready to be an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub class: AlertClass,
    pub alert: NetworkAlert,
}

/// Timing and bounds of an [`IncidentBook`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncidentConfig {
    pub quiet_ms: u64,
    pub max_ms: u64,
    pub max_open: usize,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            quiet_ms: 30_000,
            max_ms: 300_000,
            max_open: 64,
        }
    }
}

/// One open incident; detectors fill in what they know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub what: String,
    pub ip: Option<IpAddr>,
    pub macs: Vec<Mac>,
    pub expected: Option<String>,
    pub count: u32,
    pub first_ms: u64,
    pub last_ms: u64,
    pub details: Vec<String>,
    /// A detector's own mark (ARP: the expected MAC was seen again during the incident).
    pub flag: bool,
}

impl Incident {
    pub fn add_mac(&mut self, m: Mac) {
        if !self.macs.contains(&m) && self.macs.len() < MAX_ALERT_MACS {
            self.macs.push(m);
        }
    }

    pub fn add_detail(&mut self, d: &str) {
        let d = clamp(d, MAX_DETAIL_LEN);
        if !self.details.contains(&d) && self.details.len() < MAX_DETAILS {
            self.details.push(d);
        }
    }

    fn report(&self, class: AlertClass) -> Alert {
        Alert {
            class,
            alert: NetworkAlert {
                what: clamp(&self.what, 256),
                ip: self.ip,
                macs: self.macs.iter().map(mac_str).collect(),
                expected: self.expected.as_deref().map(|e| clamp(e, 1024)),
                count: self.count,
                duration_ms: self.last_ms.saturating_sub(self.first_ms),
                detail: clamp(&self.details.join("; "), MAX_FIELD_LEN),
            },
        }
    }
}

/// The open incidents of one detector, by subject.
#[derive(Debug)]
pub struct IncidentBook {
    cfg: IncidentConfig,
    class: AlertClass,
    open: BTreeMap<String, Incident>,
    /// Packets of new subjects refused because `max_open` incidents were open.
    pub overflow: u64,
}

impl IncidentBook {
    pub fn new(cfg: IncidentConfig, class: AlertClass) -> Self {
        IncidentBook {
            cfg,
            class,
            open: BTreeMap::new(),
            overflow: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    pub fn get_mut(&mut self, subject: &str) -> Option<&mut Incident> {
        self.open.get_mut(subject)
    }

    /// Counts one packet of incident `subject` (opened as `what` about `ip` if new) and
    /// returns it for the detector to add what it knows; `None` when the book is full and
    /// the subject is not `priority`.
    pub fn hit(
        &mut self,
        subject: &str,
        what: &str,
        ip: Option<IpAddr>,
        priority: bool,
        now_ms: u64,
    ) -> Option<&mut Incident> {
        if !self.open.contains_key(subject) {
            if self.open.len() >= self.cfg.max_open && !priority {
                self.overflow = self.overflow.saturating_add(1);
                return None;
            }
            self.open.insert(
                subject.to_owned(),
                Incident {
                    what: what.to_owned(),
                    ip,
                    macs: Vec::new(),
                    expected: None,
                    count: 0,
                    first_ms: now_ms,
                    last_ms: now_ms,
                    details: Vec::new(),
                    flag: false,
                },
            );
        }
        let i = self.open.get_mut(subject)?;
        i.count = i.count.saturating_add(1);
        i.last_ms = i.last_ms.max(now_ms);
        Some(i)
    }

    /// Closes the incidents that are quiet or too old; returns them (with their subjects,
    /// so a detector can act on what ended before it becomes an alert).
    pub fn close_due(&mut self, now_ms: u64) -> Vec<(String, Incident)> {
        let cfg = self.cfg;
        let due: Vec<String> = self
            .open
            .iter()
            .filter(|(_, i)| {
                now_ms.saturating_sub(i.last_ms) >= cfg.quiet_ms
                    || now_ms.saturating_sub(i.first_ms) >= cfg.max_ms
            })
            .map(|(k, _)| k.clone())
            .collect();
        due.into_iter()
            .filter_map(|k| self.open.remove(&k).map(|i| (k, i)))
            .collect()
    }

    /// Closes every incident (the service is stopping).
    pub fn close_all(&mut self) -> Vec<(String, Incident)> {
        std::mem::take(&mut self.open).into_iter().collect()
    }

    /// The alert of a closed incident.
    pub fn alert(&self, i: &Incident) -> Alert {
        i.report(self.class)
    }

    /// [`close_due`](Self::close_due) straight to alerts.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Alert> {
        let closed = self.close_due(now_ms);
        closed.iter().map(|(_, i)| self.alert(i)).collect()
    }

    /// [`close_all`](Self::close_all) straight to alerts.
    pub fn drain(&mut self) -> Vec<Alert> {
        let closed = self.close_all();
        closed.iter().map(|(_, i)| self.alert(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(max_open: usize) -> IncidentBook {
        IncidentBook::new(
            IncidentConfig {
                quiet_ms: 1_000,
                max_ms: 10_000,
                max_open,
            },
            AlertClass::Anomaly,
        )
    }

    #[test]
    fn packets_of_one_subject_are_one_incident_with_a_count() {
        let mut b = book(4);
        for t in 0..500u64 {
            let i = b.hit("10.0.0.1", "arp_spoof", None, false, t).unwrap();
            i.add_mac([2, 0, 0, 0, 0, (t % 3) as u8]);
            i.add_detail("x");
        }
        assert!(b.tick(1_000).is_empty(), "not quiet yet");
        let a = b.tick(1_499);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].alert.count, 500);
        assert_eq!(a[0].alert.duration_ms, 499);
        assert_eq!(a[0].alert.macs.len(), 3);
        assert_eq!(a[0].alert.detail, "x");
        assert!(b.is_empty());
    }

    #[test]
    fn endless_incident_is_reported_at_max_age_and_book_is_bounded() {
        let mut b = book(2);
        let mut reports = 0;
        for t in (0..25_000u64).step_by(100) {
            b.hit("a", "x", None, false, t);
            reports += b.tick(t).len();
        }
        assert_eq!(reports, 2, "at 10 s and 20 s");
        b.hit("b", "x", None, false, 0);
        assert!(b.hit("c", "x", None, false, 0).is_none());
        assert_eq!(b.overflow, 1);
        assert!(
            b.hit("gw", "x", None, true, 0).is_some(),
            "priority bypasses"
        );
        for _ in 0..100 {
            let i = b.hit("b", "x", None, false, 1).unwrap();
            i.add_mac([0; 6]);
            i.add_detail(&"d".repeat(10_000));
        }
        for n in 0..100u8 {
            let i = b.hit("b", "x", None, false, 1).unwrap();
            i.add_mac([n; 6]);
            i.add_detail(&n.to_string());
        }
        let all = b.drain();
        assert_eq!(all.len(), 3);
        for a in all {
            assert!(a.alert.macs.len() <= MAX_ALERT_MACS);
            assert!(a.alert.detail.len() <= MAX_FIELD_LEN);
        }
        assert_eq!(mac_str(&[0xaa, 0, 1, 2, 3, 0xff]), "aa:00:01:02:03:ff");
    }
}

//! The impairment model: what one direction of a link does to the datagrams sent into it,
//! and when a NAT in front of the sender rebinds. Sans-IO in the manner of quinn-proto:
//! the caller passes datagrams and the current time in ([`Link::send`]), takes datagrams
//! out when they are due ([`Link::poll_transmit`]) and sleeps until [`Link::poll_timeout`].
//! Time is a [`Duration`] since any epoch the caller likes, so tests drive it as a
//! virtual clock and the proxy drives it from the wall clock.

use crate::rng::Rng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

/// A probability in [0, 1]. Parsed once, so the model never checks it again.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Probability(f64);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0} is not a probability (expected 0 to 1, or 0% to 100%)")]
pub struct NotAProbability(pub f64);

impl Probability {
    pub const ZERO: Probability = Probability(0.0);
    pub const ONE: Probability = Probability(1.0);

    pub fn new(p: f64) -> Result<Probability, NotAProbability> {
        if (0.0..=1.0).contains(&p) {
            Ok(Probability(p))
        } else {
            Err(NotAProbability(p))
        }
    }

    pub fn percent(p: f64) -> Result<Probability, NotAProbability> {
        Probability::new(p / 100.0).map_err(|_| NotAProbability(p / 100.0))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

/// Which datagrams are lost.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Loss {
    #[default]
    None,
    /// Each datagram independently.
    Random(Probability),
    /// Bursts: a two-state Markov chain (Gilbert-Elliott).
    Bursty(GilbertElliott),
}

impl Loss {
    /// The long-run fraction of datagrams lost.
    pub fn mean(&self) -> f64 {
        match self {
            Loss::None => 0.0,
            Loss::Random(p) => p.get(),
            Loss::Bursty(ge) => ge.mean_loss(),
        }
    }
}

/// The Gilbert-Elliott loss model: a good and a bad state, a transition probability out
/// of each per datagram, and a loss probability in each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    pub good_to_bad: Probability,
    pub bad_to_good: Probability,
    pub loss_in_good: Probability,
    pub loss_in_bad: Probability,
}

impl GilbertElliott {
    /// The simple Gilbert model with a given mean loss and mean burst length (datagrams):
    /// every datagram is lost in the bad state and none in the good one, the bad state
    /// lasts `mean_burst` datagrams on average, and the good-to-bad probability is chosen
    /// so that the stationary share of the bad state is `mean_loss`.
    pub fn bursty(mean_loss: Probability, mean_burst: f64) -> GilbertElliott {
        let r = (1.0 / mean_burst.max(1.0)).min(1.0);
        let l = mean_loss.get().min(0.999_999);
        let p = (l * r / (1.0 - l)).min(1.0);
        GilbertElliott {
            good_to_bad: Probability(p),
            bad_to_good: Probability(r),
            loss_in_good: Probability::ZERO,
            loss_in_bad: Probability::ONE,
        }
    }

    pub fn mean_loss(&self) -> f64 {
        let (p, r) = (self.good_to_bad.get(), self.bad_to_good.get());
        if p + r == 0.0 {
            return self.loss_in_good.get();
        }
        let bad = p / (p + r);
        bad * self.loss_in_bad.get() + (1.0 - bad) * self.loss_in_good.get()
    }
}

/// What a partitioned link does with datagrams: keep them until it heals (turmoil's
/// `hold`), or lose them (a cable pulled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    Hold,
    Drop,
}

/// Everything one direction of a link does. `Impairment::default()` is a clean link.
#[derive(Debug, Clone, PartialEq)]
pub struct Impairment {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Each datagram's delay varies uniformly within ±`jitter` (never below zero).
    /// Jitter alone does not reorder: the link stays first-in first-out, as a real queue
    /// does, so reordering is exactly what `reorder` asks for.
    pub jitter: Duration,
    pub loss: Loss,
    /// Share of datagrams held back by `reorder_gap` beyond their normal delivery time,
    /// letting the datagrams sent after them overtake.
    pub reorder: Probability,
    pub reorder_gap: Duration,
    /// Share of datagrams delivered twice.
    pub duplicate: Probability,
    /// Bandwidth limit in bits per second: datagrams are serialised one after another.
    pub rate_bps: Option<u64>,
    /// Most bytes waiting for serialisation behind the rate limit; beyond it datagrams
    /// are dropped at the tail, like a router's queue.
    pub queue_bytes: usize,
    /// Datagrams larger than this are dropped (QUIC sets don't-fragment).
    pub mtu: Option<usize>,
    pub partition: Option<Partition>,
    /// Most datagrams a `Hold` partition keeps; the rest are dropped.
    pub hold_limit: usize,
}

/// Default reorder gap: long enough that the next few datagrams overtake.
pub const DEFAULT_REORDER_GAP: Duration = Duration::from_millis(10);

impl Default for Impairment {
    fn default() -> Self {
        Impairment {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: Loss::None,
            reorder: Probability::ZERO,
            reorder_gap: DEFAULT_REORDER_GAP,
            duplicate: Probability::ZERO,
            rate_bps: None,
            queue_bytes: 1 << 20,
            mtu: None,
            partition: None,
            hold_limit: 10_000,
        }
    }
}

impl Impairment {
    /// A clean link.
    pub fn clean() -> Impairment {
        Impairment::default()
    }

    /// True when the link does nothing at all to what passes.
    pub fn is_clean(&self) -> bool {
        self.delay.is_zero()
            && self.jitter.is_zero()
            && self.loss.mean() == 0.0
            && self.reorder.get() == 0.0
            && self.duplicate.get() == 0.0
            && self.rate_bps.is_none()
            && self.mtu.is_none()
            && self.partition.is_none()
    }

    /// A short description, netem style, for reports and logs.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.delay.is_zero() || !self.jitter.is_zero() {
            if self.jitter.is_zero() {
                parts.push(format!("delay {}ms", self.delay.as_millis()));
            } else {
                parts.push(format!(
                    "delay {}±{}ms",
                    self.delay.as_millis(),
                    self.jitter.as_millis()
                ));
            }
        }
        match self.loss {
            Loss::None => {}
            Loss::Random(p) => parts.push(format!("loss {}%", pct(p.get()))),
            Loss::Bursty(ge) => parts.push(format!(
                "loss {}% in bursts of {:.1}",
                pct(ge.mean_loss()),
                1.0 / ge.bad_to_good.get().max(f64::MIN_POSITIVE)
            )),
        }
        if self.reorder.get() > 0.0 {
            parts.push(format!("reorder {}%", pct(self.reorder.get())));
        }
        if self.duplicate.get() > 0.0 {
            parts.push(format!("duplicate {}%", pct(self.duplicate.get())));
        }
        if let Some(r) = self.rate_bps {
            parts.push(format!("rate {}", crate::parse::format_rate(r)));
        }
        if let Some(m) = self.mtu {
            parts.push(format!("mtu {m}"));
        }
        match self.partition {
            Some(Partition::Hold) => parts.push("partitioned (hold)".into()),
            Some(Partition::Drop) => parts.push("partitioned (drop)".into()),
            None => {}
        }
        if parts.is_empty() {
            "clean".into()
        } else {
            parts.join(", ")
        }
    }
}

fn pct(p: f64) -> String {
    let v = p * 100.0;
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round())
    } else {
        format!("{v:.2}")
    }
}

/// What a link did, counted since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub sent: u64,
    pub sent_bytes: u64,
    pub delivered: u64,
    pub delivered_bytes: u64,
    pub lost: u64,
    pub dropped_mtu: u64,
    pub dropped_queue: u64,
    pub dropped_partition: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Datagrams a `Hold` partition is keeping right now.
    pub held: u64,
}

impl LinkStats {
    pub fn add(&mut self, o: &LinkStats) {
        self.sent += o.sent;
        self.sent_bytes += o.sent_bytes;
        self.delivered += o.delivered;
        self.delivered_bytes += o.delivered_bytes;
        self.lost += o.lost;
        self.dropped_mtu += o.dropped_mtu;
        self.dropped_queue += o.dropped_queue;
        self.dropped_partition += o.dropped_partition;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.held += o.held;
    }

    /// Every datagram dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.lost + self.dropped_mtu + self.dropped_queue + self.dropped_partition
    }
}

/// A datagram waiting for its delivery time; ordered by (time, arrival) only.
struct Scheduled<P> {
    at: Duration,
    seq: u64,
    packet: P,
}

impl<P> PartialEq for Scheduled<P> {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl<P> Eq for Scheduled<P> {}
impl<P> PartialOrd for Scheduled<P> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<P> Ord for Scheduled<P> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// One direction of an impaired link. `P` is the datagram (its bytes are only measured).
pub struct Link<P = Vec<u8>> {
    imp: Impairment,
    rng: Rng,
    /// Gilbert-Elliott state: true while in the bad state.
    bad: bool,
    scheduled: BinaryHeap<Reverse<Scheduled<P>>>,
    held: VecDeque<P>,
    /// When the rate limiter finishes serialising what it has accepted.
    busy_until: Duration,
    /// Delivery time of the last in-order datagram: later ones never overtake it.
    last_in_order: Duration,
    seq: u64,
    stats: LinkStats,
}

impl<P: AsRef<[u8]> + Clone> Link<P> {
    pub fn new(imp: Impairment, seed: u64) -> Link<P> {
        Link {
            imp,
            rng: Rng::new(seed),
            bad: false,
            scheduled: BinaryHeap::new(),
            held: VecDeque::new(),
            busy_until: Duration::ZERO,
            last_in_order: Duration::ZERO,
            seq: 0,
            stats: LinkStats::default(),
        }
    }

    pub fn impairment(&self) -> &Impairment {
        &self.imp
    }

    pub fn stats(&self) -> LinkStats {
        LinkStats {
            held: self.held.len() as u64,
            ..self.stats
        }
    }

    /// Changes the impairment from `now` on. Starting a partition catches the datagrams
    /// in flight too (a `Drop` loses them, a `Hold` keeps them); healing a `Hold` sends
    /// everything it kept, in order, through the link as if sent now.
    pub fn set_impairment(&mut self, now: Duration, imp: Impairment) {
        let before = self.imp.partition;
        let after = imp.partition;
        self.imp = imp;
        match (before, after) {
            (_, Some(Partition::Drop)) => {
                let n = (self.scheduled.len() + self.held.len()) as u64;
                self.stats.dropped_partition += n;
                self.scheduled.clear();
                self.held.clear();
            }
            (None, Some(Partition::Hold)) => {
                let mut in_flight: Vec<_> = std::mem::take(&mut self.scheduled)
                    .into_iter()
                    .map(|Reverse(s)| s)
                    .collect();
                in_flight.sort();
                for s in in_flight {
                    self.hold(s.packet);
                }
            }
            (Some(Partition::Hold), None) => {
                for p in std::mem::take(&mut self.held) {
                    self.admit(now, p);
                }
            }
            _ => {}
        }
    }

    /// Sets or clears the partition, keeping everything else.
    pub fn set_partition(&mut self, now: Duration, partition: Option<Partition>) {
        let imp = Impairment {
            partition,
            ..self.imp.clone()
        };
        self.set_impairment(now, imp);
    }

    /// A datagram enters the link at `now`.
    pub fn send(&mut self, now: Duration, packet: P) {
        self.stats.sent += 1;
        self.stats.sent_bytes += packet.as_ref().len() as u64;
        match self.imp.partition {
            Some(Partition::Drop) => self.stats.dropped_partition += 1,
            Some(Partition::Hold) => self.hold(packet),
            None => self.admit(now, packet),
        }
    }

    fn hold(&mut self, packet: P) {
        if self.held.len() < self.imp.hold_limit {
            self.held.push_back(packet);
        } else {
            self.stats.dropped_partition += 1;
        }
    }

    fn admit(&mut self, now: Duration, packet: P) {
        if self.imp.mtu.is_some_and(|m| packet.as_ref().len() > m) {
            self.stats.dropped_mtu += 1;
            return;
        }
        if self.lose() {
            self.stats.lost += 1;
            return;
        }
        if self.rng.chance(self.imp.duplicate.get()) {
            self.stats.duplicated += 1;
            self.schedule(now, packet.clone());
        }
        self.schedule(now, packet);
    }

    fn lose(&mut self) -> bool {
        match self.imp.loss {
            Loss::None => false,
            Loss::Random(p) => self.rng.chance(p.get()),
            Loss::Bursty(ge) => {
                let flip = if self.bad {
                    ge.bad_to_good
                } else {
                    ge.good_to_bad
                };
                if self.rng.chance(flip.get()) {
                    self.bad = !self.bad;
                }
                let p = if self.bad {
                    ge.loss_in_bad
                } else {
                    ge.loss_in_good
                };
                self.rng.chance(p.get())
            }
        }
    }

    fn schedule(&mut self, now: Duration, packet: P) {
        let len = packet.as_ref().len();
        let mut departs = now;
        if let Some(rate) = self.imp.rate_bps.filter(|r| *r > 0) {
            let backlog = self.busy_until.saturating_sub(now);
            let backlog_bytes = backlog.as_secs_f64() * rate as f64 / 8.0;
            if backlog_bytes + len as f64 > self.imp.queue_bytes as f64 {
                self.stats.dropped_queue += 1;
                return;
            }
            let start = self.busy_until.max(now);
            departs = start + Duration::from_secs_f64(len as f64 * 8.0 / rate as f64);
            self.busy_until = departs;
        }
        let mut at = departs + self.imp.delay;
        if !self.imp.jitter.is_zero() {
            let j = self.imp.jitter.as_secs_f64() * self.rng.symmetric();
            at = if j >= 0.0 {
                at + Duration::from_secs_f64(j)
            } else {
                at.saturating_sub(Duration::from_secs_f64(-j)).max(departs)
            };
        }
        if self.rng.chance(self.imp.reorder.get()) {
            self.stats.reordered += 1;
            at += self.imp.reorder_gap;
        } else {
            at = at.max(self.last_in_order);
            self.last_in_order = at;
        }
        self.seq += 1;
        self.scheduled.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            packet,
        }));
    }

    /// The next datagram due at `now`, if any.
    pub fn poll_transmit(&mut self, now: Duration) -> Option<P> {
        if self.scheduled.peek()?.0.at > now {
            return None;
        }
        let Reverse(s) = self.scheduled.pop()?;
        self.stats.delivered += 1;
        self.stats.delivered_bytes += s.packet.as_ref().len() as u64;
        Some(s.packet)
    }

    /// When the next datagram is due; `None` when nothing is in flight.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.scheduled.peek().map(|s| s.0.at)
    }

    /// Datagrams in flight (scheduled, not held).
    pub fn in_flight(&self) -> usize {
        self.scheduled.len()
    }
}

/// When the NAT in front of a client rebinds: the client's public address or port
/// changes, every `every`, from `start + every` on.
#[derive(Debug, Clone)]
pub struct Rebinding {
    every: Option<Duration>,
    next: Option<Duration>,
}

impl Rebinding {
    pub fn new(now: Duration, every: Option<Duration>) -> Rebinding {
        let every = every.filter(|e| !e.is_zero());
        Rebinding {
            every,
            next: every.map(|e| now + e),
        }
    }

    /// Starts the schedule again from `now` with a new period (or none).
    pub fn set(&mut self, now: Duration, every: Option<Duration>) {
        *self = Rebinding::new(now, every);
    }

    pub fn every(&self) -> Option<Duration> {
        self.every
    }

    pub fn poll_timeout(&self) -> Option<Duration> {
        self.next
    }

    /// True when a rebinding is due at `now`; a late caller gets one, not a backlog.
    pub fn poll(&mut self, now: Duration) -> bool {
        match (self.next, self.every) {
            (Some(next), Some(every)) if next <= now => {
                let mut n = next;
                while n <= now {
                    n += every;
                }
                self.next = Some(n);
                true
            }
            _ => false,
        }
    }
}

/// Both directions of a client's link and its NAT: what the proxy keeps per client.
pub struct Path<P = Vec<u8>> {
    /// Client to server.
    pub up: Link<P>,
    /// Server to client.
    pub down: Link<P>,
    pub rebinding: Rebinding,
}

impl<P: AsRef<[u8]> + Clone> Path<P> {
    /// Each direction gets its own random stream derived from `seed`.
    pub fn new(
        now: Duration,
        up: Impairment,
        down: Impairment,
        rebind_every: Option<Duration>,
        seed: u64,
    ) -> Path<P> {
        Path {
            up: Link::new(up, seed ^ 0x5555_0000_0000_0001),
            down: Link::new(down, seed ^ 0xAAAA_0000_0000_0002),
            rebinding: Rebinding::new(now, rebind_every),
        }
    }

    /// The earliest of the two links' and the NAT's deadlines.
    pub fn poll_timeout(&self) -> Option<Duration> {
        [
            self.up.poll_timeout(),
            self.down.poll_timeout(),
            self.rebinding.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn pkt(i: u32, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len.max(4)];
        v[..4].copy_from_slice(&i.to_be_bytes());
        v
    }

    fn id(p: &[u8]) -> u32 {
        u32::from_be_bytes(p[..4].try_into().unwrap())
    }

    /// Runs the virtual clock until the link is empty; returns (delivery time, id).
    fn drain(link: &mut Link, mut now: Duration) -> Vec<(Duration, u32)> {
        let mut out = Vec::new();
        while let Some(t) = link.poll_timeout() {
            now = now.max(t);
            while let Some(p) = link.poll_transmit(now) {
                out.push((now, id(&p)));
            }
        }
        out
    }

    /// Sends `n` datagrams, one every `gap`, and delivers whatever is due in between.
    fn run(link: &mut Link, n: u32, gap: Duration, len: usize) -> Vec<(Duration, u32)> {
        let mut out = Vec::new();
        let mut now = Duration::ZERO;
        for i in 0..n {
            while let Some(t) = link.poll_timeout().filter(|t| *t <= now) {
                while let Some(p) = link.poll_transmit(t) {
                    out.push((t, id(&p)));
                }
            }
            link.send(now, pkt(i, len));
            now += gap;
        }
        out.extend(drain(link, now));
        out
    }

    fn prob(p: f64) -> Probability {
        Probability::new(p).unwrap()
    }

    #[test]
    fn clean_link_is_immediate_and_in_order() {
        let mut l = Link::new(Impairment::clean(), 1);
        l.send(Duration::ZERO, pkt(1, 10));
        l.send(Duration::ZERO, pkt(2, 10));
        assert_eq!(l.poll_timeout(), Some(Duration::ZERO));
        assert_eq!(id(&l.poll_transmit(Duration::ZERO).unwrap()), 1);
        assert_eq!(id(&l.poll_transmit(Duration::ZERO).unwrap()), 2);
        assert!(l.poll_transmit(Duration::ZERO).is_none());
        assert_eq!(l.poll_timeout(), None);
        assert!(Impairment::clean().is_clean());
    }

    #[test]
    fn delay_is_exact_and_deadline_is_reported() {
        let imp = Impairment {
            delay: 50 * MS,
            ..Default::default()
        };
        let mut l = Link::new(imp, 1);
        l.send(10 * MS, pkt(1, 10));
        assert_eq!(l.poll_timeout(), Some(60 * MS));
        assert!(l.poll_transmit(59 * MS).is_none());
        assert!(l.poll_transmit(60 * MS).is_some());
    }

    #[test]
    fn jitter_stays_in_bounds_and_keeps_order() {
        let imp = Impairment {
            delay: 50 * MS,
            jitter: 20 * MS,
            ..Default::default()
        };
        let mut l = Link::new(imp, 2);
        let out = run(&mut l, 2000, MS, 100);
        assert_eq!(out.len(), 2000);
        let ids: Vec<u32> = out.iter().map(|o| o.1).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "jitter alone must not reorder"
        );
        let mut spread = (Duration::MAX, Duration::ZERO);
        for (t, i) in &out {
            let d = *t - MS * *i;
            assert!(d >= 30 * MS, "delay {d:?} under delay - jitter");
            spread = (spread.0.min(d), spread.1.max(d));
        }
        assert!(spread.1 > spread.0 + 10 * MS, "no jitter seen: {spread:?}");
    }

    #[test]
    fn random_loss_matches_its_rate() {
        let imp = Impairment {
            loss: Loss::Random(prob(0.05)),
            ..Default::default()
        };
        let mut l = Link::new(imp, 3);
        let out = run(&mut l, 100_000, MS, 10);
        let lost = 100_000 - out.len() as u64;
        assert_eq!(lost, l.stats().lost);
        let rate = lost as f64 / 100_000.0;
        assert!((rate - 0.05).abs() < 0.005, "loss {rate}");
    }

    /// Mean length of runs of consecutive lost datagrams.
    fn mean_burst(out: &[(Duration, u32)], n: u32) -> f64 {
        let got: std::collections::HashSet<u32> = out.iter().map(|o| o.1).collect();
        let (mut bursts, mut lost, mut in_burst) = (0u64, 0u64, false);
        for i in 0..n {
            if got.contains(&i) {
                in_burst = false;
            } else {
                lost += 1;
                if !in_burst {
                    bursts += 1;
                }
                in_burst = true;
            }
        }
        lost as f64 / bursts.max(1) as f64
    }

    #[test]
    fn gilbert_elliott_loses_in_bursts_at_the_same_mean() {
        let n = 200_000;
        let ge = GilbertElliott::bursty(prob(0.05), 4.0);
        assert!((ge.mean_loss() - 0.05).abs() < 1e-9);
        let mut bursty = Link::new(
            Impairment {
                loss: Loss::Bursty(ge),
                ..Default::default()
            },
            4,
        );
        let out = run(&mut bursty, n, MS, 10);
        let rate = 1.0 - out.len() as f64 / n as f64;
        assert!((rate - 0.05).abs() < 0.01, "bursty loss {rate}");
        let burst = mean_burst(&out, n);
        assert!((burst - 4.0).abs() < 0.5, "mean burst {burst}");

        let mut random = Link::new(
            Impairment {
                loss: Loss::Random(prob(0.05)),
                ..Default::default()
            },
            4,
        );
        let out = run(&mut random, n, MS, 10);
        assert!(mean_burst(&out, n) < 1.2, "independent loss is not bursty");
    }

    #[test]
    fn reordering_moves_the_asked_share() {
        let imp = Impairment {
            delay: 5 * MS,
            reorder: prob(0.01),
            reorder_gap: 10 * MS,
            ..Default::default()
        };
        let mut l = Link::new(imp, 5);
        let n = 50_000;
        let out = run(&mut l, n, MS, 10);
        assert_eq!(out.len(), n as usize, "reordering loses nothing");
        // A datagram is late if a higher id was delivered before it.
        let mut max_seen = None;
        let mut late = 0;
        for (_, i) in &out {
            if max_seen.is_some_and(|m| m > *i) {
                late += 1;
            }
            max_seen = max_seen.max(Some(*i));
        }
        let share = late as f64 / n as f64;
        assert!((share - 0.01).abs() < 0.003, "reordered {share}");
        assert_eq!(l.stats().reordered, late);
    }

    #[test]
    fn duplication_delivers_extra_copies() {
        let imp = Impairment {
            duplicate: prob(0.02),
            ..Default::default()
        };
        let mut l = Link::new(imp, 6);
        let out = run(&mut l, 50_000, MS, 10);
        let extra = out.len() - 50_000;
        assert_eq!(extra as u64, l.stats().duplicated);
        assert!((extra as f64 / 50_000.0 - 0.02).abs() < 0.004);
    }

    #[test]
    fn rate_limit_serialises_and_tail_drops() {
        // 1 Mbit/s, 1250-byte datagrams: one every 10 ms.
        let imp = Impairment {
            rate_bps: Some(1_000_000),
            queue_bytes: 10 * 1250,
            ..Default::default()
        };
        let mut l = Link::new(imp, 7);
        for i in 0..20 {
            l.send(Duration::ZERO, pkt(i, 1250));
        }
        // The queue holds 10 datagrams' worth; the rest were dropped at the tail.
        assert_eq!(l.stats().dropped_queue, 10);
        let out = drain(&mut l, Duration::ZERO);
        let times: Vec<u128> = out.iter().map(|o| o.0.as_millis()).collect();
        assert_eq!(times, (1..=10).map(|i| i * 10).collect::<Vec<u128>>());
    }

    #[test]
    fn mtu_drops_oversized_datagrams() {
        let imp = Impairment {
            mtu: Some(1200),
            ..Default::default()
        };
        let mut l = Link::new(imp, 8);
        l.send(Duration::ZERO, pkt(1, 1200));
        l.send(Duration::ZERO, pkt(2, 1201));
        let out = drain(&mut l, Duration::ZERO);
        assert_eq!(out.iter().map(|o| o.1).collect::<Vec<_>>(), vec![1]);
        assert_eq!(l.stats().dropped_mtu, 1);
    }

    #[test]
    fn drop_partition_loses_in_flight_and_new_datagrams() {
        let imp = Impairment {
            delay: 50 * MS,
            ..Default::default()
        };
        let mut l = Link::new(imp, 9);
        l.send(Duration::ZERO, pkt(1, 10));
        l.set_partition(10 * MS, Some(Partition::Drop));
        l.send(20 * MS, pkt(2, 10));
        assert_eq!(l.poll_timeout(), None);
        l.set_partition(30 * MS, None);
        l.send(40 * MS, pkt(3, 10));
        let out = drain(&mut l, 40 * MS);
        assert_eq!(out, vec![(90 * MS, 3)]);
        assert_eq!(l.stats().dropped_partition, 2);
    }

    #[test]
    fn hold_partition_delivers_everything_in_order_after_healing() {
        let imp = Impairment {
            delay: 50 * MS,
            ..Default::default()
        };
        let mut l = Link::new(imp, 10);
        l.send(Duration::ZERO, pkt(1, 10));
        l.set_partition(10 * MS, Some(Partition::Hold));
        for i in 2..=5 {
            l.send(MS * (10 * i), pkt(i, 10));
        }
        assert_eq!(l.poll_timeout(), None, "nothing passes a partition");
        assert_eq!(l.stats().held, 5);
        l.set_partition(30_000 * MS, None);
        let out = drain(&mut l, 30_000 * MS);
        assert_eq!(
            out,
            (1..=5).map(|i| (30_050 * MS, i)).collect::<Vec<_>>(),
            "held datagrams leave at healing time plus the link's delay, in order"
        );
        assert_eq!(l.stats().dropped(), 0);
    }

    #[test]
    fn hold_partition_is_bounded() {
        let imp = Impairment {
            partition: Some(Partition::Hold),
            hold_limit: 3,
            ..Default::default()
        };
        let mut l = Link::new(imp, 11);
        for i in 0..5 {
            l.send(Duration::ZERO, pkt(i, 10));
        }
        assert_eq!(l.stats().held, 3);
        assert_eq!(l.stats().dropped_partition, 2);
    }

    #[test]
    fn same_seed_same_impairments() {
        let imp = Impairment {
            delay: 20 * MS,
            jitter: 10 * MS,
            loss: Loss::Bursty(GilbertElliott::bursty(prob(0.1), 3.0)),
            reorder: prob(0.05),
            duplicate: prob(0.05),
            ..Default::default()
        };
        let a = run(&mut Link::new(imp.clone(), 42), 5000, MS, 100);
        let b = run(&mut Link::new(imp.clone(), 42), 5000, MS, 100);
        let c = run(&mut Link::new(imp, 43), 5000, MS, 100);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn rebinding_fires_on_schedule_without_backlog() {
        let mut r = Rebinding::new(Duration::ZERO, Some(30 * MS));
        assert_eq!(r.poll_timeout(), Some(30 * MS));
        assert!(!r.poll(29 * MS));
        assert!(r.poll(30 * MS));
        assert_eq!(r.poll_timeout(), Some(60 * MS));
        // Woken very late: one rebinding, and the schedule moves past now.
        assert!(r.poll(200 * MS));
        assert!(!r.poll(200 * MS));
        assert_eq!(r.poll_timeout(), Some(210 * MS));
        let mut off = Rebinding::new(Duration::ZERO, None);
        assert!(!off.poll(Duration::from_secs(3600)));
        assert_eq!(off.poll_timeout(), None);
    }

    #[test]
    fn path_deadline_is_the_earliest() {
        let p: Path = Path::new(
            Duration::ZERO,
            Impairment::clean(),
            Impairment::clean(),
            Some(5 * MS),
            1,
        );
        assert_eq!(p.poll_timeout(), Some(5 * MS));
    }

    #[test]
    fn probabilities_are_checked() {
        assert!(Probability::new(1.5).is_err());
        assert!(Probability::new(-0.1).is_err());
        assert_eq!(Probability::percent(5.0).unwrap().get(), 0.05);
        assert!(Probability::percent(101.0).is_err());
    }
}

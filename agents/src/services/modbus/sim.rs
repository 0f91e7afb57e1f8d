//! The process behind the PLC: a pumped storage tank. Every value is a function of the
//! wall clock and the node's seed, so two connections (or two restarts) at the same
//! moment read the same plant, a poller sees it move smoothly, and no two nodes share
//! a plant.
//!
//! - The level rises while a pump runs and falls while none does (one fill/drain cycle
//!   of 25–60 minutes); the two pumps take turns, one cycle each.
//! - Temperature follows a slow day-like swing, pressure and motor current follow the
//!   pumps, a pH reading wanders a little; every analogue value carries sensor noise
//!   that changes every half second.
//! - Counters (running hours, pump starts, pumped volume) only ever grow.

/// SplitMix64: a well-mixed 64-bit value from any input.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The plant of one node.
#[derive(Debug, Clone)]
pub(crate) struct Process {
    seed: u64,
    /// Fill/drain cycle, seconds.
    cycle: f64,
    phase: f64,
    level_mid: f64,
    level_amp: f64,
    temp_mid: f64,
    temp_amp: f64,
    temp_period: f64,
    pressure_base: f64,
    /// When the plant was commissioned (Unix seconds): counters count from there.
    commissioned: f64,
    /// Hours pump 2 ran before (a replaced pump 1 started from zero), starts, m³.
    hours0: [f64; 2],
    starts0: u64,
    volume0: f64,
}

/// One moment of the plant, in engineering units scaled as PLC words.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Reading {
    /// Tank level, 0.1 %.
    pub level: u16,
    /// Water temperature, 0.1 °C.
    pub temperature: u16,
    /// Discharge pressure, mbar.
    pub pressure: u16,
    /// Flow, 0.1 m³/h.
    pub flow: u16,
    /// Which pump runs (none while draining).
    pub pumps: [bool; 2],
    /// Running hours of each pump.
    pub hours: [u16; 2],
    /// Pump starts since commissioning (wraps as a 16-bit PLC counter does).
    pub starts: u16,
    /// Pumped volume, m³ (32 bits).
    pub volume: u32,
    /// Motor current, 0.1 A.
    pub current: u16,
    /// pH × 100.
    pub ph: u16,
    /// The agitator runs on a 15-minute schedule.
    pub agitator: bool,
    /// Heater on below 12 °C.
    pub heater: bool,
}

impl Process {
    pub(crate) fn new(seed: u64) -> Process {
        let r = |k: u64| (mix(seed ^ mix(k)) >> 11) as f64 / (1u64 << 53) as f64;
        let cycle = 1500.0 + r(1) * 2100.0;
        Process {
            seed,
            cycle,
            phase: r(2),
            level_mid: 450.0 + r(3) * 200.0,
            level_amp: 200.0 + r(4) * 150.0,
            temp_mid: 120.0 + r(5) * 100.0,
            temp_amp: 15.0 + r(6) * 25.0,
            temp_period: 86_400.0 * (0.8 + r(7) * 0.4),
            pressure_base: 1800.0 + r(8) * 1500.0,
            // Commissioned between 2015 and 2022.
            commissioned: 1_420_000_000.0 + r(13) * 220_000_000.0,
            hours0: [r(9) * 300.0, r(10) * 3000.0],
            starts0: (r(11) * 5000.0) as u64,
            volume0: r(12) * 50_000.0,
        }
    }

    /// Noise in [-1, 1] for signal `k`, constant for half a second.
    fn noise(&self, k: u64, t: f64) -> f64 {
        let slot = (t * 2.0).floor() as i64 as u64;
        let v = mix(self.seed ^ mix(k.wrapping_mul(0x1000_0001) ^ slot));
        (v >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    /// The plant at `t` (Unix seconds).
    pub(crate) fn at(&self, t: f64) -> Reading {
        use std::f64::consts::TAU;
        let turns = t / self.cycle + self.phase;
        let angle = turns.fract() * TAU;
        let cycle_no = turns.floor() as i64;
        // Level follows a sine; the pumps run while it rises (cos > 0), taking turns.
        let pumping = angle.cos() > 0.0;
        let duty = cycle_no.rem_euclid(2) as usize;
        let mut pumps = [false; 2];
        pumps[duty] = pumping;
        let level = self.level_mid + self.level_amp * angle.sin() + 3.0 * self.noise(1, t);
        let temp = self.temp_mid
            + self.temp_amp * (t / self.temp_period * TAU).sin()
            + 2.0 * self.noise(2, t);
        let pressure = self.pressure_base
            + if pumping { 650.0 } else { 0.0 }
            + 400.0 * (level / 1000.0)
            + 12.0 * self.noise(3, t);
        let flow = if pumping {
            420.0 + 25.0 * self.noise(4, t)
        } else {
            (1.5 * self.noise(4, t)).abs()
        };
        let current = if pumping {
            182.0 + 6.0 * self.noise(5, t)
        } else {
            0.0
        };
        let ph =
            715.0 + 25.0 * (t / 7_200.0 * TAU + self.phase * 5.0).sin() + 2.0 * self.noise(6, t);
        // Each pump runs every other cycle, half of it: a quarter of the time.
        let service = (t - self.commissioned).max(0.0) / 3600.0;
        let hours = [
            (self.hours0[0] + service / 4.0) as u64 as u16,
            (self.hours0[1] + service / 4.0) as u64 as u16,
        ];
        let first = (self.commissioned / self.cycle) as i64;
        let starts = self.starts0.wrapping_add((cycle_no - first).max(0) as u64) as u16;
        // 42 m³/h half the time.
        let volume = (self.volume0 + service * 21.0) as u64 as u32;
        let quarter = (t / 900.0).floor() as i64 as u64;
        let agitator = !mix(self.seed ^ quarter).is_multiple_of(3);
        Reading {
            level: clamp_word(level, 0.0, 1000.0),
            temperature: clamp_word(temp, 0.0, 1200.0),
            pressure: clamp_word(pressure, 0.0, 10_000.0),
            flow: clamp_word(flow, 0.0, 2000.0),
            pumps,
            hours,
            starts,
            volume,
            current: clamp_word(current, 0.0, 1000.0),
            ph: clamp_word(ph, 0.0, 1400.0),
            agitator,
            heater: temp < 120.0,
        }
    }
}

fn clamp_word(v: f64, lo: f64, hi: f64) -> u16 {
    v.clamp(lo, hi).round() as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_move_smoothly_and_counters_grow() {
        let p = Process::new(42);
        let t0 = 1_800_000_000.0;
        let a = p.at(t0);
        assert_eq!(a, p.at(t0 + 0.1), "the same half second reads the same");
        let b = p.at(t0 + 1.0);
        assert!(a.level.abs_diff(b.level) <= 10, "{a:?} {b:?}");
        // Over a cycle the level sweeps its range and both pumps run at some point.
        let mut seen = [false; 2];
        let (mut lo, mut hi) = (u16::MAX, 0);
        let mut last = a;
        for k in 0..2000 {
            let r = p.at(t0 + f64::from(k) * 5.0);
            lo = lo.min(r.level);
            hi = hi.max(r.level);
            seen[0] |= r.pumps[0];
            seen[1] |= r.pumps[1];
            assert!(!(r.pumps[0] && r.pumps[1]));
            assert!(r.volume >= last.volume);
            last = r;
        }
        assert!(hi - lo > 300, "{lo}..{hi}");
        assert!(seen[0] && seen[1]);
    }

    #[test]
    fn no_two_seeds_alike() {
        let t = 1_800_000_000.0;
        assert_ne!(Process::new(1).at(t), Process::new(2).at(t));
    }
}

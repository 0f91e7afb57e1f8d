//! The PLC behind the Modbus honeypot: coils, discrete inputs, holding and input
//! registers, device identification, UMAS; requests are checked in the order the Modbus
//! specification gives (function, quantity, address) and answered with the exception a
//! real device gives.
//!
//! The tables show a running process ([`sim`](super::sim)): the low input registers
//! and a block of holding registers are live measurements and counters, the low coils
//! are the outputs the program drives, the low discrete inputs its field signals. A
//! write to a live coil forces it (as an operator override does); a write to a live
//! register is accepted and overwritten by the next scan, as the PLC program does.
//!
//! Map (0-based):
//! - input registers 0..13: level (0.1 %), temperature (0.1 °C), pressure (mbar), flow
//!   (0.1 m³/h), pump 1 and 2 hours, pump starts, volume m³ (high, low word), motor
//!   current (0.1 A), pH × 100, status bits, scan time (0.1 ms); the rest read 0;
//! - holding registers 0..9: set points (writable); 16..29: the input registers again;
//!   the rest: writable memory;
//! - coils 0..6: pump 1, pump 2, agitator, heater, alarm horn, inlet valve; the rest are
//!   operator flags (writable);
//! - discrete inputs 0..8: level high, level low, pump 1 and 2 running, agitator
//!   running, door closed, emergency stop healthy, mains present.

use super::mbap::{Malformed, Request, Table};
use super::sim::{Process, Reading};
use super::umas::{self, Controller};
use honeybee_proto::config::ModbusOptions;

/// Exception codes.
pub(crate) const ILLEGAL_FUNCTION: u8 = 1;
pub(crate) const ILLEGAL_ADDRESS: u8 = 2;
pub(crate) const ILLEGAL_VALUE: u8 = 3;

/// Coils the program drives.
const LIVE_COILS: usize = 6;
/// Input registers with a meaning.
const LIVE_INPUTS: usize = 13;
/// Where the live block starts among the holding registers.
const HOLDING_LIVE: usize = 16;

/// The device's tables and identity, shared by every connection of one service.
#[derive(Debug)]
pub(crate) struct Plc {
    /// Per coil: `None` follows the program, `Some` was written (forced).
    coils: Vec<Option<bool>>,
    discrete: usize,
    holding: Vec<u16>,
    inputs: usize,
    process: Process,
    /// Device identification objects 0 (vendor), 1 (product code), 2 (revision).
    identity: [Vec<u8>; 3],
    controller: Controller,
    running: bool,
    seed: u64,
}

impl Plc {
    /// A PLC with the plant and project of seed 0 (the fuzz targets').
    pub(crate) fn new(o: &ModbusOptions) -> Plc {
        Plc::with_seed(o, 0)
    }

    /// A PLC whose plant and project come from `seed` (the node's persona).
    pub(crate) fn with_seed(o: &ModbusOptions, seed: u64) -> Plc {
        let id = |s: &str| s.as_bytes()[..s.len().min(64)].to_vec();
        let process = Process::new(seed);
        let n = usize::from(o.holding_registers);
        let mut holding = vec![0u16; n];
        // Set points: mode (1 auto), level high/low (0.1 %), pressure limit (mbar),
        // heater on below (0.1 °C), alternation on, cycle (minutes).
        let setpoints = [1, 750, 1200, 45, 150, 120, 4500, 1, 0, 0];
        for (r, v) in holding.iter_mut().zip(setpoints) {
            *r = v;
        }
        let coils = (0..usize::from(o.coils))
            .map(|i| {
                if i < LIVE_COILS {
                    None
                } else {
                    // Operator flags: a seeded few set.
                    Some((seed >> (i % 64)) & 7 == 1)
                }
            })
            .collect();
        Plc {
            coils,
            discrete: usize::from(o.coils),
            holding,
            inputs: n,
            process,
            identity: [id(&o.vendor), id(&o.product_code), id(&o.revision)],
            controller: controller(o, seed),
            running: true,
            seed,
        }
    }

    /// Applies one request now.
    pub(crate) fn handle(&mut self, req: &Result<Request, Malformed>) -> Vec<u8> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.handle_at(req, now)
    }

    /// Applies one request at `t` (Unix seconds); the response PDU (possibly an
    /// exception).
    pub(crate) fn handle_at(&mut self, req: &Result<Request, Malformed>, t: f64) -> Vec<u8> {
        let req = match req {
            Ok(r) => r,
            Err(Malformed { function }) => return exception(*function, ILLEGAL_VALUE),
        };
        match req {
            Request::Read { table, addr, count } => self.read(*table, *addr, *count, t),
            Request::WriteSingleCoil { addr, value } => {
                if *value != 0xff00 && *value != 0 {
                    return exception(5, ILLEGAL_VALUE);
                }
                match self.coils.get_mut(usize::from(*addr)) {
                    None => exception(5, ILLEGAL_ADDRESS),
                    Some(c) => {
                        *c = Some(*value == 0xff00);
                        echo(5, *addr, *value)
                    }
                }
            }
            Request::WriteSingleRegister { addr, value } => {
                match self.holding.get_mut(usize::from(*addr)) {
                    None => exception(6, ILLEGAL_ADDRESS),
                    Some(r) => {
                        *r = *value;
                        echo(6, *addr, *value)
                    }
                }
            }
            Request::WriteMultipleCoils { addr, count, bits } => {
                if !(1..=0x07b0).contains(count) || bits.len() != usize::from(*count).div_ceil(8) {
                    return exception(15, ILLEGAL_VALUE);
                }
                let Some(range) = span(*addr, *count, self.coils.len()) else {
                    return exception(15, ILLEGAL_ADDRESS);
                };
                for (k, c) in self.coils[range].iter_mut().enumerate() {
                    *c = Some(bits[k / 8] >> (k % 8) & 1 == 1);
                }
                echo(15, *addr, *count)
            }
            Request::WriteMultipleRegisters {
                addr,
                count,
                values,
            } => {
                if !(1..=123).contains(count) || values.len() != usize::from(*count) {
                    return exception(16, ILLEGAL_VALUE);
                }
                let Some(range) = span(*addr, *count, self.holding.len()) else {
                    return exception(16, ILLEGAL_ADDRESS);
                };
                self.holding[range].copy_from_slice(values);
                echo(16, *addr, *count)
            }
            Request::ReadDeviceId { code, object } => self.device_id(*code, *object),
            Request::Umas { key, code, data } => {
                umas::answer(&self.controller, &mut self.running, *key, *code, data)
            }
            Request::Unsupported { function } => exception(*function, ILLEGAL_FUNCTION),
        }
    }

    /// Input register `i` at reading `r` (and scan-time noise at `t`).
    fn input(&self, i: usize, r: &Reading, t: f64) -> u16 {
        match i {
            0 => r.level,
            1 => r.temperature,
            2 => r.pressure,
            3 => r.flow,
            4 => r.hours[0],
            5 => r.hours[1],
            6 => r.starts,
            7 => (r.volume >> 16) as u16,
            8 => r.volume as u16,
            9 => r.current,
            10 => r.ph,
            11 => {
                let outputs = self.outputs(r);
                let mut w = 0u16;
                for (k, &on) in outputs.iter().enumerate() {
                    w |= u16::from(on) << k;
                }
                w | u16::from(self.running) << 8 | u16::from(self.holding.first() == Some(&1)) << 9
            }
            // The CPU's scan time jitters from one scan to the next.
            12 => 38 + ((t * 10.0) as u64 ^ self.seed) as u16 % 7,
            _ => 0,
        }
    }

    /// The outputs the program drives (all off while the PLC is stopped).
    fn outputs(&self, r: &Reading) -> [bool; LIVE_COILS] {
        if !self.running {
            return [false; LIVE_COILS];
        }
        let alarm = r.level > 950 || r.level < 50;
        [
            r.pumps[0],
            r.pumps[1],
            r.agitator,
            r.heater,
            alarm,
            r.pumps[0] || r.pumps[1],
        ]
    }

    fn coil(&self, i: usize, r: &Reading) -> bool {
        match self.coils[i] {
            Some(v) => v,
            None => self.outputs(r).get(i).copied().unwrap_or(false),
        }
    }

    fn discrete_input(&self, i: usize, r: &Reading) -> bool {
        let out = self.outputs(r);
        match i {
            0 => r.level > 900,
            1 => r.level < 100,
            2 => self.coil(0, r) && out[0],
            3 => self.coil(1, r) && out[1],
            4 => self.coil(2, r) && out[2],
            5..=7 => true,
            _ => false,
        }
    }

    fn read(&self, table: Table, addr: u16, count: u16, t: f64) -> Vec<u8> {
        let (function, max, len) = match table {
            Table::Coils => (1, 2000, self.coils.len()),
            Table::DiscreteInputs => (2, 2000, self.discrete),
            Table::HoldingRegisters => (3, 125, self.holding.len()),
            Table::InputRegisters => (4, 125, self.inputs),
        };
        if !(1..=max).contains(&count) {
            return exception(function, ILLEGAL_VALUE);
        }
        let Some(range) = span(addr, count, len) else {
            return exception(function, ILLEGAL_ADDRESS);
        };
        let r = self.process.at(t);
        let mut out = vec![function, 0];
        match table {
            Table::Coils | Table::DiscreteInputs => {
                let mut packed = vec![0u8; range.len().div_ceil(8)];
                for (k, i) in range.enumerate() {
                    let b = if table == Table::Coils {
                        self.coil(i, &r)
                    } else {
                        self.discrete_input(i, &r)
                    };
                    packed[k / 8] |= u8::from(b) << (k % 8);
                }
                out.extend_from_slice(&packed);
            }
            Table::HoldingRegisters | Table::InputRegisters => {
                for i in range {
                    let v = match table {
                        Table::InputRegisters => self.input(i, &r, t),
                        _ if (HOLDING_LIVE..HOLDING_LIVE + LIVE_INPUTS).contains(&i) => {
                            self.input(i - HOLDING_LIVE, &r, t)
                        }
                        _ => self.holding[i],
                    };
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        // At most 250 data bytes (2000 bits, 125 registers): fits the byte count.
        out[1] = (out.len() - 2) as u8;
        out
    }

    /// Function 43 / MEI 14. Basic conformity with individual access (0x81): codes 1–3
    /// stream the three basic objects, code 4 returns one.
    fn device_id(&self, code: u8, object: u8) -> Vec<u8> {
        let objects: Vec<u8> = match code {
            1..=3 => {
                // An object id past the basic set restarts the stream at 0.
                let first = if object <= 2 { object } else { 0 };
                (first..=2).collect()
            }
            4 if object <= 2 => vec![object],
            4 => return exception(43, ILLEGAL_ADDRESS),
            _ => return exception(43, ILLEGAL_VALUE),
        };
        let mut out = vec![43, 14, code, 0x81, 0, 0, objects.len() as u8];
        for id in objects {
            let v = &self.identity[usize::from(id)];
            out.push(id);
            out.push(v.len() as u8);
            out.extend_from_slice(v);
        }
        out
    }
}

/// Project names engineers give pumping and treatment stations.
const PROJECTS: &[&str] = &[
    "LIFT_STATION",
    "PUMP_STATION",
    "TANK_FARM",
    "WTP_FILTERS",
    "BOOSTER",
    "RESERVOIR",
    "SEWAGE_PS",
    "IRRIGATION",
];

/// What UMAS shows of this controller: the configured module and firmware, a seeded
/// project.
fn controller(o: &ModbusOptions, seed: u64) -> Controller {
    let r = |k: u64| {
        let mut z = seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z ^ (z >> 29)
    };
    // "v2.8" / "V2.80" → 0x0280.
    let digits: Vec<u16> = o
        .revision
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.parse().ok())
        .collect();
    let firmware = match digits.as_slice() {
        [major, minor, ..] => {
            let minor = if *minor < 10 { minor * 10 } else { *minor };
            (major.min(&0xff) << 8)
                | u16::from_str_radix(&minor.min(99).to_string(), 16).unwrap_or(0)
        }
        _ => 0x0280,
    };
    // The hardware id is the model's: the same on every node running that module.
    let model = o
        .product_code
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let name = PROJECTS[(r(1) % PROJECTS.len() as u64) as usize];
    let project = format!("{name}_{}", 1 + r(2) % 9);
    let year = 2019 + (r(3) % 6) as u16;
    Controller {
        cpu: o.product_code.as_bytes()[..o.product_code.len().min(64)].to_vec(),
        firmware,
        hardware_id: [0x06, 0x01, (model >> 8) as u8, model as u8],
        memory_card: b"BMXRMS008MP".to_vec(),
        project: project.into_bytes(),
        built: (
            (r(4) % 60) as u8,
            (r(5) % 60) as u8,
            (6 + r(6) % 12) as u8,
            (1 + r(7) % 28) as u8,
            (1 + r(8) % 12) as u8,
            year,
        ),
        revision: [(r(9) % 20) as u8, (r(10) % 4) as u8, 0],
        reservation_key: (r(11) % 255) as u8 + 1,
        project_crc: r(12) as u32,
    }
}

/// `addr..addr+count` if it lies inside a table of `len` entries.
fn span(addr: u16, count: u16, len: usize) -> Option<std::ops::Range<usize>> {
    let start = usize::from(addr);
    let end = start + usize::from(count);
    (end <= len).then_some(start..end)
}

fn echo(function: u8, a: u16, b: u16) -> Vec<u8> {
    let mut out = vec![function];
    out.extend_from_slice(&a.to_be_bytes());
    out.extend_from_slice(&b.to_be_bytes());
    out
}

pub(crate) fn exception(function: u8, code: u8) -> Vec<u8> {
    vec![function | 0x80, code]
}

/// The request as one line for its `Command` event:
/// `read_holding_registers unit=1 addr=0 count=10`.
pub(crate) fn describe(unit: u8, pdu: &[u8], req: &Result<Request, Malformed>) -> String {
    match req {
        Ok(Request::Read { table, addr, count }) => {
            let name = match table {
                Table::Coils => "read_coils",
                Table::DiscreteInputs => "read_discrete_inputs",
                Table::HoldingRegisters => "read_holding_registers",
                Table::InputRegisters => "read_input_registers",
            };
            format!("{name} unit={unit} addr={addr} count={count}")
        }
        Ok(Request::WriteSingleCoil { addr, value }) => {
            let v = match value {
                0xff00 => "1".to_owned(),
                0 => "0".to_owned(),
                v => format!("0x{v:04x}"),
            };
            format!("write_single_coil unit={unit} addr={addr} value={v}")
        }
        Ok(Request::WriteSingleRegister { addr, value }) => {
            format!("write_single_register unit={unit} addr={addr} value={value}")
        }
        Ok(Request::WriteMultipleCoils { addr, count, bits }) => {
            let v: String = (0..usize::from(*count).min(bits.len() * 8))
                .map(|k| {
                    if bits[k / 8] >> (k % 8) & 1 == 1 {
                        '1'
                    } else {
                        '0'
                    }
                })
                .collect();
            format!("write_multiple_coils unit={unit} addr={addr} count={count} values={v}")
        }
        Ok(Request::WriteMultipleRegisters {
            addr,
            count,
            values,
        }) => {
            let v: Vec<String> = values.iter().map(u16::to_string).collect();
            format!(
                "write_multiple_registers unit={unit} addr={addr} count={count} values={}",
                v.join(",")
            )
        }
        Ok(Request::ReadDeviceId { code, object }) => {
            format!("read_device_identification unit={unit} code={code} object={object}")
        }
        Ok(Request::Umas { key, code, data }) => format!(
            "umas unit={unit} key={key} code=0x{code:02x} ({}) data={}",
            umas::name(*code),
            hex::encode(data)
        ),
        Ok(Request::Unsupported { function }) => format!(
            "function_{function} unit={unit} data={}",
            hex::encode(&pdu[1..])
        ),
        Err(Malformed { function }) => format!(
            "malformed function={function} unit={unit} data={}",
            hex::encode(pdu.get(1..).unwrap_or_default())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::mbap::decode;
    use super::*;

    /// A moment in 2027.
    const T: f64 = 1_800_000_000.0;

    fn plc() -> Plc {
        Plc::with_seed(
            &ModbusOptions {
                holding_registers: 10,
                coils: 12,
                ..ModbusOptions::default()
            },
            7,
        )
    }

    fn run(p: &mut Plc, pdu: &[u8]) -> Vec<u8> {
        p.handle_at(&decode(pdu), T)
    }

    #[test]
    fn reads_and_writes_round_trip() {
        let mut p = plc();
        assert_eq!(run(&mut p, &[3, 0, 0, 0, 2]), [3, 4, 0, 1, 0x02, 0xee]);
        assert_eq!(run(&mut p, &[6, 0, 4, 0x04, 0xd2]), [6, 0, 4, 0x04, 0xd2]);
        assert_eq!(run(&mut p, &[3, 0, 4, 0, 1]), [3, 2, 0x04, 0xd2]);
        assert_eq!(
            run(&mut p, &[16, 0, 8, 0, 2, 4, 0, 7, 0, 9]),
            [16, 0, 8, 0, 2]
        );
        assert_eq!(run(&mut p, &[3, 0, 8, 0, 2]), [3, 4, 0, 7, 0, 9]);
        // Coils: written ones are forced, live or not.
        assert_eq!(run(&mut p, &[5, 0, 1, 0xff, 0]), [5, 0, 1, 0xff, 0]);
        assert_eq!(run(&mut p, &[5, 0, 0, 0, 0]), [5, 0, 0, 0, 0]);
        assert_eq!(run(&mut p, &[1, 0, 0, 0, 2]), [1, 1, 0b10]);
        assert_eq!(
            run(&mut p, &[15, 0, 2, 0, 10, 2, 0xff, 0x03]),
            [15, 0, 2, 0, 10]
        );
        assert_eq!(run(&mut p, &[1, 0, 0, 0, 12]), [1, 2, 0b1111_1110, 0b1111]);
        let ir = run(&mut p, &[4, 0, 0, 0, 3]);
        assert_eq!(ir[..2], [4, 6]);
        // Door closed, emergency stop healthy, mains present.
        let di = run(&mut p, &[2, 0, 0, 0, 8]);
        assert_eq!(di[2] & 0b1110_0000, 0b1110_0000, "{di:?}");
    }

    #[test]
    fn exceptions_like_a_plc() {
        let mut p = plc();
        // Address past the table, quantity out of range, bad coil value, bad function.
        assert_eq!(run(&mut p, &[3, 0, 9, 0, 2]), [0x83, ILLEGAL_ADDRESS]);
        assert_eq!(run(&mut p, &[3, 0, 0, 0, 126]), [0x83, ILLEGAL_VALUE]);
        assert_eq!(run(&mut p, &[3, 0, 0, 0, 0]), [0x83, ILLEGAL_VALUE]);
        assert_eq!(run(&mut p, &[1, 0, 12, 0, 1]), [0x81, ILLEGAL_ADDRESS]);
        assert_eq!(run(&mut p, &[5, 0, 0, 0x12, 0x34]), [0x85, ILLEGAL_VALUE]);
        assert_eq!(run(&mut p, &[6, 0, 10, 0, 1]), [0x86, ILLEGAL_ADDRESS]);
        assert_eq!(
            run(&mut p, &[16, 0, 9, 0, 2, 4, 0, 1, 0, 2]),
            [0x90, ILLEGAL_ADDRESS]
        );
        assert_eq!(
            run(&mut p, &[16, 0, 0, 0, 3, 4, 0, 1, 0, 2]),
            [0x90, ILLEGAL_VALUE]
        );
        assert_eq!(
            run(&mut p, &[15, 0, 0, 0, 9, 1, 0xff]),
            [0x8f, ILLEGAL_VALUE]
        );
        assert_eq!(
            run(&mut p, &[8, 0, 0, 0xa5, 0x37]),
            [0x88, ILLEGAL_FUNCTION]
        );
        assert_eq!(run(&mut p, &[3, 0]), [0x83, ILLEGAL_VALUE]);
        assert_eq!(run(&mut p, &[43, 14, 9, 0]), [0xab, ILLEGAL_VALUE]);
        assert_eq!(run(&mut p, &[43, 14, 4, 7]), [0xab, ILLEGAL_ADDRESS]);
    }

    #[test]
    fn the_process_runs() {
        let mut p = Plc::with_seed(&ModbusOptions::default(), 99);
        let read = |p: &mut Plc, pdu: &[u8], t: f64| p.handle_at(&decode(pdu), t);
        let a = read(&mut p, &[4, 0, 0, 0, 13], T);
        let b = read(&mut p, &[4, 0, 0, 0, 13], T + 600.0);
        assert_eq!(a.len(), 2 + 26);
        assert_ne!(a, b, "ten minutes later the plant has moved");
        // The live block of holding registers is the input registers.
        assert_eq!(read(&mut p, &[3, 0, 16, 0, 13], T)[2..], a[2..]);
        // A write there is overwritten by the next scan.
        read(&mut p, &[6, 0, 16, 0, 0], T);
        assert_eq!(read(&mut p, &[3, 0, 16, 0, 1], T)[2..], a[2..4]);
        // Counters never go back.
        let hours = |r: &[u8]| u16::from_be_bytes([r[10], r[11]]);
        let vol = |r: &[u8]| u32::from_be_bytes([r[16], r[17], r[18], r[19]]);
        assert!(hours(&b) >= hours(&a) && vol(&b) > vol(&a));
        // Pump coils follow the process over a cycle.
        let mut seen = [false; 2];
        for k in 0..200 {
            let c = read(&mut p, &[1, 0, 0, 0, 2], T + f64::from(k) * 30.0);
            seen[0] |= c[2] & 1 == 1;
            seen[1] |= c[2] & 2 == 2;
        }
        assert!(seen[0] && seen[1]);
        // Stopped over UMAS, the outputs drop.
        assert_eq!(read(&mut p, &[0x5a, 0, 0x41], T), [0x5a, 0, 0xfe]);
        assert_eq!(read(&mut p, &[1, 0, 0, 0, 6], T), [1, 1, 0]);
    }

    #[test]
    fn umas_answers() {
        let mut p = plc();
        let id = run(&mut p, &[0x5a, 0, 2]);
        assert_eq!(&id[26..26 + usize::from(id[25])], b"BMX P34 2020");
        assert_eq!(run(&mut p, &[0x5a, 0, 0x99]), [0x5a, 0, 0xfd]);
        assert_eq!(run(&mut p, &[0x5a]), [0xda, ILLEGAL_VALUE]);
        assert_eq!(
            describe(1, &[0x5a, 0, 2], &decode(&[0x5a, 0, 2])),
            "umas unit=1 key=0 code=0x02 (read_id) data="
        );
    }

    #[test]
    fn device_identification() {
        let mut p = plc();
        let r = run(&mut p, &[43, 14, 1, 0]);
        let mut want = vec![43, 14, 1, 0x81, 0, 0, 3];
        for (i, s) in ["Schneider Electric", "BMX P34 2020", "v2.8"]
            .iter()
            .enumerate()
        {
            want.push(i as u8);
            want.push(s.len() as u8);
            want.extend_from_slice(s.as_bytes());
        }
        assert_eq!(r, want);
        assert_eq!(
            run(&mut p, &[43, 14, 4, 2]),
            [43, 14, 4, 0x81, 0, 0, 1, 2, 4, b'v', b'2', b'.', b'8']
        );
    }

    #[test]
    fn lines() {
        let d = |pdu: &[u8]| describe(1, pdu, &decode(pdu));
        assert_eq!(
            d(&[3, 0, 0, 0, 10]),
            "read_holding_registers unit=1 addr=0 count=10"
        );
        assert_eq!(
            d(&[6, 0, 4, 0x04, 0xd2]),
            "write_single_register unit=1 addr=4 value=1234"
        );
        assert_eq!(
            d(&[5, 0, 3, 0xff, 0]),
            "write_single_coil unit=1 addr=3 value=1"
        );
        assert_eq!(
            d(&[15, 0, 0, 0, 3, 1, 0b101]),
            "write_multiple_coils unit=1 addr=0 count=3 values=101"
        );
        assert_eq!(
            d(&[16, 0, 1, 0, 2, 4, 0, 10, 0, 11]),
            "write_multiple_registers unit=1 addr=1 count=2 values=10,11"
        );
        assert_eq!(
            d(&[43, 14, 1, 0]),
            "read_device_identification unit=1 code=1 object=0"
        );
        assert_eq!(d(&[8, 0, 0]), "function_8 unit=1 data=0000");
        assert_eq!(d(&[3, 1]), "malformed function=3 unit=1 data=01");
    }
}

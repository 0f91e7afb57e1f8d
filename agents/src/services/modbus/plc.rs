//! The PLC behind the Modbus honeypot: coils, discrete inputs, holding and input
//! registers, device identification; requests are checked in the order the Modbus
//! specification gives (function, quantity, address) and answered with the exception a
//! real device gives.

use super::mbap::{Malformed, Request, Table};
use honeybee_proto::config::ModbusOptions;

/// Exception codes.
pub(crate) const ILLEGAL_FUNCTION: u8 = 1;
pub(crate) const ILLEGAL_ADDRESS: u8 = 2;
pub(crate) const ILLEGAL_VALUE: u8 = 3;

/// The device's tables and identity, shared by every connection of one service.
#[derive(Debug)]
pub(crate) struct Plc {
    coils: Vec<bool>,
    discrete: Vec<bool>,
    holding: Vec<u16>,
    input: Vec<u16>,
    /// Device identification objects 0 (vendor), 1 (product code), 2 (revision).
    identity: [Vec<u8>; 3],
}

impl Plc {
    pub(crate) fn new(o: &ModbusOptions) -> Plc {
        let id = |s: &str| s.as_bytes()[..s.len().min(64)].to_vec();
        Plc {
            // A plant at rest: pumps 0 and 2 running, sensors with readings.
            coils: (0..o.coils).map(|i| i == 0 || i == 2).collect(),
            discrete: (0..o.coils).map(|i| i % 5 == 1).collect(),
            holding: (0..o.holding_registers)
                .map(|i| match i {
                    0 => 1,
                    1 => 750,
                    2 => 1200,
                    3 => 45,
                    _ => 0,
                })
                .collect(),
            input: (0..o.holding_registers)
                .map(|i| 200 + (i.wrapping_mul(37) % 150))
                .collect(),
            identity: [id(&o.vendor), id(&o.product_code), id(&o.revision)],
        }
    }

    /// Applies one request; the response PDU (possibly an exception).
    pub(crate) fn handle(&mut self, req: &Result<Request, Malformed>) -> Vec<u8> {
        let req = match req {
            Ok(r) => r,
            Err(Malformed { function }) => return exception(*function, ILLEGAL_VALUE),
        };
        match req {
            Request::Read { table, addr, count } => self.read(*table, *addr, *count),
            Request::WriteSingleCoil { addr, value } => {
                if *value != 0xff00 && *value != 0 {
                    return exception(5, ILLEGAL_VALUE);
                }
                match self.coils.get_mut(usize::from(*addr)) {
                    None => exception(5, ILLEGAL_ADDRESS),
                    Some(c) => {
                        *c = *value == 0xff00;
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
                    *c = bits[k / 8] >> (k % 8) & 1 == 1;
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
            Request::Unsupported { function } => exception(*function, ILLEGAL_FUNCTION),
        }
    }

    fn read(&self, table: Table, addr: u16, count: u16) -> Vec<u8> {
        let (function, max, len) = match table {
            Table::Coils => (1, 2000, self.coils.len()),
            Table::DiscreteInputs => (2, 2000, self.discrete.len()),
            Table::HoldingRegisters => (3, 125, self.holding.len()),
            Table::InputRegisters => (4, 125, self.input.len()),
        };
        if !(1..=max).contains(&count) {
            return exception(function, ILLEGAL_VALUE);
        }
        let Some(range) = span(addr, count, len) else {
            return exception(function, ILLEGAL_ADDRESS);
        };
        let mut out = vec![function, 0];
        match table {
            Table::Coils | Table::DiscreteInputs => {
                let bits = if table == Table::Coils {
                    &self.coils[range]
                } else {
                    &self.discrete[range]
                };
                let mut packed = vec![0u8; bits.len().div_ceil(8)];
                for (k, &b) in bits.iter().enumerate() {
                    packed[k / 8] |= u8::from(b) << (k % 8);
                }
                out.extend_from_slice(&packed);
            }
            Table::HoldingRegisters | Table::InputRegisters => {
                let regs = if table == Table::HoldingRegisters {
                    &self.holding[range]
                } else {
                    &self.input[range]
                };
                for r in regs {
                    out.extend_from_slice(&r.to_be_bytes());
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

    fn plc() -> Plc {
        Plc::new(&ModbusOptions {
            holding_registers: 10,
            coils: 12,
            ..ModbusOptions::default()
        })
    }

    fn run(p: &mut Plc, pdu: &[u8]) -> Vec<u8> {
        p.handle(&decode(pdu))
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
        // Coils: 0 and 2 on at start; switch 1 on, 0 off.
        assert_eq!(run(&mut p, &[1, 0, 0, 0, 3]), [1, 1, 0b101]);
        assert_eq!(run(&mut p, &[5, 0, 1, 0xff, 0]), [5, 0, 1, 0xff, 0]);
        assert_eq!(run(&mut p, &[5, 0, 0, 0, 0]), [5, 0, 0, 0, 0]);
        assert_eq!(run(&mut p, &[1, 0, 0, 0, 3]), [1, 1, 0b110]);
        assert_eq!(
            run(&mut p, &[15, 0, 2, 0, 10, 2, 0xff, 0x03]),
            [15, 0, 2, 0, 10]
        );
        assert_eq!(run(&mut p, &[1, 0, 0, 0, 12]), [1, 2, 0b1111_1110, 0b1111]);
        let ir = run(&mut p, &[4, 0, 0, 0, 3]);
        assert_eq!(ir[..2], [4, 6]);
        assert_eq!(run(&mut p, &[2, 0, 0, 0, 7]), [2, 1, 0b100_0010]);
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

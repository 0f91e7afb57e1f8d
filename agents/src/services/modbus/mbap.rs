//! Sans-IO Modbus/TCP: MBAP framing (protocol id 0, at most 253 bytes of PDU) and
//! decoding of request PDUs into typed requests, with the shape of each checked against
//! its function's layout before anything is copied.

/// Longest PDU (function code + data) Modbus allows.
pub(crate) const MAX_PDU: usize = 253;
/// MBAP header: transaction id, protocol id, length, unit id.
const HEADER: usize = 7;

/// The MBAP header of a request, echoed in its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub transaction: u16,
    pub unit: u8,
}

/// The front of the input buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    Incomplete,
    Adu {
        header: Header,
        pdu: &'a [u8],
        consumed: usize,
    },
}

/// Framing errors; a real device drops the connection on either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MbapError {
    #[error("protocol id {0} is not Modbus (0)")]
    Protocol(u16),
    #[error("MBAP length {0} outside 2..=254")]
    Length(u16),
}

/// Splits one ADU off the front of `buf`. Header fields are checked as soon as the seven
/// header bytes are in, so a bad length never makes the reader wait for its bytes.
pub(crate) fn frame(buf: &[u8]) -> Result<Frame<'_>, MbapError> {
    let Some(h) = buf.get(..HEADER) else {
        return Ok(Frame::Incomplete);
    };
    let protocol = u16::from_be_bytes([h[2], h[3]]);
    if protocol != 0 {
        return Err(MbapError::Protocol(protocol));
    }
    let len = u16::from_be_bytes([h[4], h[5]]);
    // The length counts the unit id and the PDU (function code at least).
    if !(2..=(MAX_PDU as u16 + 1)).contains(&len) {
        return Err(MbapError::Length(len));
    }
    let end = HEADER - 1 + usize::from(len);
    match buf.get(HEADER..end) {
        None => Ok(Frame::Incomplete),
        Some(pdu) => Ok(Frame::Adu {
            header: Header {
                transaction: u16::from_be_bytes([h[0], h[1]]),
                unit: h[6],
            },
            pdu,
            consumed: end,
        }),
    }
}

/// A response ADU for `pdu` (at most [`MAX_PDU`] bytes, which every response here is).
pub(crate) fn adu(header: Header, pdu: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + pdu.len());
    out.extend_from_slice(&header.transaction.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
    out.push(header.unit);
    out.extend_from_slice(pdu);
    out
}

/// Which table a read addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Coils,
    DiscreteInputs,
    HoldingRegisters,
    InputRegisters,
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// Functions 1, 2, 3, 4.
    Read { table: Table, addr: u16, count: u16 },
    /// Function 5 (the raw value: 0xFF00 on, 0x0000 off, anything else is illegal).
    WriteSingleCoil { addr: u16, value: u16 },
    /// Function 6.
    WriteSingleRegister { addr: u16, value: u16 },
    /// Function 15: `count` bits packed LSB first in `bits`.
    WriteMultipleCoils {
        addr: u16,
        count: u16,
        bits: Vec<u8>,
    },
    /// Function 16.
    WriteMultipleRegisters {
        addr: u16,
        count: u16,
        values: Vec<u16>,
    },
    /// Function 43, MEI type 14.
    ReadDeviceId { code: u8, object: u8 },
    /// Function 90: a UMAS request (pairing key, UMAS code, its data).
    Umas { key: u8, code: u8, data: Vec<u8> },
    /// A well-formed PDU of a function this PLC does not implement (43 with another MEI
    /// type included).
    Unsupported { function: u8 },
}

/// A PDU whose data does not fit its function's layout: answered with exception 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed {
    pub function: u8,
}

fn be(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

/// Decodes a request PDU (`pdu` is never empty: framing guarantees the function code).
pub(crate) fn decode(pdu: &[u8]) -> Result<Request, Malformed> {
    let Some((&function, d)) = pdu.split_first() else {
        return Err(Malformed { function: 0 });
    };
    let bad = Malformed { function };
    let table = match function {
        1 => Some(Table::Coils),
        2 => Some(Table::DiscreteInputs),
        3 => Some(Table::HoldingRegisters),
        4 => Some(Table::InputRegisters),
        _ => None,
    };
    if let Some(table) = table {
        return if d.len() == 4 {
            Ok(Request::Read {
                table,
                addr: be(d, 0),
                count: be(d, 2),
            })
        } else {
            Err(bad)
        };
    }
    match function {
        5 | 6 if d.len() == 4 => Ok(if function == 5 {
            Request::WriteSingleCoil {
                addr: be(d, 0),
                value: be(d, 2),
            }
        } else {
            Request::WriteSingleRegister {
                addr: be(d, 0),
                value: be(d, 2),
            }
        }),
        15 | 16 if d.len() >= 5 => {
            let (addr, count, n) = (be(d, 0), be(d, 2), usize::from(d[4]));
            let data = &d[5..];
            if data.len() != n {
                return Err(bad);
            }
            if function == 15 {
                Ok(Request::WriteMultipleCoils {
                    addr,
                    count,
                    bits: data.to_vec(),
                })
            } else if n % 2 == 0 {
                Ok(Request::WriteMultipleRegisters {
                    addr,
                    count,
                    values: data.chunks_exact(2).map(|c| be(c, 0)).collect(),
                })
            } else {
                Err(bad)
            }
        }
        43 => match d {
            [14, code, object] => Ok(Request::ReadDeviceId {
                code: *code,
                object: *object,
            }),
            [14, ..] => Err(bad),
            _ => Ok(Request::Unsupported { function }),
        },
        90 => match d {
            [key, code, data @ ..] => Ok(Request::Umas {
                key: *key,
                code: *code,
                data: data.to_vec(),
            }),
            _ => Err(bad),
        },
        5 | 6 | 15 | 16 => Err(bad),
        _ => Ok(Request::Unsupported { function }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn framing() {
        let req = [0, 7, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10];
        for n in 0..req.len() {
            assert_eq!(frame(&req[..n]), Ok(Frame::Incomplete), "{n}");
        }
        let mut two = req.to_vec();
        two.extend_from_slice(&req);
        assert_eq!(
            frame(&two),
            Ok(Frame::Adu {
                header: Header {
                    transaction: 7,
                    unit: 1
                },
                pdu: &[3, 0, 0, 0, 10],
                consumed: 12
            })
        );
        assert_eq!(frame(&[0, 1, 0, 1, 0, 6, 1]), Err(MbapError::Protocol(1)));
        assert_eq!(frame(&[0, 1, 0, 0, 0, 1, 1]), Err(MbapError::Length(1)));
        assert_eq!(frame(&[0, 1, 0, 0, 1, 0, 1]), Err(MbapError::Length(256)));
        assert_eq!(
            frame(&[0, 1, 0, 0, 0, 254, 1]),
            Ok(Frame::Incomplete),
            "unit id + 253 bytes of PDU is the largest length"
        );
        assert_eq!(frame(&[0, 1, 0, 0, 0, 255, 1]), Err(MbapError::Length(255)));
        assert_eq!(
            adu(
                Header {
                    transaction: 7,
                    unit: 1
                },
                &[3, 2, 0, 5]
            ),
            [0, 7, 0, 0, 0, 5, 1, 3, 2, 0, 5]
        );
    }

    #[test]
    fn decoding() {
        assert_eq!(
            decode(&[3, 0, 4, 0, 2]),
            Ok(Request::Read {
                table: Table::HoldingRegisters,
                addr: 4,
                count: 2
            })
        );
        assert_eq!(
            decode(&[6, 0, 4, 0x04, 0xd2]),
            Ok(Request::WriteSingleRegister {
                addr: 4,
                value: 1234
            })
        );
        assert_eq!(
            decode(&[16, 0, 1, 0, 2, 4, 0, 10, 0, 11]),
            Ok(Request::WriteMultipleRegisters {
                addr: 1,
                count: 2,
                values: vec![10, 11]
            })
        );
        assert_eq!(
            decode(&[15, 0, 0, 0, 10, 2, 0xcd, 0x01]),
            Ok(Request::WriteMultipleCoils {
                addr: 0,
                count: 10,
                bits: vec![0xcd, 0x01]
            })
        );
        assert_eq!(
            decode(&[16, 0, 1, 0, 2, 4, 0]),
            Err(Malformed { function: 16 })
        );
        assert_eq!(decode(&[3, 0, 0]), Err(Malformed { function: 3 }));
        assert_eq!(
            decode(&[43, 14, 1, 0]),
            Ok(Request::ReadDeviceId { code: 1, object: 0 })
        );
        assert_eq!(
            decode(&[43, 13, 0]),
            Ok(Request::Unsupported { function: 43 })
        );
        assert_eq!(
            decode(&[0x5a, 0, 2]),
            Ok(Request::Umas {
                key: 0,
                code: 2,
                data: vec![]
            })
        );
        assert_eq!(decode(&[0x5a, 0]), Err(Malformed { function: 0x5a }));
        assert_eq!(
            decode(&[8, 0, 0, 0xa5, 0x37]),
            Ok(Request::Unsupported { function: 8 })
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut rest: &[u8] = &data;
            for _ in 0..200 {
                match frame(rest) {
                    Ok(Frame::Adu { pdu, consumed, .. }) => {
                        prop_assert!(!pdu.is_empty() && pdu.len() <= MAX_PDU);
                        let _ = decode(pdu);
                        rest = &rest[consumed..];
                    }
                    _ => break,
                }
            }
            if !data.is_empty() {
                let _ = decode(&data);
            }
        }
    }
}

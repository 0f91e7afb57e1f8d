//! Function 90 (0x5A): Schneider's UMAS, which Unity Pro / Control Expert and ICS
//! scanners speak to a Modicon M340. A request is `5A <pairing key> <UMAS code> data`;
//! the answer is `5A <key> FE data` (done) or `5A <key> FD` (refused).
//!
//! Answered here: what scanners send. Byte offsets follow the public tools that parse
//! the answers: Digital Bond's `modicon-info.nse` (CPU module name length at byte 25 of
//! the READ_ID answer's PDU, the memory card's at 9 of READ_CARD_INFO, the project's
//! date at 30 and name at 42 of READ_PROJECT_INFO, the project text at 172 of a
//! READ_MEMORY_BLOCK of block 0x14 from offset 0x64, the project file name at 6 of one
//! from 0x15a) and the public M340
//! start/stop tool (hardware id at 17..21 of READ_ID, the run state at 63 of
//! READ_PLC_INFO). Bytes no public tool interprets hold plausible constants.

/// UMAS codes.
pub(crate) const INIT_COMM: u8 = 0x01;
pub(crate) const READ_ID: u8 = 0x02;
pub(crate) const READ_PROJECT_INFO: u8 = 0x03;
pub(crate) const READ_PLC_INFO: u8 = 0x04;
pub(crate) const READ_CARD_INFO: u8 = 0x06;
pub(crate) const REPEAT: u8 = 0x0a;
pub(crate) const TAKE_RESERVATION: u8 = 0x10;
pub(crate) const RELEASE_RESERVATION: u8 = 0x11;
pub(crate) const KEEP_ALIVE: u8 = 0x12;
pub(crate) const READ_MEMORY_BLOCK: u8 = 0x20;
pub(crate) const START_PLC: u8 = 0x40;
pub(crate) const STOP_PLC: u8 = 0x41;
pub(crate) const CHECK_PLC: u8 = 0x58;

const OK: u8 = 0xfe;
const REFUSED: u8 = 0xfd;

/// The name a UMAS code goes by in the events.
pub(crate) fn name(code: u8) -> &'static str {
    match code {
        INIT_COMM => "init_comm",
        READ_ID => "read_id",
        READ_PROJECT_INFO => "read_project_info",
        READ_PLC_INFO => "read_plc_info",
        READ_CARD_INFO => "read_card_info",
        REPEAT => "repeat",
        TAKE_RESERVATION => "take_plc_reservation",
        RELEASE_RESERVATION => "release_plc_reservation",
        KEEP_ALIVE => "keep_alive",
        READ_MEMORY_BLOCK => "read_memory_block",
        START_PLC => "start_plc",
        STOP_PLC => "stop_plc",
        CHECK_PLC => "check_plc",
        _ => "unknown",
    }
}

/// The controller as UMAS shows it.
#[derive(Debug, Clone)]
pub(crate) struct Controller {
    /// CPU module (`BMX P34 2020`).
    pub cpu: Vec<u8>,
    /// Firmware as UMAS encodes it: 0x0280 for V2.80.
    pub firmware: u16,
    pub hardware_id: [u8; 4],
    pub memory_card: Vec<u8>,
    pub project: Vec<u8>,
    /// Last build of the project: second, minute, hour, day, month, year.
    pub built: (u8, u8, u8, u8, u8, u16),
    pub revision: [u8; 3],
    /// The pairing key a reservation hands out.
    pub reservation_key: u8,
    pub project_crc: u32,
}

/// The project's names as block 0x14 of the controller's memory holds them.
fn memory_block_14(c: &Controller) -> Vec<u8> {
    let mut m = vec![0u8; 512];
    let mut file = c.project.clone();
    file.extend_from_slice(b".STU");
    file.truncate(60);
    m[0x15a..0x15a + file.len()].copy_from_slice(&file);
    let text = b"Control Expert V14.1";
    m[266..266 + text.len()].copy_from_slice(text);
    m
}

/// The answer PDU to a UMAS request (`key`, `code`, `data`); `running` is the PLC's run
/// state, which START/STOP change.
pub(crate) fn answer(
    c: &Controller,
    running: &mut bool,
    key: u8,
    code: u8,
    data: &[u8],
) -> Vec<u8> {
    let mut out = vec![0x5a, key, OK];
    let fw = c.firmware.to_le_bytes();
    match code {
        INIT_COMM => {
            // Largest UMAS frame, firmware, then the controller's internal codes.
            out.extend_from_slice(&[0xf0, 0x00, fw[0], fw[1], 0x00, 0x00, 0x00, 0x00, 0x01]);
        }
        READ_ID => {
            out.extend_from_slice(&[0x00, 0x00, fw[0], fw[1], 0x00, 0x00]);
            out.extend_from_slice(&[0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00]);
            out.extend_from_slice(&c.hardware_id);
            out.extend_from_slice(&[0x00, 0x00, 0x00, 0x00]);
            out.push(c.cpu.len() as u8);
            out.extend_from_slice(&c.cpu);
            out.extend_from_slice(&[0x00, 0x01, 0x20, 0x00, 0x00, 0x00]);
        }
        READ_PROJECT_INFO => {
            out.resize(30, 0);
            out[3] = 0x01;
            out[5..9].copy_from_slice(&c.project_crc.to_le_bytes());
            out[9..13].copy_from_slice(&c.project_crc.rotate_left(11).to_le_bytes());
            let (s, mi, h, d, mo, y) = c.built;
            out.extend_from_slice(&[s, mi, h, d, mo]);
            out.extend_from_slice(&y.to_le_bytes());
            out.extend_from_slice(&c.revision);
            out.extend_from_slice(&[0x00, 0x00]);
            out.extend_from_slice(&c.project);
            out.push(0);
        }
        READ_PLC_INFO => {
            out.resize(72, 0);
            out[3] = 0x01;
            out[4..8].copy_from_slice(&c.project_crc.to_le_bytes());
            out[8..10].copy_from_slice(&fw);
            out[12..16].copy_from_slice(&c.hardware_id);
            out[63] = if *running { 0x02 } else { 0x01 };
        }
        READ_CARD_INFO => {
            out.extend_from_slice(&[0x01, 0x00, 0x00, 0x00, 0x80, 0x00]);
            out.push(c.memory_card.len() as u8);
            out.extend_from_slice(&c.memory_card);
        }
        // An echo of what came (a connection test).
        REPEAT => out.extend_from_slice(&data[..data.len().min(250)]),
        TAKE_RESERVATION => out.push(c.reservation_key),
        RELEASE_RESERVATION | KEEP_ALIVE | CHECK_PLC => {}
        START_PLC => *running = true,
        STOP_PLC => *running = false,
        READ_MEMORY_BLOCK => {
            // range, block, offset, (unused), count; all little-endian.
            let Some(&[_range, b0, b1, o0, o1, _, _, n0, n1]) = data
                .get(..9)
                .map(|d| <&[u8; 9]>::try_from(d).expect("nine bytes"))
            else {
                out[2] = REFUSED;
                return out;
            };
            let block = u16::from_le_bytes([b0, b1]);
            let offset = usize::from(u16::from_le_bytes([o0, o1]));
            // The PDU's limit leaves 247 bytes of data.
            let count = usize::from(u16::from_le_bytes([n0, n1])).min(247);
            let image = if block == 0x14 {
                memory_block_14(c)
            } else {
                Vec::new()
            };
            out.push(0x00);
            out.extend_from_slice(&(count as u16).to_le_bytes());
            out.extend((offset..offset + count).map(|i| image.get(i).copied().unwrap_or(0)));
        }
        _ => out[2] = REFUSED,
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controller() -> Controller {
        Controller {
            cpu: b"BMX P34 2020".to_vec(),
            firmware: 0x0280,
            hardware_id: [0x06, 0x01, 0x0e, 0x02],
            memory_card: b"BMXRMS008MP".to_vec(),
            project: b"LIFT_STATION_2".to_vec(),
            built: (33, 55, 5, 11, 7, 2023),
            revision: [9, 0, 0],
            reservation_key: 0x6c,
            project_crc: 0x1234_5678,
        }
    }

    #[test]
    fn offsets_the_public_tools_read() {
        let c = controller();
        let mut run = true;
        let id = answer(&c, &mut run, 0, READ_ID, &[]);
        assert_eq!(id[..3], [0x5a, 0, 0xfe]);
        assert_eq!(id[17..21], c.hardware_id);
        assert_eq!(usize::from(id[25]), c.cpu.len());
        assert_eq!(&id[26..26 + c.cpu.len()], b"BMX P34 2020");
        let card = answer(&c, &mut run, 0, READ_CARD_INFO, &[6]);
        assert_eq!(&card[10..10 + usize::from(card[9])], b"BMXRMS008MP");
        let p = answer(&c, &mut run, 0, READ_PROJECT_INFO, &[0]);
        assert_eq!(p[30..35], [33, 55, 5, 11, 7]);
        assert_eq!(u16::from_le_bytes([p[35], p[36]]), 2023);
        assert_eq!(&p[42..56], b"LIFT_STATION_2");
        assert_eq!(p[56], 0);
        assert_eq!(answer(&c, &mut run, 0, READ_PLC_INFO, &[])[63], 2);
        answer(&c, &mut run, 0, STOP_PLC, &[]);
        assert_eq!(answer(&c, &mut run, 0, READ_PLC_INFO, &[])[63], 1);
        let fname = answer(
            &c,
            &mut run,
            0,
            READ_MEMORY_BLOCK,
            &[0x00, 0x14, 0x00, 0x5a, 0x01, 0x00, 0x00, 0xf6, 0x00],
        );
        assert_eq!(fname.len(), 6 + 246);
        assert!(fname[6..].starts_with(b"LIFT_STATION_2.STU\0"));
        let info = answer(
            &c,
            &mut run,
            0,
            READ_MEMORY_BLOCK,
            &[0x00, 0x14, 0x00, 0x64, 0x00, 0x00, 0x00, 0xf6, 0x00],
        );
        assert!(info[172..].starts_with(b"Control Expert"));
        assert_eq!(answer(&c, &mut run, 3, 0x77, &[]), [0x5a, 3, 0xfd]);
        assert_eq!(
            answer(&c, &mut run, 0, REPEAT, &[1, 2, 3]),
            [0x5a, 0, 0xfe, 1, 2, 3]
        );
    }
}

//! The router's hardware as its BusyBox shell shows it: the SoC, the CPU's endianness,
//! the kernel and the BusyBox build, all following the model the node's HTTP admin page
//! names (`http::router::Device`), so `cat /proc/cpuinfo`, `uname -m` and the ELF header
//! of `/bin/echo` tell a loader the same architecture the web page implies.

use crate::persona::{Persona, civil};
use crate::services::http::router::Device;

/// One SoC family of the models the admin page draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Soc {
    /// `/proc/cpuinfo`'s "system type".
    pub system: &'static str,
    /// `/proc/cpuinfo`'s "cpu model".
    pub cpu: &'static str,
    pub bogomips: &'static str,
    /// Little-endian (MediaTek's `mipsel`) or big-endian (Qualcomm Atheros' `mips`).
    pub little_endian: bool,
    /// `uname -r`.
    pub kernel: &'static str,
    /// `e_flags` of the firmware's binaries (MIPS32r2, PIC, CPIC).
    pub elf_flags: u32,
    /// RAM in KiB as `free` reports it.
    pub mem_kib: u64,
    /// The flash's partition for the root filesystem.
    pub rootfs_mtd: u32,
}

const MT7628: Soc = Soc {
    system: "MT7628",
    cpu: "MIPS 24KEc V5.5",
    bogomips: "385.84",
    little_endian: true,
    kernel: "2.6.36",
    elf_flags: 0x7000_1007,
    mem_kib: 60_728,
    rootfs_mtd: 2,
};

const QCA9563: Soc = Soc {
    system: "Qualcomm Atheros QCA956X ver 1 rev 0",
    cpu: "MIPS 74Kc V5.0",
    bogomips: "385.02",
    little_endian: false,
    kernel: "3.3.8",
    elf_flags: 0x7000_1007,
    mem_kib: 125_236,
    rootfs_mtd: 3,
};

/// The router a BusyBox session runs on.
#[derive(Debug, Clone)]
pub(crate) struct Router {
    pub device: Device,
    pub soc: Soc,
    /// `BusyBox v1.24.1 (2019-05-13 10:22:37 CST)`: the firmware's build time.
    pub build: String,
    /// `#3 Mon May 13 10:17:05 CST 2019`, the kernel's build line.
    pub kernel_build: String,
}

impl Router {
    pub(crate) fn of(p: &Persona) -> Router {
        let device = Device::of(p);
        // The MediaTek models are little-endian MIPS; the Qualcomm ones big-endian.
        let soc = match device.model {
            "Archer C2" | "Archer C6" | "Archer C7" => QCA9563,
            _ => MT7628,
        };
        // The firmware was built when its pages were (the admin page's Last-Modified),
        // in China Standard Time as TP-Link's build hosts stamp it.
        let t = i64::try_from(device.mtime).unwrap_or(0) + 8 * 3600;
        let (y, m, d) = civil(t.div_euclid(86_400));
        let s = t.rem_euclid(86_400);
        let (hh, mm, ss) = (s / 3600, s / 60 % 60, s % 60);
        let build = format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} CST");
        let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
            [usize::try_from(t.div_euclid(86_400).rem_euclid(7)).unwrap_or(0)];
        let mon = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ][(m as usize).saturating_sub(1).min(11)];
        // The kernel was built a few minutes before the rest of the image.
        let k = (s - 317).max(0);
        let kernel_build = format!(
            "#{} {wd} {mon} {d} {:02}:{:02}:{:02} CST {y}",
            1 + p.stream("busybox-kernel").below(4),
            k / 3600,
            k / 60 % 60,
            k % 60
        );
        Router {
            device,
            soc,
            build,
            kernel_build,
        }
    }

    /// `uname -m`.
    pub(crate) fn machine(&self) -> &'static str {
        "mips"
    }

    /// The first line `busybox` prints.
    pub(crate) fn banner(&self) -> String {
        format!("BusyBox v{VERSION} ({}) multi-call binary.", self.build)
    }

    /// `/proc/cpuinfo`.
    pub(crate) fn cpuinfo(&self) -> String {
        let s = &self.soc;
        let machine = if s.little_endian {
            String::new()
        } else {
            format!("machine\t\t\t: TP-LINK {}\n", self.device.hardware)
        };
        format!(
            "system type\t\t: {}\n{machine}processor\t\t: 0\ncpu model\t\t: {}\nBogoMIPS\t\t: {}\nwait instruction\t: yes\nmicrosecond timers\t: yes\ntlb_entries\t\t: 32\nextra interrupt vector\t: yes\nhardware watchpoint\t: yes, count: 4, address/irw mask: [0x0ffc, 0x0ffc, 0x0ffb, 0x0ffb]\nisa\t\t\t: mips1 mips2 mips32r1 mips32r2\nASEs implemented\t: mips16 dsp\nshadow register sets\t: 1\nkscratch registers\t: 0\ncore\t\t\t: 0\nVCED exceptions\t\t: not available\nVCEI exceptions\t\t: not available\n\n",
            s.system, s.cpu, s.bogomips
        )
    }

    /// The first bytes of every program of the firmware (`/bin/busybox`, which `/bin/echo`
    /// links to): a 32-bit MIPS ELF header and its program headers, in the SoC's byte
    /// order, as `dd bs=52 count=1 if=/bin/echo` or `cat /bin/echo` show a loader.
    pub(crate) fn elf(&self) -> Vec<u8> {
        let le = self.soc.little_endian;
        let mut b = Vec::with_capacity(512);
        let h16 = |b: &mut Vec<u8>, v: u16| {
            b.extend_from_slice(&if le { v.to_le_bytes() } else { v.to_be_bytes() });
        };
        let h32 = |b: &mut Vec<u8>, v: u32| {
            b.extend_from_slice(&if le { v.to_le_bytes() } else { v.to_be_bytes() });
        };
        b.extend_from_slice(&[0x7f, b'E', b'L', b'F', 1, if le { 1 } else { 2 }, 1, 0]);
        b.extend_from_slice(&[0; 8]);
        h16(&mut b, 2); // ET_EXEC
        h16(&mut b, 8); // EM_MIPS
        h32(&mut b, 1);
        h32(&mut b, 0x0040_3a60); // e_entry
        h32(&mut b, 52); // e_phoff
        h32(&mut b, SIZE - 1360); // e_shoff
        h32(&mut b, self.soc.elf_flags);
        h16(&mut b, 52);
        h16(&mut b, 32);
        h16(&mut b, 7); // e_phnum
        h16(&mut b, 40);
        h16(&mut b, 27);
        h16(&mut b, 26);
        // Program headers: PHDR, INTERP, REGINFO, LOAD text, LOAD data, DYNAMIC, STACK.
        let ph: [[u32; 8]; 7] = [
            [6, 52, 0x0040_0034, 0x0040_0034, 0xe0, 0xe0, 5, 4],
            [3, 0x114, 0x0040_0114, 0x0040_0114, 0x14, 0x14, 4, 1],
            [
                0x7000_0000,
                0x128,
                0x0040_0128,
                0x0040_0128,
                0x18,
                0x18,
                4,
                4,
            ],
            [
                1,
                0,
                0x0040_0000,
                0x0040_0000,
                SIZE - 4096,
                SIZE - 4096,
                5,
                0x10000,
            ],
            [
                1,
                SIZE - 4096,
                0x0048_f000,
                0x0048_f000,
                0x5e4,
                0x2e80,
                6,
                0x10000,
            ],
            [2, 0x140, 0x0040_0140, 0x0040_0140, 0x100, 0x100, 7, 4],
            [0x6474_e551, 0, 0, 0, 0, 0, 6, 4],
        ];
        for p in ph {
            for v in p {
                h32(&mut b, v);
            }
        }
        b.extend_from_slice(b"/lib/ld-uClibc.so.0\0");
        b.resize(512, 0);
        b
    }
}

/// The BusyBox release the firmware carries: new enough for its `busybox` text to be the
/// one every release since 1.24 prints (the oracle, Debian's 1.35, prints it too), old
/// enough for the firmware builds the models date from.
pub(crate) const VERSION: &str = "1.24.1";

/// `/bin/busybox`'s size as `ls -l` shows it.
pub(crate) const SIZE: u32 = 588_876;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_header_matches_the_soc() {
        let p = Persona::reference("r");
        let r = Router::of(&p);
        let e = r.elf();
        assert_eq!(&e[..4], b"\x7fELF");
        assert_eq!(e[4], 1, "32-bit");
        assert_eq!(e[5], if r.soc.little_endian { 1 } else { 2 });
        let machine = if r.soc.little_endian {
            u16::from_le_bytes([e[18], e[19]])
        } else {
            u16::from_be_bytes([e[18], e[19]])
        };
        assert_eq!(machine, 8, "EM_MIPS");
        assert!(r.cpuinfo().contains(r.soc.cpu));
        assert!(r.build.ends_with(" CST"), "{}", r.build);
    }
}

//! A node's persona: the one machine its emulated shell, login banner and Redis INFO all
//! describe — host name, kernel build, boot time, CPU, memory, disk, machine-id, network
//! address, MAC, PIDs, time zone — generated deterministically from a per-node seed.
//!
//! Without it every sensor of a fleet would answer `cat /etc/machine-id` or `ip addr`
//! with the same bytes, and one lookup would unmask them all. The seed is SHA-256 of the
//! node's id (when it is enrolled) and a random salt kept in the node's data directory
//! ([`PERSONA_FILE`]), so two nodes never share a persona, a node keeps its own across
//! restarts, and deleting the file gives it a new one.
//!
//! [`Persona`] is the pure part (a function of the seed and the file's creation time);
//! [`NodePersona`] adds what moves while the node runs: the PID counter and the list of
//! services the node listens with (for `ps`, `/proc/net/tcp`).

use honeybee_proto::config::{HttpPersona, ModbusOptions, ServiceConfig, ServiceKind};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The salt file in the agent's data directory.
pub(crate) const PERSONA_FILE: &str = "persona.bin";
const MAGIC: &[u8; 8] = b"HBPERSO1";
/// MAGIC, 32 bytes of salt, the creation time (i64 LE), the PID reservation (u64 LE).
const FILE_LEN: usize = 8 + 32 + 8 + 8;
/// PIDs reserved per write of the file: a restart (even a crash) resumes above them.
const PID_RESERVATION: u64 = 1024;

/// Debian 12's `kernel.pid_max` (systemd raises it to 2^22 on 64-bit).
pub(crate) const PID_MAX: u64 = 4_194_304;

/// A stream of numbers for one field: SplitMix64 seeded from SHA-256(seed, label), so
/// each field has its own stream and adding a field never changes the others. Services
/// draw their own per-node facts (a router's model, a site's name) from
/// [`Persona::stream`] with a label of their own.
#[derive(Debug, Clone)]
pub(crate) struct Draw(u64);

impl Draw {
    pub(crate) fn new(seed: &[u8; 32], label: &str) -> Draw {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(seed);
        ctx.update(label.as_bytes());
        let d = ctx.finish();
        let mut b = [0u8; 8];
        b.copy_from_slice(&d.as_ref()[..8]);
        Draw(u64::from_le_bytes(b))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1).max(1) as u64) as i64
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub(crate) fn byte(&mut self) -> u8 {
        (self.next() >> 24) as u8
    }

    pub(crate) fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16) as usize]))
            .collect()
    }
}

/// The hypervisor the machine pretends to run on; it decides the NIC's vendor and name,
/// the disk's name, the CPU models and `lscpu`'s hypervisor line, so they agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Platform {
    /// An AWS EC2 Nitro instance (KVM; MACs are locally administered).
    Aws,
    /// A KVM/QEMU VPS (OpenStack, Proxmox, most hosting providers).
    Kvm,
    Vmware,
    HyperV,
    Xen,
}

impl Platform {
    /// `lscpu`'s "Hypervisor vendor".
    pub(crate) fn hypervisor(self) -> &'static str {
        match self {
            Platform::Aws | Platform::Kvm => "KVM",
            Platform::Vmware => "VMware",
            Platform::HyperV => "Microsoft",
            Platform::Xen => "Xen",
        }
    }

    /// The root disk (without the partition number).
    pub(crate) fn disk(self) -> &'static str {
        match self {
            Platform::Aws => "nvme0n1",
            Platform::Kvm => "vda",
            Platform::Vmware | Platform::HyperV => "sda",
            Platform::Xen => "xvda",
        }
    }

    /// The root partition's device.
    pub(crate) fn root_device(self) -> String {
        match self {
            Platform::Aws => "/dev/nvme0n1p1".into(),
            p => format!("/dev/{}1", p.disk()),
        }
    }
}

/// A CPU model as `/proc/cpuinfo` names it.
#[derive(Debug)]
pub(crate) struct Cpu {
    pub name: &'static str,
    pub intel: bool,
    pub family: u32,
    pub model: u32,
    pub stepping: u32,
    /// `cpu MHz`, as printed.
    pub mhz: &'static str,
    /// `cache size` in KB.
    pub cache_kb: u32,
    pub phys_bits: u32,
    platforms: &'static [Platform],
}

use Platform::{Aws, HyperV, Kvm, Vmware, Xen};

const CPUS: &[Cpu] = &[
    Cpu {
        name: "Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz",
        intel: true,
        family: 6,
        model: 79,
        stepping: 1,
        mhz: "2299.998",
        cache_kb: 46080,
        phys_bits: 46,
        platforms: &[Aws, Xen],
    },
    Cpu {
        name: "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz",
        intel: true,
        family: 6,
        model: 85,
        stepping: 7,
        mhz: "2499.998",
        cache_kb: 36608,
        phys_bits: 46,
        platforms: &[Aws],
    },
    Cpu {
        name: "AMD EPYC 7571",
        intel: false,
        family: 23,
        model: 1,
        stepping: 2,
        mhz: "2199.948",
        cache_kb: 512,
        phys_bits: 48,
        platforms: &[Aws],
    },
    Cpu {
        name: "Intel Xeon Processor (Skylake, IBRS)",
        intel: true,
        family: 6,
        model: 85,
        stepping: 4,
        mhz: "2099.998",
        cache_kb: 16384,
        phys_bits: 40,
        platforms: &[Kvm],
    },
    Cpu {
        name: "AMD EPYC-Rome Processor",
        intel: false,
        family: 23,
        model: 49,
        stepping: 0,
        mhz: "2445.406",
        cache_kb: 512,
        phys_bits: 40,
        platforms: &[Kvm],
    },
    Cpu {
        name: "Common KVM processor",
        intel: true,
        family: 15,
        model: 6,
        stepping: 1,
        mhz: "2394.454",
        cache_kb: 16384,
        phys_bits: 40,
        platforms: &[Kvm],
    },
    Cpu {
        name: "Intel(R) Xeon(R) Gold 6132 CPU @ 2.60GHz",
        intel: true,
        family: 6,
        model: 85,
        stepping: 4,
        mhz: "2593.906",
        cache_kb: 19712,
        phys_bits: 46,
        platforms: &[Kvm, Vmware],
    },
    Cpu {
        name: "Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz",
        intel: true,
        family: 6,
        model: 85,
        stepping: 7,
        mhz: "2992.969",
        cache_kb: 36608,
        phys_bits: 45,
        platforms: &[Vmware],
    },
    Cpu {
        name: "Intel(R) Xeon(R) Silver 4214 CPU @ 2.20GHz",
        intel: true,
        family: 6,
        model: 85,
        stepping: 7,
        mhz: "2194.843",
        cache_kb: 16896,
        phys_bits: 45,
        platforms: &[Vmware],
    },
    Cpu {
        name: "Intel(R) Xeon(R) Platinum 8272CL CPU @ 2.60GHz",
        intel: true,
        family: 6,
        model: 85,
        stepping: 7,
        mhz: "2593.905",
        cache_kb: 36608,
        phys_bits: 46,
        platforms: &[HyperV],
    },
    Cpu {
        name: "Intel(R) Xeon(R) CPU E5-2673 v4 @ 2.30GHz",
        intel: true,
        family: 6,
        model: 79,
        stepping: 1,
        mhz: "2294.686",
        cache_kb: 51200,
        phys_bits: 46,
        platforms: &[HyperV],
    },
    Cpu {
        name: "Intel(R) Xeon(R) CPU E5-2680 v2 @ 2.80GHz",
        intel: true,
        family: 6,
        model: 62,
        stepping: 4,
        mhz: "2800.090",
        cache_kb: 25600,
        phys_bits: 46,
        platforms: &[Xen],
    },
];

/// One Debian 12 kernel package: `6.1.0-{abi}-amd64`, built from `{upstream}-{rev}`.
#[derive(Debug)]
pub(crate) struct KernelBuild {
    pub abi: u32,
    pub upstream: &'static str,
    pub revision: &'static str,
    /// The build date in the version string.
    pub date: &'static str,
    /// The `/etc/debian_version` of a system that got this kernel with its point release.
    pub debian_version: &'static str,
}

impl KernelBuild {
    /// `6.1.0-18-amd64`
    pub(crate) fn release(&self) -> String {
        format!("6.1.0-{}-amd64", self.abi)
    }

    /// `#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)`
    pub(crate) fn version(&self) -> String {
        format!(
            "#1 SMP PREEMPT_DYNAMIC Debian {}-{} ({})",
            self.upstream, self.revision, self.date
        )
    }

    fn unix_date(&self) -> i64 {
        parse_date(self.date).unwrap_or(0)
    }
}

/// Debian 12's kernels from 12.5 on (the fake tree's install is no older than that).
const KERNELS: &[KernelBuild] = &[
    KernelBuild {
        abi: 18,
        upstream: "6.1.76",
        revision: "1",
        date: "2024-02-01",
        debian_version: "12.5",
    },
    KernelBuild {
        abi: 20,
        upstream: "6.1.85",
        revision: "1",
        date: "2024-04-11",
        debian_version: "12.5",
    },
    KernelBuild {
        abi: 21,
        upstream: "6.1.90",
        revision: "1",
        date: "2024-05-03",
        debian_version: "12.5",
    },
    KernelBuild {
        abi: 22,
        upstream: "6.1.94",
        revision: "1",
        date: "2024-06-21",
        debian_version: "12.6",
    },
    KernelBuild {
        abi: 23,
        upstream: "6.1.99",
        revision: "1",
        date: "2024-07-15",
        debian_version: "12.6",
    },
    KernelBuild {
        abi: 25,
        upstream: "6.1.106",
        revision: "3",
        date: "2024-08-26",
        debian_version: "12.7",
    },
    KernelBuild {
        abi: 26,
        upstream: "6.1.112",
        revision: "1",
        date: "2024-09-30",
        debian_version: "12.7",
    },
    KernelBuild {
        abi: 27,
        upstream: "6.1.115",
        revision: "1",
        date: "2024-11-01",
        debian_version: "12.8",
    },
    KernelBuild {
        abi: 28,
        upstream: "6.1.119",
        revision: "1",
        date: "2024-12-19",
        debian_version: "12.8",
    },
    KernelBuild {
        abi: 29,
        upstream: "6.1.123",
        revision: "1",
        date: "2025-01-02",
        debian_version: "12.9",
    },
    KernelBuild {
        abi: 31,
        upstream: "6.1.128",
        revision: "1",
        date: "2025-02-07",
        debian_version: "12.9",
    },
    KernelBuild {
        abi: 32,
        upstream: "6.1.129",
        revision: "1",
        date: "2025-03-06",
        debian_version: "12.10",
    },
    KernelBuild {
        abi: 33,
        upstream: "6.1.133",
        revision: "1",
        date: "2025-04-10",
        debian_version: "12.10",
    },
    KernelBuild {
        abi: 37,
        upstream: "6.1.140",
        revision: "1",
        date: "2025-05-22",
        debian_version: "12.11",
    },
];

/// How a zone switches to summer time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DstRule {
    /// Last Sunday of March to last Sunday of October, at 01:00 UTC.
    Eu,
    /// Second Sunday of March to first Sunday of November, at 02:00 local.
    Us,
}

/// A time zone as `/etc/timezone` names it.
#[derive(Debug)]
pub(crate) struct Zone {
    pub name: &'static str,
    pub std_abbr: &'static str,
    pub std_offset: i32,
    pub dst: Option<(&'static str, i32, DstRule)>,
}

const ZONES: &[Zone] = &[
    Zone {
        name: "Etc/UTC",
        std_abbr: "UTC",
        std_offset: 0,
        dst: None,
    },
    Zone {
        name: "Europe/Berlin",
        std_abbr: "CET",
        std_offset: 3600,
        dst: Some(("CEST", 7200, DstRule::Eu)),
    },
    Zone {
        name: "Europe/London",
        std_abbr: "GMT",
        std_offset: 0,
        dst: Some(("BST", 3600, DstRule::Eu)),
    },
    Zone {
        name: "Europe/Amsterdam",
        std_abbr: "CET",
        std_offset: 3600,
        dst: Some(("CEST", 7200, DstRule::Eu)),
    },
    Zone {
        name: "America/New_York",
        std_abbr: "EST",
        std_offset: -18_000,
        dst: Some(("EDT", -14_400, DstRule::Us)),
    },
    Zone {
        name: "America/Chicago",
        std_abbr: "CST",
        std_offset: -21_600,
        dst: Some(("CDT", -18_000, DstRule::Us)),
    },
    Zone {
        name: "Asia/Singapore",
        std_abbr: "+08",
        std_offset: 28_800,
        dst: None,
    },
    Zone {
        name: "Asia/Tokyo",
        std_abbr: "JST",
        std_offset: 32_400,
        dst: None,
    },
];

/// Every zone a persona may have (for the differential test against tzdata).
#[cfg(test)]
pub(crate) fn zones() -> &'static [Zone] {
    ZONES
}

impl Zone {
    /// (offset from UTC in seconds, abbreviation) at Unix time `t`.
    pub(crate) fn at(&self, t: i64) -> (i32, &'static str) {
        let Some((abbr, off, rule)) = self.dst else {
            return (self.std_offset, self.std_abbr);
        };
        let (y, _, _) = civil(t.div_euclid(86_400));
        let (start, end) = match rule {
            DstRule::Eu => (
                last_sunday(y, 3) * 86_400 + 3600,
                last_sunday(y, 10) * 86_400 + 3600,
            ),
            DstRule::Us => (
                nth_sunday(y, 3, 2) * 86_400 + 7200 - i64::from(self.std_offset),
                nth_sunday(y, 11, 1) * 86_400 + 7200 - i64::from(off),
            ),
        };
        if (start..end).contains(&t) {
            (off, abbr)
        } else {
            (self.std_offset, self.std_abbr)
        }
    }
}

/// The machine's network: one NIC on a private subnet.
#[derive(Debug, Clone)]
pub(crate) struct Net {
    /// `ens5`, `ens3`, `ens192`, …
    pub iface: &'static str,
    pub mac: [u8; 6],
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// The gateway's MAC, for `/proc/net/arp`.
    pub gateway_mac: [u8; 6],
    pub dns: Vec<Ipv4Addr>,
    /// `search` domain of resolv.conf, if any.
    pub search: Option<&'static str>,
}

impl Net {
    pub(crate) fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(
            u32::MAX
                .checked_shl(32 - u32::from(self.prefix))
                .unwrap_or(0),
        )
    }

    pub(crate) fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & u32::from(self.netmask()))
    }

    pub(crate) fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !u32::from(self.netmask()))
    }
}

/// `aa:bb:cc:dd:ee:ff`
pub(crate) fn mac_string(mac: &[u8; 6]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

/// The pure persona: a function of the seed and the creation time.
#[derive(Debug)]
pub(crate) struct Persona {
    /// What every value below was drawn from; [`Persona::stream`] gives services more.
    seed: [u8; 32],
    /// The generated host name (a service's configured one, if any, wins).
    pub hostname: String,
    pub platform: Platform,
    pub kernel: &'static KernelBuild,
    /// When the fake system was installed: the base of file dates.
    pub install_time: i64,
    pub boot_time: i64,
    pub cpu: &'static Cpu,
    pub cpus: u32,
    pub mem_kib: u64,
    /// Root filesystem: 1K-blocks and used.
    pub disk_kib: u64,
    pub disk_used_kib: u64,
    /// 32 hex digits.
    pub machine_id: String,
    /// A UUID, as `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    pub net: Net,
    /// First PID handed out after boot to login sessions; PIDs grow from it with time.
    pub pid_base: u64,
    /// PIDs the machine uses per hour (cron, timers), so they advance with uptime.
    pub pid_rate: u64,
    /// PIDs of the boot-time daemons, ascending.
    pub daemon_pids: Vec<u32>,
    /// Where the previous admin login came from, and how long before a session.
    pub last_login_src: Ipv4Addr,
    pub last_login_ago: i64,
    pub zone: &'static Zone,
    /// Shapes the load average's slow drift.
    load_base: f64,
    load_amp: f64,
    load_period: f64,
    load_phase: f64,
    /// Share of memory in use by programs (free(1)'s "used"), of page cache.
    pub mem_used_frac: f64,
    pub mem_cache_frac: f64,
    /// Random-looking bytes for the fake SSH host public keys.
    pub host_key_ed25519: [u8; 32],
}

const ROLES: &[&str] = &[
    "web", "app", "api", "www", "srv", "node", "backend", "worker", "proxy", "mail", "git", "ci",
    "vpn", "monitor", "db", "docker", "build", "files", "shop", "cms",
];
const ENVS: &[&str] = &["prod", "prd", "stg", "staging", "dev", "int", "live"];
const WORDS: &[&str] = &[
    "nebula", "orion", "atlas", "hermes", "apollo", "zeus", "phoenix", "falcon", "titan", "vega",
    "sirius", "draco", "lynx", "kestrel", "nova", "pluto", "mercury", "juno",
];
const AWS_SEARCH: &[&str] = &[
    "ec2.internal",
    "eu-west-1.compute.internal",
    "eu-central-1.compute.internal",
    "us-west-2.compute.internal",
    "ap-southeast-1.compute.internal",
];

impl Persona {
    /// The persona of `seed`, for a node whose salt was made at `anchor` (Unix seconds):
    /// the machine had then been up a seeded number of days.
    pub(crate) fn generate(seed: &[u8; 32], anchor: i64) -> Persona {
        let d = |label: &str| Draw::new(seed, label);
        let platform = *d("platform").pick(&[Aws, Aws, Kvm, Kvm, Kvm, Vmware, Vmware, HyperV, Xen]);

        let cpu_choices: Vec<&'static Cpu> = CPUS
            .iter()
            .filter(|c| c.platforms.contains(&platform))
            .collect();
        let cpu = *d("cpu").pick(&cpu_choices);
        let mut hw = d("hardware");
        let cpus = *hw.pick(&[1u32, 2, 2, 2, 4, 4, 8]);
        let gib = match cpus {
            1 => *hw.pick(&[1u64, 1, 2]),
            2 => *hw.pick(&[2u64, 4, 4, 8]),
            4 => *hw.pick(&[4u64, 8, 8, 16]),
            _ => *hw.pick(&[16u64, 32]),
        };
        // What the kernel leaves after its own reservations: 95.5–97.5 %.
        let mem_kib = gib * 1_048_576 * (955 + hw.below(21)) / 1000;
        let disk_gib = *hw.pick(&[20u64, 25, 30, 40, 50, 60, 80, 100, 160]);
        // ext4's own overhead, then 2–7 GiB of system and logs.
        let disk_kib = disk_gib * 1_048_576 * 965 / 1000;
        let disk_used_kib = (2 * 1_048_576 + hw.below(5 * 1_048_576)).min(disk_kib / 2);
        let mem_used_frac = 0.12 + hw.below(300) as f64 / 1000.0;
        let mem_cache_frac = 0.20 + hw.below(400) as f64 / 1000.0;

        let mut t = d("time");
        let uptime0 = t.range(3 * 86_400, 180 * 86_400);
        let boot_time = anchor - uptime0;
        let install_lo = parse_date("2024-02-10").unwrap_or(0);
        let install_hi = parse_date("2025-06-01")
            .unwrap_or(0)
            .min(boot_time - 86_400);
        let install_time = t.range(install_lo, install_hi.max(install_lo));
        // The kernel: one released between the install and the boot (upgraded since).
        let fitting: Vec<&'static KernelBuild> = KERNELS
            .iter()
            .filter(|k| {
                let at = k.unix_date();
                at >= install_time - 60 * 86_400 && at < boot_time - 86_400
            })
            .collect();
        let kernel = if fitting.is_empty() {
            KERNELS
                .iter()
                .rev()
                .find(|k| k.unix_date() < boot_time)
                .unwrap_or(&KERNELS[0])
        } else {
            *d("kernel").pick(&fitting)
        };

        let net = Self::network(platform, &mut d("net"));
        let hostname = Self::hostname(platform, &net, &mut d("hostname"));

        let mut ids = d("ids");
        let machine_id = ids.hex(32);
        let b = ids.hex(32);
        let boot_id = format!(
            "{}-{}-4{}-{}{}-{}",
            &b[..8],
            &b[8..12],
            &b[13..16],
            ["8", "9", "a", "b"][ids.below(4) as usize],
            &b[17..20],
            &b[20..32]
        );

        let mut p = d("pids");
        let mut daemon_pids = Vec::with_capacity(32);
        let mut pid = 280 + p.below(120) as u32;
        for _ in 0..32 {
            daemon_pids.push(pid);
            pid += 1 + p.below(40) as u32;
        }
        let pid_rate = 40 + p.below(260);
        let pid_base = 1500 + p.below(20_000);

        let mut l = d("last-login");
        let n = u32::from(net.network());
        let last_login_src = match l.below(3) {
            // From another host of the same network (a bastion, a VPN concentrator).
            0 | 1 => Ipv4Addr::from(n | (2 + l.below(200) as u32)),
            // From an office's VPN range.
            _ => Ipv4Addr::new(10, 8 + l.below(8) as u8, l.byte(), 2 + l.below(250) as u8),
        };
        let last_login_ago = l.range(3_600, 9 * 86_400);

        let mut z = d("zone");
        let zone = if z.below(2) == 0 {
            &ZONES[0]
        } else {
            z.pick(ZONES)
        };

        let mut ld = d("load");
        let mut key = [0u8; 32];
        let mut kd = d("host-keys");
        for b in &mut key {
            *b = kd.byte();
        }
        Persona {
            seed: *seed,
            hostname,
            platform,
            kernel,
            install_time,
            boot_time,
            cpu,
            cpus,
            mem_kib,
            disk_kib,
            disk_used_kib,
            machine_id,
            boot_id,
            net,
            pid_base,
            pid_rate,
            daemon_pids,
            last_login_src,
            last_login_ago,
            zone,
            load_base: ld.below(150) as f64 / 1000.0,
            load_amp: 0.02 + ld.below(300) as f64 / 1000.0,
            load_period: 3_600.0 * (2 + ld.below(10)) as f64,
            load_phase: ld.below(6283) as f64 / 1000.0,
            mem_used_frac,
            mem_cache_frac,
            host_key_ed25519: key,
        }
    }

    fn network(platform: Platform, r: &mut Draw) -> Net {
        let (addr, prefix, gateway) = if platform == Aws {
            // The default VPC: 172.31.0.0/16 cut into /20s, the router at .1.
            let sub = r.below(16) as u32 * 16;
            let base = u32::from(Ipv4Addr::new(172, 31, 0, 0)) | (sub << 8);
            let host = 4 + r.below(4000) as u32;
            (Ipv4Addr::from(base | host), 20, Ipv4Addr::from(base | 1))
        } else {
            let base = match r.below(3) {
                0 => Ipv4Addr::new(10, r.byte(), r.byte(), 0),
                1 => Ipv4Addr::new(172, 16 + r.below(16) as u8, r.byte(), 0),
                _ => Ipv4Addr::new(192, 168, r.byte(), 0),
            };
            let base = u32::from(base);
            (
                Ipv4Addr::from(base | (10 + r.below(240) as u32)),
                24,
                Ipv4Addr::from(base | 1),
            )
        };
        let mut mac = [0u8; 6];
        for b in &mut mac {
            *b = r.byte();
        }
        let (oui, iface): (&[u8], &'static str) = match platform {
            Aws => (&[], "ens5"),
            Kvm => (
                &[0x52, 0x54, 0x00],
                *r.pick(&["ens3", "ens18", "enp1s0", "eth0"]),
            ),
            Vmware => (
                *r.pick(&[&[0x00u8, 0x50, 0x56][..], &[0x00, 0x0c, 0x29][..]]),
                *r.pick(&["ens192", "ens160", "ens33"]),
            ),
            HyperV => (&[0x00, 0x15, 0x5d], "eth0"),
            Xen => (&[0x00, 0x16, 0x3e], "enX0"),
        };
        if oui.is_empty() {
            // EC2: a unicast, locally administered address.
            mac[0] = (mac[0] & 0xfc) | 0x02;
        } else {
            mac[..3].copy_from_slice(oui);
            if oui == [0x00, 0x50, 0x56] {
                // VMware's static range: the fourth byte is at most 0x3f.
                mac[3] &= 0x3f;
            }
        }
        let mut gateway_mac = [0u8; 6];
        for b in &mut gateway_mac {
            *b = r.byte();
        }
        gateway_mac[0] = (gateway_mac[0] & 0xfc) | 0x02;
        let (dns, search) = if platform == Aws {
            let vpc_dns = Ipv4Addr::new(172, 31, 0, 2);
            (vec![vpc_dns], Some(*r.pick(AWS_SEARCH)))
        } else {
            match r.below(4) {
                0 => (vec![gateway], None),
                1 => (
                    vec![Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(1, 0, 0, 1)],
                    None,
                ),
                2 => (
                    vec![Ipv4Addr::new(8, 8, 8, 8), Ipv4Addr::new(8, 8, 4, 4)],
                    None,
                ),
                _ => (
                    vec![Ipv4Addr::from(u32::from(gateway) + 1)],
                    Some(*r.pick(&["lan", "internal", "local.lan", "corp.internal"])),
                ),
            }
        };
        Net {
            iface,
            mac,
            addr,
            prefix,
            gateway,
            gateway_mac,
            dns,
            search,
        }
    }

    fn hostname(platform: Platform, net: &Net, r: &mut Draw) -> String {
        let o = net.addr.octets();
        match r.below(6) {
            0 if platform == Aws => format!("ip-{}-{}-{}-{}", o[0], o[1], o[2], o[3]),
            0 | 1 => format!("{}-{}-{:02}", r.pick(ROLES), r.pick(ENVS), 1 + r.below(12)),
            2 => format!("{}{:02}", r.pick(ROLES), 1 + r.below(30)),
            3 => format!("{}-{}", r.pick(WORDS), r.pick(ROLES)),
            4 => (*r.pick(WORDS)).to_owned(),
            _ => format!("{}-{}", r.pick(ROLES), r.hex(6)),
        }
    }

    /// The fixture the shell's unit tests and the fuzz harness use: the single machine
    /// every node used to show (kernel 6.1.0-18, two E5-2686 v4, 4 GB, 172.31.22.14).
    pub(crate) fn reference(hostname: &str) -> Persona {
        let mut p = Persona::generate(&[7u8; 32], 1_713_090_151);
        p.hostname = hostname.to_owned();
        p.platform = Aws;
        p.kernel = &KERNELS[0];
        p.install_time = 1_707_563_160;
        p.boot_time = 1_713_090_151 - (41 * 86_400 + 3 * 3_600 + 12 * 60);
        p.cpu = &CPUS[0];
        p.cpus = 2;
        p.mem_kib = 4_014_036;
        p.disk_kib = 30_898_444;
        p.disk_used_kib = 4_294_112;
        p.machine_id = "5f1c8e7a2b9d4c6e8f0a1b2c3d4e5f60".into();
        p.net = Net {
            iface: "ens5",
            mac: [0x0a, 0x3b, 0x5c, 0x71, 0x22, 0x9e],
            addr: Ipv4Addr::new(172, 31, 22, 14),
            prefix: 20,
            gateway: Ipv4Addr::new(172, 31, 16, 1),
            gateway_mac: [0x0a, 0x11, 0x42, 0x07, 0x3c, 0x15],
            dns: vec![Ipv4Addr::new(172, 31, 0, 2)],
            search: Some("ec2.internal"),
        };
        p.pid_base = 23_700;
        p.last_login_src = Ipv4Addr::new(10, 0, 4, 17);
        p.last_login_ago = 3 * 86_400 + 4_211;
        p.zone = &ZONES[0];
        p
    }

    /// A stream of per-node numbers for `label` (a service's own facts: a router's model,
    /// a site's name, a certificate's serial): the same on every start of this node,
    /// different on every other node. Each label is its own stream.
    pub(crate) fn stream(&self, label: &str) -> Draw {
        Draw::new(&self.seed, label)
    }

    /// Seconds up at `now` (never negative).
    pub(crate) fn uptime(&self, now: i64) -> i64 {
        (now - self.boot_time).max(0)
    }

    /// The 1, 5 and 15 minute load averages at `now`: a slow seeded wave, the same for
    /// every session at the same moment.
    pub(crate) fn load(&self, now: i64) -> [f64; 3] {
        let f = |t: f64| -> f64 {
            let wave =
                0.5 + 0.5 * (t * std::f64::consts::TAU / self.load_period + self.load_phase).sin();
            // A little noise per minute, stable for that minute.
            let minute = (t / 60.0) as i64 as u64;
            let noise = (minute.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54) as f64 / 1024.0;
            (self.load_base + self.load_amp * wave + 0.04 * noise) * f64::from(self.cpus.min(4))
                / 2.0
        };
        let t = now as f64;
        let avg = |span: f64| -> f64 {
            (0..5)
                .map(|i| f(t - span * f64::from(i) / 4.0))
                .sum::<f64>()
                / 5.0
        };
        [f(t), avg(300.0), avg(900.0)]
    }

    /// Local (wall-clock) seconds and the zone's abbreviation at Unix time `t`.
    pub(crate) fn local(&self, t: i64) -> (i64, &'static str) {
        let (off, abbr) = self.zone.at(t);
        (t + i64::from(off), abbr)
    }

    /// Memory in KiB: (total, used, free, shared, buff/cache, available), as free(1).
    pub(crate) fn memory(&self) -> [u64; 6] {
        let total = self.mem_kib;
        let used = (total as f64 * self.mem_used_frac) as u64;
        let cache = (total as f64 * self.mem_cache_frac) as u64;
        let shared = total / 270;
        let free = total.saturating_sub(used + cache);
        let available = free + cache * 9 / 10;
        [total, used, free, shared, cache, available]
    }

    /// The host's ed25519 public key line (`ssh-ed25519 AAAA… root@host`).
    pub(crate) fn ssh_ed25519_pub(&self, hostname: &str) -> String {
        use base64::Engine as _;
        let mut blob = Vec::with_capacity(51);
        blob.extend_from_slice(&11u32.to_be_bytes());
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&32u32.to_be_bytes());
        blob.extend_from_slice(&self.host_key_ed25519);
        format!(
            "ssh-ed25519 {} root@{hostname}\n",
            base64::engine::general_purpose::STANDARD.encode(blob)
        )
    }
}

/// A program the node is seen to run, for `ps` and `/proc/net/tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Program {
    Sshd,
    /// inetutils-inetd, which starts telnetd.
    Inetd,
    Lighttpd,
    Apache,
    Vsftpd,
    Redis,
    /// Oracle's MySQL 8.0 (a MySQL service pinned to an `8.x` version).
    Mysqld,
    /// Debian 12's MariaDB 10.11 (`mariadbd`): what a MySQL service runs by default.
    Mariadb,
    /// Postfix's `master` with its `qmgr` and `pickup`, for an SMTP service.
    Postfix,
    /// A service without a program of its own in the table (banner, Modbus).
    Other,
}

/// A listening socket of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listener {
    pub port: u16,
    pub program: Program,
}

impl Listener {
    /// What a configured service looks like from inside the machine. A high port for a
    /// service that has a well-known low one (SSH on 2222 behind a redirect) is shown
    /// as the well-known one: that is the port the intruder came in on.
    pub(crate) fn of(cfg: &ServiceConfig) -> Option<Listener> {
        let (program, well_known) = match &cfg.kind {
            ServiceKind::Ssh(_) => (Program::Sshd, 22),
            ServiceKind::Telnet(_) => (Program::Inetd, 23),
            ServiceKind::Http(o) => (
                match o.persona {
                    HttpPersona::Router | HttpPersona::Plc => Program::Lighttpd,
                    _ => Program::Apache,
                },
                if o.tls { 443 } else { 80 },
            ),
            ServiceKind::Ftp(_) => (Program::Vsftpd, 21),
            ServiceKind::Redis(_) => (Program::Redis, 6379),
            // As the MySQL service decides (`mysql/mod.rs`): 8.x is Oracle's, the rest
            // (the default, empty) Debian's MariaDB.
            ServiceKind::Mysql(o) if o.version.trim().starts_with("8.") => (Program::Mysqld, 3306),
            ServiceKind::Mysql(_) => (Program::Mariadb, 3306),
            ServiceKind::Smtp(_) => (Program::Postfix, 25),
            ServiceKind::Modbus(_) => (Program::Other, 502),
            ServiceKind::Banner(_) => (Program::Other, 0),
            _ => return None,
        };
        let configured = cfg.listen.port();
        let port =
            if configured == 0 || (configured >= 1024 && well_known != 0 && well_known < 1024) {
                well_known
            } else {
                configured
            };
        (port != 0).then_some(Listener { port, program })
    }
}

/// A node's persona with what changes while it runs. One per node, shared by all its
/// services (SSH and Telnet show the same machine).
#[derive(Debug)]
pub(crate) struct NodePersona {
    persona: Persona,
    /// The highest PID handed out (before wrapping at [`PID_MAX`]).
    last_pid: AtomicU64,
    listeners: RwLock<Vec<Listener>>,
    /// The last interactive login per user (lastlog), in memory: a returning intruder
    /// is told when and from where they last logged in, as on a real machine.
    last_logins: Mutex<HashMap<String, (i64, IpAddr)>>,
    /// PIDs up to this one are reserved in the file; past it a new block is saved.
    reserved: AtomicU64,
    /// Where the persona is kept, with what the file holds besides the reservation.
    store: Option<Store>,
    /// The SSH service's real host keys as `/etc/ssh/*.pub` files (path, contents), so
    /// the shell shows the keys clients saw; empty until an SSH service starts.
    host_key_files: RwLock<Vec<(String, String)>>,
    /// The options of the node's (first enabled) Modbus service, so that its PLC's web
    /// page names the device Modbus identifies.
    modbus: RwLock<Option<ModbusOptions>>,
    /// The host name an SSH or Telnet service of the node is configured with, if any:
    /// it wins over the persona's everywhere (shell, certificate, error pages).
    hostname: RwLock<Option<String>>,
}

#[derive(Debug)]
struct Store {
    path: std::path::PathBuf,
    salt: [u8; 32],
    anchor: i64,
}

impl Store {
    fn bytes(&self, reserved: u64) -> Vec<u8> {
        let mut b = Vec::with_capacity(FILE_LEN);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.salt);
        b.extend_from_slice(&self.anchor.to_le_bytes());
        b.extend_from_slice(&reserved.to_le_bytes());
        b
    }

    fn save(&self, reserved: u64) {
        if let Err(e) = crate::statefile::write_atomically(&self.path, &self.bytes(reserved)) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot save the persona");
        }
    }
}

/// Most users whose last login is kept.
const MAX_LAST_LOGINS: usize = 256;

impl NodePersona {
    pub(crate) fn new(persona: Persona) -> Arc<NodePersona> {
        Arc::new(NodePersona {
            persona,
            last_pid: AtomicU64::new(0),
            listeners: RwLock::new(Vec::new()),
            last_logins: Mutex::new(HashMap::new()),
            reserved: AtomicU64::new(u64::MAX),
            store: None,
            host_key_files: RwLock::new(Vec::new()),
            modbus: RwLock::new(None),
            hostname: RwLock::new(None),
        })
    }

    /// The reference fixture (see [`Persona::reference`]) with an SSH listener.
    pub(crate) fn reference(hostname: &str) -> Arc<NodePersona> {
        let p = NodePersona::new(Persona::reference(hostname));
        p.set_listeners(vec![Listener {
            port: 22,
            program: Program::Sshd,
        }]);
        p
    }

    /// The persona of the node whose data directory is `dir`: its seed from the node's
    /// id (if enrolled) and the salt in [`PERSONA_FILE`], made on first use. When the
    /// file cannot be written the persona still differs per run, with a warning.
    pub(crate) fn load(dir: &Path) -> Arc<NodePersona> {
        let path = dir.join(PERSONA_FILE);
        let stored = match crate::statefile::read_bounded(&path, FILE_LEN) {
            Ok(Some(b)) if b.len() == FILE_LEN && &b[..8] == MAGIC => {
                let mut salt = [0u8; 32];
                salt.copy_from_slice(&b[8..40]);
                let mut t = [0u8; 8];
                t.copy_from_slice(&b[40..48]);
                let mut r = [0u8; 8];
                r.copy_from_slice(&b[48..56]);
                Some((salt, i64::from_le_bytes(t), u64::from_le_bytes(r)))
            }
            Ok(Some(_)) => {
                tracing::warn!(path = %path.display(), "persona file ignored: not a persona file; making a new persona");
                None
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "persona file unreadable; making a new persona");
                None
            }
        };
        let fresh = stored.is_none();
        let (salt, anchor, reserved) =
            stored.unwrap_or_else(|| (rand::random(), crate::sink::now_ms() / 1000, 0));
        // An agent's data directory exists (it holds its identity); a manager built on a
        // directory that does not (a test's) keeps its persona in memory.
        let store = if dir.is_dir() {
            let store = Store { path, salt, anchor };
            if fresh {
                store.save(reserved);
            }
            Some(store)
        } else {
            tracing::debug!(dir = %dir.display(), "no data directory: persona kept in memory");
            None
        };
        let node_id = crate::config::AgentConfig::load(&crate::config::AgentPaths::new(dir))
            .map(|c| c.node_id)
            .unwrap_or_default();
        Arc::new(NodePersona {
            persona: Persona::generate(&seed(&node_id, &salt), anchor),
            // PIDs resume above everything the last run may have handed out.
            last_pid: AtomicU64::new(reserved),
            listeners: RwLock::new(Vec::new()),
            last_logins: Mutex::new(HashMap::new()),
            reserved: AtomicU64::new(reserved),
            store,
            host_key_files: RwLock::new(Vec::new()),
            modbus: RwLock::new(None),
            hostname: RwLock::new(None),
        })
    }

    pub(crate) fn persona(&self) -> &Persona {
        &self.persona
    }

    /// The node's listening services, as the service manager last applied them.
    pub(crate) fn listeners(&self) -> Vec<Listener> {
        self.listeners
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_listeners(&self, mut l: Vec<Listener>) {
        l.sort_by_key(|x| x.port);
        l.dedup_by_key(|x| x.port);
        l.truncate(64);
        *self.listeners.write().unwrap_or_else(|e| e.into_inner()) = l;
    }

    /// Updates the listeners from a node configuration (its enabled services).
    pub(crate) fn set_services(&self, services: &[ServiceConfig]) {
        *self.hostname.write().unwrap_or_else(|e| e.into_inner()) = services
            .iter()
            .filter(|s| s.enabled)
            .find_map(|s| match &s.kind {
                ServiceKind::Ssh(o) if !o.hostname.is_empty() => Some(o.hostname.clone()),
                ServiceKind::Telnet(o) if !o.hostname.is_empty() => Some(o.hostname.clone()),
                _ => None,
            });
        *self.modbus.write().unwrap_or_else(|e| e.into_inner()) = services
            .iter()
            .filter(|s| s.enabled)
            .find_map(|s| match &s.kind {
                ServiceKind::Modbus(o) => Some(o.clone()),
                _ => None,
            });
        self.set_listeners(
            services
                .iter()
                .filter(|s| s.enabled)
                .filter_map(Listener::of)
                .collect(),
        );
    }

    /// The PID a process started at `now` gets if none started since.
    fn floor(&self, now: i64) -> u64 {
        let p = &self.persona;
        p.pid_base + (p.uptime(now) as u64).saturating_mul(p.pid_rate) / 3600
    }

    /// Hands out `n` consecutive PIDs for processes started at `now` (a login's sshd
    /// and shell, a command): above every PID handed out before and above what the
    /// machine's own background work would have used by then. Never repeats on a node.
    pub(crate) fn alloc_pids(&self, now: i64, n: u32) -> u32 {
        let floor = self.floor(now);
        let mut last = self.last_pid.load(Ordering::Relaxed);
        loop {
            // A gap of 0–3: other processes start in between.
            let gap = 1 + (last.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 62);
            let start = last.max(floor) + gap;
            match self.last_pid.compare_exchange_weak(
                last,
                start + u64::from(n.max(1)) - 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.reserve(start + u64::from(n.max(1)));
                    return wrap_pid(start);
                }
                Err(now_last) => last = now_last,
            }
        }
    }

    /// Records the SSH host keys' public files (at most 8, each at most 16 KiB).
    pub(crate) fn set_host_key_files(&self, mut files: Vec<(String, String)>) {
        files.retain(|(p, t)| p.starts_with("/etc/ssh/") && p.len() <= 128 && t.len() <= 16_384);
        files.truncate(8);
        *self
            .host_key_files
            .write()
            .unwrap_or_else(|e| e.into_inner()) = files;
    }

    pub(crate) fn host_key_files(&self) -> Vec<(String, String)> {
        self.host_key_files
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The machine's host name: an SSH or Telnet service's configured one, else the
    /// persona's.
    pub(crate) fn hostname(&self) -> String {
        self.hostname
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| self.persona.hostname.clone())
    }

    /// The node's Modbus options, if it runs a Modbus service.
    pub(crate) fn modbus_options(&self) -> Option<ModbusOptions> {
        self.modbus
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Saves a new block of PIDs when `upto` passes the saved one.
    fn reserve(&self, upto: u64) {
        let Some(store) = &self.store else { return };
        let held = self.reserved.load(Ordering::Relaxed);
        if upto < held {
            return;
        }
        let next = upto + PID_RESERVATION;
        if self
            .reserved
            .compare_exchange(held, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            store.save(next);
        }
    }

    /// Records `user`'s login at `at` from `src`; returns the one before, if any.
    pub(crate) fn swap_last_login(
        &self,
        user: &str,
        at: i64,
        src: IpAddr,
    ) -> Option<(i64, IpAddr)> {
        let mut m = self.last_logins.lock().unwrap_or_else(|e| e.into_inner());
        if !m.contains_key(user) && m.len() >= MAX_LAST_LOGINS {
            // Forget the oldest login to make room.
            if let Some(k) = m.iter().min_by_key(|(_, v)| v.0).map(|(k, _)| k.clone()) {
                m.remove(&k);
            }
        }
        m.insert(user.to_owned(), (at, src))
    }

    /// The most recent PID (for `/proc/loadavg`), without handing one out.
    pub(crate) fn last_pid(&self, now: i64) -> u32 {
        wrap_pid(self.last_pid.load(Ordering::Relaxed).max(self.floor(now)))
    }
}

fn wrap_pid(p: u64) -> u32 {
    let p = if p < PID_MAX {
        p
    } else {
        300 + (p - 300) % (PID_MAX - 300)
    };
    u32::try_from(p).unwrap_or(300)
}

/// SHA-256 of a domain label, the node id and the salt.
fn seed(node_id: &str, salt: &[u8; 32]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"honeybee persona v1\0");
    ctx.update(&(node_id.len() as u64).to_le_bytes());
    ctx.update(node_id.as_bytes());
    ctx.update(salt);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

// ---- calendar -------------------------------------------------------------------------

/// (year, month 1-12, day) of a Unix day number (Howard Hinnant's days-to-civil).
pub(crate) fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The Unix day number of a date.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// 0 = Sunday.
pub(crate) fn weekday(days: i64) -> i64 {
    (days + 4).rem_euclid(7)
}

fn last_sunday(y: i64, m: u32) -> i64 {
    let next = if m == 12 {
        days_from_civil(y + 1, 1, 1)
    } else {
        days_from_civil(y, m + 1, 1)
    };
    let last = next - 1;
    last - weekday(last)
}

fn nth_sunday(y: i64, m: u32, n: i64) -> i64 {
    let first = days_from_civil(y, m, 1);
    first + (7 - weekday(first)) % 7 + 7 * (n - 1)
}

/// `YYYY-MM-DD` at midnight UTC.
fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.split('-');
    let y = it.next()?.parse().ok()?;
    let m = it.next()?.parse().ok()?;
    let d = it.next()?.parse().ok()?;
    Some(days_from_civil(y, m, d) * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000;

    fn persona(n: u8) -> Persona {
        let mut s = [0u8; 32];
        s[0] = n;
        s[31] = n.wrapping_mul(7);
        Persona::generate(&s, NOW)
    }

    #[test]
    fn same_seed_same_persona() {
        let (a, b) = (persona(1), persona(1));
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }

    #[test]
    fn different_seeds_differ() {
        let personas: Vec<Persona> = (0..40).map(persona).collect();
        let distinct = |f: &dyn Fn(&Persona) -> String| {
            let mut v: Vec<String> = personas.iter().map(f).collect();
            v.sort();
            v.dedup();
            v.len()
        };
        // Identity values are unique; the rest vary across the fleet.
        assert_eq!(distinct(&|p| p.machine_id.clone()), 40);
        assert_eq!(distinct(&|p| p.boot_id.clone()), 40);
        assert_eq!(distinct(&|p| mac_string(&p.net.mac)), 40);
        assert_eq!(distinct(&|p| p.net.addr.to_string()), 40);
        assert_eq!(distinct(&|p| p.boot_time.to_string()), 40);
        assert!(distinct(&|p| p.hostname.clone()) >= 36);
        assert!(distinct(&|p| p.kernel.release()) >= 4);
        assert!(distinct(&|p| p.cpu.name.to_owned()) >= 4);
        assert!(distinct(&|p| p.mem_kib.to_string()) >= 30);
        assert!(distinct(&|p| p.zone.name.to_owned()) >= 3);
        let (a, b) = (persona(1), persona(2));
        assert_ne!(a.hostname, b.hostname);
        assert_ne!(a.machine_id, b.machine_id);
        assert_ne!(a.net.mac, b.net.mac);
        assert_ne!(a.net.addr, b.net.addr);
        assert_ne!(a.boot_time, b.boot_time);
    }

    #[test]
    fn values_are_well_formed() {
        for n in 0..60 {
            let p = persona(n);
            assert_eq!(p.machine_id.len(), 32);
            assert!(
                p.machine_id
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
            let parts: Vec<&str> = p.boot_id.split('-').collect();
            assert_eq!(
                parts.iter().map(|x| x.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12]
            );
            // The MAC: the platform's vendor OUI, or a locally administered unicast one.
            let m = p.net.mac;
            let oui = [m[0], m[1], m[2]];
            match p.platform {
                Platform::Aws => assert_eq!(m[0] & 3, 2, "{m:?}"),
                Platform::Kvm => assert_eq!(oui, [0x52, 0x54, 0x00]),
                Platform::Vmware => {
                    assert!(oui == [0x00, 0x50, 0x56] || oui == [0x00, 0x0c, 0x29])
                }
                Platform::HyperV => assert_eq!(oui, [0x00, 0x15, 0x5d]),
                Platform::Xen => assert_eq!(oui, [0x00, 0x16, 0x3e]),
            }
            assert_eq!(mac_string(&m).len(), 17);
            // Kernel: `6.1.0-N-amd64` and its Debian build string.
            let rel = p.kernel.release();
            let abi: u32 = rel
                .strip_prefix("6.1.0-")
                .and_then(|r| r.strip_suffix("-amd64"))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{rel}"));
            assert!(abi >= 18);
            let v = p.kernel.version();
            let rest = v
                .strip_prefix("#1 SMP PREEMPT_DYNAMIC Debian 6.1.")
                .unwrap();
            let (ver, date) = rest.split_once(" (").unwrap();
            assert!(ver.split_once('-').is_some(), "{v}");
            let date = date.strip_suffix(')').unwrap();
            let kernel_at = parse_date(date).unwrap();
            assert!(kernel_at < p.boot_time, "kernel built before boot");
            assert!(p.install_time < p.boot_time);
            assert!(p.boot_time < NOW - 2 * 86_400);
            // The network: a private address, the gateway in the same subnet.
            assert!(p.net.addr.is_private(), "{}", p.net.addr);
            assert_eq!(
                p.net.network(),
                Ipv4Addr::from(u32::from(p.net.gateway) & u32::from(p.net.netmask()))
            );
            assert_ne!(p.net.addr, p.net.gateway);
            assert!(
                crate::services::shell::valid_hostname(&p.hostname),
                "{}",
                p.hostname
            );
            assert!(p.daemon_pids.windows(2).all(|w| w[0] < w[1]));
            assert!(p.memory()[2] > 0);
        }
    }

    #[test]
    fn pids_increase_and_advance_with_time() {
        let n = NodePersona::new(persona(3));
        let a = n.alloc_pids(NOW, 3);
        let b = n.alloc_pids(NOW, 1);
        assert!(b >= a + 3, "{a} {b}");
        // A day later the machine has used many PIDs on its own.
        let c = n.alloc_pids(NOW + 86_400, 1);
        assert!(c > b + 100, "{b} {c}");
        assert!(n.last_pid(NOW + 86_400) >= c);
        assert!(wrap_pid(PID_MAX + 5) < PID_MAX as u32);
    }

    #[test]
    fn uptime_advances_and_load_moves_slowly() {
        let p = persona(4);
        assert_eq!(p.uptime(NOW + 60) - p.uptime(NOW), 60);
        let (a, b) = (p.load(NOW), p.load(NOW + 60));
        for i in 0..3 {
            assert!((a[i] - b[i]).abs() < 0.5);
            assert!(a[i] >= 0.0 && a[i] < 8.0);
        }
    }

    #[test]
    fn zones_switch_at_the_right_moments() {
        let berlin = ZONES.iter().find(|z| z.name == "Europe/Berlin").unwrap();
        // 2024-03-31 00:59:59 UTC is still CET, 01:00 is CEST.
        let switch = days_from_civil(2024, 3, 31) * 86_400 + 3600;
        assert_eq!(berlin.at(switch - 1), (3600, "CET"));
        assert_eq!(berlin.at(switch), (7200, "CEST"));
        let ny = ZONES.iter().find(|z| z.name == "America/New_York").unwrap();
        // 2024-03-10 02:00 EST = 07:00 UTC.
        let us = days_from_civil(2024, 3, 10) * 86_400 + 7 * 3600;
        assert_eq!(ny.at(us - 1).1, "EST");
        assert_eq!(ny.at(us).1, "EDT");
        // 2024-11-03 02:00 EDT = 06:00 UTC.
        let back = days_from_civil(2024, 11, 3) * 86_400 + 6 * 3600;
        assert_eq!(ny.at(back - 1).1, "EDT");
        assert_eq!(ny.at(back).1, "EST");
        assert_eq!(civil(days_from_civil(2025, 2, 28) + 1), (2025, 3, 1));
    }

    #[test]
    fn load_persists_the_salt() {
        let dir = tempfile::tempdir().unwrap();
        let a = NodePersona::load(dir.path());
        let b = NodePersona::load(dir.path());
        assert_eq!(a.persona().machine_id, b.persona().machine_id);
        assert_eq!(a.persona().boot_time, b.persona().boot_time);
        let other = tempfile::tempdir().unwrap();
        let c = NodePersona::load(other.path());
        assert_ne!(a.persona().machine_id, c.persona().machine_id);
        // PIDs keep growing across a restart (the reservation is in the file).
        let before = a.alloc_pids(NOW, 1);
        let again = NodePersona::load(dir.path());
        assert!(again.alloc_pids(NOW, 1) > before);
        // A damaged file is replaced by a new persona, not an error.
        std::fs::write(dir.path().join(PERSONA_FILE), b"junk").unwrap();
        let d = NodePersona::load(dir.path());
        assert_ne!(a.persona().machine_id, d.persona().machine_id);
    }

    #[test]
    fn reference_is_the_old_fixture() {
        let p = Persona::reference("web-prod-02");
        assert_eq!(p.kernel.release(), "6.1.0-18-amd64");
        assert_eq!(
            p.kernel.version(),
            "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"
        );
        assert_eq!(p.cpus, 2);
    }

    #[test]
    fn streams_are_per_node_and_per_label() {
        let (a, b) = (persona(8), persona(9));
        let take = |p: &Persona, l: &str| {
            let mut d = p.stream(l);
            (0..4).map(|_| d.next()).collect::<Vec<_>>()
        };
        assert_eq!(take(&a, "x"), take(&persona(8), "x"));
        assert_ne!(take(&a, "x"), take(&b, "x"));
        assert_ne!(take(&a, "x"), take(&a, "y"));
    }

    #[test]
    fn mysql_and_smtp_are_the_packages_debian_runs() {
        use honeybee_proto::config::{MysqlOptions, SmtpOptions};
        let cfg = |kind| ServiceConfig {
            name: "x".into(),
            listen: "0.0.0.0:2525".parse().unwrap(),
            enabled: true,
            kind,
        };
        let mysql = |v: &str| {
            Listener::of(&cfg(ServiceKind::Mysql(MysqlOptions { version: v.into() })))
                .map(|l| l.program)
        };
        assert_eq!(mysql(""), Some(Program::Mariadb));
        assert_eq!(mysql("10.11.6"), Some(Program::Mariadb));
        assert_eq!(mysql("8.0.36"), Some(Program::Mysqld));
        // SMTP on a high port behind a redirect is Postfix on 25 from inside.
        assert_eq!(
            Listener::of(&cfg(ServiceKind::Smtp(SmtpOptions::default()))),
            Some(Listener {
                port: 25,
                program: Program::Postfix
            })
        );
    }

    #[test]
    fn ssh_key_line_is_well_formed() {
        use base64::Engine as _;
        let line = persona(5).ssh_ed25519_pub("h");
        let b64 = line.split(' ').nth(1).unwrap();
        let blob = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(blob.len(), 51);
        assert_eq!(&blob[4..15], b"ssh-ed25519");
    }
}

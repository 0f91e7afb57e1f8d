//! The Diffie-Hellman group for a `diffie-hellman-group-exchange-*` request, chosen as
//! OpenSSH 9.2's sshd chooses it (dh.c, `choose_dh`): among the safe primes of
//! /etc/ssh/moduli within the client's [min, max], the smallest size above the wanted one
//! (else the largest below it), then one of that size at random. russh's default picks
//! from RFC 3526's fixed groups by other rules, so a client asking for 3072 or 7680 bits
//! saw a different group size than from the real server (and RFC 3526 primes rather than
//! the moduli file's). Where the host has no moduli file, one prime of each of Debian's
//! sizes (moduli.txt, from Debian 12's file) stands in.

use russh::kex::dh::groups::{DhGroup, DhGroupUInt};
use std::io::Read;
use std::sync::OnceLock;

/// Where Debian's openssh-server keeps the groups.
const MODULI_PATH: &str = "/etc/ssh/moduli";
/// Debian's file is 560 KiB; more than this is not a moduli file.
const MAX_MODULI_FILE: u64 = 2 * 1024 * 1024;
/// Groups kept from the file (Debian's has about 420).
const MAX_GROUPS: usize = 4096;
/// OpenSSH's DH_GRP_MIN and DH_GRP_MAX (dh.h).
const DH_GRP_MIN: u32 = 2048;
const DH_GRP_MAX: u32 = 8192;

/// One line of the moduli file: its size as OpenSSH counts it (the file's bit count
/// plus one), generator and prime, big-endian.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Modulus {
    size: u32,
    generator: Vec<u8>,
    prime: Vec<u8>,
}

/// Parses moduli(5) text as dh.c's `parse_prime` does: safe primes (type 2) that passed
/// the Miller-Rabin tests with at least one trial, whose prime has the stated size.
fn parse(text: &str) -> Vec<Modulus> {
    let mut out = Vec::new();
    for line in text.lines() {
        if out.len() >= MAX_GROUPS {
            break;
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let [_time, kind, tests, tries, size, generator, prime] = f[..] else {
            continue;
        };
        let (Ok(tests), Ok(tries), Ok(bits)) = (
            tests.parse::<u32>(),
            tries.parse::<u32>(),
            size.parse::<u32>(),
        ) else {
            continue;
        };
        // MODULI_TYPE_SAFE, not MODULI_TESTS_COMPOSITE, only MODULI_TESTS_SIEVE is not
        // enough, and a size OpenSSH would take.
        if kind != "2" || tests & 1 != 0 || tests & !1 == 0 || tries == 0 || bits > 16384 {
            continue;
        }
        let (Some(generator), Some(prime)) = (from_hex(generator), from_hex(prime)) else {
            continue;
        };
        if bit_len(&prime) != bits + 1 || bit_len(&generator) == 0 {
            continue;
        }
        out.push(Modulus {
            size: bits + 1,
            generator,
            prime,
        });
    }
    out
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    let s = if s.len() % 2 == 1 {
        format!("0{s}")
    } else {
        s.to_owned()
    };
    hex::decode(s).ok()
}

fn bit_len(n: &[u8]) -> u32 {
    match n.iter().position(|&b| b != 0) {
        Some(i) => (n.len() - i - 1) as u32 * 8 + (8 - n[i].leading_zeros()),
        None => 0,
    }
}

/// The groups to choose from: the host's moduli file, else the built-in excerpt.
fn groups() -> &'static [Modulus] {
    static GROUPS: OnceLock<Vec<Modulus>> = OnceLock::new();
    GROUPS.get_or_init(|| {
        let from_file = std::fs::File::open(MODULI_PATH).ok().and_then(|f| {
            let mut text = String::new();
            f.take(MAX_MODULI_FILE).read_to_string(&mut text).ok()?;
            Some(parse(&text))
        });
        match from_file {
            Some(g) if !g.is_empty() => g,
            _ => parse(include_str!("moduli.txt")),
        }
    })
}

/// sshd's answer to `SSH_MSG_KEX_DH_GEX_REQUEST (min, n, max)`, or `None` where sshd
/// disconnects ("DH_GEX_REQUEST, bad parameters").
pub(super) fn choose(min: u32, wanted: u32, max: u32) -> Option<DhGroup> {
    // kexgexs.c: the request is checked, then clamped to what sshd supports.
    if max < min || wanted < min || max < wanted || max < DH_GRP_MIN {
        return None;
    }
    let min = min.max(DH_GRP_MIN);
    let max = max.min(DH_GRP_MAX);
    let wanted = wanted.clamp(DH_GRP_MIN, DH_GRP_MAX);
    choose_from(groups(), min, wanted, max, rand::random::<u32>())
}

fn choose_from(groups: &[Modulus], min: u32, wanted: u32, max: u32, pick: u32) -> Option<DhGroup> {
    let mut best = 0;
    let mut count = 0u32;
    for g in groups.iter().filter(|g| (min..=max).contains(&g.size)) {
        if (g.size > wanted && g.size < best) || (g.size > best && best < wanted) {
            best = g.size;
            count = 0;
        }
        if g.size == best {
            count += 1;
        }
    }
    if count == 0 {
        // dh_new_group_fallback: RFC 3526's groups 14, 16 or 18 by the maximum.
        use russh::kex::dh::groups::{DH_GROUP14, DH_GROUP16, DH_GROUP18};
        return Some(match max {
            ..3072 => DH_GROUP14,
            3072..6144 => DH_GROUP16,
            _ => DH_GROUP18,
        });
    }
    let chosen = groups
        .iter()
        .filter(|g| g.size == best)
        .nth((pick % count) as usize)?;
    Some(DhGroup {
        prime: DhGroupUInt::from(chosen.prime.clone()),
        generator: DhGroupUInt::from(chosen.generator.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(min: u32, wanted: u32, max: u32) -> usize {
        choose_from(&parse(include_str!("moduli.txt")), min, wanted, max, 7)
            .unwrap()
            .bit_size()
    }

    #[test]
    fn builtin_excerpt_has_each_debian_size() {
        let g = parse(include_str!("moduli.txt"));
        let s: Vec<u32> = g.iter().map(|m| m.size).collect();
        assert_eq!(s, [2048, 3072, 4096, 6144, 7680, 8192]);
    }

    #[test]
    fn sizes_as_openssh_chooses() {
        // The OpenSSH client asks (2048, 8192, 8192) with chacha20-poly1305, (2048, 3072,
        // 8192) with aes128-ctr and umac-64, (2048, 7680, 8192) with aes192-ctr.
        assert_eq!(sizes(2048, 8192, 8192), 8192);
        assert_eq!(sizes(2048, 3072, 8192), 3072);
        assert_eq!(sizes(2048, 7680, 8192), 7680);
        // Between sizes: the next larger one.
        assert_eq!(sizes(2048, 2500, 8192), 3072);
        // Nothing larger allowed: the largest below.
        assert_eq!(sizes(2048, 5000, 4096), 4096);
        assert_eq!(choose(4096, 3072, 8192).map(|g| g.bit_size()), None);
        assert!(choose(1024, 1024, 1024).is_none());
    }

    #[test]
    fn hostile_moduli_lines_are_skipped() {
        let text = "x\n1 2 6 100 2047 2 ZZ\n1 2 6 100 99 2 FF\n1 1 6 100 2047 2 FF\n\
                    1 2 6 0 2047 2 FF\n1 2 6 100 4294967295 2 FF\n";
        assert!(parse(text).is_empty());
    }
}

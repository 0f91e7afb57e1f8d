//! COMMAND, COMMAND COUNT / INFO / DOCS / LIST answered from recordings of the real
//! Debian 12 `redis-server` 7.0.15 (`data/command.resp3`, `data/command_docs.resp3`: the
//! raw RESP3 replies to `COMMAND` and `COMMAND DOCS` after `HELLO 3`, captured from the
//! real server; see notes/redis.md for how to regenerate them). Nothing here is written
//! by hand from our implementation, so the metadata is the real server's, flags, ACL
//! categories and key specs included, and each connection's protocol downgrades it as
//! Redis does.

use super::resp::{Reply, parse_reply};
use std::collections::HashMap;
use std::sync::OnceLock;

const COMMAND: &[u8] = include_bytes!("data/command.resp3");
const DOCS: &[u8] = include_bytes!("data/command_docs.resp3");
/// The real replies to `<CONTAINER> HELP`, one after another, in [`HELP_ORDER`].
const HELP: &[u8] = include_bytes!("data/help.resp");
const HELP_ORDER: [&str; 13] = [
    "config", "client", "object", "module", "script", "memory", "slowlog", "latency", "acl",
    "function", "cluster", "command", "xinfo",
];
/// The recordings nest 8 levels at most; this bounds the parse.
const DEPTH: usize = 16;

struct Table {
    /// Every top-level command's COMMAND INFO entry, in the recording's order.
    entries: Vec<Reply>,
    /// Lowercase name (`config|get` for a subcommand) to its entry.
    by_name: HashMap<String, Reply>,
    /// Lowercase top-level name to its COMMAND DOCS map value, in order.
    docs: Vec<(String, Reply)>,
}

fn name_of(entry: &Reply) -> Option<String> {
    match entry {
        Reply::Array(f) => match f.first() {
            Some(Reply::Bulk(n)) => Some(String::from_utf8_lossy(n).to_ascii_lowercase()),
            _ => None,
        },
        _ => None,
    }
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let entries = match parse_reply(COMMAND, DEPTH) {
            Some((Reply::Array(e), _)) => e,
            _ => Vec::new(),
        };
        let mut by_name = HashMap::new();
        for e in &entries {
            if let Some(n) = name_of(e) {
                by_name.insert(n, e.clone());
            }
            // Subcommands are the tenth field.
            if let Reply::Array(f) = e
                && let Some(Reply::Array(subs) | Reply::Set(subs)) = f.get(9)
            {
                for s in subs {
                    if let Some(n) = name_of(s) {
                        by_name.insert(n, s.clone());
                    }
                }
            }
        }
        let docs = match parse_reply(DOCS, DEPTH) {
            Some((Reply::Map(pairs), _)) => pairs
                .into_iter()
                .filter_map(|(k, v)| match k {
                    Reply::Bulk(n) => Some((String::from_utf8_lossy(&n).to_ascii_lowercase(), v)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Table {
            entries,
            by_name,
            docs,
        }
    })
}

/// The real server's command count (COMMAND COUNT).
pub(crate) fn count() -> usize {
    table().entries.len()
}

/// Whether the real server has a command of this (lowercase) name.
pub(crate) fn exists(name: &str) -> bool {
    table().by_name.contains_key(name)
}

/// Whether the real server's table gives the command this flag (`noscript`, …).
pub(crate) fn has_flag(name: &str, flag: &str) -> bool {
    match table().by_name.get(name) {
        Some(Reply::Array(f)) => match f.get(2) {
            Some(Reply::Array(flags) | Reply::Set(flags)) => flags
                .iter()
                .any(|x| matches!(x, Reply::Simple(s) if s == flag)),
            _ => false,
        },
        _ => false,
    }
}

/// The real `<name> HELP` reply of a container command.
pub(crate) fn help(name: &str) -> Option<Reply> {
    let at = HELP_ORDER.iter().position(|n| *n == name)?;
    let mut rest = HELP;
    for _ in 0..at {
        let (_, used) = parse_reply(rest, DEPTH)?;
        rest = &rest[used..];
    }
    parse_reply(rest, DEPTH).map(|(r, _)| r)
}

/// Redis's own check of a container's subcommand, made before anything else (AUTH
/// included): an unknown subcommand or a wrong argument count gets the real error.
/// `args` are the arguments after the container's name.
pub(crate) fn check_subcommand(name: &str, args: &[Vec<u8>]) -> Option<Reply> {
    let t = table();
    let Some(Reply::Array(f)) = t.by_name.get(name) else {
        return None;
    };
    match f.get(9) {
        Some(Reply::Array(s) | Reply::Set(s)) if !s.is_empty() => {}
        _ => return None,
    }
    let sub = args.first()?;
    let full = format!(
        "{name}|{}",
        String::from_utf8_lossy(sub).to_ascii_lowercase()
    );
    let Some(Reply::Array(sf)) = t.by_name.get(&full) else {
        let shown: String = String::from_utf8_lossy(&sub[..sub.len().min(128)]).into_owned();
        return Some(Reply::err(format!(
            "ERR unknown subcommand '{}'. Try {} HELP.",
            shown,
            name.to_ascii_uppercase()
        )));
    };
    let arity = match sf.get(1) {
        Some(Reply::Int(n)) => *n,
        _ => return None,
    };
    let argc = args.len() as i64 + 1;
    let ok = if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    };
    (!ok).then(|| {
        Reply::err(format!(
            "ERR wrong number of arguments for '{}' command",
            honeybee_proto::event::clamp(&full, 256)
        ))
    })
}

/// The COMMAND command: `a` are its arguments after the name.
pub(crate) fn command(a: &[Vec<u8>]) -> Reply {
    let t = table();
    let names = || -> Vec<String> {
        a[1..]
            .iter()
            .map(|n| String::from_utf8_lossy(n).to_ascii_lowercase())
            .collect()
    };
    let sub = a
        .first()
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase());
    match sub.as_deref() {
        None => Reply::Array(t.entries.clone()),
        Some("count") if a.len() == 1 => Reply::Int(count() as i64),
        Some("info") if a.len() == 1 => Reply::Array(t.entries.clone()),
        Some("info") => Reply::Array(
            names()
                .iter()
                .take(256)
                .map(|n| t.by_name.get(n).cloned().unwrap_or(Reply::Nil))
                .collect(),
        ),
        Some("docs") if a.len() == 1 => Reply::Map(
            t.docs
                .iter()
                .map(|(n, d)| (Reply::bulk(n), d.clone()))
                .collect(),
        ),
        Some("docs") => Reply::Map(
            names()
                .iter()
                .take(256)
                .filter_map(|n| {
                    t.docs
                        .iter()
                        .find(|(d, _)| d == n)
                        .map(|(d, v)| (Reply::bulk(d), v.clone()))
                })
                .collect(),
        ),
        Some("list") => Reply::Array(
            t.entries
                .iter()
                .flat_map(|e| {
                    let mut v = vec![name_of(e).unwrap_or_default()];
                    if let Reply::Array(f) = e
                        && let Some(Reply::Array(s) | Reply::Set(s)) = f.get(9)
                    {
                        v.extend(s.iter().filter_map(name_of));
                    }
                    v
                })
                .map(Reply::bulk)
                .collect(),
        ),
        Some("getkeys") if a.len() >= 2 => getkeys(&a[1..]),
        Some(s @ ("count" | "getkeys")) => Reply::err(format!(
            "ERR wrong number of arguments for 'command|{s}' command"
        )),
        Some(_) => Reply::err(format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            honeybee_proto::event::clamp(&String::from_utf8_lossy(&a[0]), 128)
        )),
    }
}

/// COMMAND GETKEYS for the simple key specs (first, last, step of the entry).
fn getkeys(cmd: &[Vec<u8>]) -> Reply {
    let name = String::from_utf8_lossy(&cmd[0]).to_ascii_lowercase();
    let Some(Reply::Array(f)) = table().by_name.get(&name) else {
        return Reply::err("ERR Invalid command specified");
    };
    let int = |i: usize| match f.get(i) {
        Some(Reply::Int(n)) => *n,
        _ => 0,
    };
    let (arity, first, last, step) = (int(1), int(3), int(4), int(5));
    let argc = cmd.len() as i64;
    if (arity > 0 && argc != arity) || (arity < 0 && argc < -arity) {
        return Reply::err("ERR Invalid number of arguments specified for command");
    }
    if first <= 0 || step <= 0 {
        return Reply::err("ERR The command has no key arguments");
    }
    let last = if last < 0 { argc + last } else { last };
    let mut keys = Vec::new();
    let mut i = first;
    while i <= last && i < argc {
        keys.push(Reply::bulk(&cmd[i as usize]));
        i += step;
    }
    Reply::Array(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recordings_parse_whole() {
        assert_eq!(count(), 240);
        assert!(exists("get") && exists("config|get") && exists("xadd"));
        assert_eq!(table().docs.len(), 240);
        for n in HELP_ORDER {
            assert!(help(n).is_some(), "{n}");
        }
        assert_eq!(
            check_subcommand("client", &[b"NOSUCH".to_vec()]),
            Some(Reply::err(
                "ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP."
            ))
        );
        assert_eq!(
            check_subcommand("config", &[b"get".to_vec()]),
            Some(Reply::err(
                "ERR wrong number of arguments for 'config|get' command"
            ))
        );
        assert_eq!(
            check_subcommand("config", &[b"GET".to_vec(), b"x".to_vec()]),
            None
        );
        let Reply::Array(one) = command(&[b"info".to_vec(), b"GET".to_vec(), b"nosuch".to_vec()])
        else {
            panic!()
        };
        assert_eq!(one[1], Reply::Nil);
        let mut out = Vec::new();
        one[0].encode(&mut out);
        assert!(out.starts_with(b"*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n"));
    }
}

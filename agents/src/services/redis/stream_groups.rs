//! Stream consumer groups as Redis 7.0.15 answers them: XGROUP CREATE / SETID /
//! DESTROY / CREATECONSUMER / DELCONSUMER, XREADGROUP (new entries with `>`, a
//! consumer's history with an ID, NOACK, COUNT, BLOCK), XACK, XPENDING (summary and
//! range forms), XTRIM. Checks follow `xgroupCommand`, `xreadCommand`, `xackCommand`
//! and `xpendingCommand` in order. Bounds: [`MAX_GROUPS`] groups per stream,
//! [`MAX_CONSUMERS`] consumers per group, [`MAX_ELEMENTS`] pending entries per group
//! (past them: OOM, as a full server answers); every shown entry is charged to the
//! reply budget.

use super::super::super::keyspace::Keyspace;
use super::super::super::resp::{Reply, parse_i64};
use super::super::super::value::{
    Group, Kind, MAX_CONSUMERS, MAX_ELEMENTS, MAX_GROUPS, Pending, StreamId, Value,
};
use super::super::{Clock, Conn, lower, not_int, oom, syntax};
use super::{id_text, next_id, parse_id, prev_id};
use honeybee_proto::event::{EventKind, clamp};
use std::time::Duration;

fn invalid_id() -> Reply {
    Reply::err("ERR Invalid stream ID specified as stream command argument")
}

/// `streamParseStrictIDOrReply`: no `-` / `+`; a bare `ms` is `ms-0`.
fn strict_id(b: &[u8]) -> Result<StreamId, Reply> {
    if b == b"-" || b == b"+" {
        return Err(invalid_id());
    }
    parse_id(b, 0).ok_or_else(invalid_id)
}

/// `streamParseIDOrReply`: `-` and `+` allowed.
fn loose_id(b: &[u8]) -> Result<StreamId, Reply> {
    match b {
        b"-" => Ok((0, 0)),
        b"+" => Ok((u64::MAX, u64::MAX)),
        _ => parse_id(b, 0).ok_or_else(invalid_id),
    }
}

/// `streamParseIntervalIDOrReply` plus the `(` step: a bound of a range.
fn interval(b: &[u8], start: bool) -> Result<StreamId, Reply> {
    let dflt = if start { 0 } else { u64::MAX };
    if b.len() > 1 && b[0] == b'(' {
        let id = loose_id_seq(&b[1..], dflt)?;
        return if start {
            next_id(id).ok_or_else(|| Reply::err("ERR invalid start ID for the interval"))
        } else {
            prev_id(id).ok_or_else(|| Reply::err("ERR invalid end ID for the interval"))
        };
    }
    loose_id_seq(b, dflt)
}

fn loose_id_seq(b: &[u8], dflt: u64) -> Result<StreamId, Reply> {
    match b {
        b"-" => Ok((0, 0)),
        b"+" => Ok((u64::MAX, u64::MAX)),
        _ => parse_id(b, dflt).ok_or_else(invalid_id),
    }
}

fn text(b: &[u8]) -> String {
    clamp(&String::from_utf8_lossy(b), 128)
}

fn subcommand_error(sub: &[u8]) -> Reply {
    Reply::err(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try XGROUP HELP.",
        text(sub)
    ))
}

/// The real server's `XGROUP HELP` (`addReplyHelp`).
const XGROUP_HELP: [&str; 17] = [
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
];

/// Bytes a new group or consumer costs against the keyspace's bounds (as `Group::size`).
const NAME_COST: usize = 64;

impl Conn {
    /// XGROUP <sub> key group …; `a[0]` is the subcommand (its arity already checked).
    pub(super) fn xgroup(
        &mut self,
        ks: &mut Keyspace,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Reply {
        let sub = lower(&a[0]);
        if sub == "help" && a.len() == 1 {
            return Reply::Array(
                XGROUP_HELP
                    .iter()
                    .map(|l| Reply::Simple((*l).into()))
                    .collect(),
            );
        }
        if a.len() < 3 {
            return subcommand_error(&a[0]);
        }
        let (key, group) = (&a[1], &a[2]);
        let (create, setid) = (sub == "create", sub == "setid");
        let mut mkstream = false;
        let mut i = 4;
        while i < a.len() {
            let o = lower(&a[i]);
            if create && o == "mkstream" {
                mkstream = true;
                i += 1;
            } else if (create || setid) && o == "entriesread" && i + 1 < a.len() {
                match parse_i64(&a[i + 1]) {
                    None => return not_int(),
                    Some(n) if n < 0 && n != -1 => {
                        return Reply::err("ERR value for ENTRIESREAD must be positive or -1");
                    }
                    Some(_) => {}
                }
                i += 2;
            } else {
                return subcommand_error(&a[0]);
            }
        }
        let stream = match self.typed(ks, key, Kind::Stream) {
            Err(e) => return e,
            Ok(Some(Value::Stream(s))) => Some(s),
            Ok(_) => None,
        };
        let has_group = stream.is_some_and(|s| s.groups.iter().any(|g| g.name == *group));
        if !mkstream {
            if stream.is_none() {
                return Reply::err(
                    "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
                );
            }
            if !has_group && matches!(sub.as_str(), "setid" | "createconsumer" | "delconsumer") {
                return Reply::err(format!(
                    "NOGROUP No such consumer group '{}' for key name '{}'",
                    text(group),
                    text(key)
                ));
            }
        }
        let last = stream.map_or((0, 0), |s| s.last_id);
        let ngroups = stream.map_or(0, |s| s.groups.len());
        match (sub.as_str(), a.len()) {
            ("create", 4..=7) => {
                let id = if a[3] == b"$" {
                    last
                } else {
                    match strict_id(&a[3]) {
                        Ok(id) => id,
                        Err(e) => return e,
                    }
                };
                if has_group {
                    return Reply::err("BUSYGROUP Consumer Group name already exists");
                }
                if ngroups >= MAX_GROUPS {
                    return oom();
                }
                let name = group.clone();
                let grow = name.len() + NAME_COST;
                self.change(ks, key, Kind::Stream, grow, 0, clock, events, |v| {
                    if let Value::Stream(s) = v {
                        let at = s.groups.partition_point(|g| g.name < name);
                        s.groups.insert(
                            at,
                            Group {
                                name,
                                last_id: id,
                                ..Group::default()
                            },
                        );
                    }
                })
                .map_or_else(|e| e, |()| Reply::ok())
            }
            ("setid", 4 | 6) => {
                let id = if a[3] == b"$" {
                    last
                } else {
                    match loose_id(&a[3]) {
                        Ok(id) => id,
                        Err(e) => return e,
                    }
                };
                self.with_group(ks, key, group, 0, clock, events, |g, _| {
                    g.last_id = id;
                    Reply::ok()
                })
            }
            ("destroy", 3) => {
                if !has_group {
                    return Reply::Int(0);
                }
                self.change(ks, key, Kind::Stream, 0, 0, clock, events, |v| {
                    if let Value::Stream(s) = v {
                        s.groups.retain(|g| g.name != *group);
                    }
                })
                .map_or_else(|e| e, |()| Reply::Int(1))
            }
            ("createconsumer", 4) => {
                let name = a[3].clone();
                let grow = name.len() + NAME_COST;
                self.with_group(ks, key, group, grow, clock, events, |g, _| {
                    match g.consumers.binary_search(&name) {
                        Ok(_) => Reply::Int(0),
                        Err(_) if g.consumers.len() >= MAX_CONSUMERS => oom(),
                        Err(at) => {
                            g.consumers.insert(at, name);
                            Reply::Int(1)
                        }
                    }
                })
            }
            ("delconsumer", 4) => {
                let name = &a[3];
                self.with_group(ks, key, group, 0, clock, events, |g, _| {
                    let Ok(at) = g.consumers.binary_search(name) else {
                        return Reply::Int(0);
                    };
                    g.consumers.remove(at);
                    let before = g.pending.len();
                    g.pending.retain(|p| p.consumer != *name);
                    Reply::Int((before - g.pending.len()) as i64)
                })
            }
            _ => subcommand_error(&a[0]),
        }
    }

    /// Runs `f` on the group `name` of the stream under `key` (both known to exist).
    #[allow(clippy::too_many_arguments)]
    fn with_group(
        &mut self,
        ks: &mut Keyspace,
        key: &[u8],
        name: &[u8],
        grow: usize,
        clock: Clock,
        events: &mut Vec<EventKind>,
        f: impl FnOnce(&mut Group, &[super::super::super::value::StreamEntry]) -> Reply,
    ) -> Reply {
        self.change(ks, key, Kind::Stream, grow, 0, clock, events, |v| {
            let Value::Stream(s) = v else {
                return Reply::Int(0);
            };
            match s.groups.iter_mut().find(|g| g.name == name) {
                Some(g) => f(g, &s.entries),
                None => Reply::Int(0),
            }
        })
        .unwrap_or_else(|e| e)
    }

    /// XREADGROUP GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS key… id…
    pub(super) fn xreadgroup(
        &mut self,
        ks: &mut Keyspace,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> (Reply, Option<Duration>) {
        let (mut count, mut block, mut noack) = (0usize, None, false);
        let (mut group, mut consumer, mut streams) = (None, None, None);
        let mut i = 0;
        while i < a.len() {
            let more = a.len() - i - 1;
            match lower(&a[i]).as_str() {
                "block" if more > 0 => {
                    i += 1;
                    match parse_i64(&a[i]) {
                        Some(ms) if ms >= 0 => {
                            block = Some(super::blocking::capped(Duration::from_millis(ms as u64)));
                        }
                        Some(_) => return (Reply::err("ERR timeout is negative"), None),
                        None => {
                            return (
                                Reply::err("ERR timeout is not an integer or out of range"),
                                None,
                            );
                        }
                    }
                }
                "count" if more > 0 => {
                    i += 1;
                    match parse_i64(&a[i]) {
                        Some(n) => count = usize::try_from(n).unwrap_or(0),
                        None => return (not_int(), None),
                    }
                }
                "streams" if more > 0 => {
                    let rest = &a[i + 1..];
                    if !rest.len().is_multiple_of(2) {
                        return (
                            Reply::err(
                                "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                            ),
                            None,
                        );
                    }
                    streams = Some(rest.split_at(rest.len() / 2));
                    break;
                }
                "group" if more >= 2 => {
                    group = Some(&a[i + 1]);
                    consumer = Some(&a[i + 2]);
                    i += 2;
                }
                "noack" => noack = true,
                _ => return (syntax(), None),
            }
            i += 1;
        }
        let Some((keys, ids)) = streams else {
            return (syntax(), None);
        };
        let (Some(group), Some(consumer)) = (group, consumer) else {
            return (Reply::err("ERR Missing GROUP option for XREADGROUP"), None);
        };
        // Every key, group and ID is checked before anything is read. `None`: `>`.
        let mut from: Vec<Option<StreamId>> = Vec::with_capacity(keys.len());
        for (k, id) in keys.iter().zip(ids) {
            let known = match self.typed(ks, k, Kind::Stream) {
                Err(e) => return (e, None),
                Ok(Some(Value::Stream(s))) => s.groups.iter().any(|g| g.name == *group),
                Ok(_) => false,
            };
            if !known {
                return (
                    Reply::err(format!(
                        "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                        text(k),
                        text(group)
                    )),
                    None,
                );
            }
            from.push(match id.as_slice() {
                b"$" => {
                    return (
                        Reply::err(
                            "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.",
                        ),
                        None,
                    );
                }
                b">" => None,
                _ => match strict_id(id) {
                    Ok(i) => Some(i),
                    Err(e) => return (e, None),
                },
            });
        }
        let limit = if count == 0 { usize::MAX } else { count };
        let mut out = Vec::new();
        for (k, from) in keys.iter().zip(from) {
            // New entries are served only when there are some past the group's last ID.
            if from.is_none() {
                let Ok(Some(Value::Stream(s))) = self.typed(ks, k, Kind::Stream) else {
                    continue;
                };
                let last = s
                    .groups
                    .iter()
                    .find(|g| g.name == *group)
                    .map(|g| g.last_id);
                if s.entries.last().is_none_or(|(id, _)| Some(*id) <= last) {
                    continue;
                }
            }
            let picked =
                self.with_group_read(ks, k, group, consumer, from, limit, noack, clock, events);
            let picked = match picked {
                Ok(p) => p,
                Err(e) => return (e, None),
            };
            let mut entries = Vec::with_capacity(picked.len());
            for (id, fields) in picked {
                let fields = match fields {
                    None => Reply::NilArray,
                    Some(fields) => {
                        let mut f = Vec::with_capacity(fields.len() * 2);
                        for (fk, fv) in fields {
                            if !self.reply_charge(fk.len() + fv.len()) {
                                return (Reply::Nil, None);
                            }
                            f.push(Reply::Bulk(fk));
                            f.push(Reply::Bulk(fv));
                        }
                        Reply::Array(f)
                    }
                };
                entries.push(Reply::Array(vec![Reply::bulk(id_text(id)), fields]));
            }
            out.push((Reply::bulk(k), Reply::Array(entries)));
        }
        if out.is_empty() {
            return (Reply::NilArray, block);
        }
        let reply = if self.resp3 {
            Reply::Map(out)
        } else {
            Reply::Array(
                out.into_iter()
                    .map(|(k, v)| Reply::Array(vec![k, v]))
                    .collect(),
            )
        };
        (reply, None)
    }

    /// One stream's part of XREADGROUP: the consumer is created if need be; `from`
    /// `None` delivers new entries (moving the group's last ID, adding them to the
    /// pending list unless NOACK), `Some(id)` re-delivers the consumer's pending entries
    /// from `id` (a deleted entry shows as its ID and a null).
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn with_group_read(
        &mut self,
        ks: &mut Keyspace,
        key: &[u8],
        group: &[u8],
        consumer: &[u8],
        from: Option<StreamId>,
        limit: usize,
        noack: bool,
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Result<Vec<(StreamId, Option<Vec<(Vec<u8>, Vec<u8>)>>)>, Reply> {
        let now = clock.unix_ms;
        let mut budget = self.reply_left / 16;
        // What the pending list may grow by: the new entries this read delivers.
        let new = match (from, self.typed(ks, key, Kind::Stream)) {
            (None, Ok(Some(Value::Stream(s)))) => {
                let after = s
                    .groups
                    .iter()
                    .find(|g| g.name == group)
                    .map_or((0, 0), |g| g.last_id);
                s.entries.len() - s.entries.partition_point(|(id, _)| *id <= after)
            }
            _ => 0,
        };
        let grow = consumer.len() + NAME_COST + new.min(limit).min(budget) * 48;
        let r = self.change(ks, key, Kind::Stream, grow, 0, clock, events, |v| {
            let Value::Stream(s) = v else {
                return Ok(Vec::new());
            };
            let Some(g) = s.groups.iter_mut().find(|g| g.name == group) else {
                return Ok(Vec::new());
            };
            if let Err(at) = g.consumers.binary_search_by(|c| c.as_slice().cmp(consumer)) {
                if g.consumers.len() >= MAX_CONSUMERS {
                    return Err(oom());
                }
                g.consumers.insert(at, consumer.to_vec());
            }
            let mut out = Vec::new();
            match from {
                Some(start) => {
                    for p in g.pending.iter_mut() {
                        if out.len() >= limit || budget == 0 {
                            break;
                        }
                        // After `start`: XREADGROUP reads from the ID after the one given.
                        if p.id <= start || p.consumer != consumer {
                            continue;
                        }
                        budget -= 1;
                        match s.entries.binary_search_by(|(id, _)| id.cmp(&p.id)) {
                            Ok(i) => {
                                p.delivered_ms = now;
                                p.deliveries = p.deliveries.saturating_add(1);
                                out.push((p.id, Some(s.entries[i].1.clone())));
                            }
                            Err(_) => out.push((p.id, None)),
                        }
                    }
                }
                None => {
                    let after = g.last_id;
                    let start = s.entries.partition_point(|(id, _)| *id <= after);
                    for (id, fields) in s.entries[start..].iter().take(limit) {
                        if budget == 0 {
                            break;
                        }
                        budget -= 1;
                        g.last_id = *id;
                        if !noack {
                            match g.pending.binary_search_by(|p| p.id.cmp(id)) {
                                Ok(at) => {
                                    let p = &mut g.pending[at];
                                    p.consumer = consumer.to_vec();
                                    p.delivered_ms = now;
                                    p.deliveries = 1;
                                }
                                Err(_) if g.pending.len() >= MAX_ELEMENTS => return Err(oom()),
                                Err(at) => g.pending.insert(
                                    at,
                                    Pending {
                                        id: *id,
                                        consumer: consumer.to_vec(),
                                        delivered_ms: now,
                                        deliveries: 1,
                                    },
                                ),
                            }
                        }
                        out.push((*id, Some(fields.clone())));
                    }
                }
            }
            Ok(out)
        });
        match r {
            Err(e) | Ok(Err(e)) => Err(e),
            Ok(Ok(out)) => Ok(out),
        }
    }

    /// XACK key group id…: the IDs are all checked first (once the group is found).
    pub(super) fn xack(
        &mut self,
        ks: &mut Keyspace,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Reply {
        let found = match self.typed(ks, &a[0], Kind::Stream) {
            Err(e) => return e,
            Ok(Some(Value::Stream(s))) => s.groups.iter().any(|g| g.name == a[1]),
            Ok(_) => false,
        };
        if !found {
            return Reply::Int(0);
        }
        let mut ids = Vec::with_capacity(a.len() - 2);
        for id in &a[2..] {
            match strict_id(id) {
                Ok(i) => ids.push(i),
                Err(e) => return e,
            }
        }
        self.with_group(ks, &a[0], &a[1], 0, clock, events, |g, _| {
            let mut acked = 0;
            for id in ids {
                if let Ok(at) = g.pending.binary_search_by(|p| p.id.cmp(&id)) {
                    g.pending.remove(at);
                    acked += 1;
                }
            }
            Reply::Int(acked)
        })
    }

    /// XPENDING key group [[IDLE ms] start end count [consumer]].
    pub(super) fn xpending(&mut self, ks: &Keyspace, a: &[Vec<u8>], clock: Clock) -> Reply {
        let argc = a.len() + 1;
        if argc != 3 && !(6..=9).contains(&argc) {
            return syntax();
        }
        let mut range = None;
        if argc >= 6 {
            let mut at = 2;
            let mut min_idle = 0i64;
            if lower(&a[2]) == "idle" {
                match parse_i64(&a[3]) {
                    Some(n) => min_idle = n,
                    None => return not_int(),
                }
                if argc < 8 {
                    return syntax();
                }
                at += 2;
            }
            let Some(count) = a.get(at + 2).and_then(|c| parse_i64(c)) else {
                return not_int();
            };
            let start = match interval(&a[at], true) {
                Ok(i) => i,
                Err(e) => return e,
            };
            let end = match interval(&a[at + 1], false) {
                Ok(i) => i,
                Err(e) => return e,
            };
            range = Some((min_idle, start, end, count.max(0), a.get(at + 3)));
        }
        let g = match ks.get(self.db, &a[0]).map(|e| &e.value) {
            Some(Value::Stream(s)) => s.groups.iter().find(|g| g.name == a[1]),
            Some(_) => return super::wrongtype(),
            None => None,
        };
        let Some(g) = g else {
            return Reply::err(format!(
                "NOGROUP No such key '{}' or consumer group '{}'",
                text(&a[0]),
                text(&a[1])
            ));
        };
        let Some((min_idle, start, end, count, consumer)) = range else {
            let (Some(first), Some(last)) = (g.pending.first(), g.pending.last()) else {
                return Reply::Array(vec![Reply::Int(0), Reply::Nil, Reply::Nil, Reply::NilArray]);
            };
            let mut per = Vec::new();
            for c in &g.consumers {
                let n = g.pending.iter().filter(|p| p.consumer == *c).count();
                if n > 0 {
                    per.push(Reply::Array(vec![
                        Reply::bulk(c),
                        Reply::bulk(n.to_string()),
                    ]));
                }
            }
            return Reply::Array(vec![
                Reply::Int(g.pending.len() as i64),
                Reply::bulk(id_text(first.id)),
                Reply::bulk(id_text(last.id)),
                Reply::Array(per),
            ]);
        };
        if let Some(c) = consumer
            && !g.consumers.contains(c)
        {
            return Reply::Array(vec![]);
        }
        let mut out = Vec::new();
        let mut left = count;
        for p in &g.pending {
            if left == 0 || p.id > end {
                break;
            }
            if p.id < start || consumer.is_some_and(|c| p.consumer != *c) {
                continue;
            }
            let idle = (clock.unix_ms - p.delivered_ms).max(0);
            if min_idle != 0 && idle < min_idle {
                continue;
            }
            if !self.reply_charge(p.consumer.len() + 48) {
                return Reply::Nil;
            }
            left -= 1;
            out.push(Reply::Array(vec![
                Reply::bulk(id_text(p.id)),
                Reply::bulk(&p.consumer),
                Reply::Int(idle),
                Reply::Int(p.deliveries as i64),
            ]));
        }
        Reply::Array(out)
    }

    /// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT n], in
    /// `streamParseAddOrTrimArgsOrReply`'s order of checks. `~` trims whole nodes only,
    /// as Redis does: here nodes of up to 100 entries from the head (Redis's
    /// `stream-node-max-entries`; its 4 KiB node bound and node boundaries left by
    /// deletions are not modelled).
    pub(super) fn xtrim(
        &mut self,
        ks: &mut Keyspace,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Reply {
        const NODE: usize = 100;
        let (mut maxlen, mut minid) = (None::<i64>, None::<StreamId>);
        let (mut approx, mut limit, mut limit_given) = (false, 0i64, false);
        let mut i = 1;
        while i < a.len() {
            let more = a.len() - 1 - i;
            let o = lower(&a[i]);
            if (o == "maxlen" || o == "minid") && more > 0 {
                if maxlen.is_some() || minid.is_some() {
                    return Reply::err(
                        "ERR syntax error, MAXLEN and MINID options at the same time are not compatible",
                    );
                }
                approx = false;
                if more >= 2 && a[i + 1] == b"~" {
                    approx = true;
                    i += 1;
                } else if more >= 2 && a[i + 1] == b"=" {
                    i += 1;
                }
                if o == "maxlen" {
                    match parse_i64(&a[i + 1]) {
                        None => return not_int(),
                        Some(n) if n < 0 => {
                            return Reply::err("ERR The MAXLEN argument must be >= 0.");
                        }
                        Some(n) => maxlen = Some(n),
                    }
                } else {
                    match strict_id(&a[i + 1]) {
                        Ok(id) => minid = Some(id),
                        Err(e) => return e,
                    }
                }
                i += 1;
            } else if o == "limit" && more > 0 {
                match parse_i64(&a[i + 1]) {
                    None => return not_int(),
                    Some(n) if n < 0 => return Reply::err("ERR The LIMIT argument must be >= 0."),
                    Some(n) => limit = n,
                }
                limit_given = true;
                i += 1;
            } else {
                return syntax();
            }
            i += 1;
        }
        let none = maxlen.is_none() && minid.is_none();
        if limit != 0 && none {
            return Reply::err(
                "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
            );
        }
        if none {
            return Reply::err("ERR syntax error, XTRIM must be called with a trimming strategy");
        }
        if limit_given && !approx {
            return Reply::err(
                "ERR syntax error, LIMIT cannot be used without the special ~ option",
            );
        }
        if approx && !limit_given {
            limit = (NODE * NODE) as i64;
        }
        match self.typed(ks, &a[0], Kind::Stream) {
            Err(e) => return e,
            Ok(None) => return Reply::Int(0),
            Ok(Some(_)) => {}
        }
        self.change(ks, &a[0], Kind::Stream, 0, 0, clock, events, |v| {
            let Value::Stream(s) = v else { return 0 };
            let len = s.entries.len();
            let cut = if approx {
                // Whole nodes of up to NODE entries from the head, each only if all of it
                // may go, and not past LIMIT (`streamTrim`).
                let mut cut = 0usize;
                while cut < len {
                    let node = (len - cut).min(NODE);
                    let whole = match (maxlen, minid) {
                        (Some(m), _) => ((len - cut - node) as i64) >= m,
                        (_, Some(id)) => s.entries[cut + node - 1].0 < id,
                        _ => false,
                    };
                    if !whole || (limit > 0 && (cut + node) as i64 > limit) {
                        break;
                    }
                    cut += node;
                }
                cut
            } else {
                match (maxlen, minid) {
                    (Some(m), _) => len.saturating_sub(usize::try_from(m).unwrap_or(usize::MAX)),
                    (_, Some(id)) => s.entries.partition_point(|(e, _)| *e < id),
                    _ => 0,
                }
            };
            s.entries.drain(..cut);
            cut as i64
        })
        .map_or_else(|e| e, Reply::Int)
    }
}

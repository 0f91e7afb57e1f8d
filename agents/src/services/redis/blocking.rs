//! Blocking pops and stream reads as Redis 7.0 answers them: BLPOP, BRPOP, BLMOVE (and
//! LMOVE), BZPOPMIN, BZPOPMAX, XREAD [COUNT] [BLOCK] STREAMS; plus XDEL. When data is
//! there the answer is immediate, exactly as the real server's. When it is not, the
//! connection is told to wait (`Outcome::block`) for the client's timeout capped at
//! [`BLOCK_CAP`] (a timeout of 0, "forever", waits the cap), or until the peer goes,
//! and then answers the timeout's nil. The wait is the connection's own task sleeping:
//! no lock is held and no other connection waits. Data pushed by another client during
//! the wait does not wake it (a simplification: the reply is the timeout's nil).

use super::super::super::keyspace::Keyspace;
use super::super::super::resp::{Reply, parse_i64};
use super::super::super::value::{Kind, Value};
use super::super::{Clock, Conn, Outcome, lower, syntax};
use super::{id_text, parse_f64};
use honeybee_proto::event::EventKind;
use std::time::Duration;

/// Longest a blocking command waits for data before answering nil.
pub(crate) const BLOCK_CAP: Duration = Duration::from_secs(5);

/// `getTimeoutFromObjectOrReply` in seconds (BLPOP …): a float, not negative.
fn seconds(b: &[u8]) -> Result<Duration, Reply> {
    let Some(t) = parse_f64(b).filter(|t| t.is_finite()) else {
        return Err(Reply::err("ERR timeout is not a float or out of range"));
    };
    if t < 0.0 {
        return Err(Reply::err("ERR timeout is negative"));
    }
    Ok(capped(Duration::from_secs_f64(t.min(1e9))))
}

pub(super) fn capped(d: Duration) -> Duration {
    if d.is_zero() {
        BLOCK_CAP
    } else {
        d.min(BLOCK_CAP)
    }
}

/// XREAD/XDEL's strict stream ID (no `-`/`+`); a bare `ms` is `ms-0`.
fn strict_id(b: &[u8]) -> Option<(u64, u64)> {
    if b == b"-" || b == b"+" {
        return None;
    }
    super::parse_id(b, 0)
}

fn invalid_id() -> Reply {
    Reply::err("ERR Invalid stream ID specified as stream command argument")
}

impl Conn {
    /// BLPOP BRPOP BLMOVE LMOVE BZPOPMIN BZPOPMAX XREAD: the reply, and how long to wait
    /// before sending it when there was nothing to give.
    pub(crate) fn blocking(
        &mut self,
        ks: &mut Keyspace,
        name: &str,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Outcome {
        let (reply, block) = match name {
            "blpop" | "brpop" | "bzpopmin" | "bzpopmax" => self.bpop(ks, name, a, clock, events),
            "blmove" | "lmove" => self.lmove(ks, name == "blmove", a, clock, events),
            // RPOPLPUSH src dst = LMOVE src dst RIGHT LEFT; BRPOPLPUSH adds the timeout.
            "rpoplpush" | "brpoplpush" => {
                let mut m = vec![
                    a[0].clone(),
                    a[1].clone(),
                    b"right".to_vec(),
                    b"left".to_vec(),
                ];
                m.extend(a.get(2).cloned());
                self.lmove(ks, name == "brpoplpush", &m, clock, events)
            }
            "lmpop" | "zmpop" | "blmpop" | "bzmpop" => self.mpop(ks, name, a, clock, events),
            "xreadgroup" => self.xreadgroup(ks, a, clock, events),
            _ => self.xread(ks, a),
        };
        Outcome {
            reply: Some(reply),
            events: std::mem::take(events),
            block,
            ..Outcome::default()
        }
    }

    /// While a blocking pop or move waits: tries it again, and answers once another
    /// client has pushed something (`Some`), as Redis serves a client blocked on a key
    /// when the key is written. Anything but data (a key now of another type, still
    /// nothing) keeps it waiting, as in Redis. XREAD is not retried (its `$` means
    /// "after the last entry when it began"; a retry would move it): it waits for nil.
    pub(crate) fn retry_blocked(&mut self, args: &[Vec<u8>], clock: Clock) -> Option<Outcome> {
        let name = lower(&args[0]);
        if !matches!(
            name.as_str(),
            "blpop"
                | "brpop"
                | "bzpopmin"
                | "bzpopmax"
                | "blmove"
                | "brpoplpush"
                | "blmpop"
                | "bzmpop"
        ) {
            return None;
        }
        let node = std::sync::Arc::clone(&self.settings.node);
        let mut ks = node.lock();
        ks.sweep(clock.unix_ms);
        let o = self.blocking(&mut ks, &name, &args[1..], clock, &mut Vec::new());
        let data = matches!(o.reply, Some(Reply::Array(_) | Reply::Bulk(_)));
        (o.block.is_none() && data).then_some(o)
    }

    fn bpop(
        &mut self,
        ks: &mut Keyspace,
        name: &str,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> (Reply, Option<Duration>) {
        let Some((timeout, keys)) = a.split_last() else {
            return (syntax(), None);
        };
        let wait = match seconds(timeout) {
            Ok(w) => w,
            Err(e) => return (e, None),
        };
        let zset = name.starts_with("bz");
        let kind = if zset { Kind::ZSet } else { Kind::List };
        for k in keys {
            match self.typed(ks, k, kind) {
                Err(e) => return (e, None),
                Ok(None) => continue,
                Ok(Some(_)) => {}
            }
            let front = name == "blpop" || name == "bzpopmin";
            let popped = self.change(ks, k, kind, 0, 0, clock, events, |v| match v {
                Value::List(l) if front => l.pop_front().map(|m| (m, None)),
                Value::List(l) => l.pop_back().map(|m| (m, None)),
                Value::ZSet(z) if !z.is_empty() => {
                    let (s, m) = if front { z.remove(0) } else { z.pop()? };
                    Some((m, Some(s)))
                }
                _ => None,
            });
            return match popped {
                Err(e) => (e, None),
                Ok(None) => (Reply::NilArray, None),
                Ok(Some((m, score))) => {
                    let mut out = vec![Reply::bulk(k), Reply::Bulk(m)];
                    if let Some(s) = score {
                        out.push(Reply::double(s));
                    }
                    (Reply::Array(out), None)
                }
            };
        }
        (Reply::NilArray, Some(wait))
    }

    fn lmove(
        &mut self,
        ks: &mut Keyspace,
        blocking: bool,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> (Reply, Option<Duration>) {
        let side = |b: &[u8]| match lower(b).as_str() {
            "left" => Some(true),
            "right" => Some(false),
            _ => None,
        };
        let (Some(from_left), Some(to_left)) = (side(&a[2]), side(&a[3])) else {
            return (syntax(), None);
        };
        let wait = if blocking {
            match seconds(&a[4]) {
                Ok(w) => Some(w),
                Err(e) => return (e, None),
            }
        } else {
            None
        };
        let (src, dst) = (&a[0], &a[1]);
        match self.typed(ks, src, Kind::List) {
            Err(e) => return (e, None),
            // BLMOVE's timeout answers the null array; LMOVE's missing source the nil.
            Ok(None) if blocking => return (Reply::NilArray, wait),
            Ok(None) => return (Reply::Nil, None),
            Ok(Some(_)) => {}
        }
        if let Err(e) = self.typed(ks, dst, Kind::List) {
            return (e, None);
        }
        let popped = self.change(ks, src, Kind::List, 0, 0, clock, events, |v| match v {
            Value::List(l) if from_left => l.pop_front(),
            Value::List(l) => l.pop_back(),
            _ => None,
        });
        let m = match popped {
            Err(e) => return (e, None),
            Ok(None) => return (Reply::Nil, None),
            Ok(Some(m)) => m,
        };
        let put = |to_left: bool, m: Vec<u8>| {
            move |v: &mut Value| {
                if let Value::List(l) = v {
                    if to_left {
                        l.push_front(m);
                    } else {
                        l.push_back(m);
                    }
                }
            }
        };
        let len = m.len();
        match self.change(
            ks,
            dst,
            Kind::List,
            len,
            1,
            clock,
            events,
            put(to_left, m.clone()),
        ) {
            Ok(()) => (Reply::Bulk(m), None),
            Err(e) => {
                // Refused by the bounds: the element goes back where it was.
                let _ = self.change(
                    ks,
                    src,
                    Kind::List,
                    len,
                    1,
                    clock,
                    events,
                    put(from_left, m),
                );
                (e, None)
            }
        }
    }

    fn xread(&mut self, ks: &mut Keyspace, a: &[Vec<u8>]) -> (Reply, Option<Duration>) {
        let (mut count, mut block, mut streams) = (usize::MAX, None, None);
        let mut i = 0;
        while i < a.len() {
            let more = a.len() - i - 1;
            match lower(&a[i]).as_str() {
                "block" if more > 0 => {
                    i += 1;
                    match parse_i64(&a[i]) {
                        Some(ms) if ms >= 0 => {
                            block = Some(capped(Duration::from_millis(ms as u64)));
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
                        Some(n) if n > 0 => count = n as usize,
                        Some(_) => count = usize::MAX,
                        None => {
                            return (
                                Reply::err("ERR value is not an integer or out of range"),
                                None,
                            );
                        }
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
                    return (
                        Reply::err(
                            "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                        ),
                        None,
                    );
                }
                "noack" => {
                    return (
                        Reply::err(
                            "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                        ),
                        None,
                    );
                }
                _ => return (syntax(), None),
            }
            i += 1;
        }
        let Some((keys, ids)) = streams else {
            return (syntax(), None);
        };
        // Every key's type and ID are checked before anything is read.
        let mut after = Vec::with_capacity(keys.len());
        for (k, id) in keys.iter().zip(ids) {
            let last = match self.typed(ks, k, Kind::Stream) {
                Err(e) => return (e, None),
                Ok(Some(Value::Stream(s))) => s.last_id,
                Ok(_) => (0, 0),
            };
            let from = match id.as_slice() {
                b"$" => last,
                b">" => {
                    return (
                        Reply::err(
                            "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
                        ),
                        None,
                    );
                }
                _ => match strict_id(id) {
                    Some(i) => i,
                    None => return (invalid_id(), None),
                },
            };
            after.push(from);
        }
        let mut out = Vec::new();
        for (k, from) in keys.iter().zip(after) {
            let Ok(Some(Value::Stream(s))) = self.typed(ks, k, Kind::Stream) else {
                continue;
            };
            let mut entries = Vec::new();
            for (id, fields) in s.entries.iter().filter(|(id, _)| *id > from).take(count) {
                let mut f = Vec::with_capacity(fields.len() * 2);
                for (fk, fv) in fields {
                    let (Some(kr), Some(vr)) = (self.shown(fk), self.shown(fv)) else {
                        return (Reply::Nil, None);
                    };
                    f.push(kr);
                    f.push(vr);
                }
                entries.push(Reply::Array(vec![
                    Reply::bulk(id_text(*id)),
                    Reply::Array(f),
                ]));
            }
            if !entries.is_empty() {
                out.push((Reply::bulk(k), Reply::Array(entries)));
            }
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

    /// LMPOP / ZMPOP numkeys key… LEFT|RIGHT / MIN|MAX [COUNT n], and the blocking
    /// BLMPOP / BZMPOP timeout numkeys …, in `lmpopGenericCommand`'s order of checks
    /// (the timeout after the rest, as `blockingPopGenericCommand` parses it).
    fn mpop(
        &mut self,
        ks: &mut Keyspace,
        name: &str,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> (Reply, Option<Duration>) {
        let blocking = name.starts_with('b');
        let zset = name.ends_with("zmpop");
        let at = usize::from(blocking);
        let numkeys = match parse_i64(&a[at]) {
            Some(n) if n >= 1 => n as u64,
            _ => return (Reply::err("ERR numkeys should be greater than 0"), None),
        };
        let where_at = (at as u64).saturating_add(numkeys).saturating_add(1);
        if where_at >= a.len() as u64 {
            return (syntax(), None);
        }
        let where_at = where_at as usize;
        let front = match (lower(&a[where_at]).as_str(), zset) {
            ("left", false) | ("min", true) => true,
            ("right", false) | ("max", true) => false,
            _ => return (syntax(), None),
        };
        let mut count = None;
        let mut j = where_at + 1;
        while j < a.len() {
            if count.is_none() && lower(&a[j]) == "count" && j + 1 < a.len() {
                match parse_i64(&a[j + 1]) {
                    Some(n) if n >= 1 => count = Some(n as u64),
                    _ => return (Reply::err("ERR count should be greater than 0"), None),
                }
                j += 2;
            } else {
                return (syntax(), None);
            }
        }
        let wait = if blocking {
            match seconds(&a[0]) {
                Ok(w) => Some(w),
                Err(e) => return (e, None),
            }
        } else {
            None
        };
        let count = usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX);
        let kind = if zset { Kind::ZSet } else { Kind::List };
        for k in &a[at + 1..where_at] {
            match self.typed(ks, k, kind) {
                Err(e) => return (e, None),
                Ok(None) => continue,
                Ok(Some(_)) => {}
            }
            let popped = self.change(ks, k, kind, 0, 0, clock, events, |v| match v {
                Value::List(l) => {
                    let n = count.min(l.len());
                    let got: Vec<(Vec<u8>, Option<f64>)> = if front {
                        l.drain(..n).map(|m| (m, None)).collect()
                    } else {
                        (0..n)
                            .filter_map(|_| l.pop_back())
                            .map(|m| (m, None))
                            .collect()
                    };
                    got
                }
                Value::ZSet(z) => {
                    let n = count.min(z.len());
                    if front {
                        z.drain(..n).map(|(s, m)| (m, Some(s))).collect()
                    } else {
                        let cut = z.len() - n;
                        z.drain(cut..).rev().map(|(s, m)| (m, Some(s))).collect()
                    }
                }
                _ => Vec::new(),
            });
            let items = match popped {
                Err(e) => return (e, None),
                Ok(p) => p,
            };
            let out = items
                .into_iter()
                .map(|(m, score)| match score {
                    Some(s) => Reply::Array(vec![Reply::Bulk(m), Reply::double(s)]),
                    None => Reply::Bulk(m),
                })
                .collect();
            return (Reply::Array(vec![Reply::bulk(k), Reply::Array(out)]), None);
        }
        (Reply::NilArray, wait)
    }

    /// XDEL key id…: every ID is checked first; the count of entries removed.
    pub(super) fn xdel(
        &mut self,
        ks: &mut Keyspace,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Reply {
        let mut ids = std::collections::BTreeSet::new();
        for id in &a[1..] {
            match strict_id(id) {
                Some(i) => {
                    ids.insert(i);
                }
                None => return invalid_id(),
            }
        }
        match self.typed(ks, &a[0], Kind::Stream) {
            Err(e) => return e,
            Ok(None) => return Reply::Int(0),
            Ok(Some(_)) => {}
        }
        self.change(ks, &a[0], Kind::Stream, 0, 0, clock, events, |v| {
            let Value::Stream(s) = v else { return 0 };
            let before = s.entries.len();
            s.entries.retain(|(id, _)| !ids.contains(id));
            (before - s.entries.len()) as i64
        })
        .map_or_else(|e| e, Reply::Int)
    }
}

#[cfg(test)]
mod tests {
    use crate::services::redis::commands::{Clock, Conn, Outcome, Settings};
    use crate::services::redis::info::ServerFacts;
    use crate::services::redis::keyspace::Node;
    use crate::services::redis::resp::{Reply, split_args};
    use honeybee_proto::config::LoginPolicy;
    use std::sync::Arc;

    const T0: i64 = 1_700_000_000_000;

    fn conn() -> Conn {
        let settings = Arc::new(Settings {
            facts: ServerFacts::new("7.0.15", "s3cret".into(), T0, "6.1.0-18-amd64"),
            require_auth: false,
            login: LoginPolicy::Never,
            node: Node::memory(std::time::Duration::from_secs(86_400), T0),
        });
        Conn::new(
            settings,
            "127.0.0.1:40000".parse().unwrap(),
            "127.0.0.1:6379".parse().unwrap(),
            1,
            Clock { unix_ms: T0 },
        )
    }

    fn run(c: &mut Conn, line: &str) -> Outcome {
        let args = split_args(line.as_bytes()).unwrap();
        c.execute(&args, Clock { unix_ms: T0 })
    }

    #[test]
    fn blocking_commands_answer_at_once_or_wait_at_most_the_cap() {
        let mut c = conn();
        run(&mut c, "RPUSH l a");
        let o = run(&mut c, "BLPOP l 0");
        assert_eq!(o.block, None);
        assert_eq!(
            o.reply,
            Some(Reply::Array(vec![Reply::bulk("l"), Reply::bulk("a")]))
        );
        // Nothing there: the timeout's nil after a wait no longer than the cap, however
        // long (or "forever") the client asked for.
        for (line, want) in [
            ("BLPOP l 0", super::BLOCK_CAP),
            ("BRPOP l 1000000", super::BLOCK_CAP),
            ("BZPOPMIN z 0.5", std::time::Duration::from_millis(500)),
            ("BLMOVE l m LEFT LEFT 0", super::BLOCK_CAP),
            ("XREAD BLOCK 0 STREAMS s $", super::BLOCK_CAP),
            ("XREAD BLOCK 99999999999 STREAMS s 0", super::BLOCK_CAP),
        ] {
            let o = run(&mut c, line);
            assert_eq!(o.block, Some(want), "{line}");
            assert_eq!(o.reply, Some(Reply::NilArray), "{line}");
        }
        // Without BLOCK, XREAD never waits; errors never wait.
        assert_eq!(run(&mut c, "XREAD STREAMS s 0").block, None);
        assert_eq!(run(&mut c, "BLPOP l -1").block, None);
    }

    #[test]
    fn set_algebra_over_many_big_sets_is_bounded_by_the_reply_budget() {
        let mut c = conn();
        let members: Vec<String> = (0..2000).map(|i| format!("m{i}")).collect();
        for k in 0..8 {
            let r = run(&mut c, &format!("SADD k{k} {}", members.join(" ")));
            assert_eq!(r.reply, Some(Reply::Int(2000)));
        }
        // 40 copies of the same 8 keys: 640,000 member visits asked for.
        let keys: Vec<String> = (0..320).map(|i| format!("k{}", i % 8)).collect();
        for cmd in ["SUNION", "SINTER", "SUNIONSTORE d"] {
            let o = run(&mut c, &format!("{cmd} {}", keys.join(" ")));
            assert!(
                o.close && o.reply.is_none(),
                "{cmd}: {:?}",
                o.reply.is_some()
            );
        }
        // SDIFF: every member of the first set against 300 sets that lack it.
        for j in 0..300 {
            run(&mut c, &format!("SADD x{j} other{j}"));
        }
        let others: Vec<String> = (0..300).map(|j| format!("x{j}")).collect();
        let o = run(&mut c, &format!("SDIFF k0 {}", others.join(" ")));
        assert!(o.close && o.reply.is_none());
        // A modest one still works.
        let o = run(&mut c, "SINTERCARD 2 k0 k1 LIMIT 5");
        assert_eq!(o.reply, Some(Reply::Int(5)));
    }

    #[test]
    fn random_new_command_sequences_never_panic() {
        const CMDS: [&str; 30] = [
            "SMOVE",
            "ZPOPMIN",
            "ZPOPMAX",
            "ZRANGE",
            "SADD",
            "RPUSH",
            "ZADD",
            "XADD",
            "SINTER",
            "SUNION",
            "SDIFF",
            "SINTERSTORE",
            "SUNIONSTORE",
            "SDIFFSTORE",
            "SINTERCARD",
            "SMISMEMBER",
            "ZRANGEBYSCORE",
            "ZREVRANGEBYSCORE",
            "ZCOUNT",
            "ZRANGEBYLEX",
            "ZREVRANGEBYLEX",
            "ZLEXCOUNT",
            "BLPOP",
            "BRPOP",
            "BLMOVE",
            "LMOVE",
            "BZPOPMIN",
            "BZPOPMAX",
            "XREAD",
            "XDEL",
        ];
        const ARGS: [&str; 26] = [
            "k",
            "l",
            "s",
            "z",
            "x",
            "0",
            "-1",
            "1",
            "2",
            "-9223372036854775808",
            "9223372036854775807",
            "inf",
            "-inf",
            "(1",
            "[a",
            "(",
            "+",
            "-",
            "$",
            "1-1",
            "LIMIT",
            "WITHSCORES",
            "STREAMS",
            "BLOCK",
            "COUNT",
            "LEFT",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut c = conn();
        for _ in 0..20_000 {
            let mut line = CMDS[next(CMDS.len())].to_string();
            for _ in 0..next(8) {
                line.push(' ');
                line.push_str(ARGS[next(ARGS.len())]);
            }
            let o = run(&mut c, &line);
            if let Some(b) = o.block {
                assert!(b <= super::BLOCK_CAP, "{line}");
            }
            if let Some(r) = o.reply {
                assert!(r.wire_len() <= 512 * 1024, "{line}");
            }
        }
    }

    /// The commands of the third batch (cross-key sorted sets, random picks, LPOS,
    /// multi-key pops, consumer groups) with hostile counts and IDs: no panic, no wait
    /// over the cap, every reply within the budget, and a group's pending list within
    /// its bound.
    #[test]
    fn random_third_batch_sequences_never_panic() {
        const CMDS: [&str; 34] = [
            "ZADD",
            "SADD",
            "RPUSH",
            "HSET",
            "XADD",
            "ZRANK",
            "ZREVRANK",
            "ZMSCORE",
            "ZUNION",
            "ZINTER",
            "ZDIFF",
            "ZUNIONSTORE",
            "ZINTERSTORE",
            "ZDIFFSTORE",
            "ZINTERCARD",
            "ZRANGESTORE",
            "ZREMRANGEBYRANK",
            "ZREMRANGEBYSCORE",
            "ZMPOP",
            "LMPOP",
            "BLMPOP",
            "BZMPOP",
            "RPOPLPUSH",
            "SRANDMEMBER",
            "HRANDFIELD",
            "ZRANDMEMBER",
            "LPOS",
            "LINSERT",
            "LTRIM",
            "XGROUP",
            "XREADGROUP",
            "XACK",
            "XPENDING",
            "BRPOPLPUSH",
        ];
        const ARGS: [&str; 30] = [
            "k",
            "l",
            "s",
            "z",
            "x",
            "h",
            "g",
            "c",
            "0",
            "1",
            "2",
            "-1",
            "3",
            "-9223372036854775807",
            "9223372036854775807",
            "-4611686018427387903",
            "inf",
            "(1",
            "[a",
            ">",
            "$",
            "1-1",
            "+",
            "-",
            "CREATE",
            "MKSTREAM",
            "GROUP",
            "STREAMS",
            "WITHSCORES",
            "COUNT",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut c = conn();
        for _ in 0..20_000 {
            let mut line = CMDS[next(CMDS.len())].to_string();
            for _ in 0..next(9) {
                line.push(' ');
                line.push_str(ARGS[next(ARGS.len())]);
            }
            let o = run(&mut c, &line);
            if let Some(b) = o.block {
                assert!(b <= super::BLOCK_CAP, "{line}");
            }
            if let Some(r) = o.reply {
                assert!(r.wire_len() <= 512 * 1024, "{line}");
            }
        }
        // A negative count repeats picks: the reply budget ends it, not the count.
        run(&mut c, "SADD big 1");
        let o = run(&mut c, "SRANDMEMBER big -9223372036854775807");
        assert!(o.close && o.reply.is_none());
    }
}

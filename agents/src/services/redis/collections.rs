//! The commands on lists, hashes, sets, sorted sets and streams, plus TYPE-aware
//! helpers (WRONGTYPE, OBJECT, SWAPDB). Every write goes through
//! [`Keyspace::update`](super::keyspace::Keyspace::update), which checks the bytes and
//! elements it may add against the node's bounds and the source's share before anything
//! is allocated; every reply that shows stored elements is charged to the reply budget
//! as it is built.

use super::super::keyspace::{DATABASES, Keyspace};
use super::super::resp::{Reply, parse_i64};
use super::super::value::{ELEMENT_OVERHEAD, Kind, Stream, StreamId, Value, zcmp};
use super::{Clock, Conn, lower, not_int, oom, syntax, wrong_args};
use honeybee_proto::event::EventKind;

// Children, so that they share this module's typed-value helpers.
#[path = "blocking.rs"]
mod blocking;
#[path = "keys_more.rs"]
mod keys_more;
#[path = "lists_more.rs"]
mod lists_more;
#[path = "random_members.rs"]
mod random_members;
#[path = "sets_algebra.rs"]
mod sets_algebra;
#[path = "stream_groups.rs"]
mod stream_groups;
#[path = "zset_algebra.rs"]
mod zset_algebra;
#[path = "zset_ranges.rs"]
mod zset_ranges;

pub(super) fn wrongtype() -> Reply {
    Reply::err("WRONGTYPE Operation against a key holding the wrong kind of value")
}

/// Redis's strtod-based float parse: no spaces, no NaN.
pub(super) fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.bytes().any(|c| c.is_ascii_whitespace()) {
        return None;
    }
    let d: f64 = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        l if l.contains("inf") || l.contains("nan") => return None,
        _ => s.parse().ok()?,
    };
    (!d.is_nan()).then_some(d)
}

fn not_float() -> Reply {
    Reply::err("ERR value is not a valid float")
}

/// `start..=stop` of Redis's index arithmetic (negative from the end), clamped; `None`
/// when empty.
fn range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    (start <= stop && start < len).then_some((start as usize, stop as usize))
}

fn bytes_of<'a>(items: impl Iterator<Item = &'a Vec<u8>>) -> usize {
    items.map(|b| b.len() + ELEMENT_OVERHEAD).sum()
}

/// Stream IDs: `ms-seq`, or `ms` (seq `dflt`).
fn parse_id(b: &[u8], dflt: u64) -> Option<StreamId> {
    let s = std::str::from_utf8(b).ok()?;
    fn num(t: &str) -> Option<u64> {
        if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    }
    match s.split_once('-') {
        Some((ms, seq)) => Some((num(ms)?, num(seq)?)),
        None => Some((num(s)?, dflt)),
    }
}

fn next_id((ms, seq): StreamId) -> Option<StreamId> {
    match seq.checked_add(1) {
        Some(s) => Some((ms, s)),
        None => Some((ms.checked_add(1)?, 0)),
    }
}

fn prev_id((ms, seq): StreamId) -> Option<StreamId> {
    match seq.checked_sub(1) {
        Some(s) => Some((ms, s)),
        None => Some((ms.checked_sub(1)?, u64::MAX)),
    }
}

fn id_text(id: StreamId) -> String {
    format!("{}-{}", id.0, id.1)
}

impl Conn {
    /// The value under `key` if it is of `kind` (`Ok(None)`: no such key).
    fn typed<'k>(
        &self,
        ks: &'k Keyspace,
        key: &[u8],
        kind: Kind,
    ) -> Result<Option<&'k Value>, Reply> {
        match ks.get(self.db, key) {
            None => Ok(None),
            Some(e) if e.value.kind() == kind => Ok(Some(&e.value)),
            Some(_) => Err(wrongtype()),
        }
    }

    /// Runs `f` on the value under `key` (created empty if need be) after checking its
    /// type and that `grow` bytes and `add` elements fit; OOM and a `redis_keyspace`
    /// event (at most one a minute) when they do not.
    #[allow(clippy::too_many_arguments)]
    fn change<R>(
        &mut self,
        ks: &mut Keyspace,
        key: &[u8],
        kind: Kind,
        grow: usize,
        add: usize,
        clock: Clock,
        events: &mut Vec<EventKind>,
        f: impl FnOnce(&mut Value) -> R,
    ) -> Result<R, Reply> {
        self.typed(ks, key, kind)?;
        let grow = grow.saturating_add(add.saturating_mul(ELEMENT_OVERHEAD));
        match ks.update(
            self.db,
            key,
            || kind.empty(),
            grow,
            add,
            self.source,
            clock.unix_ms,
            f,
        ) {
            Ok(r) => Ok(r),
            Err(r) => {
                self.refused(ks, r, clock, events);
                Err(oom())
            }
        }
    }

    /// A bulk of stored bytes, charged to the reply budget first.
    fn shown(&mut self, b: &[u8]) -> Option<Reply> {
        self.reply_charge(b.len()).then(|| Reply::bulk(b))
    }

    /// Commands on typed values; `None` when `name` is not one of them.
    pub(super) fn collection(
        &mut self,
        ks: &mut Keyspace,
        name: &str,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Option<Reply> {
        let r = match name {
            "lpush" | "rpush" | "lpushx" | "rpushx" => {
                if name.ends_with('x') && ks.get(self.db, &a[0]).is_none() {
                    return Some(Reply::Int(0));
                }
                let items = &a[1..];
                let front = name.starts_with('l');
                self.change(
                    ks,
                    &a[0],
                    Kind::List,
                    bytes_of(items.iter()),
                    items.len(),
                    clock,
                    events,
                    |v| {
                        let Value::List(l) = v else { return 0 };
                        for i in items {
                            if front {
                                l.push_front(i.clone());
                            } else {
                                l.push_back(i.clone());
                            }
                        }
                        l.len() as i64
                    },
                )
                .map_or_else(|e| e, Reply::Int)
            }
            "lpop" | "rpop" => {
                let count = match a.get(1) {
                    None => None,
                    Some(n) => match parse_i64(n) {
                        Some(n) if n >= 0 => Some(n as usize),
                        _ => {
                            return Some(Reply::err("ERR value is out of range, must be positive"));
                        }
                    },
                };
                let front = name == "lpop";
                let len = match self.typed(ks, &a[0], Kind::List) {
                    Err(e) => return Some(e),
                    Ok(None) => {
                        return Some(if count.is_some() {
                            Reply::NilArray
                        } else {
                            Reply::Nil
                        });
                    }
                    Ok(Some(v)) => v.elements(),
                };
                let n = count.unwrap_or(1).min(len);
                let popped = self.change(ks, &a[0], Kind::List, 0, 0, clock, events, |v| {
                    let Value::List(l) = v else { return Vec::new() };
                    (0..n)
                        .filter_map(|_| if front { l.pop_front() } else { l.pop_back() })
                        .collect::<Vec<_>>()
                });
                match (popped, count) {
                    (Err(e), _) => e,
                    (Ok(p), None) => p.into_iter().next().map_or(Reply::Nil, Reply::Bulk),
                    (Ok(p), Some(_)) => Reply::Array(p.into_iter().map(Reply::Bulk).collect()),
                }
            }
            "llen" | "hlen" | "scard" | "zcard" | "xlen" => {
                let kind = match name {
                    "llen" => Kind::List,
                    "hlen" => Kind::Hash,
                    "scard" => Kind::Set,
                    "zcard" => Kind::ZSet,
                    _ => Kind::Stream,
                };
                match self.typed(ks, &a[0], kind) {
                    Err(e) => e,
                    Ok(v) => Reply::Int(v.map_or(0, |v| v.elements() as i64)),
                }
            }
            "lrange" => {
                let (Some(start), Some(stop)) = (parse_i64(&a[1]), parse_i64(&a[2])) else {
                    return Some(not_int());
                };
                let l = match self.typed(ks, &a[0], Kind::List) {
                    Err(e) => return Some(e),
                    Ok(Some(Value::List(l))) => l,
                    Ok(_) => return Some(Reply::Array(vec![])),
                };
                let mut out = Vec::new();
                if let Some((s, e)) = range(start, stop, l.len()) {
                    for i in l.range(s..=e) {
                        let Some(r) = self.shown(i) else {
                            return Some(Reply::Nil);
                        };
                        out.push(r);
                    }
                }
                Reply::Array(out)
            }
            "lindex" => {
                let Some(i) = parse_i64(&a[1]) else {
                    return Some(not_int());
                };
                match self.typed(ks, &a[0], Kind::List) {
                    Err(e) => e,
                    Ok(Some(Value::List(l))) => {
                        let idx = if i < 0 { l.len() as i64 + i } else { i };
                        match usize::try_from(idx).ok().and_then(|i| l.get(i)) {
                            Some(v) => self.shown(&v.clone()).unwrap_or(Reply::Nil),
                            None => Reply::Nil,
                        }
                    }
                    Ok(_) => Reply::Nil,
                }
            }
            "lset" => {
                let Some(i) = parse_i64(&a[1]) else {
                    return Some(not_int());
                };
                let len = match self.typed(ks, &a[0], Kind::List) {
                    Err(e) => return Some(e),
                    Ok(None) => return Some(Reply::err("ERR no such key")),
                    Ok(Some(v)) => v.elements() as i64,
                };
                let idx = if i < 0 { len + i } else { i };
                if !(0..len).contains(&idx) {
                    return Some(Reply::err("ERR index out of range"));
                }
                let item = a[2].clone();
                self.change(ks, &a[0], Kind::List, item.len(), 0, clock, events, |v| {
                    if let Value::List(l) = v {
                        l[idx as usize] = item;
                    }
                })
                .map_or_else(|e| e, |()| Reply::ok())
            }
            "lrem" => {
                let Some(count) = parse_i64(&a[1]) else {
                    return Some(not_int());
                };
                match self.typed(ks, &a[0], Kind::List) {
                    Err(e) => return Some(e),
                    Ok(None) => return Some(Reply::Int(0)),
                    Ok(Some(_)) => {}
                }
                let target = &a[2];
                self.change(ks, &a[0], Kind::List, 0, 0, clock, events, |v| {
                    let Value::List(l) = v else { return 0 };
                    let limit = if count == 0 {
                        usize::MAX
                    } else {
                        count.unsigned_abs() as usize
                    };
                    let mut removed = 0usize;
                    let mut keep = |x: &Vec<u8>| {
                        if removed < limit && x == target {
                            removed += 1;
                            false
                        } else {
                            true
                        }
                    };
                    let kept: std::collections::VecDeque<Vec<u8>> = if count < 0 {
                        let mut k: Vec<Vec<u8>> = l.drain(..).rev().filter(|x| keep(x)).collect();
                        k.reverse();
                        k.into()
                    } else {
                        l.drain(..).filter(|x| keep(x)).collect()
                    };
                    *l = kept;
                    removed as i64
                })
                .map_or_else(|e| e, Reply::Int)
            }
            "hset" | "hmset" => {
                if a.len().is_multiple_of(2) {
                    return Some(wrong_args(name));
                }
                let pairs = &a[1..];
                let grow = bytes_of(pairs.iter());
                let added = self.change(
                    ks,
                    &a[0],
                    Kind::Hash,
                    grow,
                    pairs.len(),
                    clock,
                    events,
                    |v| {
                        let Value::Hash(h) = v else { return 0 };
                        let mut added = 0;
                        for p in pairs.chunks(2) {
                            match h.iter_mut().find(|(f, _)| *f == p[0]) {
                                Some((_, val)) => *val = p[1].clone(),
                                None => {
                                    h.push((p[0].clone(), p[1].clone()));
                                    added += 1;
                                }
                            }
                        }
                        added
                    },
                );
                match added {
                    Err(e) => e,
                    Ok(_) if name == "hmset" => Reply::ok(),
                    Ok(n) => Reply::Int(n),
                }
            }
            "hsetnx" => {
                let exists = match self.typed(ks, &a[0], Kind::Hash) {
                    Err(e) => return Some(e),
                    Ok(Some(Value::Hash(h))) => h.iter().any(|(f, _)| *f == a[1]),
                    Ok(_) => false,
                };
                if exists {
                    return Some(Reply::Int(0));
                }
                let (f, val) = (a[1].clone(), a[2].clone());
                self.change(
                    ks,
                    &a[0],
                    Kind::Hash,
                    f.len() + val.len(),
                    2,
                    clock,
                    events,
                    |v| {
                        if let Value::Hash(h) = v {
                            h.push((f, val));
                        }
                    },
                )
                .map_or_else(|e| e, |()| Reply::Int(1))
            }
            "hget" | "hexists" | "hstrlen" => {
                let found = match self.typed(ks, &a[0], Kind::Hash) {
                    Err(e) => return Some(e),
                    Ok(Some(Value::Hash(h))) => {
                        h.iter().find(|(f, _)| *f == a[1]).map(|(_, v)| v.clone())
                    }
                    Ok(_) => None,
                };
                match (name, found) {
                    ("hexists", f) => Reply::Int(i64::from(f.is_some())),
                    ("hstrlen", f) => Reply::Int(f.map_or(0, |v| v.len() as i64)),
                    (_, Some(v)) => self.shown(&v).unwrap_or(Reply::Nil),
                    (_, None) => Reply::Nil,
                }
            }
            "hmget" => {
                let h = match self.typed(ks, &a[0], Kind::Hash) {
                    Err(e) => return Some(e),
                    Ok(Some(Value::Hash(h))) => h,
                    Ok(_) => {
                        return Some(Reply::Array(a[1..].iter().map(|_| Reply::Nil).collect()));
                    }
                };
                let mut out = Vec::with_capacity(a.len());
                for f in &a[1..] {
                    match h.iter().find(|(g, _)| g == f) {
                        Some((_, v)) => {
                            let Some(r) = self.shown(v) else {
                                return Some(Reply::Nil);
                            };
                            out.push(r);
                        }
                        None => out.push(Reply::Nil),
                    }
                }
                Reply::Array(out)
            }
            "hgetall" | "hkeys" | "hvals" => {
                let h = match self.typed(ks, &a[0], Kind::Hash) {
                    Err(e) => return Some(e),
                    Ok(Some(Value::Hash(h))) => h,
                    Ok(_) => {
                        return Some(if name == "hgetall" {
                            Reply::Map(vec![])
                        } else {
                            Reply::Array(vec![])
                        });
                    }
                };
                let mut pairs = Vec::new();
                let mut items = Vec::new();
                for (f, v) in h {
                    let want_f = name != "hvals";
                    let want_v = name != "hkeys";
                    let fr = if want_f {
                        self.shown(f)
                    } else {
                        Some(Reply::Nil)
                    };
                    let vr = if want_v {
                        self.shown(v)
                    } else {
                        Some(Reply::Nil)
                    };
                    let (Some(fr), Some(vr)) = (fr, vr) else {
                        return Some(Reply::Nil);
                    };
                    match name {
                        "hgetall" => pairs.push((fr, vr)),
                        "hkeys" => items.push(fr),
                        _ => items.push(vr),
                    }
                }
                if name == "hgetall" {
                    Reply::Map(pairs)
                } else {
                    Reply::Array(items)
                }
            }
            "hdel" => {
                match self.typed(ks, &a[0], Kind::Hash) {
                    Err(e) => return Some(e),
                    Ok(None) => return Some(Reply::Int(0)),
                    Ok(Some(_)) => {}
                }
                let fields = &a[1..];
                self.change(ks, &a[0], Kind::Hash, 0, 0, clock, events, |v| {
                    let Value::Hash(h) = v else { return 0 };
                    let before = h.len();
                    h.retain(|(f, _)| !fields.contains(f));
                    (before - h.len()) as i64
                })
                .map_or_else(|e| e, Reply::Int)
            }
            "hincrby" => {
                let Some(by) = parse_i64(&a[2]) else {
                    return Some(not_int());
                };
                let cur = match self.typed(ks, &a[0], Kind::Hash) {
                    Err(e) => return Some(e),
                    Ok(Some(Value::Hash(h))) => {
                        h.iter().find(|(f, _)| *f == a[1]).map(|(_, v)| v.clone())
                    }
                    Ok(_) => None,
                };
                let cur = match cur {
                    None => 0,
                    Some(v) => match parse_i64(&v) {
                        Some(n) => n,
                        None => return Some(Reply::err("ERR hash value is not an integer")),
                    },
                };
                let Some(n) = cur.checked_add(by) else {
                    return Some(Reply::err("ERR increment or decrement would overflow"));
                };
                let field = a[1].clone();
                let text = n.to_string().into_bytes();
                self.change(
                    ks,
                    &a[0],
                    Kind::Hash,
                    field.len() + text.len(),
                    2,
                    clock,
                    events,
                    |v| {
                        let Value::Hash(h) = v else { return };
                        match h.iter_mut().find(|(f, _)| *f == field) {
                            Some((_, val)) => *val = text,
                            None => h.push((field, text)),
                        }
                    },
                )
                .map_or_else(|e| e, |()| Reply::Int(n))
            }
            "sadd" => {
                let members = &a[1..];
                self.change(
                    ks,
                    &a[0],
                    Kind::Set,
                    bytes_of(members.iter()),
                    members.len(),
                    clock,
                    events,
                    |v| {
                        let Value::Set(s) = v else { return 0 };
                        members.iter().filter(|m| s.insert((*m).clone())).count() as i64
                    },
                )
                .map_or_else(|e| e, Reply::Int)
            }
            "srem" => {
                match self.typed(ks, &a[0], Kind::Set) {
                    Err(e) => return Some(e),
                    Ok(None) => return Some(Reply::Int(0)),
                    Ok(Some(_)) => {}
                }
                let members = &a[1..];
                self.change(ks, &a[0], Kind::Set, 0, 0, clock, events, |v| {
                    let Value::Set(s) = v else { return 0 };
                    members.iter().filter(|m| s.remove(*m)).count() as i64
                })
                .map_or_else(|e| e, Reply::Int)
            }
            "smembers" => match self.typed(ks, &a[0], Kind::Set) {
                Err(e) => e,
                Ok(Some(Value::Set(s))) => {
                    let mut out = Vec::new();
                    for m in set_order(s) {
                        let Some(r) = self.shown(m) else {
                            return Some(Reply::Nil);
                        };
                        out.push(r);
                    }
                    Reply::Set(out)
                }
                Ok(_) => Reply::Set(vec![]),
            },
            "sismember" => match self.typed(ks, &a[0], Kind::Set) {
                Err(e) => e,
                Ok(Some(Value::Set(s))) => Reply::Int(i64::from(s.contains(&a[1]))),
                Ok(_) => Reply::Int(0),
            },
            "spop" => {
                let count = match a.get(1) {
                    None => None,
                    Some(n) => match parse_i64(n) {
                        Some(n) if n >= 0 => Some(n as usize),
                        _ => {
                            return Some(Reply::err("ERR value is out of range, must be positive"));
                        }
                    },
                };
                if a.len() > 2 {
                    return Some(syntax());
                }
                match self.typed(ks, &a[0], Kind::Set) {
                    Err(e) => return Some(e),
                    Ok(None) => {
                        return Some(if count.is_some() {
                            Reply::Set(vec![])
                        } else {
                            Reply::Nil
                        });
                    }
                    Ok(Some(_)) => {}
                }
                let n = count.unwrap_or(1);
                let popped = self.change(ks, &a[0], Kind::Set, 0, 0, clock, events, |v| {
                    let Value::Set(s) = v else { return Vec::new() };
                    // Which members go is Redis's random choice; any is as good.
                    let mut out = Vec::new();
                    for _ in 0..n.min(s.len()) {
                        let idx = rand::random_range(0..s.len());
                        if let Some(m) = s.iter().nth(idx).cloned() {
                            s.remove(&m);
                            out.push(m);
                        }
                    }
                    out
                });
                match (popped, count) {
                    (Err(e), _) => e,
                    (Ok(p), None) => p.into_iter().next().map_or(Reply::Nil, Reply::Bulk),
                    (Ok(p), Some(_)) => Reply::Set(p.into_iter().map(Reply::Bulk).collect()),
                }
            }
            "zadd" => return Some(self.zadd(ks, a, clock, events)),
            "zincrby" => {
                let Some(by) = parse_f64(&a[1]) else {
                    return Some(not_float());
                };
                let cur = match self.typed(ks, &a[0], Kind::ZSet) {
                    Err(e) => return Some(e),
                    Ok(Some(Value::ZSet(z))) => z.iter().find(|(_, m)| *m == a[2]).map(|(s, _)| *s),
                    Ok(_) => None,
                };
                let score = cur.unwrap_or(0.0) + by;
                if score.is_nan() {
                    return Some(Reply::err("ERR resulting score is not a number (NaN)"));
                }
                let member = a[2].clone();
                self.change(
                    ks,
                    &a[0],
                    Kind::ZSet,
                    member.len() + 8,
                    1,
                    clock,
                    events,
                    |v| {
                        if let Value::ZSet(z) = v {
                            zset_put(z, score, member);
                        }
                    },
                )
                .map_or_else(|e| e, |()| Reply::double(score))
            }
            "zscore" => match self.typed(ks, &a[0], Kind::ZSet) {
                Err(e) => e,
                Ok(Some(Value::ZSet(z))) => z
                    .iter()
                    .find(|(_, m)| *m == a[1])
                    .map_or(Reply::Nil, |(s, _)| Reply::double(*s)),
                Ok(_) => Reply::Nil,
            },
            "zrem" => {
                match self.typed(ks, &a[0], Kind::ZSet) {
                    Err(e) => return Some(e),
                    Ok(None) => return Some(Reply::Int(0)),
                    Ok(Some(_)) => {}
                }
                let members = &a[1..];
                self.change(ks, &a[0], Kind::ZSet, 0, 0, clock, events, |v| {
                    let Value::ZSet(z) = v else { return 0 };
                    let before = z.len();
                    z.retain(|(_, m)| !members.contains(m));
                    (before - z.len()) as i64
                })
                .map_or_else(|e| e, Reply::Int)
            }
            // 7.0's BYSCORE/BYLEX/LIMIT forms of ZRANGE go with the score/lex ranges.
            "zrange"
                if a[3..]
                    .iter()
                    .any(|o| matches!(lower(o).as_str(), "byscore" | "bylex" | "limit")) =>
            {
                return Some(self.zset_range(ks, name, a));
            }
            "zrange" | "zrevrange" => return Some(self.zrange(ks, name, a)),
            "sinter" | "sunion" | "sdiff" | "sinterstore" | "sunionstore" | "sdiffstore"
            | "sintercard" | "smismember" => {
                return Some(self.set_algebra(ks, name, a, clock, events));
            }
            "zrangebyscore" | "zrevrangebyscore" | "zrangebylex" | "zrevrangebylex" | "zcount"
            | "zlexcount" => return Some(self.zset_range(ks, name, a)),
            "smove" => return Some(self.smove(ks, a, clock, events)),
            "zpopmin" | "zpopmax" => return Some(self.zpop(ks, name, a, clock, events)),
            "xdel" => return Some(self.xdel(ks, a, clock, events)),
            "xadd" => return Some(self.xadd(ks, a, clock, events)),
            "xrange" | "xrevrange" => return Some(self.xrange(ks, name, a)),
            "object" => return Some(self.object(ks, a, clock)),
            "zrank" | "zrevrank" | "zmscore" | "zunion" | "zinter" | "zdiff" | "zunionstore"
            | "zinterstore" | "zdiffstore" | "zintercard" => {
                return self.zset_algebra(ks, name, a, clock, events);
            }
            "zrangestore" => return Some(self.zrangestore(ks, a, clock, events)),
            "zremrangebyrank" | "zremrangebyscore" | "zremrangebylex" => {
                return Some(self.zremrange(ks, name, a, clock, events));
            }
            "srandmember" | "hrandfield" | "zrandmember" => {
                return self.random_members(ks, name, a);
            }
            "lpos" | "linsert" | "ltrim" => return self.lists_more(ks, name, a, clock, events),
            "xgroup" => return Some(self.xgroup(ks, a, clock, events)),
            "xack" => return Some(self.xack(ks, a, clock, events)),
            "xtrim" => return Some(self.xtrim(ks, a, clock, events)),
            "xpending" => return Some(self.xpending(ks, a, clock)),
            "getdel" | "getex" | "getrange" | "substr" | "setrange" | "msetnx" | "touch"
            | "renamenx" | "expire" | "pexpire" | "expireat" | "pexpireat" | "expiretime"
            | "pexpiretime" | "publish" | "hscan" | "sscan" | "zscan" | "copy" | "move" => {
                return self.keys_more(ks, name, a, clock, events);
            }
            "swapdb" => {
                let Some(x) = parse_i64(&a[0]) else {
                    return Some(Reply::err("ERR invalid first DB index"));
                };
                let Some(y) = parse_i64(&a[1]) else {
                    return Some(Reply::err("ERR invalid second DB index"));
                };
                let ok = |n: i64| (0..DATABASES as i64).contains(&n);
                if !ok(x) || !ok(y) {
                    return Some(Reply::err("ERR DB index is out of range"));
                }
                ks.swap(x as usize, y as usize);
                Reply::ok()
            }
            _ => return None,
        };
        Some(r)
    }

    fn zadd(
        &mut self,
        ks: &mut Keyspace,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Reply {
        let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
            (false, false, false, false, false, false);
        let mut i = 1;
        while i < a.len() {
            match lower(&a[i]).as_str() {
                "nx" => nx = true,
                "xx" => xx = true,
                "gt" => gt = true,
                "lt" => lt = true,
                "ch" => ch = true,
                "incr" => incr = true,
                _ => break,
            }
            i += 1;
        }
        let rest = &a[i..];
        if rest.is_empty() || rest.len() % 2 == 1 {
            return syntax();
        }
        if nx && xx {
            return Reply::err("ERR XX and NX options at the same time are not compatible");
        }
        if (nx && (gt || lt)) || (gt && lt) {
            return Reply::err("ERR GT, LT, and/or NX options at the same time are not compatible");
        }
        if incr && rest.len() > 2 {
            return Reply::err("ERR INCR option supports a single increment-element pair");
        }
        let mut pairs = Vec::with_capacity(rest.len() / 2);
        for p in rest.chunks(2) {
            let Some(s) = parse_f64(&p[0]) else {
                return not_float();
            };
            pairs.push((s, p[1].clone()));
        }
        let existing = match self.typed(ks, &a[0], Kind::ZSet) {
            Err(e) => return e,
            Ok(v) => v.is_some(),
        };
        if xx && !existing {
            return if incr { Reply::Nil } else { Reply::Int(0) };
        }
        let grow: usize = pairs.iter().map(|(_, m)| m.len() + 8).sum();
        let r = self.change(
            ks,
            &a[0],
            Kind::ZSet,
            grow,
            pairs.len(),
            clock,
            events,
            |v| {
                let Value::ZSet(z) = v else {
                    return (0, 0, None);
                };
                let (mut added, mut changed, mut last) = (0i64, 0i64, None);
                for (score, m) in pairs {
                    let cur = z.iter().find(|(_, o)| *o == m).map(|(s, _)| *s);
                    let new = if incr {
                        cur.unwrap_or(0.0) + score
                    } else {
                        score
                    };
                    let skip = match cur {
                        Some(c) => nx || (gt && new <= c) || (lt && new >= c),
                        None => xx,
                    };
                    if skip || new.is_nan() {
                        continue;
                    }
                    if cur.is_none() {
                        added += 1;
                    } else if cur != Some(new) {
                        changed += 1;
                    }
                    zset_put(z, new, m);
                    last = Some(new);
                }
                (added, changed, last)
            },
        );
        match r {
            Err(e) => e,
            Ok((_, _, last)) if incr => last.map_or(Reply::Nil, Reply::double),
            Ok((added, changed, _)) => Reply::Int(if ch { added + changed } else { added }),
        }
    }

    fn zrange(&mut self, ks: &mut Keyspace, name: &str, a: &[Vec<u8>]) -> Reply {
        let mut rev = name == "zrevrange";
        let mut withscores = false;
        for o in &a[3..] {
            match lower(o).as_str() {
                "withscores" => withscores = true,
                "rev" if name == "zrange" => rev = true,
                _ => return syntax(),
            }
        }
        let (Some(start), Some(stop)) = (parse_i64(&a[1]), parse_i64(&a[2])) else {
            return not_int();
        };
        let z = match self.typed(ks, &a[0], Kind::ZSet) {
            Err(e) => return e,
            Ok(Some(Value::ZSet(z))) => z,
            Ok(_) => return Reply::Array(vec![]),
        };
        let mut out = Vec::new();
        if let Some((s, e)) = range(start, stop, z.len()) {
            let picked: Vec<&(f64, Vec<u8>)> = if rev {
                z.iter().rev().skip(s).take(e - s + 1).collect()
            } else {
                z.iter().skip(s).take(e - s + 1).collect()
            };
            for (score, m) in picked {
                let Some(r) = self.shown(m) else {
                    return Reply::Nil;
                };
                if withscores {
                    // RESP3 pairs them; the downgrade flattens, as Redis does.
                    out.push(ScorePair(r, Reply::double(*score)));
                } else {
                    out.push(ScorePair(r, Reply::Nil));
                }
            }
        }
        if withscores && self.resp3 {
            Reply::Array(
                out.into_iter()
                    .map(|p| Reply::Array(vec![p.0, p.1]))
                    .collect(),
            )
        } else if withscores {
            Reply::Array(out.into_iter().flat_map(|p| [p.0, p.1]).collect())
        } else {
            Reply::Array(out.into_iter().map(|p| p.0).collect())
        }
    }

    fn xadd(
        &mut self,
        ks: &mut Keyspace,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Reply {
        let mut i = 1;
        let mut nomkstream = false;
        let mut maxlen: Option<usize> = None;
        loop {
            match lower(&a[i]).as_str() {
                "nomkstream" => {
                    nomkstream = true;
                    i += 1;
                }
                "maxlen" | "minid" => {
                    i += 1;
                    if a.get(i).is_some_and(|t| t == b"~" || t == b"=") {
                        i += 1;
                    }
                    let Some(n) = a.get(i).and_then(|n| parse_i64(n)) else {
                        return not_int();
                    };
                    if n < 0 {
                        return Reply::err("ERR The MAXLEN argument must be >= 0.");
                    }
                    maxlen = Some(n as usize);
                    i += 1;
                }
                _ => break,
            }
            if i >= a.len() {
                return wrong_args("xadd");
            }
        }
        let fields = &a[i + 1..];
        if fields.is_empty() || fields.len() % 2 == 1 {
            return wrong_args("xadd");
        }
        let last = match self.typed(ks, &a[0], Kind::Stream) {
            Err(e) => return e,
            Ok(Some(Value::Stream(s))) => s.last_id,
            Ok(_) if nomkstream => return Reply::Nil,
            Ok(_) => (0, 0),
        };
        let spec = &a[i];
        let id = if spec.as_slice() == b"*" {
            let ms = u64::try_from(clock.unix_ms).unwrap_or(0);
            if ms > last.0 {
                (ms, 0)
            } else {
                (last.0, last.1.saturating_add(1))
            }
        } else if let Some(ms) = spec.strip_suffix(b"-*") {
            match parse_id(ms, 0) {
                Some((ms, _)) if ms > last.0 => (ms, 0),
                Some((ms, _)) if ms == last.0 => (ms, last.1.saturating_add(1)),
                Some(_) => {
                    return Reply::err(
                        "ERR The ID specified in XADD is equal or smaller than the target stream top item",
                    );
                }
                None => {
                    return Reply::err(
                        "ERR Invalid stream ID specified as stream command argument",
                    );
                }
            }
        } else {
            match parse_id(spec, 0) {
                Some((0, 0)) => {
                    return Reply::err("ERR The ID specified in XADD must be greater than 0-0");
                }
                Some(id) if id <= last => {
                    return Reply::err(
                        "ERR The ID specified in XADD is equal or smaller than the target stream top item",
                    );
                }
                Some(id) => id,
                None => {
                    return Reply::err(
                        "ERR Invalid stream ID specified as stream command argument",
                    );
                }
            }
        };
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = fields
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect();
        let grow = 16 + bytes_of(fields.iter());
        let r = self.change(ks, &a[0], Kind::Stream, grow, 1, clock, events, |v| {
            if let Value::Stream(Stream {
                entries, last_id, ..
            }) = v
            {
                entries.push((id, pairs));
                *last_id = id;
                if let Some(n) = maxlen
                    && entries.len() > n
                {
                    let cut = entries.len() - n;
                    entries.drain(..cut);
                }
            }
        });
        r.map_or_else(|e| e, |()| Reply::bulk(id_text(id)))
    }

    fn xrange(&mut self, ks: &mut Keyspace, name: &str, a: &[Vec<u8>]) -> Reply {
        let rev = name == "xrevrange";
        let (lo, hi) = if rev { (&a[2], &a[1]) } else { (&a[1], &a[2]) };
        let bound = |b: &[u8], low: bool| -> Option<StreamId> {
            match b {
                b"-" => Some((0, 0)),
                b"+" => Some((u64::MAX, u64::MAX)),
                _ => parse_id(
                    b.strip_prefix(b"(").unwrap_or(b),
                    if low { 0 } else { u64::MAX },
                ),
            }
        };
        let (lo_ex, hi_ex) = (lo.len() > 1 && lo[0] == b'(', hi.len() > 1 && hi[0] == b'(');
        let (Some(mut lo), Some(mut hi)) = (bound(lo, true), bound(hi, false)) else {
            return Reply::err("ERR Invalid stream ID specified as stream command argument");
        };
        // `(` excludes the ID itself: the next (previous) ID, as streamIncrID does.
        if lo_ex {
            match next_id(lo) {
                Some(n) => lo = n,
                None => return Reply::err("ERR invalid start ID for the interval"),
            }
        }
        if hi_ex {
            match prev_id(hi) {
                Some(p) => hi = p,
                None => return Reply::err("ERR invalid end ID for the interval"),
            }
        }
        let mut count = usize::MAX;
        match &a[3..] {
            [] => {}
            [c, n] if lower(c) == "count" => match parse_i64(n) {
                Some(n) if n >= 0 => count = n as usize,
                Some(_) => count = usize::MAX,
                None => return not_int(),
            },
            _ => return syntax(),
        }
        let s = match self.typed(ks, &a[0], Kind::Stream) {
            Err(e) => return e,
            Ok(Some(Value::Stream(s))) => s,
            Ok(_) => return Reply::Array(vec![]),
        };
        let picked: Vec<_> = if rev {
            s.entries
                .iter()
                .rev()
                .filter(|(id, _)| *id >= lo && *id <= hi)
                .take(count)
                .collect()
        } else {
            s.entries
                .iter()
                .filter(|(id, _)| *id >= lo && *id <= hi)
                .take(count)
                .collect()
        };
        let mut out = Vec::new();
        for (id, fields) in picked {
            let mut f = Vec::with_capacity(fields.len() * 2);
            for (k, v) in fields {
                let (Some(kr), Some(vr)) = (self.shown(k), self.shown(v)) else {
                    return Reply::Nil;
                };
                f.push(kr);
                f.push(vr);
            }
            out.push(Reply::Array(vec![
                Reply::bulk(id_text(*id)),
                Reply::Array(f),
            ]));
        }
        Reply::Array(out)
    }

    fn object(&mut self, ks: &mut Keyspace, a: &[Vec<u8>], clock: Clock) -> Reply {
        let sub = lower(&a[0]);
        let known = matches!(sub.as_str(), "encoding" | "refcount" | "idletime" | "freq");
        if !known || a.len() != 2 {
            if sub == "help" {
                return Reply::Array(vec![]);
            }
            return Reply::err(format!(
                "ERR unknown subcommand '{}'. Try OBJECT HELP.",
                honeybee_proto::event::clamp(&String::from_utf8_lossy(&a[0]), 128)
            ));
        }
        let Some(e) = ks.get(self.db, &a[1]) else {
            return Reply::Nil;
        };
        match sub.as_str() {
            "encoding" => Reply::bulk(e.value.encoding()),
            // Small integers are shared objects in Redis (refcount INT_MAX).
            "refcount" => Reply::Int(match &e.value {
                Value::Str(s) if parse_i64(s).is_some_and(|n| (0..10_000).contains(&n)) => {
                    2_147_483_647
                }
                _ => 1,
            }),
            "idletime" => Reply::Int(((clock.unix_ms - e.written_ms()) / 1000).max(0)),
            _ => Reply::err(
                "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
            ),
        }
    }
}

struct ScorePair(Reply, Reply);

/// Sets an element's score, keeping the (score, member) order.
fn zset_put(z: &mut Vec<(f64, Vec<u8>)>, score: f64, member: Vec<u8>) {
    z.retain(|(_, m)| *m != member);
    let item = (score, member);
    let at = z.partition_point(|x| zcmp(x, &item).is_lt());
    z.insert(at, item);
}

/// SMEMBERS order: numeric for an all-integer set (an intset), else as stored.
fn set_order(s: &std::collections::BTreeSet<Vec<u8>>) -> Vec<&Vec<u8>> {
    let mut v: Vec<&Vec<u8>> = s.iter().collect();
    if v.len() <= 512 && v.iter().all(|m| parse_i64(m).is_some()) {
        v.sort_by_key(|m| parse_i64(m));
    }
    v
}

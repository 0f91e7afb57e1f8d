//! Sorted-set commands across keys and by member, as Redis 7.0.15 answers them:
//! ZUNION, ZINTER, ZDIFF and their STORE forms, ZINTERCARD (`zunionInterDiffGenericCommand`:
//! plain sets count as score 1, WEIGHTS, AGGREGATE, WITHSCORES, LIMIT), ZRANK, ZREVRANK,
//! ZMSCORE. Every input member visited is charged to the command's reply budget (as an
//! empty item), so a request naming many big keys ends like an oversized reply
//! (connection closed, `redis_reply` event) instead of doing unbounded work; a stored
//! result over [`MAX_ELEMENTS`] is OOM.

use super::super::super::keyspace::Keyspace;
use super::super::super::resp::{Reply, parse_i64};
use super::super::super::value::{Kind, MAX_ELEMENTS, Value, zcmp};
use super::super::{Clock, Conn, lower, not_int, oom, syntax};
use super::{parse_f64, wrongtype};
use honeybee_proto::event::EventKind;
use std::collections::HashMap;

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// `zunionInterAggregate`: SUM turns NaN (inf + -inf) into 0.
fn aggregate(target: &mut f64, val: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += val;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if val < *target {
                *target = val;
            }
        }
        Aggregate::Max => {
            if val > *target {
                *target = val;
            }
        }
    }
}

/// One input: its (score, member)s (a plain set's members score 1) and weight.
struct Src<'k> {
    items: Vec<(f64, &'k [u8])>,
    weight: f64,
}

impl Conn {
    /// ZUNION ZINTER ZDIFF (+STORE), ZINTERCARD, ZRANK, ZREVRANK, ZMSCORE; `None` when
    /// `name` is not one of them.
    pub(super) fn zset_algebra(
        &mut self,
        ks: &mut Keyspace,
        name: &str,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Option<Reply> {
        Some(match name {
            "zrank" | "zrevrank" => match self.typed(ks, &a[0], Kind::ZSet) {
                Err(e) => e,
                Ok(Some(Value::ZSet(z))) => match z.iter().position(|(_, m)| *m == a[1]) {
                    Some(i) if name == "zrank" => Reply::Int(i as i64),
                    Some(i) => Reply::Int((z.len() - 1 - i) as i64),
                    None => Reply::Nil,
                },
                Ok(_) => Reply::Nil,
            },
            "zmscore" => match self.typed(ks, &a[0], Kind::ZSet) {
                Err(e) => e,
                Ok(v) => {
                    let z = match v {
                        Some(Value::ZSet(z)) => z.as_slice(),
                        _ => &[],
                    };
                    let mut out = Vec::with_capacity(a.len() - 1);
                    for m in &a[1..] {
                        // Each lookup is a scan: charged, so a long list of members
                        // against a big set stays bounded.
                        if !self.reply_charge(z.len() / 64) {
                            return Some(Reply::Nil);
                        }
                        out.push(
                            z.iter()
                                .find(|(_, o)| o == m)
                                .map_or(Reply::Nil, |(s, _)| Reply::double(*s)),
                        );
                    }
                    Reply::Array(out)
                }
            },
            "zunion" | "zinter" | "zdiff" => self.zcombine(ks, name, None, a, 0, clock, events),
            "zintercard" => self.zcombine(ks, name, None, a, 0, clock, events),
            "zunionstore" | "zinterstore" | "zdiffstore" => {
                self.zcombine(ks, name, Some(&a[0]), a, 1, clock, events)
            }
            _ => return None,
        })
    }

    /// `zunionInterDiffGenericCommand`: `a[at]` is numkeys.
    #[allow(clippy::too_many_arguments)]
    fn zcombine(
        &mut self,
        ks: &mut Keyspace,
        name: &str,
        dst: Option<&Vec<u8>>,
        a: &[Vec<u8>],
        at: usize,
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Reply {
        let op = match name.trim_end_matches("store") {
            "zunion" => Op::Union,
            "zdiff" => Op::Diff,
            _ => Op::Inter,
        };
        let card_only = name == "zintercard";
        let Some(setnum) = parse_i64(&a[at]) else {
            return not_int();
        };
        if setnum < 1 {
            return Reply::err(format!(
                "ERR at least 1 input key is needed for '{name}' command"
            ));
        }
        let rest = a.len() - at - 1;
        if setnum as u64 > rest as u64 {
            return syntax();
        }
        let setnum = setnum as usize;
        let keys = &a[at + 1..at + 1 + setnum];
        let mut srcs: Vec<Src<'_>> = Vec::with_capacity(setnum);
        for k in keys {
            let items = match ks.get(self.db, k).map(|e| &e.value) {
                None => Vec::new(),
                Some(Value::ZSet(z)) => z.iter().map(|(s, m)| (*s, m.as_slice())).collect(),
                Some(Value::Set(s)) => s.iter().map(|m| (1.0, m.as_slice())).collect(),
                Some(_) => return wrongtype(),
            };
            srcs.push(Src { items, weight: 1.0 });
        }
        let (mut how, mut withscores, mut limit) = (Aggregate::Sum, false, 0usize);
        let mut j = at + 1 + setnum;
        while j < a.len() {
            let remaining = a.len() - j;
            let o = lower(&a[j]);
            if op != Op::Diff && !card_only && remaining > setnum && o == "weights" {
                j += 1;
                for s in srcs.iter_mut() {
                    match parse_f64(&a[j]) {
                        Some(w) => s.weight = w,
                        None => return Reply::err("ERR weight value is not a float"),
                    }
                    j += 1;
                }
            } else if op != Op::Diff && !card_only && remaining >= 2 && o == "aggregate" {
                how = match lower(&a[j + 1]).as_str() {
                    "sum" => Aggregate::Sum,
                    "min" => Aggregate::Min,
                    "max" => Aggregate::Max,
                    _ => return syntax(),
                };
                j += 2;
            } else if dst.is_none() && !card_only && o == "withscores" {
                withscores = true;
                j += 1;
            } else if card_only && remaining >= 2 && o == "limit" {
                match parse_i64(&a[j + 1]) {
                    Some(n) if n >= 0 => limit = n as usize,
                    _ => return Reply::err("ERR LIMIT can't be negative"),
                }
                j += 2;
            } else {
                return syntax();
            }
        }
        let mut result: Vec<(f64, &[u8])> = Vec::new();
        let mut card = 0usize;
        match op {
            Op::Inter => {
                // Smallest first, as Redis iterates the smallest input.
                srcs.sort_by_key(|s| s.items.len());
                let mut maps: Vec<HashMap<&[u8], f64>> = Vec::with_capacity(srcs.len());
                for s in &srcs[1..] {
                    let mut m = HashMap::with_capacity(s.items.len().min(MAX_ELEMENTS));
                    for (score, member) in &s.items {
                        if !self.reply_charge(0) {
                            return Reply::Nil;
                        }
                        m.insert(*member, *score);
                    }
                    maps.push(m);
                }
                let first = &srcs[0];
                'member: for (score, member) in &first.items {
                    if !self.reply_charge(0) {
                        return Reply::Nil;
                    }
                    let mut acc = first.weight * score;
                    if acc.is_nan() {
                        acc = 0.0;
                    }
                    for (s, m) in srcs[1..].iter().zip(&maps) {
                        let Some(v) = m.get(member) else {
                            continue 'member;
                        };
                        aggregate(&mut acc, v * s.weight, how);
                    }
                    if card_only {
                        card += 1;
                        if limit != 0 && card >= limit {
                            break;
                        }
                    } else {
                        result.push((acc, member));
                    }
                }
            }
            Op::Union => {
                let mut acc: HashMap<&[u8], f64> = HashMap::new();
                let mut order: Vec<&[u8]> = Vec::new();
                for s in &srcs {
                    for (score, member) in &s.items {
                        if !self.reply_charge(0) {
                            return Reply::Nil;
                        }
                        let mut v = s.weight * score;
                        if v.is_nan() {
                            v = 0.0;
                        }
                        match acc.get_mut(member) {
                            Some(t) => aggregate(t, v, how),
                            None => {
                                acc.insert(member, v);
                                order.push(member);
                            }
                        }
                    }
                }
                result = order.into_iter().map(|m| (acc[m], m)).collect();
            }
            Op::Diff => {
                let mut others: HashMap<&[u8], ()> = HashMap::new();
                for s in &srcs[1..] {
                    for (_, member) in &s.items {
                        if !self.reply_charge(0) {
                            return Reply::Nil;
                        }
                        others.insert(member, ());
                    }
                }
                for (score, member) in &srcs[0].items {
                    if !self.reply_charge(0) {
                        return Reply::Nil;
                    }
                    if !others.contains_key(member) {
                        result.push((*score, member));
                    }
                }
            }
        }
        if card_only {
            return Reply::Int(card as i64);
        }
        let mut sorted: Vec<(f64, Vec<u8>)> =
            result.into_iter().map(|(s, m)| (s, m.to_vec())).collect();
        sorted.sort_by(zcmp);
        if let Some(dst) = dst {
            if sorted.is_empty() {
                ks.remove(self.db, dst);
                return Reply::Int(0);
            }
            if sorted.len() > MAX_ELEMENTS {
                return oom();
            }
            let n = sorted.len() as i64;
            return if self.store(ks, dst, Value::ZSet(sorted), None, clock, events) {
                Reply::Int(n)
            } else {
                oom()
            };
        }
        self.scored(sorted, withscores)
    }

    /// A list of (score, member)s as ZRANGE shows it: members, or with scores flat
    /// (RESP2) or paired (RESP3); charged to the reply budget.
    pub(super) fn scored(&mut self, items: Vec<(f64, Vec<u8>)>, withscores: bool) -> Reply {
        let mut out = Vec::with_capacity(items.len() * if withscores { 2 } else { 1 });
        for (score, m) in items {
            if !self.reply_charge(m.len()) {
                return Reply::Nil;
            }
            let r = Reply::Bulk(m);
            if !withscores {
                out.push(r);
            } else if self.resp3 {
                out.push(Reply::Array(vec![r, Reply::double(score)]));
            } else {
                out.push(r);
                out.push(Reply::double(score));
            }
        }
        Reply::Array(out)
    }
}

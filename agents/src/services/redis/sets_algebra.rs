//! Set algebra as Redis 7.0 answers it: SINTER, SUNION, SDIFF, their STORE forms,
//! SINTERCARD and SMISMEMBER. Every member looked at is charged to the command's reply
//! budget (as an empty item), so a request naming thousands of big sets ends like an
//! oversized reply (connection closed, `redis_reply` event) instead of doing unbounded
//! work; results are built from borrowed members and copied only when stored or shown.

use super::super::super::keyspace::Keyspace;
use super::super::super::resp::{Reply, parse_i64};
use super::super::super::value::{Kind, MAX_ELEMENTS, Value};
use super::super::{Clock, Conn, lower, oom, syntax};
use super::set_order;
use honeybee_proto::event::EventKind;
use std::collections::BTreeSet;

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Inter,
    Union,
    Diff,
}

impl Conn {
    /// SINTER SUNION SDIFF (+STORE), SINTERCARD, SMISMEMBER; `a` without the name.
    pub(super) fn set_algebra(
        &mut self,
        ks: &mut Keyspace,
        name: &str,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Reply {
        match name {
            "smismember" => self.smismember(ks, a),
            "sintercard" => self.sintercard(ks, a),
            _ => {
                let op = match name.trim_end_matches("store") {
                    "sinter" => Op::Inter,
                    "sunion" => Op::Union,
                    _ => Op::Diff,
                };
                if name.ends_with("store") {
                    self.set_store(ks, op, &a[0], &a[1..], clock, events)
                } else {
                    match self.combine(ks, op, a, usize::MAX) {
                        Err(e) => e,
                        Ok(members) => {
                            let mut out = Vec::with_capacity(members.len());
                            for m in members {
                                let Some(r) = self.shown(&m) else {
                                    return Reply::Nil;
                                };
                                out.push(r);
                            }
                            Reply::Set(out)
                        }
                    }
                }
            }
        }
    }

    /// The members of the sets under `keys` combined by `op` (a missing key is an empty
    /// set; any key of another type is WRONGTYPE, checked for all keys first as Redis
    /// does), in SMEMBERS order; at most `limit` members for an intersection.
    fn combine(
        &mut self,
        ks: &Keyspace,
        op: Op,
        keys: &[Vec<u8>],
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, Reply> {
        let mut sets: Vec<Option<&BTreeSet<Vec<u8>>>> = Vec::with_capacity(keys.len());
        for k in keys {
            match self.typed(ks, k, Kind::Set)? {
                Some(Value::Set(s)) => sets.push(Some(s)),
                _ => sets.push(None),
            }
        }
        let mut result: BTreeSet<&Vec<u8>> = BTreeSet::new();
        match op {
            Op::Inter => {
                if sets.iter().any(Option::is_none) {
                    return Ok(Vec::new());
                }
                let mut all: Vec<&BTreeSet<Vec<u8>>> = sets.into_iter().flatten().collect();
                all.sort_by_key(|s| s.len());
                let Some((first, rest)) = all.split_first() else {
                    return Ok(Vec::new());
                };
                for m in first.iter() {
                    if result.len() >= limit {
                        break;
                    }
                    let mut everywhere = true;
                    for s in rest {
                        if !self.reply_charge(0) {
                            return Err(Reply::Nil);
                        }
                        if !s.contains(m) {
                            everywhere = false;
                            break;
                        }
                    }
                    if everywhere {
                        result.insert(m);
                    }
                }
            }
            Op::Union => {
                for m in sets.iter().flatten().flat_map(|s| s.iter()) {
                    if !self.reply_charge(0) {
                        return Err(Reply::Nil);
                    }
                    result.insert(m);
                }
            }
            Op::Diff => {
                let Some(Some(first)) = sets.first() else {
                    return Ok(Vec::new());
                };
                'member: for m in first.iter() {
                    for s in sets[1..].iter().flatten() {
                        if !self.reply_charge(0) {
                            return Err(Reply::Nil);
                        }
                        if s.contains(m) {
                            continue 'member;
                        }
                    }
                    result.insert(m);
                }
            }
        }
        // SMEMBERS order (numeric for an intset result), as the real server's result set.
        let owned: BTreeSet<Vec<u8>> = result.into_iter().cloned().collect();
        Ok(set_order(&owned).into_iter().cloned().collect())
    }

    fn set_store(
        &mut self,
        ks: &mut Keyspace,
        op: Op,
        dst: &[u8],
        keys: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Reply {
        let members = match self.combine(ks, op, keys, usize::MAX) {
            Err(e) => return e,
            Ok(m) => m,
        };
        if members.is_empty() {
            // An empty result deletes the destination, whatever it held.
            ks.remove(self.db, dst);
            return Reply::Int(0);
        }
        if members.len() > MAX_ELEMENTS {
            return oom();
        }
        let n = members.len() as i64;
        let value = Value::Set(members.into_iter().collect());
        if self.store(ks, dst, value, None, clock, events) {
            Reply::Int(n)
        } else {
            oom()
        }
    }

    fn sintercard(&mut self, ks: &mut Keyspace, a: &[Vec<u8>]) -> Reply {
        let numkeys = match parse_i64(&a[0]) {
            Some(n) if n > 0 => n as usize,
            _ => return Reply::err("ERR numkeys should be greater than 0"),
        };
        if numkeys > a.len() - 1 {
            return Reply::err("ERR Number of keys can't be greater than number of args");
        }
        let keys = &a[1..=numkeys];
        let mut limit = usize::MAX;
        let mut i = 1 + numkeys;
        while i < a.len() {
            if lower(&a[i]) == "limit" && i + 1 < a.len() {
                match parse_i64(&a[i + 1]) {
                    Some(n) if n >= 0 => limit = if n == 0 { usize::MAX } else { n as usize },
                    _ => return Reply::err("ERR LIMIT can't be negative"),
                }
                i += 2;
            } else {
                return syntax();
            }
        }
        match self.combine(ks, Op::Inter, keys, limit) {
            Err(e) => e,
            Ok(m) => Reply::Int(m.len() as i64),
        }
    }

    /// SMOVE src dst member: 1 when the member moved.
    pub(super) fn smove(
        &mut self,
        ks: &mut Keyspace,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Reply {
        let (src, dst, m) = (&a[0], &a[1], &a[2]);
        let has = match self.typed(ks, src, Kind::Set) {
            Err(e) => return e,
            Ok(Some(Value::Set(s))) => Some(s.contains(m)),
            Ok(_) => None,
        };
        // A missing source answers 0 before the destination's type is looked at.
        let Some(has) = has else {
            return Reply::Int(0);
        };
        if let Err(e) = self.typed(ks, dst, Kind::Set) {
            return e;
        }
        if src == dst || !has {
            return Reply::Int(i64::from(has));
        }
        // Added first: if the bounds refuse it, nothing has moved.
        let added = self.change(ks, dst, Kind::Set, m.len(), 1, clock, events, |v| {
            if let Value::Set(s) = v {
                s.insert(m.clone());
            }
        });
        if let Err(e) = added {
            return e;
        }
        match self.change(ks, src, Kind::Set, 0, 0, clock, events, |v| {
            if let Value::Set(s) = v {
                s.remove(m);
            }
        }) {
            Err(e) => e,
            Ok(()) => Reply::Int(1),
        }
    }

    fn smismember(&mut self, ks: &mut Keyspace, a: &[Vec<u8>]) -> Reply {
        let set = match self.typed(ks, &a[0], Kind::Set) {
            Err(e) => return e,
            Ok(Some(Value::Set(s))) => Some(s),
            Ok(_) => None,
        };
        let mut out = Vec::with_capacity(a.len() - 1);
        for m in &a[1..] {
            out.push(Reply::Int(i64::from(set.is_some_and(|s| s.contains(m)))));
        }
        Reply::Array(out)
    }
}

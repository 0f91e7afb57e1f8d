//! Random picks as Redis 7.0.15 answers them: SRANDMEMBER, HRANDFIELD [WITHVALUES],
//! ZRANDMEMBER [WITHSCORES]. The argument checks, the empty and whole-collection answers
//! (in the collection's own order, as the real server's iterator gives them) and the
//! reply shapes are the real server's; which elements a random pick returns is ours.
//! A negative count repeats picks: each pick is charged to the reply budget before it
//! is copied, so `-9223372036854775807` ends like an oversized reply, never a loop.

use super::super::super::keyspace::Keyspace;
use super::super::super::resp::{Reply, parse_i64};
use super::super::super::value::{Kind, Value};
use super::super::{Conn, lower, not_int, syntax};
use super::set_order;

/// `getRangeLongFromObjectOrReply(-LONG_MAX, LONG_MAX)`.
fn count_arg(b: &[u8]) -> Result<i64, Reply> {
    match parse_i64(b) {
        None => Err(not_int()),
        Some(i64::MIN) => Err(Reply::err(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        )),
        Some(n) => Ok(n),
    }
}

/// Up to `count` distinct indices below `len`, in ascending order (Redis's subset is
/// in no useful order either).
fn distinct(count: usize, len: usize) -> Vec<usize> {
    let mut picked = std::collections::BTreeSet::new();
    // `count < len` here; bounded by `len` ≤ MAX_ELEMENTS tries per kept index on
    // average far fewer.
    while picked.len() < count.min(len) {
        picked.insert(rand::random_range(0..len));
    }
    picked.into_iter().collect()
}

/// What goes with an element when WITHVALUES / WITHSCORES asks for it.
enum Extra<'a> {
    None,
    Value(&'a [u8]),
    Score(f64),
}

impl Conn {
    /// SRANDMEMBER HRANDFIELD ZRANDMEMBER; `None` when `name` is not one of them.
    pub(super) fn random_members(
        &mut self,
        ks: &Keyspace,
        name: &str,
        a: &[Vec<u8>],
    ) -> Option<Reply> {
        let (kind, option) = match name {
            "srandmember" => (Kind::Set, None),
            "hrandfield" => (Kind::Hash, Some("withvalues")),
            "zrandmember" => (Kind::ZSet, Some("withscores")),
            _ => return None,
        };
        let mut with = false;
        let mut count = None;
        if a.len() >= 2 {
            let Some(option) = option else {
                if a.len() > 2 {
                    return Some(syntax());
                }
                return Some(match count_arg(&a[1]) {
                    Err(e) => e,
                    Ok(n) => self.pick(ks, kind, &a[0], Some(n), false),
                });
            };
            let n = match count_arg(&a[1]) {
                Err(e) => return Some(e),
                Ok(n) => n,
            };
            if a.len() > 3 || (a.len() == 3 && lower(&a[2]) != option) {
                return Some(syntax());
            }
            if a.len() == 3 {
                with = true;
                if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&n) {
                    return Some(Reply::err("ERR value is out of range"));
                }
            }
            count = Some(n);
        }
        Some(self.pick(ks, kind, &a[0], count, with))
    }

    fn pick(
        &mut self,
        ks: &Keyspace,
        kind: Kind,
        key: &[u8],
        count: Option<i64>,
        with: bool,
    ) -> Reply {
        let v = match self.typed(ks, key, kind) {
            Err(e) => return e,
            Ok(None) if count.is_some() => return Reply::Array(vec![]),
            Ok(None) => return Reply::Nil,
            Ok(Some(v)) => v,
        };
        // (element, its value or score), in the order Redis's iterator gives them.
        let all: Vec<(&[u8], Extra<'_>)> = match v {
            Value::Set(s) => set_order(s)
                .into_iter()
                .map(|m| (m.as_slice(), Extra::None))
                .collect(),
            Value::Hash(h) => h
                .iter()
                .map(|(f, val)| (f.as_slice(), Extra::Value(val)))
                .collect(),
            // `zuiNext` walks a sorted set from its tail: highest score first.
            Value::ZSet(z) => z
                .iter()
                .rev()
                .map(|(s, m)| (m.as_slice(), Extra::Score(*s)))
                .collect(),
            _ => return Reply::Nil,
        };
        let len = all.len();
        let Some(n) = count else {
            let (m, _) = &all[rand::random_range(0..len)];
            return self.shown(m).unwrap_or(Reply::Nil);
        };
        let (want, repeat) = (n.unsigned_abs(), n < 0);
        if want == 0 {
            return Reply::Array(vec![]);
        }
        let indices: Box<dyn Iterator<Item = usize>> = if repeat || want == 1 {
            Box::new((0..want).map(|_| rand::random_range(0..len)))
        } else if want >= len as u64 {
            Box::new(0..len)
        } else {
            Box::new(distinct(want as usize, len).into_iter())
        };
        let mut out = Vec::new();
        for i in indices {
            let (m, extra) = &all[i];
            let Some(r) = self.shown(m) else {
                return Reply::Nil;
            };
            let x = match extra {
                Extra::Value(val) if with => match self.shown(val) {
                    Some(x) => x,
                    None => return Reply::Nil,
                },
                Extra::Score(s) if with => Reply::double(*s),
                _ => {
                    out.push(r);
                    continue;
                }
            };
            if self.resp3 {
                out.push(Reply::Array(vec![r, x]));
            } else {
                out.push(r);
                out.push(x);
            }
        }
        Reply::Array(out)
    }
}

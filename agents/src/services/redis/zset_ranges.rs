//! Sorted-set ranges by score and by member as Redis 7.0 answers them: ZRANGEBYSCORE,
//! ZREVRANGEBYSCORE, ZCOUNT, ZRANGEBYLEX, ZREVRANGEBYLEX, ZLEXCOUNT (`(` exclusive
//! bounds, `-inf`/`+inf`, `-`/`+`/`[`, LIMIT offset count). Shown members are charged to
//! the reply budget as they are picked. Also ZRANGESTORE and ZREMRANGEBYRANK / SCORE /
//! LEX, which take the same ranges.

use super::super::super::keyspace::Keyspace;
use super::super::super::resp::{Reply, parse_i64};
use super::super::super::value::{Kind, MAX_ELEMENTS, Value};
use super::super::{Clock, Conn, lower, not_int, oom, syntax};
use super::parse_f64;
use honeybee_proto::event::EventKind;

/// One end of a range: by score or by member bytes.
#[derive(Clone)]
enum Bound {
    Score(f64, bool),
    /// `None`: `-` or `+` (the open end); else (member, exclusive).
    Lex(Option<(Vec<u8>, bool)>, bool),
}

/// `zslParseRange`'s item: `(` makes it exclusive; the rest is strtod's whole input.
fn score_bound(b: &[u8]) -> Option<Bound> {
    let (ex, rest) = match b.strip_prefix(b"(") {
        Some(r) => (true, r),
        None => (false, b),
    };
    // strtod of an empty string is 0 and consumes everything, so Redis takes it.
    let v = if rest.is_empty() { 0.0 } else { strtod(rest)? };
    Some(Bound::Score(v, ex))
}

/// C's `strtod` taking the whole input (what `zslParseRange` accepts): leading white
/// space, hexadecimal (`0x1.8p1`), `inf`; not NaN, nothing after the number.
fn strtod(b: &[u8]) -> Option<f64> {
    let t = b.trim_ascii_start();
    let (neg, body) = match t.first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let hex = body
        .strip_prefix(b"0x")
        .or_else(|| body.strip_prefix(b"0X"));
    let v = match hex {
        Some(h) => hex_float(h)?,
        None => return parse_f64(t),
    };
    Some(if neg { -v } else { v })
}

/// The digits after `0x`: hex digits, an optional `.` fraction, an optional `p` binary
/// exponent (decimal). At least one digit.
fn hex_float(h: &[u8]) -> Option<f64> {
    let (mant, exp) = match h.iter().position(|c| matches!(c, b'p' | b'P')) {
        Some(i) => (&h[..i], Some(&h[i + 1..])),
        None => (h, None),
    };
    let (int, frac) = match mant.iter().position(|&c| c == b'.') {
        Some(i) => (&mant[..i], &mant[i + 1..]),
        None => (mant, &[][..]),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for &c in int {
        v = v * 16.0 + f64::from((c as char).to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for &c in frac {
        v += f64::from((c as char).to_digit(16)?) * scale;
        scale /= 16.0;
    }
    if let Some(e) = exp {
        let e: i32 = std::str::from_utf8(e).ok()?.parse().ok()?;
        v *= 2f64.powi(e.clamp(-2000, 2000));
    }
    Some(v)
}

/// `zslParseLexRangeItem`: `+`/`-` alone, else `(` or `[` then the member.
fn lex_bound(b: &[u8], is_max: bool) -> Option<Bound> {
    match b {
        b"+" => Some(Bound::Lex(None, !is_max)),
        b"-" => Some(Bound::Lex(None, is_max)),
        _ => match b.split_first() {
            Some((b'(', m)) => Some(Bound::Lex(Some((m.to_vec(), true)), false)),
            Some((b'[', m)) => Some(Bound::Lex(Some((m.to_vec(), false)), false)),
            _ => None,
        },
    }
}

/// Whether `(score, member)` is at or above `min` (`is_min`) / at or below `max`.
fn within(b: &Bound, score: f64, member: &[u8], is_min: bool) -> bool {
    match b {
        Bound::Score(v, ex) => match (is_min, ex) {
            (true, false) => score >= *v,
            (true, true) => score > *v,
            (false, false) => score <= *v,
            (false, true) => score < *v,
        },
        // The flag of an open end says whether it is the "everything fails" side
        // (`+` as a minimum, `-` as a maximum).
        Bound::Lex(None, nothing) => !nothing,
        Bound::Lex(Some((m, ex)), _) => match (is_min, ex) {
            (true, false) => member >= m.as_slice(),
            (true, true) => member > m.as_slice(),
            (false, false) => member <= m.as_slice(),
            (false, true) => member < m.as_slice(),
        },
    }
}

impl Conn {
    /// ZPOPMIN / ZPOPMAX key [count]: flat (member, score)s; RESP3 pairs when a count
    /// was given, as 7.0 does.
    pub(super) fn zpop(
        &mut self,
        ks: &mut Keyspace,
        name: &str,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Reply {
        if a.len() > 2 {
            return syntax();
        }
        // 7.0 answers a non-number with the "must be positive" text too.
        let count = match a.get(1).map(|c| parse_i64(c)) {
            None => None,
            Some(Some(n)) if n >= 0 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            Some(_) => return Reply::err("ERR value is out of range, must be positive"),
        };
        match self.typed(ks, &a[0], Kind::ZSet) {
            Err(e) => return e,
            Ok(None) => return Reply::Array(vec![]),
            Ok(Some(_)) => {}
        }
        if count == Some(0) {
            return Reply::Array(vec![]);
        }
        let n = count.unwrap_or(1);
        let min = name == "zpopmin";
        let popped = self.change(ks, &a[0], Kind::ZSet, 0, 0, clock, events, |v| {
            let Value::ZSet(z) = v else {
                return Vec::new();
            };
            let n = n.min(z.len());
            if min {
                z.drain(..n).collect()
            } else {
                let at = z.len() - n;
                z.drain(at..).rev().collect::<Vec<_>>()
            }
        });
        let popped = match popped {
            Err(e) => return e,
            Ok(p) => p,
        };
        let nested = self.resp3 && count.is_some();
        let mut out = Vec::new();
        for (score, m) in popped {
            if nested {
                out.push(Reply::Array(vec![Reply::Bulk(m), Reply::double(score)]));
            } else {
                out.push(Reply::Bulk(m));
                out.push(Reply::double(score));
            }
        }
        Reply::Array(out)
    }

    /// ZRANGEBYSCORE ZREVRANGEBYSCORE ZRANGEBYLEX ZREVRANGEBYLEX ZCOUNT ZLEXCOUNT.
    /// Also 7.0's unified `ZRANGE key min max [BYSCORE|BYLEX] [REV] [LIMIT o c]
    /// [WITHSCORES]` (`name` "zrange"; by rank it goes back to the plain ZRANGE).
    pub(super) fn zset_range(&mut self, ks: &mut Keyspace, name: &str, a: &[Vec<u8>]) -> Reply {
        let unified = name == "zrange";
        let mut rev = name.starts_with("zrev");
        let mut lex = name.ends_with("lex") || name == "zlexcount";
        let mut by = !unified;
        let count_only = name == "zcount" || name == "zlexcount";
        let (mut withscores, mut offset, mut limit) = (false, 0i64, -1i64);
        let mut limit_at = None;
        if !count_only {
            let mut i = 3;
            while i < a.len() {
                let o = lower(&a[i]);
                if o == "withscores" {
                    withscores = true;
                    i += 1;
                } else if o == "limit" && a.len() - i > 2 {
                    let (Some(off), Some(lim)) = (parse_i64(&a[i + 1]), parse_i64(&a[i + 2]))
                    else {
                        return not_int();
                    };
                    (offset, limit) = (off, lim);
                    limit_at = Some(i);
                    i += 3;
                } else if unified && !rev && o == "rev" {
                    rev = true;
                    i += 1;
                } else if unified && !by && (o == "byscore" || o == "bylex") {
                    (by, lex) = (true, o == "bylex");
                    i += 1;
                } else {
                    return syntax();
                }
            }
            if !by {
                if limit != -1 {
                    return Reply::err(
                        "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
                    );
                }
                // By rank: the plain ZRANGE, without the LIMIT that changes nothing.
                let mut plain = a.to_vec();
                if let Some(at) = limit_at {
                    plain.drain(at..at + 3);
                }
                return self.zrange(ks, "zrange", &plain);
            }
            if withscores && lex {
                return Reply::err(
                    "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
                );
            }
        }
        // The reversed forms take the range as max, min.
        let (min, max) = if rev { (&a[2], &a[1]) } else { (&a[1], &a[2]) };
        let bounds = if lex {
            (lex_bound(min, false), lex_bound(max, true))
        } else {
            (score_bound(min), score_bound(max))
        };
        let (Some(min), Some(max)) = bounds else {
            return Reply::err(if lex {
                "ERR min or max not valid string range item"
            } else {
                "ERR min or max is not a float"
            });
        };
        let z = match self.typed(ks, &a[0], Kind::ZSet) {
            Err(e) => return e,
            Ok(Some(Value::ZSet(z))) => z,
            Ok(_) if count_only => return Reply::Int(0),
            Ok(_) => return Reply::Array(vec![]),
        };
        let hit =
            |(s, m): &&(f64, Vec<u8>)| within(&min, *s, m, true) && within(&max, *s, m, false);
        if count_only {
            return Reply::Int(z.iter().filter(hit).count() as i64);
        }
        // A negative offset skips everything, a negative limit takes everything (Redis's
        // `while (offset--)` / `while (limit--)` loops).
        if offset < 0 {
            return Reply::Array(vec![]);
        }
        let take = usize::try_from(limit).unwrap_or(usize::MAX);
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        let picked: Vec<&(f64, Vec<u8>)> = if rev {
            z.iter().rev().filter(hit).skip(skip).take(take).collect()
        } else {
            z.iter().filter(hit).skip(skip).take(take).collect()
        };
        let mut out = Vec::with_capacity(picked.len() * if withscores { 2 } else { 1 });
        for (score, m) in picked {
            let Some(r) = self.shown(m) else {
                return Reply::Nil;
            };
            if !withscores {
                out.push(r);
            } else if self.resp3 {
                out.push(Reply::Array(vec![r, Reply::double(*score)]));
            } else {
                out.push(r);
                out.push(Reply::double(*score));
            }
        }
        Reply::Array(out)
    }

    /// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT o c]: ZRANGE's range
    /// (its checks and errors), stored; an empty result deletes `dst`.
    pub(super) fn zrangestore(
        &mut self,
        ks: &mut Keyspace,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Reply {
        // `zrangeGenericCommand`'s option loop with `store` set: WITHSCORES is a syntax
        // error where the loop meets it (after a LIMIT's numbers are checked).
        let mut j = 4;
        while j < a.len() {
            let o = lower(&a[j]);
            if o == "withscores" {
                return syntax();
            }
            if o == "limit" && a.len() - j > 2 {
                if parse_i64(&a[j + 1]).is_none() || parse_i64(&a[j + 2]).is_none() {
                    return not_int();
                }
                j += 2;
            }
            j += 1;
        }
        let picked = match self.zset_range(ks, "zrange", &a[1..]) {
            Reply::Array(items) => items,
            other => return other,
        };
        if picked.is_empty() {
            ks.remove(self.db, &a[0]);
            return Reply::Int(0);
        }
        let Ok(Some(Value::ZSet(z))) = self.typed(ks, &a[1], Kind::ZSet) else {
            return Reply::Int(0);
        };
        let scores: std::collections::HashMap<&[u8], f64> =
            z.iter().map(|(s, m)| (m.as_slice(), *s)).collect();
        let mut out: Vec<(f64, Vec<u8>)> = picked
            .into_iter()
            .filter_map(|r| match r {
                Reply::Bulk(m) => Some((*scores.get(m.as_slice())?, m)),
                _ => None,
            })
            .collect();
        out.sort_by(super::super::super::value::zcmp);
        if out.len() > MAX_ELEMENTS {
            return oom();
        }
        let n = out.len() as i64;
        if self.store(ks, &a[0], Value::ZSet(out), None, clock, events) {
            Reply::Int(n)
        } else {
            oom()
        }
    }

    /// ZREMRANGEBYRANK / ZREMRANGEBYSCORE / ZREMRANGEBYLEX key min max: the range is
    /// checked before the key, as `zremrangeGenericCommand` does.
    pub(super) fn zremrange(
        &mut self,
        ks: &mut Keyspace,
        name: &str,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Reply {
        let by = match name {
            "zremrangebyrank" => {
                let (Some(start), Some(end)) = (parse_i64(&a[1]), parse_i64(&a[2])) else {
                    return not_int();
                };
                Err((start, end))
            }
            "zremrangebyscore" => match (score_bound(&a[1]), score_bound(&a[2])) {
                (Some(lo), Some(hi)) => Ok((lo, hi)),
                _ => return Reply::err("ERR min or max is not a float"),
            },
            _ => match (lex_bound(&a[1], false), lex_bound(&a[2], true)) {
                (Some(lo), Some(hi)) => Ok((lo, hi)),
                _ => return Reply::err("ERR min or max not valid string range item"),
            },
        };
        let len = match self.typed(ks, &a[0], Kind::ZSet) {
            Err(e) => return e,
            Ok(None) => return Reply::Int(0),
            Ok(Some(v)) => v.elements() as i64,
        };
        let (lo_rank, hi_rank) = match &by {
            Err((start, end)) => {
                let mut start = if *start < 0 {
                    len.saturating_add(*start)
                } else {
                    *start
                };
                let mut end = if *end < 0 {
                    len.saturating_add(*end)
                } else {
                    *end
                };
                if start < 0 {
                    start = 0;
                }
                if start > end || start >= len {
                    return Reply::Int(0);
                }
                if end >= len {
                    end = len - 1;
                }
                (start as usize, end as usize)
            }
            Ok(_) => (0, 0),
        };
        self.change(ks, &a[0], Kind::ZSet, 0, 0, clock, events, |v| {
            let Value::ZSet(z) = v else { return 0 };
            let before = z.len();
            match &by {
                Err(_) => {
                    z.drain(lo_rank..=hi_rank);
                }
                Ok((lo, hi)) => {
                    z.retain(|(s, m)| !(within(lo, *s, m, true) && within(hi, *s, m, false)))
                }
            }
            (before - z.len()) as i64
        })
        .map_or_else(|e| e, Reply::Int)
    }
}

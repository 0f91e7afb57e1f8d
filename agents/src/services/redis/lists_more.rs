//! More list commands as Redis 7.0.15 answers them: LPOS (RANK, COUNT, MAXLEN, in
//! `lposCommand`'s order of checks), LINSERT, LTRIM. LPOS's scan is bounded by the list
//! (at most `MAX_ELEMENTS` items); LINSERT goes through the keyspace bounds.

use super::super::super::keyspace::Keyspace;
use super::super::super::resp::{Reply, parse_i64};
use super::super::super::value::{Kind, Value};
use super::super::{Clock, Conn, lower, not_int, syntax};
use honeybee_proto::event::EventKind;

impl Conn {
    /// LPOS LINSERT LTRIM; `None` when `name` is not one of them.
    pub(super) fn lists_more(
        &mut self,
        ks: &mut Keyspace,
        name: &str,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Option<Reply> {
        Some(match name {
            "lpos" => self.lpos(ks, a),
            "linsert" => {
                let after = match lower(&a[1]).as_str() {
                    "after" => true,
                    "before" => false,
                    _ => return Some(syntax()),
                };
                let at = match self.typed(ks, &a[0], Kind::List) {
                    Err(e) => return Some(e),
                    Ok(Some(Value::List(l))) => l.iter().position(|x| *x == a[2]),
                    Ok(_) => return Some(Reply::Int(0)),
                };
                let Some(at) = at else {
                    return Some(Reply::Int(-1));
                };
                let item = a[3].clone();
                let len = item.len();
                self.change(ks, &a[0], Kind::List, len, 1, clock, events, |v| {
                    let Value::List(l) = v else { return 0 };
                    l.insert(if after { at + 1 } else { at }, item);
                    l.len() as i64
                })
                .map_or_else(|e| e, Reply::Int)
            }
            "ltrim" => {
                let (Some(start), Some(end)) = (parse_i64(&a[1]), parse_i64(&a[2])) else {
                    return Some(not_int());
                };
                match self.typed(ks, &a[0], Kind::List) {
                    Err(e) => return Some(e),
                    Ok(None) => return Some(Reply::ok()),
                    Ok(Some(_)) => {}
                }
                self.change(ks, &a[0], Kind::List, 0, 0, clock, events, |v| {
                    let Value::List(l) = v else { return };
                    let len = l.len() as i64;
                    let mut start = if start < 0 {
                        len.saturating_add(start)
                    } else {
                        start
                    };
                    let mut end = if end < 0 {
                        len.saturating_add(end)
                    } else {
                        end
                    };
                    if start < 0 {
                        start = 0;
                    }
                    if start > end || start >= len {
                        l.clear();
                        return;
                    }
                    if end >= len {
                        end = len - 1;
                    }
                    l.truncate(end as usize + 1);
                    l.drain(..start as usize);
                })
                .map_or_else(|e| e, |()| Reply::ok())
            }
            _ => return None,
        })
    }

    /// LPOS key element [RANK r] [COUNT n] [MAXLEN len].
    fn lpos(&mut self, ks: &Keyspace, a: &[Vec<u8>]) -> Reply {
        let (mut rank, mut count, mut maxlen) = (1i64, None::<u64>, 0u64);
        let mut j = 2;
        while j < a.len() {
            let more = j + 1 < a.len();
            match lower(&a[j]).as_str() {
                "rank" if more => {
                    j += 1;
                    match parse_i64(&a[j]) {
                        None => return not_int(),
                        Some(0) => {
                            return Reply::err(
                                "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                            );
                        }
                        Some(r) => rank = r,
                    }
                }
                "count" if more => {
                    j += 1;
                    match parse_i64(&a[j]) {
                        Some(n) if n >= 0 => count = Some(n as u64),
                        _ => return Reply::err("ERR COUNT can't be negative"),
                    }
                }
                "maxlen" if more => {
                    j += 1;
                    match parse_i64(&a[j]) {
                        Some(n) if n >= 0 => maxlen = n as u64,
                        _ => return Reply::err("ERR MAXLEN can't be negative"),
                    }
                }
                _ => return syntax(),
            }
            j += 1;
        }
        let from_tail = rank < 0;
        let rank = rank.unsigned_abs();
        let l = match self.typed(ks, &a[0], Kind::List) {
            Err(e) => return e,
            Ok(Some(Value::List(l))) => l,
            Ok(_) if count.is_some() => return Reply::Array(vec![]),
            Ok(_) => return Reply::Nil,
        };
        let len = l.len();
        let scan = if maxlen == 0 {
            len
        } else {
            len.min(usize::try_from(maxlen).unwrap_or(usize::MAX))
        };
        let mut matches = 0u64;
        let mut out = Vec::new();
        for i in 0..scan {
            let idx = if from_tail { len - 1 - i } else { i };
            if l[idx] != a[1] {
                continue;
            }
            matches += 1;
            if matches >= rank {
                match count {
                    None => return Reply::Int(idx as i64),
                    Some(c) => {
                        out.push(Reply::Int(idx as i64));
                        if c != 0 && matches - rank + 1 >= c {
                            break;
                        }
                    }
                }
            }
        }
        if count.is_some() {
            Reply::Array(out)
        } else {
            Reply::Nil
        }
    }
}

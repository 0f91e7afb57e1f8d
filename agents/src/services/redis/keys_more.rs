//! More string and key commands as Redis 7.0.15 answers them: GETDEL, GETEX, GETRANGE
//! (SUBSTR), SETRANGE, MSETNX, TOUCH, RENAMENX, EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT
//! with 7.0's NX | XX | GT | LT (`expireGenericCommand`'s order of checks),
//! EXPIRETIME / PEXPIRETIME, PUBLISH (no subscribers: 0), HSCAN / SSCAN / ZSCAN, COPY,
//! MOVE.
//! SETRANGE past the value bound is OOM (the real server would grow to 512 MB).

use super::super::super::info::glob;
use super::super::super::keyspace::{DATABASES, Keyspace, MAX_VALUE};
use super::super::super::resp::{Reply, parse_i64};
use super::super::super::value::{Kind, Value};
use super::super::{
    Clock, Conn, GLOB_BUDGET, MAX_SCAN_COUNT, SCAN_COUNT, lower, not_int, oom, syntax,
};
use super::{set_order, wrongtype};
use honeybee_proto::event::EventKind;

const PROTO_MAX_BULK_LEN: i64 = 512 * 1024 * 1024;

/// A score as the SCAN family writes it (a bulk string, `%.17Lg`-like).
fn score_text(s: f64) -> String {
    if s.is_infinite() {
        return if s > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let t = format!("{s}");
    t.strip_suffix(".0").map_or(t.clone(), str::to_owned)
}

impl Conn {
    /// The string under `key`: `Ok(None)` when missing, WRONGTYPE for another type.
    fn string_of(&self, ks: &Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>, Reply> {
        match self.typed(ks, key, Kind::Str)? {
            Some(Value::Str(s)) => Ok(Some(s.clone())),
            _ => Ok(None),
        }
    }

    /// The commands above; `None` when `name` is not one of them.
    pub(super) fn keys_more(
        &mut self,
        ks: &mut Keyspace,
        name: &str,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Option<Reply> {
        Some(match name {
            "getdel" => match self.string_of(ks, &a[0]) {
                Err(e) => e,
                Ok(None) => Reply::Nil,
                Ok(Some(v)) => {
                    if !self.reply_charge(v.len()) {
                        return Some(Reply::Nil);
                    }
                    ks.remove(self.db, &a[0]);
                    Reply::Bulk(v)
                }
            },
            "getex" => self.getex(ks, a, clock),
            "getrange" | "substr" => {
                let (Some(mut start), Some(mut end)) = (parse_i64(&a[1]), parse_i64(&a[2])) else {
                    return Some(not_int());
                };
                let s = match self.string_of(ks, &a[0]) {
                    Err(e) => return Some(e),
                    Ok(None) => return Some(Reply::bulk("")),
                    Ok(Some(s)) => s,
                };
                let len = s.len() as i64;
                if start < 0 && end < 0 && start > end {
                    return Some(Reply::bulk(""));
                }
                if start < 0 {
                    start = len.saturating_add(start);
                }
                if end < 0 {
                    end = len.saturating_add(end);
                }
                start = start.max(0);
                end = end.max(0);
                if end >= len {
                    end = len - 1;
                }
                if start > end || len == 0 {
                    Reply::bulk("")
                } else {
                    self.shown(&s[start as usize..=end as usize])
                        .unwrap_or(Reply::Nil)
                }
            }
            "setrange" => {
                let Some(offset) = parse_i64(&a[1]) else {
                    return Some(not_int());
                };
                if offset < 0 {
                    return Some(Reply::err("ERR offset is out of range"));
                }
                let (old, ttl) = match self.string_of(ks, &a[0]) {
                    Err(e) => return Some(e),
                    Ok(v) => (v, ks.get(self.db, &a[0]).and_then(|e| e.expires_unix_ms)),
                };
                let value = &a[2];
                if value.is_empty() {
                    return Some(Reply::Int(old.map_or(0, |o| o.len() as i64)));
                }
                let total = offset.saturating_add(value.len() as i64);
                if total > PROTO_MAX_BULK_LEN {
                    return Some(Reply::err(
                        "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
                    ));
                }
                if total as usize > MAX_VALUE {
                    return Some(oom());
                }
                let mut s = old.unwrap_or_default();
                let (offset, total) = (offset as usize, total as usize);
                if s.len() < total {
                    s.resize(total, 0);
                }
                s[offset..total].copy_from_slice(value);
                let n = s.len() as i64;
                if self.store(ks, &a[0], Value::Str(s), ttl, clock, events) {
                    Reply::Int(n)
                } else {
                    oom()
                }
            }
            "msetnx" => {
                if !a.len().is_multiple_of(2) {
                    return Some(super::super::wrong_args("msetnx"));
                }
                if a.chunks(2).any(|kv| ks.get(self.db, &kv[0]).is_some()) {
                    return Some(Reply::Int(0));
                }
                for kv in a.chunks(2) {
                    if !self.store(ks, &kv[0], Value::Str(kv[1].clone()), None, clock, events) {
                        return Some(oom());
                    }
                }
                Reply::Int(1)
            }
            "touch" => Reply::Int(a.iter().filter(|k| ks.get(self.db, k).is_some()).count() as i64),
            "renamenx" => {
                if ks.get(self.db, &a[0]).is_none() {
                    return Some(Reply::err("ERR no such key"));
                }
                if ks.get(self.db, &a[1]).is_some() {
                    return Some(Reply::Int(0));
                }
                match ks.rename(self.db, &a[0], &a[1], self.source, clock.unix_ms) {
                    Ok(true) => Reply::Int(1),
                    Ok(false) => Reply::err("ERR no such key"),
                    Err(r) => {
                        self.refused(ks, r, clock, events);
                        oom()
                    }
                }
            }
            "expire" | "pexpire" | "expireat" | "pexpireat" => {
                self.expire_generic(ks, name, a, clock)
            }
            "expiretime" | "pexpiretime" => match ks.get(self.db, &a[0]) {
                None => Reply::Int(-2),
                Some(e) => match e.expires_unix_ms {
                    None => Reply::Int(-1),
                    Some(ms) if name == "pexpiretime" => Reply::Int(ms),
                    Some(ms) => Reply::Int((ms + 500) / 1000),
                },
            },
            "publish" => Reply::Int(0),
            "copy" | "move" => self.copy_or_move(ks, name, a, clock, events),
            "hscan" | "sscan" | "zscan" => self.scan_one(ks, name, a),
            _ => return None,
        })
    }

    /// COPY src dst [DB n] [REPLACE] / MOVE key db, in `copyCommand` / `moveCommand`'s
    /// order of checks. The value keeps its TTL; the copy is charged to this source.
    fn copy_or_move(
        &mut self,
        ks: &mut Keyspace,
        name: &str,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Reply {
        let db_arg = |b: &[u8]| -> Result<usize, Reply> {
            let n = parse_i64(b).ok_or_else(not_int)?;
            let n = i32::try_from(n).map_err(|_| {
                Reply::err(
                    "ERR value is out of range, value must between -2147483648 and 2147483647",
                )
            })?;
            usize::try_from(n)
                .ok()
                .filter(|&d| d < DATABASES)
                .ok_or_else(|| Reply::err("ERR DB index is out of range"))
        };
        let same = || Reply::err("ERR source and destination objects are the same");
        let (src_key, dst_key, mut dst_db, mut replace) = (&a[0], &a[1], self.db, false);
        if name == "move" {
            dst_db = match db_arg(&a[1]) {
                Ok(d) => d,
                Err(e) => return e,
            };
            if dst_db == self.db {
                return same();
            }
        } else {
            let mut j = 2;
            while j < a.len() {
                match lower(&a[j]).as_str() {
                    "replace" => replace = true,
                    "db" if j + 1 < a.len() => {
                        dst_db = match db_arg(&a[j + 1]) {
                            Ok(d) => d,
                            Err(e) => return e,
                        };
                        j += 1;
                    }
                    _ => return syntax(),
                }
                j += 1;
            }
            if dst_db == self.db && src_key == dst_key {
                return same();
            }
        }
        let new_key = if name == "move" { src_key } else { dst_key };
        let Some(e) = ks.get(self.db, src_key) else {
            return Reply::Int(0);
        };
        let (value, expires) = (e.value.clone(), e.expires_unix_ms);
        if ks.get(dst_db, new_key).is_some() && !replace {
            return Reply::Int(0);
        }
        let src_db = self.db;
        self.db = dst_db;
        let stored = self.store(ks, new_key, value, expires, clock, events);
        self.db = src_db;
        if !stored {
            return oom();
        }
        if name == "move" {
            ks.remove(src_db, src_key);
        }
        Reply::Int(1)
    }

    /// GETEX key [EX s | PX ms | EXAT ts | PXAT ts | PERSIST].
    fn getex(&mut self, ks: &mut Keyspace, a: &[Vec<u8>], clock: Clock) -> Reply {
        let (mut expire, mut persist) = (None::<(String, &Vec<u8>)>, false);
        let mut j = 1;
        while j < a.len() {
            let o = lower(&a[j]);
            let next = a.get(j + 1);
            match o.as_str() {
                "persist" if expire.is_none() && !persist => persist = true,
                "ex" | "px" | "exat" | "pxat" if expire.is_none() && !persist && next.is_some() => {
                    expire = next.map(|n| (o.clone(), n));
                    j += 1;
                }
                _ => return syntax(),
            }
            j += 1;
        }
        let v = match self.string_of(ks, &a[0]) {
            Err(e) => return e,
            Ok(None) => return Reply::Nil,
            Ok(Some(v)) => v,
        };
        let when = match &expire {
            None => None,
            Some((unit, n)) => {
                let Some(n) = parse_i64(n) else {
                    return not_int();
                };
                let bad = || Reply::err("ERR invalid expire time in 'getex' command");
                if n <= 0 {
                    return bad();
                }
                let ms = match unit.as_str() {
                    "ex" | "exat" => match n.checked_mul(1000) {
                        Some(m) => m,
                        None => return bad(),
                    },
                    _ => n,
                };
                match unit.as_str() {
                    "ex" | "px" => match ms.checked_add(clock.unix_ms) {
                        Some(w) => Some((w, false)),
                        None => return bad(),
                    },
                    _ => Some((ms, true)),
                }
            }
        };
        if !self.reply_charge(v.len()) {
            return Reply::Nil;
        }
        match when {
            Some((w, true)) if w <= clock.unix_ms => {
                ks.remove(self.db, &a[0]);
            }
            Some((w, _)) => {
                ks.set_expiry(self.db, &a[0], Some(w));
            }
            None if persist => {
                ks.set_expiry(self.db, &a[0], None);
            }
            None => {}
        }
        Reply::Bulk(v)
    }

    /// EXPIRE PEXPIRE EXPIREAT PEXPIREAT key n [NX|XX|GT|LT …].
    fn expire_generic(
        &mut self,
        ks: &mut Keyspace,
        name: &str,
        a: &[Vec<u8>],
        clock: Clock,
    ) -> Reply {
        let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
        for o in &a[2..] {
            match lower(o).as_str() {
                "nx" => nx = true,
                "xx" => xx = true,
                "gt" => gt = true,
                "lt" => lt = true,
                _ => {
                    return Reply::err(format!(
                        "ERR Unsupported option {}",
                        honeybee_proto::event::clamp(&String::from_utf8_lossy(o), 128)
                    ));
                }
            }
        }
        if nx && (xx || gt || lt) {
            return Reply::err(
                "ERR NX and XX, GT or LT options at the same time are not compatible",
            );
        }
        if gt && lt {
            return Reply::err("ERR GT and LT options at the same time are not compatible");
        }
        let Some(n) = parse_i64(&a[1]) else {
            return not_int();
        };
        let bad = || Reply::err(format!("ERR invalid expire time in '{name}' command"));
        let seconds = name == "expire" || name == "expireat";
        let mut when = n;
        if seconds {
            if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&n) {
                return bad();
            }
            when = n * 1000;
        }
        let base = if name.ends_with("at") {
            0
        } else {
            clock.unix_ms
        };
        if when > i64::MAX - base {
            return bad();
        }
        when += base;
        let Some(e) = ks.get(self.db, &a[0]) else {
            return Reply::Int(0);
        };
        let current = e.expires_unix_ms;
        if (nx && current.is_some())
            || (xx && current.is_none())
            || (gt && current.is_none_or(|c| when <= c))
            || (lt && current.is_some_and(|c| when >= c))
        {
            return Reply::Int(0);
        }
        if when <= clock.unix_ms {
            ks.remove(self.db, &a[0]);
        } else {
            ks.set_expiry(self.db, &a[0], Some(when));
        }
        Reply::Int(1)
    }

    /// HSCAN SSCAN ZSCAN key cursor [MATCH p] [COUNT n]: a small collection (listpack,
    /// intset) comes whole with cursor 0, as Redis sends it; a big one in COUNT pages.
    fn scan_one(&mut self, ks: &Keyspace, name: &str, a: &[Vec<u8>]) -> Reply {
        let Some(cursor) = super::super::scan_cursor(&a[1]) else {
            return Reply::err("ERR invalid cursor");
        };
        let empty = || Reply::Array(vec![Reply::bulk("0"), Reply::Array(vec![])]);
        let v = match ks.get(self.db, &a[0]).map(|e| &e.value) {
            None => return empty(),
            Some(v) => v,
        };
        let kind = match name {
            "hscan" => Kind::Hash,
            "sscan" => Kind::Set,
            _ => Kind::ZSet,
        };
        if v.kind() != kind {
            return wrongtype();
        }
        let (mut pattern, mut count): (Option<&[u8]>, usize) = (None, SCAN_COUNT);
        let mut i = 2;
        while i < a.len() {
            match (lower(&a[i]).as_str(), a.get(i + 1)) {
                ("count", Some(n)) => match parse_i64(n) {
                    Some(n) if n >= 1 => {
                        count = usize::try_from(n)
                            .unwrap_or(MAX_SCAN_COUNT)
                            .min(MAX_SCAN_COUNT)
                    }
                    Some(_) => return syntax(),
                    None => return not_int(),
                },
                ("match", Some(p)) => pattern = Some(p),
                _ => return syntax(),
            }
            i += 2;
        }
        // (element, what follows it), in the collection's order.
        let items: Vec<(&[u8], Option<Vec<u8>>)> = match v {
            Value::Hash(h) => h
                .iter()
                .map(|(f, x)| (f.as_slice(), Some(x.clone())))
                .collect(),
            Value::Set(s) => set_order(s)
                .into_iter()
                .map(|m| (m.as_slice(), None))
                .collect(),
            Value::ZSet(z) => z
                .iter()
                .map(|(s, m)| (m.as_slice(), Some(score_text(*s).into_bytes())))
                .collect(),
            _ => Vec::new(),
        };
        let small = !matches!(v.encoding(), "hashtable" | "skiplist");
        let (from, take) = if small {
            (0, usize::MAX)
        } else {
            (cursor, count)
        };
        let mut budget = GLOB_BUDGET;
        let mut out = Vec::new();
        let mut next = 0;
        for (n, (m, extra)) in items.iter().enumerate().skip(from).take(take) {
            next = n + 1;
            if let Some(p) = pattern
                && !glob(p, m, false, &mut budget)
            {
                continue;
            }
            let Some(r) = self.shown(m) else {
                return Reply::Nil;
            };
            out.push(r);
            if let Some(x) = extra {
                let Some(r) = self.shown(x) else {
                    return Reply::Nil;
                };
                out.push(r);
            }
        }
        if small || next >= items.len() {
            next = 0;
        }
        Reply::Array(vec![Reply::bulk(next.to_string()), Reply::Array(out)])
    }
}

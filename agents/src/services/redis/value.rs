//! The values a key can hold (string, list, hash, set, sorted set, stream), what each
//! costs against the keyspace's bounds, what Redis 7.0 calls its type and encoding, and
//! its snapshot form. Collections are plain bounded containers: at most
//! [`MAX_ELEMENTS`] elements per key, every element charged [`ELEMENT_OVERHEAD`] bytes
//! on top of its own, so a flood of tiny elements runs into the byte shares too.

use std::collections::{BTreeSet, VecDeque};

/// Most elements (list items, hash fields, set members, sorted-set members, stream
/// entries) one key may hold. Real attack scripts use a handful.
pub(crate) const MAX_ELEMENTS: usize = 4096;
/// Bytes charged per element besides its own (about what Redis spends on one).
pub(crate) const ELEMENT_OVERHEAD: usize = 16;

/// A stream entry ID (`ms-seq`).
pub(crate) type StreamId = (u64, u64);

/// One stream entry: its ID and field/value pairs.
pub(crate) type StreamEntry = (StreamId, Vec<(Vec<u8>, Vec<u8>)>);

/// A stream: entries in ID order, the last ID handed out (XADD never goes back), and
/// its consumer groups (XGROUP), in name order as Redis's radix tree keeps them.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Stream {
    pub entries: Vec<StreamEntry>,
    pub last_id: StreamId,
    pub groups: Vec<Group>,
}

/// Most consumer groups one stream may have.
pub(crate) const MAX_GROUPS: usize = 16;
/// Most consumers one group may have.
pub(crate) const MAX_CONSUMERS: usize = 64;

/// A consumer group: its last delivered ID, its pending entries (in ID order) and its
/// consumers (in name order).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Group {
    pub name: Vec<u8>,
    pub last_id: StreamId,
    /// Delivered and not yet acknowledged (at most [`MAX_ELEMENTS`]).
    pub pending: Vec<Pending>,
    pub consumers: Vec<Vec<u8>>,
}

/// One pending (delivered, unacknowledged) entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pending {
    pub id: StreamId,
    pub consumer: Vec<u8>,
    pub delivered_ms: i64,
    pub deliveries: u64,
}

impl Group {
    fn size(&self) -> usize {
        elem(&self.name)
            + 16
            + self.consumers.iter().map(|c| elem(c)).sum::<usize>()
            + self.pending.len() * (16 + 8 + 8 + ELEMENT_OVERHEAD)
    }
}

/// A stored value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(Vec<u8>),
    List(VecDeque<Vec<u8>>),
    /// Field order is insertion order, as a small hash (listpack) lists them.
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    /// Members; shown in numeric order when all are integers (an intset), else in this
    /// (byte) order, which a real hashtable's unpredictable order cannot be told from.
    Set(BTreeSet<Vec<u8>>),
    /// (score, member), sorted by score then member, as Redis orders them.
    ZSet(Vec<(f64, Vec<u8>)>),
    Stream(Stream),
}

/// What TYPE answers, and the kinds a command expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    List,
    Hash,
    Set,
    ZSet,
    Stream,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Str => "string",
            Kind::List => "list",
            Kind::Hash => "hash",
            Kind::Set => "set",
            Kind::ZSet => "zset",
            Kind::Stream => "stream",
        }
    }

    /// An empty value of this kind.
    pub(crate) fn empty(self) -> Value {
        match self {
            Kind::Str => Value::Str(Vec::new()),
            Kind::List => Value::List(VecDeque::new()),
            Kind::Hash => Value::Hash(Vec::new()),
            Kind::Set => Value::Set(BTreeSet::new()),
            Kind::ZSet => Value::ZSet(Vec::new()),
            Kind::Stream => Value::Stream(Stream::default()),
        }
    }
}

fn elem(b: &[u8]) -> usize {
    b.len() + ELEMENT_OVERHEAD
}

impl Value {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Value::Str(_) => Kind::Str,
            Value::List(_) => Kind::List,
            Value::Hash(_) => Kind::Hash,
            Value::Set(_) => Kind::Set,
            Value::ZSet(_) => Kind::ZSet,
            Value::Stream(_) => Kind::Stream,
        }
    }

    /// Bytes charged against the keyspace's bounds (a string: its length).
    pub(crate) fn size(&self) -> usize {
        match self {
            Value::Str(s) => s.len(),
            Value::List(l) => l.iter().map(|e| elem(e)).sum(),
            Value::Hash(h) => h.iter().map(|(f, v)| elem(f) + elem(v)).sum(),
            Value::Set(s) => s.iter().map(|e| elem(e)).sum(),
            Value::ZSet(z) => z.iter().map(|(_, m)| elem(m) + 8).sum(),
            Value::Stream(s) => {
                s.entries
                    .iter()
                    .map(|(_, f)| {
                        16 + ELEMENT_OVERHEAD
                            + f.iter().map(|(k, v)| elem(k) + elem(v)).sum::<usize>()
                    })
                    .sum::<usize>()
                    + s.groups.iter().map(Group::size).sum::<usize>()
            }
        }
    }

    /// Every byte string the value holds (a string: itself), in its order.
    pub(crate) fn items(&self) -> Vec<&[u8]> {
        match self {
            Value::Str(s) => vec![s.as_slice()],
            Value::List(l) => l.iter().map(Vec::as_slice).collect(),
            Value::Hash(h) => h
                .iter()
                .flat_map(|(f, v)| [f.as_slice(), v.as_slice()])
                .collect(),
            Value::Set(s) => s.iter().map(Vec::as_slice).collect(),
            Value::ZSet(z) => z.iter().map(|(_, m)| m.as_slice()).collect(),
            Value::Stream(s) => s
                .entries
                .iter()
                .flat_map(|(_, f)| f.iter().flat_map(|(k, v)| [k.as_slice(), v.as_slice()]))
                .collect(),
        }
    }

    /// Elements held (a string: 1).
    pub(crate) fn elements(&self) -> usize {
        match self {
            Value::Str(_) => 1,
            Value::List(l) => l.len(),
            Value::Hash(h) => h.len(),
            Value::Set(s) => s.len(),
            Value::ZSet(z) => z.len(),
            Value::Stream(s) => s.entries.len(),
        }
    }

    /// An emptied collection is deleted, as in Redis (a stream stays).
    pub(crate) fn is_empty_collection(&self) -> bool {
        match self {
            Value::Str(_) | Value::Stream(_) => false,
            _ => self.elements() == 0,
        }
    }

    /// What `OBJECT ENCODING` says in Redis 7.0 (its default thresholds).
    pub(crate) fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => {
                if s.len() <= 20 && super::resp::parse_i64(s).is_some() {
                    "int"
                } else if s.len() <= 44 {
                    "embstr"
                } else {
                    "raw"
                }
            }
            Value::List(_) => "quicklist",
            Value::Hash(h) => {
                if h.len() <= 128 && h.iter().all(|(f, v)| f.len() <= 64 && v.len() <= 64) {
                    "listpack"
                } else {
                    "hashtable"
                }
            }
            Value::Set(s) => {
                if s.len() <= 512 && s.iter().all(|m| super::resp::parse_i64(m).is_some()) {
                    "intset"
                } else {
                    "hashtable"
                }
            }
            Value::ZSet(z) => {
                if z.len() <= 128 && z.iter().all(|(_, m)| m.len() <= 64) {
                    "listpack"
                } else {
                    "skiplist"
                }
            }
            Value::Stream(_) => "stream",
        }
    }

    /// Appends the snapshot form: a type byte, then the elements, lengths first.
    pub(crate) fn encode(&self, b: &mut Vec<u8>) {
        fn bytes(b: &mut Vec<u8>, s: &[u8]) {
            b.extend_from_slice(&(s.len() as u32).to_le_bytes());
            b.extend_from_slice(s);
        }
        fn count(b: &mut Vec<u8>, n: usize) {
            b.extend_from_slice(&(n as u32).to_le_bytes());
        }
        match self {
            Value::Str(s) => {
                b.push(0);
                bytes(b, s);
            }
            Value::List(l) => {
                b.push(1);
                count(b, l.len());
                l.iter().for_each(|e| bytes(b, e));
            }
            Value::Hash(h) => {
                b.push(2);
                count(b, h.len());
                for (f, v) in h {
                    bytes(b, f);
                    bytes(b, v);
                }
            }
            Value::Set(s) => {
                b.push(3);
                count(b, s.len());
                s.iter().for_each(|e| bytes(b, e));
            }
            Value::ZSet(z) => {
                b.push(4);
                count(b, z.len());
                for (score, m) in z {
                    b.extend_from_slice(&score.to_bits().to_le_bytes());
                    bytes(b, m);
                }
            }
            Value::Stream(s) => {
                // 5: a stream without groups (the older form); 6: groups follow.
                b.push(if s.groups.is_empty() { 5 } else { 6 });
                b.extend_from_slice(&s.last_id.0.to_le_bytes());
                b.extend_from_slice(&s.last_id.1.to_le_bytes());
                count(b, s.entries.len());
                for (id, fields) in &s.entries {
                    b.extend_from_slice(&id.0.to_le_bytes());
                    b.extend_from_slice(&id.1.to_le_bytes());
                    count(b, fields.len());
                    for (f, v) in fields {
                        bytes(b, f);
                        bytes(b, v);
                    }
                }
                if !s.groups.is_empty() {
                    count(b, s.groups.len());
                    for g in &s.groups {
                        bytes(b, &g.name);
                        b.extend_from_slice(&g.last_id.0.to_le_bytes());
                        b.extend_from_slice(&g.last_id.1.to_le_bytes());
                        count(b, g.consumers.len());
                        g.consumers.iter().for_each(|c| bytes(b, c));
                        count(b, g.pending.len());
                        for p in &g.pending {
                            b.extend_from_slice(&p.id.0.to_le_bytes());
                            b.extend_from_slice(&p.id.1.to_le_bytes());
                            bytes(b, &p.consumer);
                            b.extend_from_slice(&p.delivered_ms.to_le_bytes());
                            b.extend_from_slice(&p.deliveries.to_le_bytes());
                        }
                    }
                }
            }
        }
    }

    /// Reads what [`Value::encode`] wrote, refusing counts over [`MAX_ELEMENTS`],
    /// strings over `max_value`, scores that are NaN and anything past the input's end
    /// (nothing is reserved beyond what the input can hold).
    pub(crate) fn decode(r: &mut Reader<'_>, max_value: usize) -> Result<Value, String> {
        let tag = r.take(1)?[0];
        let bytes = |r: &mut Reader<'_>| -> Result<Vec<u8>, String> {
            let n = r.u32()? as usize;
            if n > max_value {
                return Err("value over its bound".into());
            }
            Ok(r.take(n)?.to_vec())
        };
        let count = |r: &mut Reader<'_>| -> Result<usize, String> {
            let n = r.u32()? as usize;
            if n > MAX_ELEMENTS || n > r.0.len() / 4 {
                return Err("too many elements".into());
            }
            Ok(n)
        };
        let v = match tag {
            0 => Value::Str(bytes(r)?),
            1 => {
                let n = count(r)?;
                let mut l = VecDeque::with_capacity(n);
                for _ in 0..n {
                    l.push_back(bytes(r)?);
                }
                Value::List(l)
            }
            2 => {
                let n = count(r)?;
                let mut h: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(n);
                for _ in 0..n {
                    let f = bytes(r)?;
                    let v = bytes(r)?;
                    if h.iter().any(|(g, _)| *g == f) {
                        return Err("duplicate hash field".into());
                    }
                    h.push((f, v));
                }
                Value::Hash(h)
            }
            3 => {
                let n = count(r)?;
                let mut s = BTreeSet::new();
                for _ in 0..n {
                    if !s.insert(bytes(r)?) {
                        return Err("duplicate set member".into());
                    }
                }
                Value::Set(s)
            }
            4 => {
                let n = count(r)?;
                let mut z: Vec<(f64, Vec<u8>)> = Vec::with_capacity(n);
                for _ in 0..n {
                    let score = f64::from_bits(u64::from_le_bytes(r.array()?));
                    if score.is_nan() {
                        return Err("NaN score".into());
                    }
                    let m = bytes(r)?;
                    if z.iter().any(|(_, o)| *o == m) {
                        return Err("duplicate sorted-set member".into());
                    }
                    z.push((score, m));
                }
                z.sort_by(zcmp);
                Value::ZSet(z)
            }
            5 | 6 => {
                let last_id = (r.u64()?, r.u64()?);
                let n = count(r)?;
                let mut entries: Vec<StreamEntry> = Vec::with_capacity(n);
                for _ in 0..n {
                    let id = (r.u64()?, r.u64()?);
                    if entries.last().is_some_and(|(p, _)| *p >= id) || id > last_id {
                        return Err("stream IDs out of order".into());
                    }
                    let f = count(r)?;
                    let mut fields = Vec::with_capacity(f);
                    for _ in 0..f {
                        fields.push((bytes(r)?, bytes(r)?));
                    }
                    entries.push((id, fields));
                }
                let groups = if tag == 6 {
                    decode_groups(r, max_value)?
                } else {
                    Vec::new()
                };
                Value::Stream(Stream {
                    entries,
                    last_id,
                    groups,
                })
            }
            _ => return Err("unknown value type".into()),
        };
        Ok(v)
    }
}

/// The consumer groups of a snapshot's stream, within [`MAX_GROUPS`],
/// [`MAX_CONSUMERS`] and [`MAX_ELEMENTS`] pending entries each, names unique and in
/// order.
fn decode_groups(r: &mut Reader<'_>, max_value: usize) -> Result<Vec<Group>, String> {
    let bytes = |r: &mut Reader<'_>| -> Result<Vec<u8>, String> {
        let n = r.u32()? as usize;
        if n > max_value {
            return Err("value over its bound".into());
        }
        Ok(r.take(n)?.to_vec())
    };
    let count = |r: &mut Reader<'_>, max: usize| -> Result<usize, String> {
        let n = r.u32()? as usize;
        if n > max || n > r.0.len() / 4 {
            return Err("too many elements".into());
        }
        Ok(n)
    };
    let n = count(r, MAX_GROUPS)?;
    let mut groups: Vec<Group> = Vec::with_capacity(n);
    for _ in 0..n {
        let name = bytes(r)?;
        if groups.last().is_some_and(|g| g.name >= name) {
            return Err("groups out of order".into());
        }
        let last_id = (r.u64()?, r.u64()?);
        let c = count(r, MAX_CONSUMERS)?;
        let mut consumers: Vec<Vec<u8>> = Vec::with_capacity(c);
        for _ in 0..c {
            let name = bytes(r)?;
            if consumers.last().is_some_and(|p| *p >= name) {
                return Err("consumers out of order".into());
            }
            consumers.push(name);
        }
        let p = count(r, MAX_ELEMENTS)?;
        let mut pending: Vec<Pending> = Vec::with_capacity(p);
        for _ in 0..p {
            let id = (r.u64()?, r.u64()?);
            if pending.last().is_some_and(|q| q.id >= id) {
                return Err("pending entries out of order".into());
            }
            let consumer = bytes(r)?;
            if !consumers.contains(&consumer) {
                return Err("pending entry of no consumer".into());
            }
            pending.push(Pending {
                id,
                consumer,
                delivered_ms: r.i64()?,
                deliveries: r.u64()?,
            });
        }
        groups.push(Group {
            name,
            last_id,
            pending,
            consumers,
        });
    }
    Ok(groups)
}

/// Redis's sorted-set order: by score, then by member bytes.
pub(crate) fn zcmp(a: &(f64, Vec<u8>), b: &(f64, Vec<u8>)) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1))
}

/// A cursor over a snapshot that refuses to read past its end.
pub(crate) struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.0.len() {
            return Err("truncated".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_corruption_is_refused() {
        let values = vec![
            Value::Str(b"abc".to_vec()),
            Value::List(VecDeque::from(vec![b"a".to_vec(), b"".to_vec()])),
            Value::Hash(vec![(b"f".to_vec(), b"v".to_vec())]),
            Value::Set([b"1".to_vec(), b"x".to_vec()].into_iter().collect()),
            Value::ZSet(vec![(-1.5, b"a".to_vec()), (2.0, b"b".to_vec())]),
            Value::Stream(Stream {
                entries: vec![((5, 0), vec![(b"f".to_vec(), b"v".to_vec())])],
                last_id: (5, 0),
                groups: vec![],
            }),
            Value::Stream(Stream {
                entries: vec![((5, 0), vec![(b"f".to_vec(), b"v".to_vec())])],
                last_id: (5, 0),
                groups: vec![Group {
                    name: b"g".to_vec(),
                    last_id: (5, 0),
                    pending: vec![Pending {
                        id: (5, 0),
                        consumer: b"c".to_vec(),
                        delivered_ms: 7,
                        deliveries: 2,
                    }],
                    consumers: vec![b"c".to_vec()],
                }],
            }),
        ];
        for v in values {
            let mut b = Vec::new();
            v.encode(&mut b);
            let back = Value::decode(&mut Reader(&b), 1024).unwrap();
            assert_eq!(back, v);
            for cut in 0..b.len() {
                assert!(Value::decode(&mut Reader(&b[..cut]), 1024).is_err());
            }
        }
        // A count the input cannot hold is refused before anything is reserved.
        let mut b = vec![1u8];
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Value::decode(&mut Reader(&b), 1024).is_err());
    }

    #[test]
    fn encodings_follow_redis_7_0_thresholds() {
        assert_eq!(Value::Str(b"12".to_vec()).encoding(), "int");
        assert_eq!(Value::Str(b"ab".to_vec()).encoding(), "embstr");
        assert_eq!(Value::Str(vec![b'a'; 45]).encoding(), "raw");
        let ints: BTreeSet<Vec<u8>> = [b"1".to_vec()].into_iter().collect();
        assert_eq!(Value::Set(ints).encoding(), "intset");
        assert_eq!(Value::Hash(vec![]).encoding(), "listpack");
    }
}

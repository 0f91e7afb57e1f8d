//! Differential test of the Redis honeypot against Debian 12's real `redis-server`
//! 7.0.15: the same probes (raw RESP over TCP) go to both, in the same order, each
//! group on a fresh connection, and the replies are compared byte for byte after
//! instance values (client ids, stream IDs made from the clock) are normalised. The
//! match rate is printed; the test fails under the floor below, and on any mismatch in
//! the probes that must match (the attack paths and the RESP3 switch).

mod datasvc;

use datasvc::*;
use honeybee_proto::config::{LoginPolicy, RedisOptions, ServiceKind};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The real `redis-server` from Debian on a loopback port of its own, in a temporary
/// directory, stopped by its PID (the child handle).
struct RealRedis {
    child: tokio::process::Child,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl RealRedis {
    async fn start(extra: &[&str]) -> RealRedis {
        const BIN: &str = "/usr/bin/redis-server";
        assert!(
            std::path::Path::new(BIN).exists(),
            "{BIN} is missing: install Debian's redis-server (apt-get install -y redis-server); \
             the Redis oracle compares against it and does not skip"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(BIN)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(extra)
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn redis-server");
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        for _ in 0..600 {
            if let Ok(mut c) = TcpStream::connect(addr).await {
                // Up once it answers (PONG, or NOAUTH with a password set).
                let _ = c.write_all(b"PING\r\n").await;
                let mut b = [0u8; 2];
                if let Ok(Ok(_)) =
                    tokio::time::timeout(Duration::from_secs(2), c.read_exact(&mut b)).await
                    && (&b == b"+P" || &b == b"-N")
                {
                    return RealRedis {
                        child,
                        addr,
                        _dir: dir,
                    };
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not come up");
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(WAIT, self.child.wait()).await;
    }
}

fn multibulk(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Splits a probe line into arguments: words, or `"..."` with `\n` / `\"` escapes.
fn words(line: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        let mut w = String::new();
        if c == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => w.push('\n'),
                        Some(o) => w.push(o),
                        None => {}
                    },
                    o => w.push(o),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                w.push(c);
                chars.next();
            }
        }
        out.push(w.into_bytes());
    }
    out
}

/// Reads exactly one reply (RESP2 or RESP3) and returns its bytes; bounded in size,
/// nesting and time.
async fn read_reply(c: &mut TcpStream, buf: &mut Vec<u8>) -> Vec<u8> {
    loop {
        if let Some(n) = reply_len(buf, 0, 0) {
            return buf.drain(..n).collect();
        }
        let mut chunk = [0u8; 65536];
        let n = match tokio::time::timeout(Duration::from_secs(10), c.read(&mut chunk)).await {
            Ok(Ok(n)) => n,
            _ => 0,
        };
        if n == 0 {
            // Closed (or silent): what came is the answer, marked.
            let mut rest: Vec<u8> = std::mem::take(buf);
            rest.extend_from_slice(b"<closed>");
            return rest;
        }
        assert!(buf.len() < 8 << 20, "reply too large");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The length of the complete reply at `buf[at..]`, if it is all there.
fn reply_len(buf: &[u8], at: usize, depth: usize) -> Option<usize> {
    assert!(depth < 32, "reply nested too deep");
    let rest = buf.get(at..)?;
    let nl = rest.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&rest[1..nl]).ok()?;
    let head = nl + 2;
    match rest.first()? {
        b'+' | b'-' | b':' | b',' | b'_' | b'#' | b'(' => Some(head),
        b'$' | b'=' | b'!' => {
            let n: i64 = line.parse().ok()?;
            if n < 0 {
                return Some(head);
            }
            let total = head + n as usize + 2;
            (rest.len() >= total).then_some(total)
        }
        b'*' | b'~' | b'%' | b'>' => {
            let n: i64 = line.parse().ok()?;
            if n < 0 {
                return Some(head);
            }
            let items = if rest[0] == b'%' { n * 2 } else { n };
            let mut pos = head;
            for _ in 0..items {
                pos += reply_len(buf, at + pos, depth + 1)?;
            }
            Some(pos)
        }
        _ => Some(rest.len()),
    }
}

/// Replaces the values that differ between any two instances.
fn normalise(probe: &str, reply: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(reply).into_owned();
    let p = probe.to_ascii_lowercase();
    if p.starts_with("hello") {
        // The client id.
        if let Some(i) = s.find("$2\r\nid\r\n:") {
            let start = i + 9;
            let end = start + s[start..].find("\r\n").unwrap_or(0);
            s.replace_range(start..end, "<id>");
        }
    }
    if p == "config get dir" {
        // Each server's own directory.
        s = "<dir>".into();
    }
    if p.starts_with("client id") {
        s = ":<id>\r\n".into();
    }
    if p.starts_with("xpending") && p.split(' ').count() > 3 {
        // Each pending entry's idle milliseconds (time since delivery).
        let mut out = String::new();
        let mut rest = s.as_str();
        while let Some(i) = rest.find("\r\n:") {
            out.push_str(&rest[..i + 3]);
            rest = &rest[i + 3..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let tail = &rest[digits..];
            // The idle time is the number followed by the delivery count.
            if digits > 0 && tail.starts_with("\r\n:") {
                out.push_str("<idle>");
                rest = tail;
                let n = rest[3..].bytes().take_while(u8::is_ascii_digit).count();
                out.push_str(&rest[..3 + n]);
                rest = &rest[3 + n..];
            }
        }
        out.push_str(rest);
        s = out;
    }
    if p.starts_with("xadd") && p.contains(" * ") {
        // An ID made from the clock.
        if let Some(rest) = s.strip_prefix('$')
            && let Some((_, id)) = rest.split_once("\r\n")
            && id.contains('-')
        {
            s = "$<id>\r\n".into();
        }
    }
    s
}

/// (probe group, must every probe of it match)
type Group = (&'static [&'static str], bool);

const ATTACKS: &[&str] = &[
    "CONFIG SET dir /root/.ssh",
    "CONFIG SET dbfilename authorized_keys",
    "CONFIG SET dir /var/spool/cron/crontabs dbfilename root",
    "CONFIG SET logfile /tmp/x",
    "CONFIG SET daemonize no",
    "CONFIG SET nosuch 1",
    "CONFIG SET dir",
    "SET x \"\\n\\nssh-rsa AAAAB3NzaC1yc2E attacker@host\\n\\n\"",
    "SAVE",
    "MODULE LOAD /tmp/exp.so",
    "MODULE LIST",
    "MODULE UNLOAD system",
    "SLAVEOF NO ONE",
    "REPLICAOF NO ONE",
    "SLAVEOF 127.0.0.1 notaport",
    "EVAL \"return redis.call('ping')\" 0",
    "EVAL \"return redis.call('set',KEYS[1],ARGV[1])\" 1 ek ev",
    "EVAL \"return redis.call('get',KEYS[1])\" 1 ek",
    "EVAL \"return redis.call('get','nokey')\" 0",
    "EVAL \"return redis.call('nosuch')\" 0",
    "EVAL \"return redis.call('config','set','dir','/tmp')\" 0",
    "EVAL \"return redis.pcall('nosuch')\" 0",
    "EVAL \"return {1,2,'x'}\" 0",
    "EVAL \"return KEYS[1]\" 1 a",
    "EVAL \"return ARGV[2]\" 0 a b",
    "EVAL \"redis.call('set','ea','b')\" 0",
    "EVAL \"return 1.5\" 0",
    "EVAL \"return nil\" 0",
    "EVAL \"return true\" 0",
    "EVAL \"return false\" 0",
    "EVAL \"return os.execute('id')\" 0",
    "EVAL \"return io.popen('id'):read('*a')\" 0",
    "EVAL \"local a = 1 return a\" 0",
    "EVAL \"return dofile('/etc/passwd')\" 0",
    "EVAL \"local l = package.loadlib('/usr/lib/x86_64-linux-gnu/liblua5.1.so.0', 'luaopen_io'); return 1\" 0",
    // One match: KEYS lists in hash order, which differs per process.
    "EVAL \"return redis.call('keys','ea')\" 0",
    "EVAL \"return redis.call('keys','x')\" 0",
    "EVAL \"return redis.call('set','x')\" 0",
    "EVAL \"return redis.error_reply('boom')\" 0",
    "EVAL \"return redis.status_reply('fine')\" 0",
    "EVAL \"return 'a' .. 'b'\" 0",
    "EVAL \"\" 0",
    "EVAL x 2 k",
    "EVAL x -1",
    "SCRIPT LOAD \"return 1\"",
    "EVALSHA e0e1f9fabfc9d4800c877a703b823ac0578ff8db 0",
    "EVALSHA ffffffffffffffffffffffffffffffffffffffff 0",
    "SCRIPT EXISTS e0e1f9fabfc9d4800c877a703b823ac0578ff8db ffff",
    "FUNCTION LIST",
    "FUNCTION FLUSH",
    "CLUSTER INFO",
    "CLUSTER NODES",
    "FLUSHALL",
];

const TYPES: &[&str] = &[
    "RPUSH l a b c",
    "LPUSH l z",
    "LRANGE l 0 -1",
    "LRANGE l 1 2",
    "LRANGE l x 2",
    "LLEN l",
    "LINDEX l -1",
    "LINDEX l 99",
    "LSET l 0 y",
    "LSET l 9 z",
    "LSET nol 0 z",
    "LREM l 0 a",
    "LPOP l",
    "RPOP l",
    "LPOP l 0",
    "LPOP nol 1",
    "LPOP nol",
    "LPOP l -1",
    "GET l",
    "TYPE l",
    "OBJECT ENCODING l",
    "HSET h f v g w",
    "HSET h f",
    "HGET h f",
    "HGET h nof",
    "HMSET h a 1 b 2",
    "HMGET h f nof a",
    "HGETALL h",
    "HKEYS h",
    "HVALS h",
    "HLEN h",
    "HEXISTS h g",
    "HDEL h g nof",
    "HINCRBY h a 5",
    "HINCRBY h f 1",
    "HINCRBY h n x",
    "TYPE h",
    "OBJECT ENCODING h",
    "SADD s 3 1 2 1",
    "SMEMBERS s",
    "SISMEMBER s 2",
    "SISMEMBER s 9",
    "SCARD s",
    "SREM s 1 9",
    "OBJECT ENCODING s",
    "SPOP nos",
    "SPOP nos 2",
    "SADD one only",
    "SPOP one",
    "TYPE s",
    "ZADD z 1.1 m 2 n",
    "ZADD z abc m",
    "ZADD z nx xx 1 m",
    "ZADD z 3 o",
    "ZSCORE z m",
    "ZSCORE z nom",
    "ZINCRBY z 1 n",
    "ZRANGE z 0 -1",
    "ZRANGE z 0 -1 WITHSCORES",
    "ZREVRANGE z 0 1",
    "ZREVRANGE z 0 -1 WITHSCORES",
    "ZCARD z",
    "ZREM z o nom",
    "OBJECT ENCODING z",
    "TYPE z",
    "XADD st 1-1 f v",
    "XADD st 1-1 f v",
    "XADD st 0-0 f v",
    "XADD st abc f v",
    "XADD st 2 f",
    "XADD st 5-0 a b c d",
    "XLEN st",
    "XRANGE st - +",
    "XRANGE st - + COUNT 1",
    "XADD st * k v",
    "TYPE st",
    "OBJECT ENCODING st",
    "INCR l",
    "APPEND h x",
    "SET str 12",
    "OBJECT ENCODING str",
    "OBJECT REFCOUNT str",
    "SET str hello",
    "OBJECT ENCODING str",
    "OBJECT REFCOUNT h",
    "OBJECT ENCODING nokey",
    "OBJECT FREQ l",
    "OBJECT FOO h",
    "MGET str l h",
    "SWAPDB 0 x",
    "SWAPDB 0 99",
    "SWAPDB 0 1",
    "DBSIZE",
    "SWAPDB 0 1",
    "DBSIZE",
    "DEL l h s z st str",
    "EXISTS l",
];

const COMMANDS: &[&str] = &[
    "COMMAND COUNT",
    "COMMAND COUNT x",
    "COMMAND INFO get set",
    "COMMAND INFO config|get",
    "COMMAND INFO nosuch",
    "COMMAND INFO lpush rpush lpop rpop lrange llen lindex lset lrem",
    "COMMAND INFO hset hget hgetall hdel hlen hkeys hvals hexists hincrby hmset hmget",
    "COMMAND INFO sadd srem smembers sismember scard spop",
    "COMMAND INFO zadd zrange zrevrange zscore zcard zrem zincrby",
    // Containers (CONFIG, OBJECT, CLIENT, …) list their subcommands in the real
    // server's hash order, which changes from one process to the next: not compared.
    "COMMAND INFO xadd xlen xrange type swapdb",
    "COMMAND INFO eval evalsha slaveof replicaof hello auth",
    "COMMAND INFO ping echo info keys scan dbsize flushall select",
    "COMMAND DOCS get",
    "COMMAND DOCS nosuch",
    "COMMAND FOO",
    "COMMAND GETKEYS get a",
    "PING",
    "PING hi",
    "ECHO x",
    "FOO a b",
    "GET",
    "DBSIZE",
    "KEYS *",
    "ROLE",
    "CONFIG GET dir",
    "CONFIG GET dbfilename",
    "CONFIG GET maxmemory",
    "ACL WHOAMI",
    "CLIENT ID",
    "CLIENT GETNAME",
    "CLIENT SETNAME bad\tname",
    "AUTH x",
    "SELECT 16",
    "SELECT 15",
];

const RESP3: &[&str] = &[
    "HELLO x",
    "HELLO 4",
    "HELLO 2 FOO",
    "HELLO 3 SETNAME a b",
    "HELLO 2 AUTH default",
    "HELLO 3",
    "HELLO",
    "HSET h3 f v",
    "HGETALL h3",
    "HGETALL nokey",
    "SADD s3 1",
    "SMEMBERS s3",
    "GET nokey",
    "LPOP nol 1",
    "ZADD z3 1.5 a",
    "ZSCORE z3 a",
    "ZRANGE z3 0 -1 WITHSCORES",
    "ZINCRBY z3 1 a",
    "CONFIG GET maxmemory",
    "COMMAND INFO get",
    "COMMAND DOCS get",
    "EVAL \"return redis.call('hgetall','h3')\" 0",
    "HELLO 2 SETNAME me",
    "HGETALL h3",
    "CLIENT GETNAME",
    "DEL h3 s3 z3",
];

/// What scanners and bots send besides the attacks.
const POPULAR: &[&str] = &[
    "SCAN 0",
    "SCAN 0 TYPE string",
    "SCAN x",
    "RANDOMKEY",
    // Reset first: the real SAVE above may have taken over 10 ms (a slow-log entry).
    "SLOWLOG RESET",
    "SLOWLOG LEN",
    "SLOWLOG GET",
    "ACL WHOAMI",
    "ACL USERS",
    "ACL LIST",
    "MEMORY USAGE nokey",
    "TTL nokey",
    "PTTL nokey",
    "TYPE nokey",
    "STRLEN nokey",
    "DEBUG SLEEP 0",
    "WAIT 0 0",
    "SCRIPT FLUSH",
    "SCRIPT KILL",
    "SETNX pa b",
    "SETNX pa c",
    "SETEX pb 100 v",
    "TTL pb",
    "SETEX pb x v",
    "SETEX pb -1 v",
    "MSET pc 1 pd 2",
    "MSET pc",
    "MGET pc pd nokey",
    "INCR pc",
    "INCRBY pc 5",
    "DECR pc",
    "DECRBY pc x",
    "INCR pa",
    "GETSET pd 9",
    "APPEND pd 0",
    "RENAME pd pe",
    "RENAME nokey x",
    "EXPIRE pe 100",
    "PERSIST pe",
    "TTL pe",
    "SET pf v NX EX 10",
    "SET pf v XX GET",
    "SET pf v EX 0",
    "SET pf v FOO",
    "EXISTS pa pb nokey",
    "DEL pa pb pc pe pf",
    "DBSIZE",
    "FLUSHDB",
    "FLUSHDB FOO",
    "ECHO",
    "PING a b",
    "system.exec id",
    "system.rev 127.0.0.1 4444",
    "INFO nosuchsection",
    "CONFIG GET nosuch",
    "CONFIG RESETSTAT",
    "CONFIG REWRITE",
    "CONFIG FOO",
    "CLIENT KILL 1.2.3.4:5",
    "CLIENT NOSUCH",
    "MEMORY DOCTOR",
    "LATENCY LATEST",
    "LATENCY DOCTOR",
    "MODULE HELP",
    "OBJECT HELP",
    "HELLO 3 AUTH default x",
    "QUIT",
];

/// Issue 13: set algebra, score/lex ranges, blocking pops, stream reads (keys `a:*`).
const ALGEBRA: &[&str] = &[
    "SADD a:s1 1 2 3 4",
    "SADD a:s2 3 4 5",
    "SADD a:s3 4 9",
    "SET a:str x",
    "SINTER a:s1 a:s2",
    "SINTER a:s1 a:s2 a:s3",
    "SINTER a:s1 a:none",
    "SINTER a:s1 a:str",
    "SINTER a:none a:str",
    "SINTER",
    "SUNION a:s1 a:s2 a:s3",
    "SUNION a:none",
    "SUNION a:s1 a:str",
    "SDIFF a:s1 a:s2",
    "SDIFF a:s1 a:s2 a:s3",
    "SDIFF a:none a:s1",
    "SDIFF a:s1 a:none",
    "SINTERSTORE a:d1 a:s1 a:s2",
    "SMEMBERS a:d1",
    "SINTERSTORE a:d1 a:s1 a:none",
    "EXISTS a:d1",
    "SUNIONSTORE a:str a:s1 a:s3",
    "TYPE a:str",
    "SMEMBERS a:str",
    "SDIFFSTORE a:d2 a:s1 a:s2",
    "SMEMBERS a:d2",
    "SDIFFSTORE a:d2 a:s2 a:s1 a:s3",
    "SINTERSTORE a:d3",
    "SINTERCARD 2 a:s1 a:s2",
    "SINTERCARD 2 a:s1 a:s2 LIMIT 1",
    "SINTERCARD 2 a:s1 a:s2 LIMIT 0",
    "SINTERCARD 2 a:s1 a:s2 LIMIT -1",
    "SINTERCARD 0 a:s1",
    "SINTERCARD x a:s1",
    "SINTERCARD 3 a:s1 a:s2",
    "SINTERCARD 1 a:s1 FOO",
    "SINTERCARD 1 a:s1 LIMIT",
    "SINTERCARD 1 a:none",
    "SINTERCARD 1 a:d2",
    "SMISMEMBER a:s1 1 7 4",
    "SMISMEMBER a:none 1",
    "SMISMEMBER a:d2 x",
    "SMISMEMBER a:s1",
    "SET a:str2 x",
    "SMISMEMBER a:str2 1",
    "ZADD a:z 1 a 2 b 3 c 4 d 5 e",
    "ZADD a:l 0 a 0 b 0 c 0 d 0 e",
    "ZRANGEBYSCORE a:z 2 4",
    "ZRANGEBYSCORE a:z (2 4",
    "ZRANGEBYSCORE a:z (2 (4",
    "ZRANGEBYSCORE a:z -inf +inf",
    "ZRANGEBYSCORE a:z -inf +inf WITHSCORES",
    "ZRANGEBYSCORE a:z -inf +inf LIMIT 1 2",
    "ZRANGEBYSCORE a:z -inf +inf WITHSCORES LIMIT 1 -1",
    "ZRANGEBYSCORE a:z -inf +inf LIMIT -1 2",
    "ZRANGEBYSCORE a:z -inf +inf LIMIT 1 0",
    "ZRANGEBYSCORE a:z -inf +inf LIMIT 1",
    "ZRANGEBYSCORE a:z -inf +inf LIMIT x 1",
    "ZRANGEBYSCORE a:z -inf +inf FOO",
    "ZRANGEBYSCORE a:z abc 4",
    "ZRANGEBYSCORE a:z 4 2",
    "ZRANGEBYSCORE a:z ( 3",
    "ZRANGEBYSCORE a:z 1.5 inf",
    "ZRANGEBYSCORE a:none 1 2",
    "ZRANGEBYSCORE a:s1 1 2",
    "ZRANGEBYSCORE a:z 1",
    "ZREVRANGEBYSCORE a:z 4 2",
    "ZREVRANGEBYSCORE a:z +inf (3 WITHSCORES",
    "ZREVRANGEBYSCORE a:z +inf -inf LIMIT 1 2",
    "ZREVRANGEBYSCORE a:z 2 4",
    "ZCOUNT a:z 2 4",
    "ZCOUNT a:z (2 +inf",
    "ZCOUNT a:z -inf +inf",
    "ZCOUNT a:z x 1",
    "ZCOUNT a:none 1 2",
    "ZCOUNT a:s1 1 2",
    "ZCOUNT a:z 1 2 3",
    "ZRANGEBYLEX a:l - +",
    "ZRANGEBYLEX a:l [b (d",
    "ZRANGEBYLEX a:l (b +",
    "ZRANGEBYLEX a:l - [c LIMIT 1 1",
    "ZRANGEBYLEX a:l + -",
    "ZRANGEBYLEX a:l b d",
    "ZRANGEBYLEX a:l - + WITHSCORES",
    "ZREVRANGEBYLEX a:l + -",
    "ZREVRANGEBYLEX a:l [d (a",
    "ZLEXCOUNT a:l - +",
    "ZLEXCOUNT a:l [b [c",
    "ZLEXCOUNT a:l x y",
    "RPUSH a:list1 a b c",
    "BLPOP a:none a:list1 0",
    "BRPOP a:list1 1",
    "BLPOP a:str2 a:list1 0",
    "BLPOP a:list1 x",
    "BLPOP a:list1 -1",
    "BLPOP a:list1",
    "BLPOP a:empty 0.01",
    "BRPOP a:empty 0.01",
    "RPUSH a:list2 1 2 3",
    "BLMOVE a:list2 a:list3 LEFT RIGHT 0",
    "BLMOVE a:list2 a:list3 RIGHT LEFT 0",
    "LRANGE a:list3 0 -1",
    "BLMOVE a:list2 a:list3 UP LEFT 0",
    "BLMOVE a:list2 a:list3 LEFT LEFT x",
    "BLMOVE a:list2 a:str2 LEFT LEFT 0",
    "BLMOVE a:empty a:list3 LEFT LEFT 0.01",
    "LMOVE a:list2 a:list2 LEFT RIGHT",
    "LMOVE a:none a:list2 LEFT RIGHT",
    "BZPOPMIN a:z 0",
    "BZPOPMAX a:none a:z 0",
    "BZPOPMIN a:l a:z 0",
    "BZPOPMIN a:s1 0",
    "BZPOPMIN a:empty 0.01",
    "BZPOPMAX a:z abc",
    "XADD a:x 1-1 f v",
    "XADD a:x 1-2 g w",
    "XADD a:x 2-0 h x",
    "XRANGE a:x - +",
    "XRANGE a:x (1-1 +",
    "XRANGE a:x 1 1",
    "XRANGE a:x - + COUNT 1",
    "XREVRANGE a:x + - COUNT 2",
    "XREVRANGE a:x + (2-0",
    "XRANGE a:x (1 +",
    "XRANGE a:x - (2",
    "XRANGE a:x (- +",
    "XRANGE a:x ( +",
    "XRANGE a:x (18446744073709551615-18446744073709551615 +",
    "XRANGE a:x - (0-0",
    "XRANGE a:x x +",
    "XRANGE a:str2 - +",
    "XREAD STREAMS a:x 0",
    "XREAD COUNT 1 STREAMS a:x 1-1",
    "XREAD STREAMS a:x a:none 0 0",
    "XREAD STREAMS a:x $",
    "XREAD STREAMS a:none $",
    "XREAD BLOCK 10 STREAMS a:x $",
    "XREAD STREAMS a:x",
    "XREAD STREAMS a:x -",
    "XREAD STREAMS a:x >",
    "XREAD STREAMS a:str2 0",
    "XREAD COUNT x STREAMS a:x 0",
    "XREAD BLOCK x STREAMS a:x 0",
    "XREAD BLOCK -1 STREAMS a:x 0",
    "XREAD FOO STREAMS a:x 0",
    "XREAD COUNT 1 a:x 0",
    "XREAD GROUP g c STREAMS a:x 0",
    "XDEL a:x 1-2 9-9",
    "XDEL a:x 1-1 x",
    "XDEL a:x 1-1 2-0",
    "XLEN a:x",
    "EXISTS a:x",
    "XDEL a:none 1-1",
    "XDEL a:str2 1-1",
    "XADD a:x 3-0 f v",
    "ZRANGEBYSCORE a:z 1 5 LIMIT 0 9223372036854775807",
    "ZRANGEBYSCORE a:z (2 (2",
    "ZRANGEBYSCORE a:z 2 2",
    "ZCOUNT a:z (1 (1",
    "ZRANGEBYSCORE a:z 0x1 1e1",
    "ZRANGEBYSCORE a:z \" 1\" 3",
    "ZRANGEBYSCORE a:z nan 3",
    "ZRANGEBYSCORE a:z -0x1.8p1 0X3",
    "ZCOUNT a:z 0x 3",
    "ZCOUNT a:z \"\t2\" (0x4",
    "ZCOUNT a:z \"2 \" 4",
    "ZCOUNT a:z 0xg 4",
    "ZRANGE a:z 2 4 BYSCORE",
    "ZRANGE a:z (2 +inf BYSCORE LIMIT 1 2 WITHSCORES",
    "ZRANGE a:z 4 2 BYSCORE REV",
    "ZRANGE a:z +inf -inf REV BYSCORE LIMIT 0 2",
    "ZRANGE a:z 2 4 BYSCORE BYLEX",
    "ZRANGE a:z 2 4 BYSCORE REV REV",
    "ZRANGE a:z x 4 BYSCORE",
    "ZRANGE a:l [b + BYLEX",
    "ZRANGE a:l + [b BYLEX REV LIMIT 1 5",
    "ZRANGE a:l - + BYLEX WITHSCORES",
    "ZRANGE a:l b + BYLEX",
    "ZRANGE a:z 0 -1 LIMIT 0 1",
    "ZRANGE a:z 0 -1 LIMIT 0 -1",
    "ZRANGE a:z 0 -1 LIMIT 0 -1 REV WITHSCORES",
    "ZRANGE a:z 0 -1 LIMIT x 1",
    "ZRANGE a:z 0 1 BYSCORE LIMIT",
    "ZRANGE a:none 0 1 BYSCORE",
    "ZRANGE a:s1 0 1 BYSCORE",
    "ZRANGEBYSCORE a:z \"\" 3",
    "ZRANGEBYLEX a:l [ +",
    "ZRANGEBYLEX a:l \"\" +",
    "ZRANGEBYLEX a:l (a (a",
    "XADD a:x2 5-0 k v",
    "XREAD COUNT 1 STREAMS a:x a:x2 0 0",
    "XREAD COUNT 0 STREAMS a:x2 0",
    "XREAD COUNT -5 STREAMS a:x2 0",
    "XREAD STREAMS a:x2 4",
    "XREAD STREAMS a:x2 5",
    "XREAD STREAMS a:x2 18446744073709551615-18446744073709551615",
    "XREAD BLOCK 5 COUNT 1 STREAMS a:x2 0",
    "SINTERSTORE a:s1 a:s1 a:s2",
    "SMEMBERS a:s1",
    "SUNIONSTORE a:d4 a:none",
    "SDIFF a:s1 a:s1",
    "SADD a:m1 1 2 3",
    "SMOVE a:m1 a:m2 2",
    "SMOVE a:m1 a:m2 2",
    "SMEMBERS a:m1",
    "SMEMBERS a:m2",
    "SMOVE a:m1 a:m1 1",
    "SMOVE a:m1 a:m1 9",
    "SMOVE a:none a:m1 1",
    "SMOVE a:m1 a:str2 1",
    "SMOVE a:str2 a:m1 1",
    "SMOVE a:none a:str2 1",
    "SMOVE a:m2 a:m3 2",
    "EXISTS a:m2",
    "SMOVE a:m1 a:m2",
    "COMMAND INFO smove",
    "ZADD a:p 1 a 2 b 3 c 4 d 5 e 6 f",
    "ZPOPMIN a:p",
    "ZPOPMAX a:p",
    "ZPOPMIN a:p 2",
    "ZPOPMAX a:p 0",
    "ZPOPMAX a:p -1",
    "ZPOPMAX a:p x",
    "ZPOPMAX a:p 1 2",
    "ZPOPMIN a:none",
    "ZPOPMIN a:none 3",
    "ZPOPMIN a:s1",
    "ZPOPMIN",
    "ZADD a:p 1 a 2 b",
    "HELLO 3",
    "ZPOPMIN a:p",
    "ZPOPMAX a:p 1",
    "ZPOPMIN a:p 5",
    "COMMAND INFO zpopmin zpopmax",
    "SUNION a:s2 a:s3",
    "SMISMEMBER a:s2 3 0",
    "SINTERCARD 1 a:s2",
    "XREAD COUNT 1 STREAMS a:x a:x2 0 0",
    "XREAD STREAMS a:x2 $",
    "ZRANGEBYSCORE a:z -inf +inf WITHSCORES",
    "XREAD STREAMS a:x 0",
    "BLPOP a:empty 0.01",
    "SINTER a:s1 a:s2",
    "BZPOPMIN a:z 0",
    "COMMAND INFO sinter sunion sdiff sinterstore sunionstore sdiffstore sintercard smismember",
    "COMMAND INFO zrangebyscore zrevrangebyscore zcount zrangebylex zrevrangebylex zlexcount",
    "COMMAND INFO blpop brpop blmove lmove bzpopmin bzpopmax xread xdel",
];

/// Issue 13, part III: cross-key sorted sets, random picks, more list commands, multi-key
/// pops and stream consumer groups (keys `m:*`). Random picks are probed only where the
/// answer is determined (whole collection, one element, empty, errors).
const MORE: &[&str] = &[
    "ZADD m:z 1 a 2 b 3 c 4 d",
    "ZADD m:y 10 b 20 c 30 e",
    "SADD m:s 1 2 b",
    "SET m:str x",
    "RPUSH m:l a b c a b c a",
    "HSET m:h f1 v1 f2 v2 f3 v3",
    // ZRANK / ZREVRANK / ZMSCORE
    "ZRANK m:z c",
    "ZRANK m:z nom",
    "ZRANK m:none a",
    "ZRANK m:str a",
    "ZRANK m:z",
    "ZRANK m:z a WITHSCORE",
    "ZREVRANK m:z a",
    "ZREVRANK m:z d",
    "ZREVRANK m:z nom",
    "ZREVRANK m:l a",
    "ZMSCORE m:z a nom d",
    "ZMSCORE m:none a b",
    "ZMSCORE m:str a",
    "ZMSCORE m:z",
    // ZUNION / ZINTER / ZDIFF
    "ZUNION 2 m:z m:y",
    "ZUNION 2 m:z m:y WITHSCORES",
    "ZUNION 2 m:z m:y WEIGHTS 2 0.5 WITHSCORES",
    "ZUNION 2 m:z m:y AGGREGATE MIN WITHSCORES",
    "ZUNION 2 m:z m:y AGGREGATE MAX WITHSCORES",
    "ZUNION 2 m:z m:s WITHSCORES",
    "ZUNION 3 m:z m:y m:none withscores",
    "ZUNION 1 m:z WEIGHTS x",
    "ZUNION 1 m:z WEIGHTS 1 2",
    "ZUNION 2 m:z m:y WEIGHTS 1",
    "ZUNION 1 m:z AGGREGATE foo",
    "ZUNION 1 m:z AGGREGATE",
    "ZUNION 1 m:z FOO",
    "ZUNION 0 m:z",
    "ZUNION -1 m:z",
    "ZUNION x m:z",
    "ZUNION 3 m:z",
    "ZUNION 2 m:z m:str",
    "ZUNION 1 m:str WEIGHTS x",
    "ZUNION 1",
    "ZUNION 1 m:z WEIGHTS inf AGGREGATE SUM WITHSCORES",
    "ZUNION 1 m:z WEIGHTS -inf WITHSCORES",
    "ZINTER 2 m:z m:y",
    "ZINTER 2 m:z m:y WITHSCORES",
    "ZINTER 2 m:z m:y WEIGHTS 1 -1 AGGREGATE MAX WITHSCORES",
    "ZINTER 2 m:z m:s WITHSCORES",
    "ZINTER 2 m:z m:none",
    "ZINTER 2 m:z m:z WITHSCORES",
    "ZINTER 1 m:l",
    "ZDIFF 2 m:z m:y",
    "ZDIFF 2 m:z m:y WITHSCORES",
    "ZDIFF 1 m:z WEIGHTS 1",
    "ZDIFF 1 m:z AGGREGATE SUM",
    "ZDIFF 2 m:none m:z",
    "ZDIFF 2 m:z m:s WITHSCORES",
    "ZDIFF 2 m:z m:str",
    "ZUNIONSTORE m:d 2 m:z m:y WEIGHTS 1 2",
    "ZRANGE m:d 0 -1 WITHSCORES",
    "ZUNIONSTORE m:d 2 m:z m:y WITHSCORES",
    "ZINTERSTORE m:d 2 m:z m:y AGGREGATE MIN",
    "ZRANGE m:d 0 -1 WITHSCORES",
    "ZINTERSTORE m:d 2 m:z m:none",
    "EXISTS m:d",
    "ZDIFFSTORE m:d 2 m:z m:y",
    "ZRANGE m:d 0 -1 WITHSCORES",
    "ZDIFFSTORE m:str2 1 m:z",
    "TYPE m:str2",
    "ZDIFFSTORE m:d 1 m:str",
    "ZUNIONSTORE m:d 0 m:z",
    "ZUNIONSTORE m:d",
    "ZINTERCARD 2 m:z m:y",
    "ZINTERCARD 2 m:z m:y LIMIT 1",
    "ZINTERCARD 2 m:z m:y LIMIT 0",
    "ZINTERCARD 2 m:z m:y LIMIT -1",
    "ZINTERCARD 2 m:z m:y LIMIT x",
    "ZINTERCARD 1 m:z WITHSCORES",
    "ZINTERCARD 0 m:z",
    "ZINTERCARD 3 m:z m:y",
    "ZINTERCARD 1 m:str",
    "ZINTERCARD 2 m:z m:s",
    // ZRANGESTORE
    "ZRANGESTORE m:r m:z 0 -1",
    "ZRANGE m:r 0 -1 WITHSCORES",
    "ZRANGESTORE m:r m:z 1 2 REV",
    "ZRANGE m:r 0 -1 WITHSCORES",
    "ZRANGESTORE m:r m:z (1 +inf BYSCORE LIMIT 1 2",
    "ZRANGE m:r 0 -1 WITHSCORES",
    "ZRANGESTORE m:r m:z [b [c BYLEX",
    "ZRANGESTORE m:r m:z 0 -1 WITHSCORES",
    "ZRANGESTORE m:r m:z 0 -1 LIMIT 0 1",
    "ZRANGESTORE m:r m:z x 1",
    "ZRANGESTORE m:r m:z a b BYSCORE",
    "ZRANGESTORE m:r m:none 0 -1",
    "EXISTS m:r",
    "ZRANGESTORE m:r m:str 0 -1",
    "ZRANGESTORE m:r m:z 5 9",
    "ZRANGESTORE m:r m:z",
    // ZREMRANGEBY*
    "ZADD m:q 1 a 2 b 3 c 4 d 5 e 6 f",
    "ZREMRANGEBYRANK m:q 0 0",
    "ZREMRANGEBYRANK m:q -1 -1",
    "ZREMRANGEBYRANK m:q 5 9",
    "ZREMRANGEBYRANK m:q x 1",
    "ZREMRANGEBYSCORE m:q (2 3",
    "ZREMRANGEBYSCORE m:q a b",
    "ZREMRANGEBYLEX m:q [d [e",
    "ZREMRANGEBYLEX m:q d e",
    "ZRANGE m:q 0 -1 WITHSCORES",
    "ZREMRANGEBYRANK m:none 0 -1",
    "ZREMRANGEBYSCORE m:str 0 1",
    "ZREMRANGEBYRANK m:q 0 -1",
    "EXISTS m:q",
    "ZREMRANGEBYLEX m:q",
    // ZMPOP / LMPOP
    "ZADD m:p 1 a 2 b 3 c",
    "ZMPOP 1 m:p MIN",
    "ZMPOP 2 m:none m:p MAX COUNT 5",
    "ZMPOP 1 m:p MIN",
    "ZMPOP 1 m:p FOO",
    "ZMPOP 1 m:p MIN COUNT 0",
    "ZMPOP 1 m:p MIN COUNT x",
    "ZMPOP 1 m:p MIN COUNT 1 COUNT 1",
    "ZMPOP 1 m:p MIN FOO",
    "ZMPOP 0 m:p MIN",
    "ZMPOP x m:p MIN",
    "ZMPOP 3 m:p MIN",
    "ZMPOP 1 m:str MIN",
    "ZMPOP 1 m:p",
    "RPUSH m:k 1 2 3 4",
    "LMPOP 1 m:k LEFT",
    "LMPOP 2 m:none m:k RIGHT COUNT 2",
    "LMPOP 1 m:k left COUNT 9",
    "LMPOP 1 m:k LEFT",
    "LMPOP 1 m:k MIDDLE",
    "LMPOP 1 m:k LEFT COUNT -1",
    "LMPOP 0 m:k LEFT",
    "LMPOP 1 m:str LEFT",
    "LMPOP 1 m:k",
    "RPUSH m:k 5",
    "BLMPOP 0.01 1 m:k LEFT",
    "BLMPOP 0.01 1 m:none LEFT",
    "BLMPOP x 1 m:none LEFT",
    "BLMPOP -1 1 m:none LEFT",
    "BLMPOP 0 0 m:none LEFT",
    "ZADD m:p 7 x",
    "BZMPOP 0.01 1 m:p MAX COUNT 2",
    "BZMPOP 0.01 1 m:p MAX",
    "BZMPOP 0.01 1 m:str MIN",
    "BZMPOP 0.01 1 m:p MID",
    // RPOPLPUSH / BRPOPLPUSH
    "RPUSH m:src a b c",
    "RPOPLPUSH m:src m:dst",
    "RPOPLPUSH m:src m:src",
    "LRANGE m:src 0 -1",
    "RPOPLPUSH m:none m:dst",
    "RPOPLPUSH m:src m:str",
    "RPOPLPUSH m:str m:dst",
    "BRPOPLPUSH m:src m:dst 0.01",
    "BRPOPLPUSH m:none m:dst 0.01",
    "BRPOPLPUSH m:src m:dst x",
    "LRANGE m:dst 0 -1",
    // SRANDMEMBER / HRANDFIELD / ZRANDMEMBER (determined answers only)
    "SADD m:ints 3 1 2",
    "SRANDMEMBER m:ints 3",
    "SRANDMEMBER m:ints 10",
    "SRANDMEMBER m:ints 0",
    "SRANDMEMBER m:none",
    "SRANDMEMBER m:none 5",
    "SRANDMEMBER m:none -5",
    "SRANDMEMBER m:str",
    "SRANDMEMBER m:str 1",
    "SRANDMEMBER m:ints x",
    "SRANDMEMBER m:ints 1 2",
    "SRANDMEMBER m:ints -9223372036854775808",
    "SADD m:one only",
    "SRANDMEMBER m:one",
    "SRANDMEMBER m:one -3",
    "SRANDMEMBER m:one 1",
    "HRANDFIELD m:h 3",
    "HRANDFIELD m:h 5 WITHVALUES",
    "HRANDFIELD m:h 0",
    "HRANDFIELD m:h x",
    "HRANDFIELD m:h 1 FOO",
    "HRANDFIELD m:h 1 WITHVALUES x",
    "HRANDFIELD m:h 9223372036854775807 WITHVALUES",
    "HRANDFIELD m:none",
    "HRANDFIELD m:none 2",
    "HRANDFIELD m:str",
    "HRANDFIELD m:str 2 WITHVALUES",
    "HSET m:h1 k v",
    "HRANDFIELD m:h1",
    "HRANDFIELD m:h1 -2 WITHVALUES",
    "HRANDFIELD m:h1 1 withvalues",
    "ZRANDMEMBER m:z 4",
    "ZRANDMEMBER m:z 9 WITHSCORES",
    "ZRANDMEMBER m:z 0 WITHSCORES",
    "ZRANDMEMBER m:z x",
    "ZRANDMEMBER m:z 2 WITHSCORES x",
    "ZRANDMEMBER m:z 2 FOO",
    "ZRANDMEMBER m:z -4611686018427387904 WITHSCORES",
    "ZRANDMEMBER m:none",
    "ZRANDMEMBER m:none 3 WITHSCORES",
    "ZRANDMEMBER m:str",
    "ZADD m:z1 2.5 only",
    "ZRANDMEMBER m:z1",
    "ZRANDMEMBER m:z1 -2 WITHSCORES",
    // LPOS / LINSERT / LTRIM
    "LPOS m:l a",
    "LPOS m:l c",
    "LPOS m:l z",
    "LPOS m:l a RANK 2",
    "LPOS m:l a RANK -1",
    "LPOS m:l a RANK -2",
    "LPOS m:l a RANK 9",
    "LPOS m:l a COUNT 0",
    "LPOS m:l a COUNT 2",
    "LPOS m:l a RANK 2 COUNT 0",
    "LPOS m:l a RANK -1 COUNT 2",
    "LPOS m:l b MAXLEN 1",
    "LPOS m:l b MAXLEN 2 COUNT 0",
    "LPOS m:l z COUNT 1",
    "LPOS m:l a RANK 0",
    "LPOS m:l a RANK x",
    "LPOS m:l a COUNT -1",
    "LPOS m:l a COUNT x",
    "LPOS m:l a MAXLEN -1",
    "LPOS m:l a FOO",
    "LPOS m:l a RANK",
    "LPOS m:none a",
    "LPOS m:none a COUNT 1",
    "LPOS m:str a",
    "LINSERT m:l BEFORE b X",
    "LINSERT m:l AFTER c Y",
    "LINSERT m:l after nope Z",
    "LINSERT m:l FOO a b",
    "LINSERT m:none BEFORE a b",
    "LINSERT m:str BEFORE a b",
    "LINSERT m:l BEFORE a",
    "LRANGE m:l 0 -1",
    "LTRIM m:l 1 -2",
    "LRANGE m:l 0 -1",
    "LTRIM m:l -3 100",
    "LRANGE m:l 0 -1",
    "LTRIM m:l x 1",
    "LTRIM m:str 0 1",
    "LTRIM m:none 0 1",
    "LTRIM m:l 5 1",
    "EXISTS m:l",
    "LTRIM m:l 0",
    // Stream consumer groups
    "XADD m:x 1-1 a 1",
    "XADD m:x 2-1 b 2",
    "XADD m:x 3-1 c 3",
    "XGROUP CREATE m:x g1 0",
    "XGROUP CREATE m:x g1 0",
    "XGROUP CREATE m:x g2 $",
    "XGROUP CREATE m:x g3 bad",
    "XGROUP CREATE m:x g3 -",
    "XGROUP CREATE m:x g3 0 FOO",
    "XGROUP CREATE m:x g3 0 ENTRIESREAD -2",
    "XGROUP CREATE m:x g3 0 ENTRIESREAD x",
    "XGROUP CREATE m:none g 0",
    "XGROUP CREATE m:new g 0 MKSTREAM",
    "XLEN m:new",
    "TYPE m:new",
    "XGROUP CREATE m:str g 0",
    "XGROUP CREATE m:str g 0 MKSTREAM",
    "XGROUP CREATE m:x",
    "XGROUP FOO m:x g",
    "XGROUP",
    "XREADGROUP GROUP g1 alice COUNT 1 STREAMS m:x >",
    "XREADGROUP GROUP g1 bob STREAMS m:x >",
    "XREADGROUP GROUP g1 bob STREAMS m:x >",
    "XREADGROUP GROUP g1 alice STREAMS m:x 0",
    "XREADGROUP GROUP g1 bob STREAMS m:x 0",
    "XREADGROUP GROUP g1 bob COUNT 1 STREAMS m:x 2-1",
    "XREADGROUP GROUP g1 carol STREAMS m:x 0",
    "XREADGROUP GROUP g2 alice NOACK STREAMS m:x >",
    "XREADGROUP GROUP nog alice STREAMS m:x >",
    "XREADGROUP GROUP g1 alice STREAMS m:none >",
    "XREADGROUP GROUP g1 alice STREAMS m:str >",
    "XREADGROUP GROUP g1 alice STREAMS m:x $",
    "XREADGROUP GROUP g1 alice STREAMS m:x bad",
    "XREADGROUP GROUP g1 alice STREAMS m:x",
    "XREADGROUP GROUP g1 alice STREAMS m:x m:new > >",
    "XREADGROUP COUNT 1 BLOCK 1 STREAMS m:x >",
    "XREADGROUP GROUP g1 alice FOO STREAMS m:x >",
    "XREADGROUP GROUP g1 alice COUNT x STREAMS m:x >",
    "XREADGROUP GROUP g1 alice BLOCK -1 STREAMS m:x >",
    "XREADGROUP GROUP g1 alice BLOCK 10 STREAMS m:x >",
    "XREAD NOACK STREAMS m:x 0",
    "XPENDING m:x g1",
    "XPENDING m:x g2",
    "XPENDING m:x nog",
    "XPENDING m:none g1",
    "XPENDING m:str g1",
    "XPENDING m:x g1 - + 10 alice",
    "XPENDING m:x g1 - + 10 nobody",
    "XPENDING m:x g1 x + 10",
    "XPENDING m:x g1 - + x",
    "XPENDING m:x g1 - +",
    "XPENDING m:x g1 IDLE 0 - +",
    "XPENDING m:x g1 IDLE x - + 10",
    "XPENDING m:x g1 (3-1 + 10",
    "XPENDING m:x g1 - + 0",
    "XACK m:x g1 1-1 9-9",
    "XACK m:x g1 1-1",
    "XACK m:x g1 bad",
    "XACK m:x nog 1-1",
    "XACK m:none g1 1-1",
    "XACK m:str g1 1-1",
    "XACK m:x g1",
    "XDEL m:x 2-1",
    "XREADGROUP GROUP g1 bob STREAMS m:x 0",
    "XPENDING m:x g1",
    "XGROUP CREATECONSUMER m:x g1 dave",
    "XGROUP CREATECONSUMER m:x g1 dave",
    "XGROUP CREATECONSUMER m:x nog dave",
    "XGROUP DELCONSUMER m:x g1 bob",
    "XGROUP DELCONSUMER m:x g1 nobody",
    "XPENDING m:x g1",
    "XGROUP SETID m:x g1 0",
    "XGROUP SETID m:x g1 $",
    "XGROUP SETID m:x g1 -",
    "XGROUP SETID m:x g1 bad",
    "XGROUP SETID m:x nog 0",
    "XGROUP SETID m:x g1 0 ENTRIESREAD 5",
    "XGROUP SETID m:x g1 0 MKSTREAM",
    "XREADGROUP GROUP g1 erin STREAMS m:x >",
    "XPENDING m:x g1",
    "XGROUP DESTROY m:x g2",
    "XGROUP DESTROY m:x g2",
    "XGROUP DESTROY m:none g2",
    "XGROUP DESTROY m:x g2 extra",
    "XGROUP HELP",
    "XADD m:t 1-1 a 1",
    "XADD m:t 2-1 a 2",
    "XADD m:t 3-1 a 3",
    "XADD m:t 4-1 a 4",
    "XTRIM m:t MAXLEN ~ 1",
    "XTRIM m:t MAXLEN = 3",
    "XTRIM m:t MINID 3",
    "XRANGE m:t - +",
    "XTRIM m:t MINID ~ 9",
    "XTRIM m:t MAXLEN 9",
    "XTRIM m:t MAXLEN ~ 0 LIMIT 10",
    "XTRIM m:t MAXLEN 0 LIMIT 10",
    "XTRIM m:t LIMIT 10",
    "XTRIM m:t LIMIT 0",
    "XTRIM m:t",
    "XTRIM m:t MAXLEN -1",
    "XTRIM m:t MAXLEN x",
    "XTRIM m:t MINID bad",
    "XTRIM m:t MAXLEN 1 MINID 1",
    "XTRIM m:t MAXLEN 1 LIMIT -1",
    "XTRIM m:t MAXLEN 1 FOO",
    "XTRIM m:none MAXLEN 0",
    "XTRIM m:str MAXLEN 0",
    "XTRIM m:t MAXLEN",
    "XTRIM m:t MAXLEN 0",
    "XLEN m:t",
    "EXISTS m:t",
    "COMMAND INFO xtrim",
    "HELLO 3",
    "ZUNION 2 m:z m:y WITHSCORES",
    "ZMPOP 1 m:z MAX COUNT 2",
    "ZRANDMEMBER m:z 9 WITHSCORES",
    "HRANDFIELD m:h 5 WITHVALUES",
    "LMPOP 1 m:dst LEFT",
    "XREADGROUP GROUP g1 alice STREAMS m:x 0",
    "XPENDING m:x g1",
    "XPENDING m:x nog",
    "HELLO 2",
    "COMMAND INFO zrank zrevrank zmscore zunion zinter zdiff zunionstore zinterstore zdiffstore zintercard",
    "COMMAND INFO zrangestore zremrangebyrank zremrangebyscore zremrangebylex zmpop bzmpop lmpop blmpop",
    "COMMAND INFO srandmember hrandfield zrandmember lpos linsert ltrim rpoplpush brpoplpush",
    "COMMAND INFO xreadgroup xack xpending",
    "COMMAND DOCS zrank",
];

/// Issue 13, part IV: more string and key commands (keys `k:*`).
const KEYS_MORE: &[&str] = &[
    "SET k:a hello",
    "RPUSH k:l x",
    "GETDEL k:a",
    "GETDEL k:a",
    "GETDEL k:l",
    "GETDEL",
    "SET k:b 12345",
    "GETRANGE k:b 0 2",
    "GETRANGE k:b -2 -1",
    "GETRANGE k:b -1 -2",
    "GETRANGE k:b 3 100",
    "GETRANGE k:b 9 10",
    "GETRANGE k:b -100 1",
    "GETRANGE k:b x 1",
    "GETRANGE k:none 0 -1",
    "GETRANGE k:l 0 -1",
    "SUBSTR k:b 1 2",
    "SETRANGE k:c 3 ab",
    "GET k:c",
    "SETRANGE k:b 1 XY",
    "GET k:b",
    "SETRANGE k:b 0 \"\"",
    "SETRANGE k:none 0 \"\"",
    "SETRANGE k:b -1 x",
    "SETRANGE k:b x y",
    "SETRANGE k:b 536870911 xy",
    "SETRANGE k:l 0 x",
    "EXISTS k:none",
    "MSETNX k:m1 1 k:m2 2",
    "MSETNX k:m1 1 k:m3 3",
    "EXISTS k:m3",
    "MSETNX k:m4 1 k:m5",
    "TOUCH k:m1 k:m2 k:none",
    "RENAMENX k:m1 k:m2",
    "RENAMENX k:m1 k:m9",
    "RENAMENX k:none k:x",
    "GET k:m9",
    "SET k:t v",
    "EXPIRE k:t 100 NX",
    "EXPIRE k:t 100 NX",
    "EXPIRE k:t 50 GT",
    "EXPIRE k:t 200 GT",
    "EXPIRE k:t 300 LT",
    "EXPIRE k:t 150 LT",
    "TTL k:t",
    "EXPIRE k:t 100 XX",
    "EXPIRE k:t 100 NX XX",
    "EXPIRE k:t 100 GT LT",
    "EXPIRE k:t 100 FOO",
    "EXPIRE k:t x",
    "EXPIRE k:t 9223372036854775807",
    "PEXPIRE k:t 9223372036854775807",
    "EXPIRE k:none 10",
    "PEXPIRE k:t 200000 GT",
    "PTTL k:t",
    "SET k:u v",
    "EXPIRE k:u 10 XX",
    "EXPIRE k:u 10 GT",
    "EXPIRE k:u 10 LT",
    "TTL k:u",
    "EXPIREAT k:u 4102444800",
    "EXPIRETIME k:u",
    "PEXPIRETIME k:u",
    "PEXPIREAT k:u 4102444800123",
    "PEXPIRETIME k:u",
    "EXPIRETIME k:m2",
    "EXPIRETIME k:none",
    "EXPIREAT k:u 1",
    "EXISTS k:u",
    "SET k:w v",
    "EXPIRE k:w -1",
    "EXISTS k:w",
    "EXPIREAT k:w x",
    "EXPIREAT k:m2 -9223372036854775808",
    "SET k:g v",
    "GETEX k:g",
    "GETEX k:g EX 100",
    "TTL k:g",
    "GETEX k:g PERSIST",
    "TTL k:g",
    "GETEX k:g PX 5000",
    "GETEX k:g EX 0",
    "GETEX k:g EX x",
    "GETEX k:g EX",
    "GETEX k:g EX 1 PX 1",
    "GETEX k:g PERSIST EX 1",
    "GETEX k:g FOO",
    "GETEX k:none EX 0",
    "GETEX k:l",
    "GETEX k:g EXAT 1",
    "EXISTS k:g",
    "GETEX k:m2 EX 9223372036854775807",
    "PUBLISH chan msg",
    "PUBLISH chan",
    "HSET k:h a 1 b 2 c 3",
    "HSCAN k:h 0",
    "HSCAN k:h 0 MATCH a*",
    "HSCAN k:h 0 COUNT 1",
    "HSCAN k:h 0 COUNT 0",
    "HSCAN k:h 0 COUNT x",
    "HSCAN k:h x",
    "HSCAN k:h 0 FOO",
    "HSCAN k:h 0 TYPE string",
    "HSCAN k:none 0",
    "HSCAN k:none 0 FOO",
    "HSCAN k:l 0",
    "SADD k:s 5 3 1",
    "SSCAN k:s 0",
    "SSCAN k:s 0 MATCH 3",
    "SSCAN k:h 0",
    "ZADD k:z 1 a 2.5 b 3 c",
    "ZSCAN k:z 0",
    "ZSCAN k:z 0 MATCH b",
    "ZSCAN k:z -1",
    "ZSCAN k:z +0",
    "ZSCAN k:z \" 0\"",
    "ZSCAN k:z 18446744073709551616",
    "SET k:c1 v",
    "EXPIRE k:c1 1000",
    "COPY k:c1 k:c2",
    "TTL k:c2",
    "COPY k:c1 k:c2",
    "COPY k:c1 k:c2 REPLACE",
    "COPY k:c1 k:c1",
    "COPY k:c1 k:c1 DB 0",
    "COPY k:c1 k:c1 DB 1",
    "COPY k:c1 k:c1 DB 1",
    "COPY k:c1 k:c1 DB 1 REPLACE",
    "COPY k:c1 k:c3 DB 16",
    "COPY k:c1 k:c3 DB x",
    "COPY k:c1 k:c3 DB 4294967296",
    "COPY k:c1 k:c3 DB",
    "COPY k:c1 k:c3 FOO",
    "COPY k:none k:c3",
    "COPY k:h k:h2",
    "HGETALL k:h2",
    "MOVE k:c2 1",
    "MOVE k:c2 1",
    "EXISTS k:c2",
    "MOVE k:c1 1",
    "MOVE k:c1 0",
    "MOVE k:c1 16",
    "MOVE k:c1 x",
    "MOVE k:none 2",
    "SELECT 1",
    "GET k:c2",
    "TTL k:c2",
    "DEL k:c1 k:c2",
    "SELECT 0",
    "HELLO 3",
    "ZSCAN k:z 0",
    "HSCAN k:h 0",
    "GETDEL k:m2",
    "HELLO 2",
    "COMMAND INFO getdel getex getrange substr setrange msetnx touch renamenx",
    "COMMAND INFO expire pexpire expireat pexpireat expiretime pexpiretime publish hscan sscan zscan",
    "COMMAND INFO copy move",
];

const GROUPS: &[Group] = &[
    (ATTACKS, true),
    (POPULAR, false),
    (TYPES, false),
    (COMMANDS, false),
    (RESP3, true),
    (ALGEBRA, false),
    (MORE, false),
    (KEYS_MORE, false),
];

async fn run_group(addr: std::net::SocketAddr, probes: &[&str]) -> Vec<String> {
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    let mut out = Vec::with_capacity(probes.len());
    for p in probes {
        let args = words(p);
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        c.write_all(&multibulk(&refs)).await.unwrap();
        let reply = read_reply(&mut c, &mut buf).await;
        out.push(normalise(p, &reply));
    }
    out
}

fn redis() -> ServiceKind {
    ServiceKind::Redis(RedisOptions {
        version: "7.0.15".into(),
        require_auth: false,
        login: LoginPolicy::Never,
        ..RedisOptions::default()
    })
}

/// A brute-force run against a server with a password, then the commands after it.
const WITH_PASSWORD: &[&str] = &[
    "PING",
    "CONFIG GET dir",
    "CONFIG HELP",
    "CONFIG NOSUCH",
    "GET",
    "NOSUCH x",
    "HELLO 3",
    "HELLO 3 AUTH default wrong",
    "AUTH wrong",
    "AUTH admin wrong",
    "AUTH a b c",
    "HELLO 2 AUTH default s3cret",
    "PING",
    "ACL WHOAMI",
    "ACL LIST",
    "CONFIG GET requirepass",
    "CONFIG SET dir /root/.ssh",
    "EVAL \"return redis.call('ping')\" 0",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_password_the_auth_path_answers_like_the_real_redis_7_0() {
    let real = RealRedis::start(&["--requirepass", "s3cret"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(
        dir.path(),
        "redis",
        "127.0.0.1:0".parse().unwrap(),
        ServiceKind::Redis(RedisOptions {
            version: "7.0.15".into(),
            require_auth: true,
            login: LoginPolicy::Credentials(vec![("default".into(), "s3cret".into())]),
            ..RedisOptions::default()
        }),
    )
    .await;
    let want = run_group(real.addr, WITH_PASSWORD).await;
    let got = run_group(r.addr, WITH_PASSWORD).await;
    real.stop().await;
    r.mgr.shutdown().await;
    let mut report = String::new();
    let mut matched = 0;
    for ((p, w), g) in WITH_PASSWORD.iter().zip(&want).zip(&got) {
        if w == g {
            matched += 1;
        } else {
            report.push_str(&format!("MISMATCH {p:?}\n  real: {w:?}\n  ours: {g:?}\n"));
        }
    }
    println!(
        "{report}redis oracle (requirepass): {matched}/{} byte-identical",
        WITH_PASSWORD.len()
    );
    assert!(report.is_empty(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_probes_answer_like_the_real_redis_7_0() {
    let real = RealRedis::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(dir.path(), "redis", "127.0.0.1:0".parse().unwrap(), redis()).await;
    let (mut total, mut matched) = (0usize, 0usize);
    let mut must = Vec::new();
    let mut report = String::new();
    for (probes, strict) in GROUPS {
        let want = run_group(real.addr, probes).await;
        let got = run_group(r.addr, probes).await;
        for ((p, w), g) in probes.iter().zip(&want).zip(&got) {
            total += 1;
            if w == g {
                matched += 1;
            } else {
                let cut = |s: &str| s.chars().take(400).collect::<String>();
                report.push_str(&format!(
                    "MISMATCH {p:?}\n  real: {:?}\n  ours: {:?}\n",
                    cut(w),
                    cut(g)
                ));
                if *strict {
                    must.push(*p);
                }
            }
        }
    }
    real.stop().await;
    r.mgr.shutdown().await;
    println!("{report}");
    println!(
        "redis oracle: {matched}/{total} probes byte-identical ({:.1}%)",
        matched as f64 * 100.0 / total as f64
    );
    assert!(total >= 100, "{total} probes");
    assert!(
        must.is_empty(),
        "attack/RESP3 probes differ: {must:#?}\n{report}"
    );
    assert!(
        matched * 100 >= total * 95,
        "match rate {matched}/{total} under 95%\n{report}"
    );
}

/// A blocking command that waits: commands pipelined behind it are answered after its
/// timeout nil, in order, as the real server does; a peer that leaves mid-wait is let go,
/// and other connections are answered meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_blocking_command_keeps_pipelined_commands_like_the_real_redis_7_0() {
    let real = RealRedis::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(dir.path(), "redis", "127.0.0.1:0".parse().unwrap(), redis()).await;
    let pipelined = [
        multibulk(&[b"BLPOP", b"b:none", b"0.2"]),
        multibulk(&[b"PING"]),
        multibulk(&[b"XREAD", b"BLOCK", b"100", b"STREAMS", b"b:s", b"$"]),
        multibulk(&[b"ECHO", b"after"]),
    ]
    .concat();
    let mut answers = Vec::new();
    for addr in [real.addr, r.addr] {
        // One connection waits "forever" (BLPOP 0) and leaves mid-wait…
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(&multibulk(&[b"BLPOP", b"b:never", b"0"]))
            .await
            .unwrap();
        // …while another is answered, pipelined commands after its own waits included.
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(&pipelined).await.unwrap();
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(String::from_utf8_lossy(&read_reply(&mut c, &mut buf).await).into_owned());
        }
        drop(idle);
        let mut c2 = TcpStream::connect(addr).await.unwrap();
        c2.write_all(&multibulk(&[b"PING"])).await.unwrap();
        got.push(String::from_utf8_lossy(&read_reply(&mut c2, &mut Vec::new()).await).into_owned());
        answers.push(got);
    }
    real.stop().await;
    r.mgr.shutdown().await;
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[1][0], "*-1\r\n");
    assert_eq!(answers[1][3], "$5\r\nafter\r\n");
}

/// A client blocked on an empty list is served when another client pushes to it
/// (either order of arrival gives the same answer, so nothing here depends on timing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_pop_is_served_by_another_clients_push_like_the_real_redis_7_0() {
    let real = RealRedis::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(dir.path(), "redis", "127.0.0.1:0".parse().unwrap(), redis()).await;
    let mut answers = Vec::new();
    for addr in [real.addr, r.addr] {
        let mut waiting = TcpStream::connect(addr).await.unwrap();
        waiting
            .write_all(&multibulk(&[b"BLPOP", b"w:none", b"w:list", b"3"]))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let mut pusher = TcpStream::connect(addr).await.unwrap();
        pusher
            .write_all(&multibulk(&[b"RPUSH", b"w:list", b"v1", b"v2"]))
            .await
            .unwrap();
        let mut got = vec![read_reply(&mut pusher, &mut Vec::new()).await];
        got.push(read_reply(&mut waiting, &mut Vec::new()).await);
        pusher
            .write_all(&multibulk(&[b"LRANGE", b"w:list", b"0", b"-1"]))
            .await
            .unwrap();
        got.push(read_reply(&mut pusher, &mut Vec::new()).await);
        answers.push(got);
    }
    real.stop().await;
    r.mgr.shutdown().await;
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[1][1], b"*2\r\n$6\r\nw:list\r\n$2\r\nv1\r\n");
}

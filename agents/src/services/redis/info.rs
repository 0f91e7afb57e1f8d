//! What a Redis server says about itself: the per-service facts that stay stable across
//! connections (run id, pid, uptime), the INFO text, the CONFIG parameter table, and
//! Redis's glob matcher for `KEYS` and `CONFIG GET`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Facts about the imitated server, fixed when the service starts so that every
/// connection sees the same process.
#[derive(Debug)]
pub(crate) struct ServerFacts {
    pub version: String,
    pub run_id: String,
    pub replid: String,
    pub build_id: String,
    pub pid: u32,
    pub os: String,
    /// Wall-clock time the imitated process "started" (days before the service did).
    pub boot_unix_ms: i64,
    /// What `CONFIG GET requirepass` shows when a password is required.
    pub requirepass: String,
    pub connections: AtomicU64,
    pub commands: AtomicU64,
}

impl ServerFacts {
    pub(crate) fn new(
        version: &str,
        requirepass: String,
        now_unix_ms: i64,
        kernel_release: &str,
    ) -> ServerFacts {
        use rand::Rng;
        let mut rng = rand::rng();
        let hex = |n: usize, rng: &mut rand::rngs::ThreadRng| -> String {
            (0..n)
                .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
                .collect()
        };
        // A server that has been up a few weeks, not one born a second ago.
        let uptime_ms = rng.random_range(3 * 86_400_000..60 * 86_400_000_i64);
        // The emulated shell's kernel, never the sensor host's: an attacker who reads
        // INFO and then logs in over SSH must find the same machine.
        let release = kernel_release;
        ServerFacts {
            version: version.to_owned(),
            run_id: hex(40, &mut rng),
            replid: hex(40, &mut rng),
            build_id: build_id(version),
            pid: rng.random_range(400..4000),
            os: format!("Linux {release} x86_64"),
            boot_unix_ms: now_unix_ms - uptime_ms,
            requirepass,
            connections: AtomicU64::new(rng.random_range(20..400)),
            commands: AtomicU64::new(rng.random_range(1000..90_000)),
        }
    }
}

/// Debian 12's redis-server 7.0.15-1~deb12u10 (`redis-server --version`: `build=…`).
const DEBIAN_BUILD_ID: &str = "ae4d7c971a948f0";

/// INFO's `redis_build_id`: a hash Redis takes of its build environment when the
/// package is compiled, so a fact of the binary, the same on every installation. For
/// Debian's 7.0.15 it is Debian's value; another configured version gets a constant of
/// its own (a hash of the version, printed as Redis prints it: `%llx`, no leading
/// zeros), never a per-node random one that no real package has.
fn build_id(version: &str) -> String {
    if version == "7.0.15" {
        return DEBIAN_BUILD_ID.to_owned();
    }
    let d = ring::digest::digest(&ring::digest::SHA256, version.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    format!("{:x}", u64::from_le_bytes(b))
}

/// What INFO needs from the connection asking.
#[derive(Debug)]
pub(crate) struct InfoView<'a> {
    pub now_unix_ms: i64,
    pub tcp_port: u16,
    pub connected_clients: u64,
    /// (db index, keys, keys with a TTL), non-empty databases only.
    pub keyspace: Vec<(usize, usize, usize)>,
    pub dataset_bytes: usize,
    pub changes_since_save: u64,
    pub last_save_unix: i64,
    pub saves: u64,
    pub replica_of: Option<(&'a str, u16, i64)>,
    pub scripts: usize,
}

/// The sections plain `INFO` prints, in Redis 7.0's order.
const DEFAULT_SECTIONS: [&str; 11] = [
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
];

/// The INFO text for the requested sections (none: the default set); unknown sections
/// are skipped, as Redis does.
pub(crate) fn info(facts: &ServerFacts, v: &InfoView<'_>, sections: &[String]) -> String {
    let wanted: Vec<&str> = if sections.is_empty()
        || sections
            .iter()
            .any(|s| matches!(s.as_str(), "default" | "all" | "everything"))
    {
        DEFAULT_SECTIONS.to_vec()
    } else {
        DEFAULT_SECTIONS
            .iter()
            .copied()
            .filter(|s| sections.iter().any(|w| w == s))
            .collect()
    };
    let parts: Vec<String> = wanted.iter().map(|s| section(facts, v, s)).collect();
    parts.join("\r\n")
}

fn human(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes}B")
    } else if bytes < 1024 * 1024 {
        format!("{:.2}K", bytes as f64 / 1024.0)
    } else if bytes < 1024 * 1024 * 1024 {
        format!("{:.2}M", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{:.2}G", bytes as f64 / (1024.0 * 1024.0 * 1024.0))
    }
}

fn total_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(4_109_733_888, |kb| kb * 1024)
}

fn section(f: &ServerFacts, v: &InfoView<'_>, name: &str) -> String {
    let mut s = String::new();
    let uptime_s = ((v.now_unix_ms - f.boot_unix_ms) / 1000).max(0);
    // Writing to a String cannot fail.
    macro_rules! l {
        ($($t:tt)*) => {{ let _ = write!(s, $($t)*); s.push_str("\r\n"); }};
    }
    match name {
        "server" => {
            l!("# Server");
            l!("redis_version:{}", f.version);
            l!("redis_git_sha1:00000000");
            l!("redis_git_dirty:0");
            l!("redis_build_id:{}", f.build_id);
            l!("redis_mode:standalone");
            l!("os:{}", f.os);
            l!("arch_bits:64");
            l!("monotonic_clock:POSIX clock_gettime");
            l!("multiplexing_api:epoll");
            l!("atomicvar_api:c11-builtin");
            l!("gcc_version:12.2.0");
            l!("process_id:{}", f.pid);
            l!("process_supervised:systemd");
            l!("run_id:{}", f.run_id);
            l!("tcp_port:{}", v.tcp_port);
            l!("server_time_usec:{}", v.now_unix_ms * 1000);
            l!("uptime_in_seconds:{uptime_s}");
            l!("uptime_in_days:{}", uptime_s / 86_400);
            l!("hz:10");
            l!("configured_hz:10");
            l!("lru_clock:{}", (v.now_unix_ms / 1000) & ((1 << 24) - 1));
            l!("executable:/usr/bin/redis-server");
            l!("config_file:/etc/redis/redis.conf");
            l!("io_threads_active:0");
        }
        "clients" => {
            l!("# Clients");
            l!("connected_clients:{}", v.connected_clients);
            l!("cluster_connections:0");
            l!("maxclients:10000");
            l!("client_recent_max_input_buffer:20480");
            l!("client_recent_max_output_buffer:0");
            l!("blocked_clients:0");
            l!("tracking_clients:0");
            l!("clients_in_timeout_table:0");
        }
        "memory" => {
            let used = 872_456 + v.dataset_bytes as u64 * 2;
            let rss = 7_340_032 + used / 2;
            let peak = used + 41_512;
            let total = total_memory();
            l!("# Memory");
            l!("used_memory:{used}");
            l!("used_memory_human:{}", human(used));
            l!("used_memory_rss:{rss}");
            l!("used_memory_rss_human:{}", human(rss));
            l!("used_memory_peak:{peak}");
            l!("used_memory_peak_human:{}", human(peak));
            l!(
                "used_memory_peak_perc:{:.2}%",
                used as f64 * 100.0 / peak as f64
            );
            l!("used_memory_overhead:851336");
            l!("used_memory_startup:851336");
            l!("used_memory_dataset:{}", used - 851_336);
            l!(
                "used_memory_dataset_perc:{:.2}%",
                (used - 851_336) as f64 * 100.0 / used as f64
            );
            l!("allocator_allocated:{}", used + 232_000);
            l!("allocator_active:{}", used + 563_000);
            l!("allocator_resident:{}", rss - 1_900_000);
            l!("total_system_memory:{total}");
            l!("total_system_memory_human:{}", human(total));
            l!("used_memory_lua:31744");
            l!("used_memory_vm_eval:31744");
            l!("used_memory_lua_human:31.00K");
            l!("used_memory_scripts_eval:{}", v.scripts * 184);
            l!("number_of_cached_scripts:{}", v.scripts);
            l!("number_of_functions:0");
            l!("number_of_libraries:0");
            l!("used_memory_vm_functions:32768");
            l!("used_memory_vm_total:64512");
            l!("used_memory_vm_total_human:63.00K");
            l!("used_memory_functions:184");
            l!("used_memory_scripts:{}", 184 + v.scripts * 184);
            l!(
                "used_memory_scripts_human:{}",
                human(184 + v.scripts as u64 * 184)
            );
            l!("maxmemory:0");
            l!("maxmemory_human:0B");
            l!("maxmemory_policy:noeviction");
            l!("allocator_frag_ratio:1.38");
            l!("allocator_frag_bytes:330880");
            l!("allocator_rss_ratio:3.56");
            l!("allocator_rss_bytes:3993600");
            l!("rss_overhead_ratio:1.25");
            l!("rss_overhead_bytes:1355776");
            l!("mem_fragmentation_ratio:{:.2}", rss as f64 / used as f64);
            l!("mem_fragmentation_bytes:{}", rss - used);
            l!("mem_not_counted_for_evict:0");
            l!("mem_replication_backlog:0");
            l!("mem_total_replication_buffers:0");
            l!("mem_clients_slaves:0");
            l!("mem_clients_normal:{}", 1800 * v.connected_clients);
            l!("mem_cluster_links:0");
            l!("mem_aof_buffer:0");
            l!("mem_allocator:jemalloc-5.3.0");
            l!("active_defrag_running:0");
            l!("lazyfree_pending_objects:0");
            l!("lazyfreed_objects:0");
        }
        "persistence" => {
            l!("# Persistence");
            l!("loading:0");
            l!("async_loading:0");
            l!("current_cow_peak:0");
            l!("current_cow_size:0");
            l!("current_cow_size_age:0");
            l!("current_fork_perc:0.00");
            l!("current_save_keys_processed:0");
            l!("current_save_keys_total:0");
            l!("rdb_changes_since_last_save:{}", v.changes_since_save);
            l!("rdb_bgsave_in_progress:0");
            l!("rdb_last_save_time:{}", v.last_save_unix);
            l!("rdb_last_bgsave_status:ok");
            l!(
                "rdb_last_bgsave_time_sec:{}",
                if v.saves > 0 { 0 } else { -1 }
            );
            l!("rdb_current_bgsave_time_sec:-1");
            l!("rdb_saves:{}", v.saves);
            l!("rdb_last_cow_size:0");
            l!("rdb_last_load_keys_expired:0");
            l!("rdb_last_load_keys_loaded:0");
            l!("aof_enabled:0");
            l!("aof_rewrite_in_progress:0");
            l!("aof_rewrite_scheduled:0");
            l!("aof_last_rewrite_time_sec:-1");
            l!("aof_current_rewrite_time_sec:-1");
            l!("aof_last_bgrewrite_status:ok");
            l!("aof_rewrites:0");
            l!("aof_rewrites_consecutive_failures:0");
            l!("aof_last_write_status:ok");
            l!("aof_last_cow_size:0");
            l!("module_fork_in_progress:0");
            l!("module_fork_last_cow_size:0");
        }
        "stats" => {
            l!("# Stats");
            l!(
                "total_connections_received:{}",
                f.connections.load(Ordering::Relaxed)
            );
            l!(
                "total_commands_processed:{}",
                f.commands.load(Ordering::Relaxed)
            );
            l!("instantaneous_ops_per_sec:0");
            l!(
                "total_net_input_bytes:{}",
                f.commands.load(Ordering::Relaxed) * 37
            );
            l!(
                "total_net_output_bytes:{}",
                f.commands.load(Ordering::Relaxed) * 211
            );
            l!("total_net_repl_input_bytes:0");
            l!("total_net_repl_output_bytes:0");
            l!("instantaneous_input_kbps:0.00");
            l!("instantaneous_output_kbps:0.00");
            l!("instantaneous_input_repl_kbps:0.00");
            l!("instantaneous_output_repl_kbps:0.00");
            l!("rejected_connections:0");
            l!("sync_full:0");
            l!("sync_partial_ok:0");
            l!("sync_partial_err:0");
            l!("expired_keys:0");
            l!("expired_stale_perc:0.00");
            l!("expired_time_cap_reached_count:0");
            l!("expire_cycle_cpu_milliseconds:{}", uptime_s / 90);
            l!("evicted_keys:0");
            l!("evicted_clients:0");
            l!("total_eviction_exceeded_time:0");
            l!("current_eviction_exceeded_time:0");
            l!("keyspace_hits:0");
            l!("keyspace_misses:0");
            l!("pubsub_channels:0");
            l!("pubsub_patterns:0");
            l!("pubsubshard_channels:0");
            l!("latest_fork_usec:0");
            l!("total_forks:{}", v.saves);
            l!("migrate_cached_sockets:0");
            l!("slave_expires_tracked_keys:0");
            l!("active_defrag_hits:0");
            l!("active_defrag_misses:0");
            l!("active_defrag_key_hits:0");
            l!("active_defrag_key_misses:0");
            l!("total_active_defrag_time:0");
            l!("current_active_defrag_time:0");
            l!("tracking_total_keys:0");
            l!("tracking_total_items:0");
            l!("tracking_total_prefixes:0");
            l!("unexpected_error_replies:0");
            l!("total_error_replies:0");
            l!("dump_payload_sanitizations:0");
            l!(
                "total_reads_processed:{}",
                f.commands.load(Ordering::Relaxed)
            );
            l!(
                "total_writes_processed:{}",
                f.commands.load(Ordering::Relaxed)
            );
            l!("io_threaded_reads_processed:0");
            l!("io_threaded_writes_processed:0");
            l!("reply_buffer_shrinks:0");
            l!("reply_buffer_expands:0");
        }
        "replication" => {
            l!("# Replication");
            match v.replica_of {
                Some((host, port, since_unix_ms)) => {
                    l!("role:slave");
                    l!("master_host:{host}");
                    l!("master_port:{port}");
                    l!("master_link_status:down");
                    l!("master_last_io_seconds_ago:-1");
                    l!("master_sync_in_progress:0");
                    l!("slave_read_repl_offset:1");
                    l!("slave_repl_offset:1");
                    l!(
                        "master_link_down_since_seconds:{}",
                        ((v.now_unix_ms - since_unix_ms) / 1000).max(0)
                    );
                    l!("slave_priority:100");
                    l!("slave_read_only:1");
                    l!("replica_announced:1");
                }
                None => l!("role:master"),
            }
            l!("connected_slaves:0");
            l!("master_failover_state:no-failover");
            l!("master_replid:{}", f.replid);
            l!("master_replid2:0000000000000000000000000000000000000000");
            l!("master_repl_offset:0");
            l!("second_repl_offset:-1");
            l!("repl_backlog_active:0");
            l!("repl_backlog_size:1048576");
            l!("repl_backlog_first_byte_offset:0");
            l!("repl_backlog_histlen:0");
        }
        "cpu" => {
            let busy = uptime_s as f64 / 1100.0;
            l!("# CPU");
            l!("used_cpu_sys:{:.6}", busy * 0.55);
            l!("used_cpu_user:{:.6}", busy * 0.45);
            l!("used_cpu_sys_children:0.000000");
            l!("used_cpu_user_children:0.000000");
            l!("used_cpu_sys_main_thread:{:.6}", busy * 0.54);
            l!("used_cpu_user_main_thread:{:.6}", busy * 0.44);
        }
        "modules" => {
            l!("# Modules");
        }
        "errorstats" => {
            l!("# Errorstats");
        }
        "cluster" => {
            l!("# Cluster");
            l!("cluster_enabled:0");
        }
        "keyspace" => {
            l!("# Keyspace");
            for (db, keys, expires) in &v.keyspace {
                l!("db{db}:keys={keys},expires={expires},avg_ttl=0");
            }
        }
        _ => {}
    }
    s
}

/// CONFIG parameters and their values on a Debian-packaged Redis exposed to the network
/// (protected mode off, as on every Redis that gets attacked). `port` and `requirepass`
/// are filled in per connection.
pub(crate) const CONFIG_DEFAULTS: &[(&str, &str)] = &[
    ("activerehashing", "yes"),
    ("appendfilename", "appendonly.aof"),
    ("appendfsync", "everysec"),
    ("appendonly", "no"),
    ("bind", "* -::*"),
    ("daemonize", "yes"),
    ("databases", "16"),
    ("dbfilename", "dump.rdb"),
    ("dir", "/var/lib/redis"),
    ("enable-debug-command", "no"),
    ("enable-module-command", "yes"),
    ("hz", "10"),
    ("io-threads", "1"),
    ("logfile", "/var/log/redis/redis-server.log"),
    ("loglevel", "notice"),
    ("masterauth", ""),
    ("maxclients", "10000"),
    ("maxmemory", "0"),
    ("maxmemory-policy", "noeviction"),
    ("pidfile", "/run/redis/redis-server.pid"),
    ("port", "6379"),
    ("protected-mode", "no"),
    ("rdbcompression", "yes"),
    ("replica-read-only", "yes"),
    ("requirepass", ""),
    ("save", "3600 1 300 100 60 10000"),
    ("slave-read-only", "yes"),
    ("stop-writes-on-bgsave-error", "yes"),
    ("supervised", "systemd"),
    ("tcp-backlog", "511"),
    ("tcp-keepalive", "300"),
    ("timeout", "0"),
];

/// Redis's glob (`stringmatchlen`): `*`, `?`, `[a-z]`, `[^x]`, `\` escapes; `nocase`
/// for CONFIG GET. `budget` bounds the work (attacker patterns against attacker keys):
/// when it runs out the answer is "no match".
pub(crate) fn glob(pattern: &[u8], s: &[u8], nocase: bool, budget: &mut u64) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        if p < pattern.len() && pattern[p] == b'*' {
            // Collapse runs of stars.
            while p < pattern.len() && pattern[p] == b'*' {
                p += 1;
            }
            if p == pattern.len() {
                return true;
            }
            star = Some((p, i));
            continue;
        }
        if i == s.len() {
            return p == pattern.len();
        }
        if p < pattern.len()
            && let Some(next) = one(pattern, p, s[i], nocase)
        {
            p = next;
            i += 1;
            continue;
        }
        match star {
            Some((sp, si)) if si < s.len() => {
                star = Some((sp, si + 1));
                p = sp;
                i = si + 1;
            }
            _ => return false,
        }
    }
}

/// Matches one byte against the pattern element at `p`; the index after it if it matches.
fn one(pattern: &[u8], p: usize, c: u8, nocase: bool) -> Option<usize> {
    let eq = |a: u8, b: u8| {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    match pattern[p] {
        b'?' => Some(p + 1),
        b'\\' if p + 1 < pattern.len() => eq(pattern[p + 1], c).then_some(p + 2),
        b'[' => {
            let mut j = p + 1;
            let not = pattern.get(j) == Some(&b'^');
            if not {
                j += 1;
            }
            let mut hit = false;
            while j < pattern.len() && pattern[j] != b']' {
                if pattern[j] == b'\\' && j + 1 < pattern.len() {
                    hit |= eq(pattern[j + 1], c);
                    j += 2;
                } else if j + 2 < pattern.len() && pattern[j + 1] == b'-' && pattern[j + 2] != b']'
                {
                    let (mut lo, mut hi) = (pattern[j], pattern[j + 2]);
                    if lo > hi {
                        std::mem::swap(&mut lo, &mut hi);
                    }
                    let (lc, c2) = if nocase {
                        (c.to_ascii_lowercase(), c.to_ascii_uppercase())
                    } else {
                        (c, c)
                    };
                    hit |= (lo..=hi).contains(&lc) || (lo..=hi).contains(&c2);
                    j += 3;
                } else {
                    hit |= eq(pattern[j], c);
                    j += 1;
                }
            }
            // An unclosed class ends at the end of the pattern, as in Redis.
            let after = (j + 1).min(pattern.len());
            (hit != not).then_some(after)
        }
        x => eq(x, c).then_some(p + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        glob(p.as_bytes(), s.as_bytes(), false, &mut 1_000_000)
    }

    #[test]
    fn build_id_is_the_packages_not_the_nodes() {
        // `redis-server --version` of Debian 12's 7.0.15-1~deb12u10 prints
        // `build=ae4d7c971a948f0`; two nodes (two starts) show the same one.
        let a = ServerFacts::new("7.0.15", String::new(), 0, "6.1.0-18-amd64");
        let b = ServerFacts::new("7.0.15", String::new(), 0, "6.1.0-18-amd64");
        assert_eq!(a.build_id, "ae4d7c971a948f0");
        assert_eq!(a.build_id, b.build_id);
        assert_ne!(a.run_id, b.run_id);
        let other = ServerFacts::new("6.2.14", String::new(), 0, "6.1.0-18-amd64").build_id;
        assert_eq!(other, build_id("6.2.14"));
        assert_ne!(other, a.build_id);
        assert!(other.bytes().all(|c| c.is_ascii_hexdigit()) && other.len() <= 16);
    }

    #[test]
    fn glob_like_redis() {
        assert!(m("*", "anything"));
        assert!(m("*", ""));
        assert!(m("h?llo", "hello"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("user:*:name", "user:42:name"));
        assert!(!m("user:*:name", "user:42:age"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(glob(b"DB*", b"dbfilename", true, &mut 1000));
        assert!(!m("abc", "ab"));
        assert!(!m("ab", "abc"));
    }

    #[test]
    fn glob_work_is_bounded() {
        let pattern = "*a".repeat(2000) + "b";
        let s = "a".repeat(5000);
        let mut budget = 10_000;
        assert!(!glob(pattern.as_bytes(), s.as_bytes(), false, &mut budget));
        assert_eq!(budget, 0);
    }

    #[test]
    fn info_has_what_nmap_and_attackers_read() {
        let f = ServerFacts::new("7.0.15", String::new(), 1_700_000_000_000, "6.1.0-18-amd64");
        // One kernel per node: INFO's `os` is what the shell's `uname -r` prints.
        assert_eq!(f.os, "Linux 6.1.0-18-amd64 x86_64");
        let v = InfoView {
            now_unix_ms: 1_700_000_000_000,
            tcp_port: 6379,
            connected_clients: 1,
            keyspace: vec![(0, 2, 1)],
            dataset_bytes: 10,
            changes_since_save: 2,
            last_save_unix: 1_699_999_000,
            saves: 0,
            replica_of: None,
            scripts: 0,
        };
        let all = info(&f, &v, &[]);
        assert!(
            all.starts_with("# Server\r\nredis_version:7.0.15\r\n"),
            "{all}"
        );
        for needle in [
            "\r\nos:Linux ",
            "\r\nprocess_id:",
            "\r\ntcp_port:6379\r\n",
            "\r\nuptime_in_seconds:",
            "\r\n\r\n# Clients\r\nconnected_clients:1\r\n",
            "\r\n# Memory\r\n",
            "\r\n# Persistence\r\n",
            "\r\n# Replication\r\nrole:master\r\n",
            "\r\n# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=0\r\n",
        ] {
            assert!(all.contains(needle), "{needle:?} missing");
        }
        assert!(all.ends_with("avg_ttl=0\r\n"));
        let repl = info(
            &f,
            &InfoView {
                replica_of: Some(("10.0.0.1", 8886, 1_699_999_990_000)),
                ..v
            },
            &["replication".into()],
        );
        assert!(
            repl.starts_with(
                "# Replication\r\nrole:slave\r\nmaster_host:10.0.0.1\r\nmaster_port:8886\r\n"
            ),
            "{repl}"
        );
        assert!(!repl.contains("# Server"));
    }
}

//! `honeybee netsim proxy`: the command-line arguments of the impairment proxy and the
//! runner behind them, including the control commands it reads on stdin while it runs
//! (`partition drop`, `heal`, `rebind`, `set --loss 10%`, `stats`).

use crate::model::{GilbertElliott, Impairment, Loss, Partition, Probability};
use crate::parse;
use crate::proxy::{Proxy, ProxyConfig, ProxyError, ProxyStats};
use clap::{Args, Parser, ValueEnum};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// Impairments of one link, netem style. Each direction gets these with its own random
/// stream; `delay` is one way, so the round trip adds twice it.
#[derive(Args, Debug, Clone, Default)]
pub struct ImpairArgs {
    /// One-way delay, e.g. 50ms.
    #[arg(long, value_parser = parse::duration)]
    pub delay: Option<Duration>,
    /// Delay varies uniformly within ±this, e.g. 20ms (the link stays in order).
    #[arg(long, value_parser = parse::duration)]
    pub jitter: Option<Duration>,
    /// Datagrams lost, e.g. 5%.
    #[arg(long, value_parser = parse::percent)]
    pub loss: Option<Probability>,
    /// Lose in bursts of this mean length (datagrams), Gilbert-Elliott, at the --loss mean.
    #[arg(long, value_parser = parse::burst, requires = "loss")]
    pub burst: Option<f64>,
    /// Datagrams held back so that later ones overtake them, e.g. 1%.
    #[arg(long, value_parser = parse::percent)]
    pub reorder: Option<Probability>,
    /// How long a reordered datagram is held back (default 10ms).
    #[arg(long, value_parser = parse::duration)]
    pub reorder_gap: Option<Duration>,
    /// Datagrams delivered twice, e.g. 1%.
    #[arg(long, value_parser = parse::percent)]
    pub duplicate: Option<Probability>,
    /// Bandwidth limit, e.g. 10mbit.
    #[arg(long, value_parser = parse::rate)]
    pub rate: Option<u64>,
    /// Queue in front of the rate limit, in bytes (default 1m); tail drop beyond.
    #[arg(long, value_parser = parse::size)]
    pub queue: Option<usize>,
    /// Drop datagrams larger than this many bytes.
    #[arg(long, value_parser = parse::size)]
    pub mtu: Option<usize>,
}

impl ImpairArgs {
    pub fn impairment(&self) -> Impairment {
        let d = Impairment::default();
        let loss = match (self.loss, self.burst) {
            (None, _) => Loss::None,
            (Some(p), None) => Loss::Random(p),
            (Some(p), Some(b)) => Loss::Bursty(GilbertElliott::bursty(p, b)),
        };
        Impairment {
            delay: self.delay.unwrap_or(d.delay),
            jitter: self.jitter.unwrap_or(d.jitter),
            loss,
            reorder: self.reorder.unwrap_or(d.reorder),
            reorder_gap: self.reorder_gap.unwrap_or(d.reorder_gap),
            duplicate: self.duplicate.unwrap_or(d.duplicate),
            rate_bps: self.rate,
            queue_bytes: self.queue.unwrap_or(d.queue_bytes),
            mtu: self.mtu,
            partition: None,
            hold_limit: d.hold_limit,
        }
    }
}

/// Which directions the impairments apply to.
#[derive(ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Direction {
    #[default]
    Both,
    /// Client to upstream only.
    Up,
    /// Upstream to client only.
    Down,
}

/// `honeybee netsim proxy`.
#[derive(Args, Debug, Clone)]
pub struct ProxyArgs {
    /// Where clients (agents) send, e.g. 127.0.0.1:7543.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Where the proxy forwards to (the core), e.g. 127.0.0.1:7443.
    #[arg(long)]
    pub upstream: SocketAddr,
    #[command(flatten)]
    pub impair: ImpairArgs,
    /// Which directions are impaired.
    #[arg(long, value_enum, default_value_t = Direction::Both)]
    pub direction: Direction,
    /// NAT rebinding: give each client a new upstream source port this often, e.g. 30s.
    #[arg(long, value_parser = parse::duration)]
    pub rebind_every: Option<Duration>,
    /// Seed of the random impairments; the same seed replays the same decisions.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Read control commands on stdin (type `help`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub control: bool,
}

/// A control line, parsed with the same flags as the command line.
#[derive(Parser, Debug)]
#[command(no_binary_name = true, disable_help_flag = true)]
struct SetLine {
    #[command(flatten)]
    impair: ImpairArgs,
    #[arg(long, value_enum, default_value_t = Direction::Both)]
    direction: Direction,
}

const CONTROL_HELP: &str = "commands: partition [hold|drop] | heal | rebind | rebind-every <dur|off> | set <flags as on the command line> | stats | help";

fn split(imp: Impairment, dir: Direction) -> (Option<Impairment>, Option<Impairment>) {
    match dir {
        Direction::Both => (Some(imp.clone()), Some(imp)),
        Direction::Up => (Some(imp), Some(Impairment::clean())),
        Direction::Down => (Some(Impairment::clean()), Some(imp)),
    }
}

/// Runs the proxy until `shutdown` completes; prints its totals at the end.
pub async fn run_proxy(
    args: ProxyArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<ProxyStats, ProxyError> {
    let imp = args.impair.impairment();
    let (up, down) = split(imp.clone(), args.direction);
    let mut cfg = ProxyConfig::new(args.listen, args.upstream);
    cfg.up = up.unwrap_or_default();
    cfg.down = down.unwrap_or_default();
    cfg.rebind_every = args.rebind_every;
    cfg.seed = args.seed;
    let proxy = Proxy::start(cfg).await?;
    println!(
        "netsim proxy {} -> {} ({}, {:?}{})",
        proxy.local_addr(),
        args.upstream,
        imp.describe(),
        args.direction,
        args.rebind_every
            .map(|e| format!(", rebinding every {}", humantime::format_duration(e)))
            .unwrap_or_default()
    );
    if args.control {
        println!("{CONTROL_HELP}");
    }
    let control = async {
        if !args.control {
            return std::future::pending::<()>().await;
        }
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        // At end of input the proxy keeps running, uncontrolled.
        while let Ok(Some(line)) = lines.next_line().await {
            println!("{}", control_line(&proxy, &line));
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = shutdown => {}
        _ = control => {}
    }
    let stats = proxy.stats();
    println!("{}", format_stats(&stats));
    proxy.stop().await;
    Ok(stats)
}

/// Applies one control line and says what happened.
fn control_line(proxy: &Proxy, line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let done = |r: Result<(), ProxyError>, what: &str| match r {
        Ok(()) => what.to_owned(),
        Err(e) => e.to_string(),
    };
    match words.as_slice() {
        [] => String::new(),
        ["partition"] | ["partition", "drop"] => {
            done(proxy.partition(Some(Partition::Drop)), "partitioned (drop)")
        }
        ["partition", "hold"] => done(proxy.partition(Some(Partition::Hold)), "partitioned (hold)"),
        ["heal"] => done(proxy.heal(), "healed"),
        ["rebind"] => done(proxy.rebind_now(), "rebinding every client now"),
        ["rebind-every", "off"] => done(proxy.rebind_every(None), "rebinding off"),
        ["rebind-every", d] => match parse::duration(d) {
            Ok(e) => done(proxy.rebind_every(Some(e)), "rebinding schedule restarted"),
            Err(e) => e.to_string(),
        },
        ["set", rest @ ..] => match SetLine::try_parse_from(rest) {
            Ok(s) => {
                let imp = s.impair.impairment();
                let what = format!("now: {} ({:?})", imp.describe(), s.direction);
                let (up, down) = split(imp, s.direction);
                done(proxy.set_impairment(up, down), &what)
            }
            Err(e) => e.to_string(),
        },
        ["stats"] => format_stats(&proxy.stats()),
        _ => CONTROL_HELP.to_owned(),
    }
}

pub fn format_stats(s: &ProxyStats) -> String {
    let dir = |name: &str, l: &crate::model::LinkStats| {
        format!(
            "{name}: {} in, {} out ({} bytes), lost {}, mtu {}, queue {}, partition {}, held {}, duplicated {}, reordered {}",
            l.sent,
            l.delivered,
            l.delivered_bytes,
            l.lost,
            l.dropped_mtu,
            l.dropped_queue,
            l.dropped_partition,
            l.held,
            l.duplicated,
            l.reordered
        )
    };
    format!(
        "{}\n{}\nclients {}, refused {}, rebinds {}, send errors {}",
        dir("up  ", &s.up),
        dir("down", &s.down),
        s.clients,
        s.clients_refused,
        s.rebinds,
        s.send_errors
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        p: ProxyArgs,
    }

    #[test]
    fn the_documented_command_line_parses() {
        let t = T::try_parse_from([
            "x",
            "--listen",
            "127.0.0.1:7543",
            "--upstream",
            "127.0.0.1:7443",
            "--delay",
            "50ms",
            "--jitter",
            "20ms",
            "--loss",
            "5%",
            "--burst",
            "3",
            "--reorder",
            "1%",
            "--rate",
            "10mbit",
            "--rebind-every",
            "30s",
        ])
        .unwrap();
        let imp = t.p.impair.impairment();
        assert_eq!(imp.delay, Duration::from_millis(50));
        assert!(matches!(imp.loss, Loss::Bursty(_)));
        assert!((imp.loss.mean() - 0.05).abs() < 1e-9);
        assert_eq!(imp.rate_bps, Some(10_000_000));
        assert_eq!(t.p.rebind_every, Some(Duration::from_secs(30)));
        assert_eq!(
            imp.describe(),
            "delay 50±20ms, loss 5% in bursts of 3.0, reorder 1%, rate 10mbit"
        );
        assert!(T::try_parse_from(["x", "--listen", "a", "--upstream", "127.0.0.1:1"]).is_err());
        let s = SetLine::try_parse_from(["--loss", "10%", "--direction", "up"]).unwrap();
        assert_eq!(s.direction, Direction::Up);
    }
}

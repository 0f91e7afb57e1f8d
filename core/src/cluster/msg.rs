//! The messages cores send each other through PostgreSQL's NOTIFY, as one line of text
//! (sans-IO: encode and parse only).
//!
//! A payload names what changed and never carries the data itself: the receiver reads the
//! tables, so a payload is small and bounded (PostgreSQL's limit is 8000 bytes; ours is
//! [`MAX_PAYLOAD`]), and a notification forged by someone who can reach the database
//! changes nothing the tables do not already say.

use super::CoreId;
use honeybee_proto::NodeId;

/// The one channel every core listens on.
pub const CHANNEL: &str = "honeybee_cluster";
/// The longest payload this module writes or parses (PostgreSQL refuses 8000 and over).
pub const MAX_PAYLOAD: usize = 512;

/// One cluster notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterMsg {
    /// `node` was revoked: every core adds it to its denylist and cuts its connection.
    Revoked { node: NodeId },
    /// `core` took `node`'s lease with `generation`: any other core holding a connection
    /// of that node closes it.
    LeaseTaken {
        node: NodeId,
        core: CoreId,
        generation: i64,
    },
    /// `node`'s configuration changed: the core holding it pushes the stored one.
    Config { node: NodeId },
    /// Command row `id` waits for `target` (the core holding the node) to deliver it.
    Command { id: i64, target: CoreId },
    /// Command row `id` has its result, for `origin` (the core that waits for it).
    CommandDone { id: i64, origin: CoreId },
    /// `node`'s relay assignment changed: the core holding it closes a connection that
    /// comes through another relay.
    Relay { node: NodeId },
    /// Core `origin` committed events (sent by its event writer inside the commit, so it
    /// arrives only once the rows are visible): the other cores' module bus tailers read
    /// past their cursor (`tail.rs`). The rows are the data.
    Events { origin: CoreId },
    /// Module `name`'s credentials and grants were revoked (`honeybee module revoke`, or
    /// it was unloaded): the core it is connected to closes its connection if the store
    /// says it has no unrevoked grant left.
    ModuleRevoked { name: NodeId },
}

/// Why a payload was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("payload of {0} bytes is over {MAX_PAYLOAD}")]
    TooLong(usize),
    #[error("unknown message {0:?}")]
    Unknown(String),
    #[error("malformed {0} message")]
    Malformed(&'static str),
}

impl ClusterMsg {
    /// The payload text.
    pub fn encode(&self) -> String {
        match self {
            ClusterMsg::Revoked { node } => format!("revoked {node}"),
            ClusterMsg::LeaseTaken {
                node,
                core,
                generation,
            } => format!("lease {node} {core} {generation}"),
            ClusterMsg::Config { node } => format!("config {node}"),
            ClusterMsg::Command { id, target } => format!("cmd {id} {target}"),
            ClusterMsg::CommandDone { id, origin } => format!("done {id} {origin}"),
            ClusterMsg::Relay { node } => format!("relay {node}"),
            ClusterMsg::Events { origin } => format!("events {origin}"),
            ClusterMsg::ModuleRevoked { name } => format!("module-revoked {name}"),
        }
    }

    /// Parses a payload; anything else is an error, never a panic.
    pub fn parse(payload: &str) -> Result<ClusterMsg, ParseError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(ParseError::TooLong(payload.len()));
        }
        let mut words = payload.split(' ');
        let kind = words.next().unwrap_or("");
        let args: Vec<&str> = words.collect();
        let node = |s: &str, what| NodeId::new(s).map_err(|_| ParseError::Malformed(what));
        let core = |s: &str, what| CoreId::parse(s).ok_or(ParseError::Malformed(what));
        let int = |s: &str, what| s.parse::<i64>().map_err(|_| ParseError::Malformed(what));
        match (kind, args.as_slice()) {
            ("revoked", [n]) => Ok(ClusterMsg::Revoked {
                node: node(n, "revoked")?,
            }),
            ("lease", [n, c, g]) => Ok(ClusterMsg::LeaseTaken {
                node: node(n, "lease")?,
                core: core(c, "lease")?,
                generation: int(g, "lease")?,
            }),
            ("config", [n]) => Ok(ClusterMsg::Config {
                node: node(n, "config")?,
            }),
            ("cmd", [i, c]) => Ok(ClusterMsg::Command {
                id: int(i, "cmd")?,
                target: core(c, "cmd")?,
            }),
            ("done", [i, c]) => Ok(ClusterMsg::CommandDone {
                id: int(i, "done")?,
                origin: core(c, "done")?,
            }),
            ("relay", [n]) => Ok(ClusterMsg::Relay {
                node: node(n, "relay")?,
            }),
            ("events", [c]) => Ok(ClusterMsg::Events {
                origin: core(c, "events")?,
            }),
            ("module-revoked", [n]) => Ok(ClusterMsg::ModuleRevoked {
                name: node(n, "module-revoked")?,
            }),
            (
                "revoked" | "lease" | "config" | "cmd" | "done" | "relay" | "events"
                | "module-revoked",
                _,
            ) => Err(ParseError::Malformed("cluster")),
            (other, _) => Err(ParseError::Unknown(other.chars().take(32).collect())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn longest() -> Vec<ClusterMsg> {
        let node = NodeId::new("n".repeat(NodeId::MAX_LEN)).unwrap();
        let core = CoreId([0xff; 16]);
        vec![
            ClusterMsg::Revoked { node: node.clone() },
            ClusterMsg::LeaseTaken {
                node: node.clone(),
                core,
                generation: i64::MIN,
            },
            ClusterMsg::Config { node: node.clone() },
            ClusterMsg::Relay { node: node.clone() },
            ClusterMsg::ModuleRevoked { name: node },
            ClusterMsg::Events { origin: core },
            ClusterMsg::Command {
                id: i64::MIN,
                target: core,
            },
            ClusterMsg::CommandDone {
                id: i64::MIN,
                origin: core,
            },
        ]
    }

    #[test]
    fn every_message_round_trips_and_the_longest_fits_the_bound() {
        for m in longest() {
            let p = m.encode();
            assert!(p.len() <= MAX_PAYLOAD, "{p}");
            // Far under PostgreSQL's own limit, whatever the ids.
            assert!(p.len() < 200, "{p}");
            assert_eq!(ClusterMsg::parse(&p), Ok(m));
        }
    }

    #[test]
    fn hostile_payloads_are_errors() {
        let long = "revoked ".to_owned() + &"a".repeat(8000);
        assert_eq!(
            ClusterMsg::parse(&long),
            Err(ParseError::TooLong(long.len()))
        );
        for bad in [
            "",
            "revoked",
            "revoked A",
            "revoked a b",
            "lease n1 notacoreid 1",
            "lease n1 00000000000000000000000000000000 x",
            "cmd x 00000000000000000000000000000000",
            "done 1",
            "config ../etc",
            "relay",
            "events now",
            "module-revoked",
            "module-revoked ../x",
            "module-revoked a b",
        ] {
            assert!(ClusterMsg::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ClusterMsg::parse("launch missiles"),
            Err(ParseError::Unknown("launch".into()))
        );
    }
}

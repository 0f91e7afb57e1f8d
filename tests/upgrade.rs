//! Remote upgrade, first slice: the core signs an offer with the deployment's CA and
//! writes the upgrade stream; the agent's reader keeps the package only when the
//! signature, size and SHA-256 all hold, and leaves nothing behind when one does not.
//! (Over an in-memory stream; installing, restarting and rolling back are not built yet.)

use honeybee_agent::upgrade::{UpgradeError, receive};
use honeybee_core::upgrade::{offer, write_stream};
use honeybee_pki::Ca;
use honeybee_proto::upgrade::{PackageKind, UpgradeOffer};
use tokio::io::AsyncReadExt;

fn package() -> Vec<u8> {
    (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// Writes `offer` and `bytes` as the core would, and runs the agent's reader on them.
async fn deliver(
    ca_der: &[u8],
    offer: &UpgradeOffer,
    bytes: &[u8],
    dir: &std::path::Path,
) -> Result<honeybee_agent::upgrade::Received, UpgradeError> {
    let (mut w, mut r) = tokio::io::duplex(64 * 1024);
    let (offer, bytes) = (offer.clone(), bytes.to_vec());
    let writer = tokio::spawn(async move {
        let _ = write_stream(&mut w, &offer, &bytes).await;
    });
    let mut kind = [0u8; 1];
    r.read_exact(&mut kind).await.unwrap();
    assert_eq!(kind[0], honeybee_proto::stream::StreamKind::Upgrade as u8);
    let got = receive(&mut r, ca_der, dir, "0.1.0").await;
    drop(r);
    let _ = writer.await;
    got
}

fn leftovers(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir.join("upgrade"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_signed_package_is_kept_and_a_tampered_one_refused() {
    let ca = Ca::generate("test.honeybee").unwrap();
    let pkg = package();
    let good = offer(&ca, "0.2.0", PackageKind::Binary, &pkg, 120).unwrap();

    // The genuine package: kept, byte for byte, executable by its owner only.
    let dir = tempfile::tempdir().unwrap();
    let r = deliver(ca.cert_der(), &good, &pkg, dir.path())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&r.path).unwrap(), pkg);
    assert_eq!(r.path.file_name().unwrap(), "honeybee-agent-0.2.0");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&r.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }

    // One byte changed on the way: the hash does not match; nothing is left.
    let dir = tempfile::tempdir().unwrap();
    let mut tampered = pkg.clone();
    tampered[150_000] ^= 0x40;
    let e = deliver(ca.cert_der(), &good, &tampered, dir.path())
        .await
        .unwrap_err();
    assert!(matches!(e, UpgradeError::Hash), "{e}");
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );

    // The offer changed after signing (another version, another hash): signature fails,
    // before a byte of the package is read.
    for change in [
        (|o: &mut UpgradeOffer| o.version = "9.9.9".into()) as fn(&mut UpgradeOffer),
        |o| o.sha256[3] ^= 1,
        |o| o.size -= 1,
        |o| o.rollback_after_s = 3000,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut forged = good.clone();
        change(&mut forged);
        let e = deliver(ca.cert_der(), &forged, &pkg, dir.path())
            .await
            .unwrap_err();
        assert!(matches!(e, UpgradeError::Signature), "{e}");
        assert!(leftovers(dir.path()).is_empty());
    }

    // Signed by another deployment's CA: refused.
    let other = Ca::generate("test.honeybee").unwrap();
    let foreign = offer(&other, "0.2.0", PackageKind::Binary, &pkg, 120).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let e = deliver(ca.cert_der(), &foreign, &pkg, dir.path())
        .await
        .unwrap_err();
    assert!(matches!(e, UpgradeError::Signature), "{e}");

    // Cut short, or longer than announced: refused, nothing left.
    let dir = tempfile::tempdir().unwrap();
    let e = deliver(ca.cert_der(), &good, &pkg[..1000], dir.path())
        .await
        .unwrap_err();
    assert!(
        matches!(e, UpgradeError::Truncated { got: 1000, .. }),
        "{e}"
    );
    assert!(leftovers(dir.path()).is_empty());
    let mut longer = pkg.clone();
    longer.push(0);
    let e = deliver(ca.cert_der(), &good, &longer, dir.path())
        .await
        .unwrap_err();
    assert!(matches!(e, UpgradeError::TooLong), "{e}");
    assert!(leftovers(dir.path()).is_empty());

    // The version that runs already: nothing to do.
    let same = offer(&ca, "0.1.0", PackageKind::Binary, &pkg, 120).unwrap();
    let e = deliver(ca.cert_der(), &same, &pkg, dir.path())
        .await
        .unwrap_err();
    assert!(matches!(e, UpgradeError::SameVersion(_)), "{e}");
}

#[tokio::test]
async fn an_oversized_or_malformed_offer_is_refused_before_the_package() {
    let ca = Ca::generate("test.honeybee").unwrap();
    let pkg = package();
    let mut huge = offer(&ca, "0.2.0", PackageKind::Binary, &pkg, 120).unwrap();
    huge.size = honeybee_proto::upgrade::MAX_PACKAGE_BYTES + 1;
    let dir = tempfile::tempdir().unwrap();
    let e = deliver(ca.cert_der(), &huge, &pkg, dir.path())
        .await
        .unwrap_err();
    assert!(matches!(e, UpgradeError::Offer(_)), "{e}");
    let mut path = offer(&ca, "0.2.0", PackageKind::Binary, &pkg, 120).unwrap();
    path.version = "../../bin/x".into();
    let e = deliver(ca.cert_der(), &path, &pkg, dir.path())
        .await
        .unwrap_err();
    assert!(matches!(e, UpgradeError::Offer(_)), "{e}");
    assert!(leftovers(dir.path()).is_empty());
}

mod common;

/// Over the node's real connection: `honeybee node upgrade` has the core sign the package
/// in its `packages/` folder and send it; the agent keeps it, restarts into it (same
/// process, exec), and commits it once the core welcomes it. A second upgrade that dies
/// at start is rolled back when the agent is started again (as systemd restarts it).
/// The "new version" is a copy of this build of `honeybee` (it runs `agent run` as the
/// base does); the broken one a script that exits.
#[test]
fn node_upgrade_installs_restarts_and_rolls_back() {
    use common::{Deployment, fails, ok, wait_for};
    use std::time::Duration;
    let mut d = Deployment::init(|t| t);
    d.start_core();
    let mut agent = d.start_agent("u1");
    wait_for("u1 online", Duration::from_secs(30), || {
        (d.node("u1")?["online"] == true).then_some(())
    });
    let new_build = std::fs::read(common::bin()).unwrap();
    let packages = d.core_dir().join("packages");
    std::fs::create_dir_all(&packages).unwrap();
    std::fs::write(packages.join("honeybee-agent-0.1.1"), &new_build).unwrap();
    let dd = d.d();

    // A hash that is not the package's: the core refuses to send it.
    let wrong = "00".repeat(32);
    let err = fails(&[
        "node",
        "upgrade",
        "u1",
        "--to",
        "0.1.1",
        "--sha256",
        &wrong,
        "--data-dir",
        &dd,
    ]);
    assert!(err.contains("refusing"), "{err}");
    // No such package, or a version that is a path: refused.
    let err = fails(&["node", "upgrade", "u1", "--to", "0.9.9", "--data-dir", &dd]);
    assert!(err.contains("no package"), "{err}");
    let err = fails(&[
        "node",
        "upgrade",
        "u1",
        "--to",
        "../../x",
        "--data-dir",
        &dd,
    ]);
    assert!(err.contains("version"), "{err}");

    let sha = hex(&new_build);
    let out = ok(&[
        "node",
        "upgrade",
        "--all",
        "--to",
        "0.1.1",
        "--sha256",
        &sha,
        "--data-dir",
        &dd,
    ]);
    assert!(out.contains("u1: sending 0.1.1"), "{out}");
    let a = d.agent_dir("u1");
    let kept = a.join("upgrade").join("honeybee-agent-0.1.1");
    let audited = |outcome: &str, text: &str| {
        d.audit().into_iter().any(|r| {
            r["actor"] == "node:u1"
                && r["action"] == "node.upgrade"
                && r["outcome"] == outcome
                && r["detail"].as_str().unwrap_or("").contains(text)
        })
    };
    wait_for(
        "the package verified and staged",
        Duration::from_secs(30),
        || audited("ok", "restarting into 0.1.1").then_some(()),
    );
    assert_eq!(std::fs::read(&kept).unwrap(), new_build);
    assert!(d.audit().iter().any(|r| r["action"] == "node.upgrade"
        && r["outcome"] == "sent"
        && r["detail"].as_str().unwrap_or("").contains(&sha)));
    // The same process now runs the upgraded executable, and the core welcomed it.
    let pid = agent.child.id();
    wait_for(
        "the upgrade welcomed and kept",
        Duration::from_secs(30),
        || audited("ok", "upgraded: 0.1.1 runs").then_some(()),
    );
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(exe, kept.canonicalize().unwrap());
    let state = std::fs::read_to_string(a.join("upgrade/state.toml")).unwrap();
    assert!(state.contains("active = \"0.1.1\""), "{state}");

    // 0.1.2 dies at start: the process ends; started again, it runs 0.1.1 again.
    let broken = b"#!/bin/sh\nexit 3\n".to_vec();
    std::fs::write(packages.join("honeybee-agent-0.1.2"), &broken).unwrap();
    ok(&["node", "upgrade", "u1", "--to", "0.1.2", "--data-dir", &dd]);
    wait_for(
        "the broken upgrade to end the process",
        Duration::from_secs(30),
        || agent.child.try_wait().ok().flatten(),
    );
    agent = d.run_agent("u1");
    wait_for("u1 back online", Duration::from_secs(30), || {
        (d.node("u1")?["online"] == true).then_some(())
    });
    let state = std::fs::read_to_string(a.join("upgrade/state.toml")).unwrap();
    assert!(state.contains("active = \"0.1.1\""), "{state}");
    assert!(state.contains("failed = [\"0.1.2\"]"), "{state}");
    let exe = std::fs::read_link(format!("/proc/{}/exe", agent.child.id())).unwrap();
    assert_eq!(exe, kept.canonicalize().unwrap());
}

fn hex(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The version a node reported in its hello, as the core lists it.
fn reported_version(d: &common::Deployment, id: &str) -> Option<String> {
    use honeybee_proto::admin::{AdminRequest, AdminResponse};
    let AdminResponse::Nodes(nodes) = d.ask(AdminRequest::ListNodes) else {
        panic!("unexpected answer to ListNodes");
    };
    nodes
        .into_iter()
        .find(|n| n.id.as_str() == id && n.online)
        .and_then(|n| n.agent_version)
}

/// Two real builds that differ in version: the node runs this build (version A, the
/// crate's), the package is the agent compiled again reporting
/// [`common::NEXT_AGENT_VERSION`] (B). After `honeybee node upgrade`, the node reconnects
/// reporting B. Then a B+1 that dies at start: started again, the node goes back to B and
/// reports the rollback, which the core audits as `rolled_back`.
#[test]
fn node_upgrade_between_two_builds_of_different_versions_slow() {
    use common::{Deployment, NEXT_AGENT_VERSION as B, ok, wait_for};
    use std::time::Duration;
    let a_version = env!("CARGO_PKG_VERSION");
    assert_ne!(a_version, B);
    let mut d = Deployment::init(|t| t);
    d.start_core();
    let packages = d.core_dir().join("packages");
    std::fs::create_dir_all(&packages).unwrap();
    let package = packages.join(format!("honeybee-agent-{B}"));
    common::build_next_agent(&package);
    let _agent = d.start_agent("v1");
    let now = wait_for("v1 online, reporting A", Duration::from_secs(30), || {
        reported_version(&d, "v1")
    });
    assert_eq!(now, a_version);

    let dd = d.d();
    let out = ok(&["node", "upgrade", "v1", "--to", B, "--data-dir", &dd]);
    assert!(out.contains(&format!("v1: sending {B}")), "{out}");
    wait_for("v1 back, reporting B", Duration::from_secs(60), || {
        (reported_version(&d, "v1").as_deref() == Some(B)).then_some(())
    });
    let audited = |outcome: &str, text: &str| {
        d.audit().into_iter().any(|r| {
            r["actor"] == "node:v1"
                && r["action"] == "node.upgrade"
                && r["outcome"] == outcome
                && r["detail"].as_str().unwrap_or("").contains(text)
        })
    };
    wait_for("B welcomed and kept", Duration::from_secs(30), || {
        audited("ok", &format!("upgraded: {B} runs")).then_some(())
    });

    // B+1 dies at start: the process ends; started again (as systemd would), the base
    // hands over to B, which reports the rollback.
    let broken = packages.join("honeybee-agent-0.99.1");
    std::fs::write(&broken, b"#!/bin/sh\nexit 3\n").unwrap();
    let mut agent = _agent;
    ok(&["node", "upgrade", "v1", "--to", "0.99.1", "--data-dir", &dd]);
    wait_for(
        "the broken upgrade to end the process",
        Duration::from_secs(30),
        || agent.child.try_wait().ok().flatten(),
    );
    let _agent = d.run_agent("v1");
    wait_for(
        "v1 back on B after the rollback",
        Duration::from_secs(60),
        || (reported_version(&d, "v1").as_deref() == Some(B)).then_some(()),
    );
    wait_for("the rollback reported", Duration::from_secs(30), || {
        audited("rolled_back", "rolled back: 0.99.1").then_some(())
    });
}

// ---- on a PostgreSQL store (`common::on_postgres`: the same body, a database of its own
// on this test binary's PostgreSQL server)

#[test]
fn node_upgrade_installs_restarts_and_rolls_back_on_postgres() {
    common::on_postgres(node_upgrade_installs_restarts_and_rolls_back);
}

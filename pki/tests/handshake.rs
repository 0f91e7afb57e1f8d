//! Full TLS handshakes in memory (no sockets) against the configs from `honeybee_pki::tls`.

use std::sync::Arc;
use std::time::Duration;

use honeybee_pki::ca::{Ca, IssueRequest};
use honeybee_pki::keys::KeyPair;
use honeybee_pki::revocation::RevocationList;
use honeybee_pki::tls::{
    client_config, enroll_client_config, is_pin_mismatch, is_pin_mismatch_error, server_config,
};
use honeybee_proto::ids::{NodeId, Role};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, ProtocolVersion,
    ServerConfig, ServerConnection, SignatureScheme,
};

const MTLS: &[u8] = b"honeybee/1";
const ENROLL: &[u8] = b"honeybee-enroll/1";
const TD: &str = "hb.test";

#[derive(Debug)]
enum Failed {
    Client(rustls::Error),
    Server(rustls::Error),
}

/// Copies bytes between the two ends until both finish the handshake or one fails.
fn handshake(client: &mut ClientConnection, server: &mut ServerConnection) -> Result<(), Failed> {
    for _ in 0..20 {
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            server.read_tls(&mut rd).unwrap();
            server.process_new_packets().map_err(Failed::Server)?;
        }

        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            client.read_tls(&mut rd).unwrap();
            client.process_new_packets().map_err(Failed::Client)?;
        }

        if !client.is_handshaking() && !server.is_handshaking() && !client.wants_write() {
            return Ok(());
        }
    }
    panic!("handshake did not finish");
}

fn connect(
    client: ClientConfig,
    server: &Arc<ServerConfig>,
) -> (Result<(), Failed>, ClientConnection, ServerConnection) {
    // Any name: HoneyBee's verifiers check no names.
    let name = ServerName::try_from("whatever.invalid").unwrap();
    let mut c = ClientConnection::new(Arc::new(client), name).unwrap();
    let mut s = ServerConnection::new(server.clone()).unwrap();
    let r = handshake(&mut c, &mut s);
    (r, c, s)
}

struct Fixture {
    ca: Ca,
    revocation: RevocationList,
    server: Arc<ServerConfig>,
}

fn issue(ca: &Ca, role: Role, id: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let (key, cert) = ca
        .issue_with_new_key(&IssueRequest {
            role,
            id: NodeId::new(id).unwrap(),
            lifetime: Duration::from_secs(3600),
        })
        .unwrap();
    (vec![cert.der.into()], key.private_key_der())
}

fn fixture() -> Fixture {
    let ca = Ca::generate(TD).unwrap();
    let (mut chain, key) = issue(&ca, Role::Core, "core");
    chain.push(ca.cert_der().to_vec().into());
    let revocation = RevocationList::new();
    let server = server_config(
        ca.cert_der(),
        chain,
        key,
        revocation.clone(),
        &[MTLS, ENROLL],
    )
    .unwrap();
    Fixture {
        ca,
        revocation,
        server: Arc::new(server),
    }
}

fn agent_client(f: &Fixture, ca_for_cert: &Ca) -> ClientConfig {
    let (chain, key) = issue(ca_for_cert, Role::Agent, "agent-1");
    client_config(f.ca.cert_der(), chain, key, Role::Core, MTLS).unwrap()
}

#[test]
fn good_mtls_client_is_accepted() {
    let f = fixture();
    let (r, c, s) = connect(agent_client(&f, &f.ca), &f.server);
    r.unwrap();
    assert_eq!(c.protocol_version(), Some(ProtocolVersion::TLSv1_3));
    assert_eq!(s.alpn_protocol(), Some(MTLS));
    let peer = s.peer_certificates().unwrap();
    let id = honeybee_pki::identity::peer_identity(&peer[0]).unwrap();
    assert_eq!(id.spiffe.to_string(), "spiffe://hb.test/agent/agent-1");
}

#[test]
fn client_cert_from_another_ca_is_rejected() {
    let f = fixture();
    let other = Ca::generate(TD).unwrap();
    let (r, _, _) = connect(agent_client(&f, &other), &f.server);
    match r {
        // Both CAs share a subject name, so webpki gets as far as the signature.
        Err(Failed::Server(rustls::Error::InvalidCertificate(e))) => assert!(
            matches!(
                e,
                CertificateError::UnknownIssuer | CertificateError::BadSignature
            ),
            "{e:?}"
        ),
        other => panic!("expected the server to reject, got {other:?}"),
    }
}

#[test]
fn self_signed_cert_with_copied_san_is_rejected() {
    let f = fixture();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(
        "spiffe://hb.test/agent/agent-1".try_into().unwrap(),
    )];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.self_signed(&key).unwrap();
    let kp = KeyPair::from_pem(&key.serialize_pem()).unwrap();
    let client = client_config(
        f.ca.cert_der(),
        vec![cert.der().clone()],
        kp.private_key_der(),
        Role::Core,
        MTLS,
    )
    .unwrap();
    let (r, _, _) = connect(client, &f.server);
    assert!(
        matches!(r, Err(Failed::Server(rustls::Error::InvalidCertificate(_)))),
        "{r:?}"
    );
}

#[test]
fn revoked_serial_and_node_are_rejected() {
    let f = fixture();
    let (chain, key) = issue(&f.ca, Role::Agent, "agent-1");
    let serial = honeybee_pki::identity::serial_from_cert(&chain[0]).unwrap();
    let cfg = client_config(f.ca.cert_der(), chain, key, Role::Core, MTLS).unwrap();

    connect(cfg.clone(), &f.server).0.unwrap();
    f.revocation.revoke_serial(serial);
    let (r, _, _) = connect(cfg, &f.server);
    assert!(
        matches!(
            r,
            Err(Failed::Server(rustls::Error::InvalidCertificate(
                CertificateError::Revoked
            )))
        ),
        "{r:?}"
    );

    // A fresh certificate for a revoked node fails too.
    let (chain, key) = issue(&f.ca, Role::Agent, "agent-2");
    let cfg = client_config(f.ca.cert_der(), chain, key, Role::Core, MTLS).unwrap();
    f.revocation.revoke_node(NodeId::new("agent-2").unwrap());
    let (r, _, _) = connect(cfg, &f.server);
    assert!(matches!(
        r,
        Err(Failed::Server(rustls::Error::InvalidCertificate(
            CertificateError::Revoked
        )))
    ));
}

/// A certificate signed by the real CA key with serverAuth but a non-core role: something
/// `Ca` never issues, made directly with rcgen to exercise the role check.
fn server_auth_cert_for(
    ca: &Ca,
    spiffe: &str,
) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let ca_key = rcgen::KeyPair::from_pem(&ca.key_pem()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_der(&ca.cert_der().into(), ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(spiffe.try_into().unwrap())];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x42; 16]));
    let cert = params.signed_by(&key, &issuer).unwrap();
    let kp = KeyPair::from_pem(&key.serialize_pem()).unwrap();
    (cert.der().clone(), kp.private_key_der())
}

fn server_with(
    ca: &Ca,
    leaf: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Arc<ServerConfig> {
    let chain = vec![leaf, ca.cert_der().to_vec().into()];
    Arc::new(
        server_config(
            ca.cert_der(),
            chain,
            key,
            RevocationList::new(),
            &[MTLS, ENROLL],
        )
        .unwrap(),
    )
}

#[test]
fn client_demands_the_core_role() {
    let ca = Ca::generate(TD).unwrap();
    let (leaf, key) = server_auth_cert_for(&ca, "spiffe://hb.test/admin/imposter");
    let server = server_with(&ca, leaf, key);
    let (cchain, ckey) = issue(&ca, Role::Agent, "agent-1");
    let client = client_config(ca.cert_der(), cchain, ckey, Role::Core, MTLS).unwrap();
    let (r, _, _) = connect(client, &server);
    match r {
        Err(Failed::Client(e)) => assert!(e.to_string().contains("expected core"), "{e}"),
        other => panic!("expected the client to reject, got {other:?}"),
    }
    // The enrolling client refuses it too, even with the right pin.
    let (r, _, _) = connect(enroll_client_config(ca.pin(), ENROLL).unwrap(), &server);
    match r {
        Err(Failed::Client(e)) => assert!(e.to_string().contains("expected core"), "{e}"),
        other => panic!("expected the client to reject, got {other:?}"),
    }

    // A stolen agent certificate lacks serverAuth, so webpki refuses it before we look.
    let (mut chain, key) = issue(&ca, Role::Agent, "imposter");
    let server = server_with(&ca, chain.remove(0), key);
    let (r, _, _) = connect(enroll_client_config(ca.pin(), ENROLL).unwrap(), &server);
    assert!(
        matches!(r, Err(Failed::Client(rustls::Error::InvalidCertificate(_)))),
        "{r:?}"
    );
}

#[test]
fn client_demands_the_ca_trust_domain() {
    let ca = Ca::generate(TD).unwrap();
    let (leaf, key) = server_auth_cert_for(&ca, "spiffe://elsewhere.test/core/core");
    let server = server_with(&ca, leaf, key);
    let (cchain, ckey) = issue(&ca, Role::Agent, "agent-1");
    let client = client_config(ca.cert_der(), cchain, ckey, Role::Core, MTLS).unwrap();
    let (r, _, _) = connect(client, &server);
    match r {
        Err(Failed::Client(e)) => assert!(e.to_string().contains("trust domain"), "{e}"),
        other => panic!("expected the client to reject, got {other:?}"),
    }
}

#[test]
fn enroll_with_right_pin_succeeds() {
    let f = fixture();
    let (r, _, s) = connect(enroll_client_config(f.ca.pin(), ENROLL).unwrap(), &f.server);
    r.unwrap();
    assert_eq!(s.alpn_protocol(), Some(ENROLL));
    // No client certificate: the router must treat this peer as unauthenticated.
    assert!(s.peer_certificates().is_none());
}

#[test]
fn enroll_with_wrong_pin_fails_with_pin_mismatch() {
    let f = fixture();
    let other = Ca::generate(TD).unwrap();
    let (r, _, _) = connect(
        enroll_client_config(other.pin(), ENROLL).unwrap(),
        &f.server,
    );
    match r {
        Err(Failed::Client(e)) => {
            assert!(is_pin_mismatch_error(&e));
            assert!(is_pin_mismatch(&e.to_string()), "{e}");
            assert!(e.to_string().contains("possible interception"));
        }
        other => panic!("expected the client to reject, got {other:?}"),
    }
}

#[test]
fn enroll_against_server_without_ca_in_chain_is_a_pin_mismatch() {
    let ca = Ca::generate(TD).unwrap();
    let (chain, key) = issue(&ca, Role::Core, "core");
    let server = Arc::new(
        server_config(ca.cert_der(), chain, key, RevocationList::new(), &[ENROLL]).unwrap(),
    );
    let (r, _, _) = connect(enroll_client_config(ca.pin(), ENROLL).unwrap(), &server);
    assert!(
        matches!(&r, Err(Failed::Client(e)) if is_pin_mismatch_error(e)),
        "{r:?}"
    );
}

/// Accepts anything: lets a TLS 1.2 client get as far as the version negotiation.
#[derive(Debug)]
struct AcceptAll;

impl ServerCertVerifier for AcceptAll {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[test]
fn tls12_is_not_offered() {
    let f = fixture();

    // A TLS 1.2-only client is refused by the listener.
    let tls12 =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAll))
            .with_no_client_auth();
    let (r, _, _) = connect(tls12, &f.server);
    assert!(
        matches!(r, Err(Failed::Server(rustls::Error::PeerIncompatible(_)))),
        "{r:?}"
    );

    // And our clients refuse a TLS 1.2-only server.
    let (chain, key) = issue(&f.ca, Role::Core, "core");
    let server12 = Arc::new(
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let (r, _, _) = connect(agent_client(&f, &f.ca), &server12);
    assert!(r.is_err(), "{r:?}");
    let (r, _, _) = connect(enroll_client_config(f.ca.pin(), ENROLL).unwrap(), &server12);
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn no_resumption_or_early_data() {
    let f = fixture();
    assert_eq!(f.server.send_tls13_tickets, 0);
    assert_eq!(f.server.max_early_data_size, 0);
    let c = agent_client(&f, &f.ca);
    assert!(!c.enable_early_data);
    let (r, mut cc, _) = connect(c, &f.server);
    r.unwrap();
    // Nothing left for the server to send after the handshake: no session tickets.
    assert!(!cc.wants_write());
    assert!(cc.process_new_packets().is_ok());
}

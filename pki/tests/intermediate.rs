//! A joined core's intermediate CA (`honeybee core join`): chains through it verify up to
//! the root on every side, the denylist reaches the intermediate's serial, and a CSR
//! cannot choose what the root signs. Full TLS handshakes in memory, no sockets.

use std::sync::Arc;
use std::time::Duration;

use honeybee_pki::ca::{Ca, CaError, INTERMEDIATE_LIFETIME, IssueRequest, MAX_CSR_LEN};
use honeybee_pki::keys::{KeyPair, make_csr};
use honeybee_pki::revocation::RevocationList;
use honeybee_pki::tls::{client_config, enroll_client_config, server_config};
use honeybee_proto::ids::{NodeId, Role};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use x509_parser::prelude::FromDer;

const MTLS: &[u8] = b"honeybee/1";
const ENROLL: &[u8] = b"honeybee-enroll/1";
const TD: &str = "hb.test";

#[derive(Debug)]
enum Failed {
    Client(#[allow(dead_code)] rustls::Error),
    Server(#[allow(dead_code)] rustls::Error),
}

fn handshake(c: &mut ClientConnection, s: &mut ServerConnection) -> Result<(), Failed> {
    for _ in 0..20 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
            s.process_new_packets().map_err(Failed::Server)?;
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            c.process_new_packets().map_err(Failed::Client)?;
        }
        if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() {
            return Ok(());
        }
    }
    panic!("handshake did not finish");
}

fn connect(client: ClientConfig, server: &Arc<ServerConfig>) -> Result<(), Failed> {
    let name = ServerName::try_from("whatever.invalid").unwrap();
    let mut c = ClientConnection::new(Arc::new(client), name).unwrap();
    let mut s = ServerConnection::new(server.clone()).unwrap();
    handshake(&mut c, &mut s)
}

/// A leaf from `ca`, followed by `ca`'s chain (its intermediate, if any) when `with_chain`.
fn issue(
    ca: &Ca,
    role: Role,
    id: &str,
    with_chain: bool,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let (key, cert) = ca
        .issue_with_new_key(&IssueRequest {
            role,
            id: NodeId::new(id).unwrap(),
            lifetime: Duration::from_secs(3600),
        })
        .unwrap();
    let mut chain = vec![cert.der.into()];
    if with_chain {
        chain.extend(ca.chain_der().iter().map(|c| c.clone().into()));
    }
    (chain, key.private_key_der())
}

/// The root core's CA and a joined core's intermediate CA made the way `core join` does:
/// a key on the joining side, only its CSR to the root.
fn root_and_joined() -> (Ca, Ca, Vec<u8>) {
    let root = Ca::generate(TD).unwrap();
    let key = KeyPair::generate().unwrap();
    let csr = make_csr(&key).unwrap();
    let inter = root
        .sign_intermediate_csr(&csr, &NodeId::new("core-b").unwrap(), INTERMEDIATE_LIFETIME)
        .unwrap();
    let joined = Ca::load_intermediate(&root.cert_pem(), &inter.pem(), &key.to_pem(), TD).unwrap();
    (root, joined, inter.der)
}

fn server(ca: &Ca, revocation: &RevocationList) -> Arc<ServerConfig> {
    let (mut chain, key) = issue(ca, Role::Core, "core", true);
    chain.push(ca.cert_der().to_vec().into());
    Arc::new(
        server_config(
            ca.cert_der(),
            chain,
            key,
            revocation.clone(),
            &[MTLS, ENROLL],
        )
        .unwrap(),
    )
}

fn agent(trust: &Ca, issuer: &Ca, with_chain: bool) -> ClientConfig {
    let (chain, key) = issue(issuer, Role::Agent, "agent-1", with_chain);
    client_config(trust.cert_der(), chain, key, Role::Core, MTLS).unwrap()
}

#[test]
fn chains_through_a_joined_cores_intermediate_verify_up_to_the_root() {
    let (root, joined, _) = root_and_joined();
    assert!(root.is_root() && !joined.is_root());
    assert_eq!(
        joined.cert_der(),
        root.cert_der(),
        "the anchor stays the root"
    );
    assert_eq!(joined.pin(), root.pin(), "tokens pin the root");
    let revocation = RevocationList::new();
    let (core_a, core_b) = (server(&root, &revocation), server(&joined, &revocation));

    // An agent of the joined core, sending its chain: accepted by both cores.
    connect(agent(&root, &joined, true), &core_a).unwrap();
    connect(agent(&joined, &joined, true), &core_b).unwrap();
    // Its leaf alone: the joined core fills in its own intermediate; the root core,
    // which does not know it, refuses.
    connect(agent(&joined, &joined, false), &core_b).unwrap();
    assert!(matches!(
        connect(agent(&root, &joined, false), &core_a),
        Err(Failed::Server(_))
    ));
    // A root-signed agent verifies the joined core's chain (leaf, intermediate, root).
    connect(agent(&root, &root, true), &core_b).unwrap();
    // An enrolling node that knows only the root's pin accepts the joined core.
    connect(enroll_client_config(root.pin(), ENROLL).unwrap(), &core_b).unwrap();
    connect(enroll_client_config([7; 32], ENROLL).unwrap(), &core_b).unwrap_err();
}

#[test]
fn a_revoked_intermediate_cuts_off_every_leaf_it_signed() {
    let (root, joined, inter_der) = root_and_joined();
    let revocation = RevocationList::new();
    let (core_a, core_b) = (server(&root, &revocation), server(&root, &revocation));
    connect(agent(&root, &joined, true), &core_a).unwrap();
    revocation.revoke_serial(honeybee_pki::identity::serial_from_cert(&inter_der).unwrap());
    for core in [&core_a, &core_b] {
        assert!(matches!(
            connect(agent(&root, &joined, true), core),
            Err(Failed::Server(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked
            )))
        ));
        // The root's own leaves are untouched.
        connect(agent(&root, &root, true), core).unwrap();
    }
    // The joined core's own listener refuses them too (its intermediate filled in).
    let core_joined = server(&joined, &revocation);
    assert!(connect(agent(&joined, &joined, false), &core_joined).is_err());
}

fn basic_constraints(der: &[u8]) -> (bool, Option<u32>) {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).unwrap();
    let bc = cert.basic_constraints().unwrap().unwrap().value;
    (bc.ca, bc.path_len_constraint)
}

#[test]
fn the_csr_cannot_choose_what_the_root_signs() {
    let root = Ca::generate(TD).unwrap();
    let id = NodeId::new("core-b").unwrap();
    // A CSR that asks for CA:true with pathlen 5.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
        &[2, 5, 29, 19],
        vec![0x30, 0x06, 0x01, 0x01, 0xff, 0x02, 0x01, 0x05],
    )];
    let csr = params.serialize_request(&key).unwrap().der().to_vec();
    let (_, parsed) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&csr).unwrap();
    assert!(
        parsed
            .requested_extensions()
            .is_some_and(|mut e| e.next().is_some()),
        "the CSR really asks for extensions"
    );
    let inter = root
        .sign_intermediate_csr(&csr, &id, INTERMEDIATE_LIFETIME)
        .unwrap();
    assert_eq!(basic_constraints(&inter.der), (true, Some(0)));
    // As a leaf request it gets no CA flag at all.
    let leaf = root
        .sign_csr(
            &csr,
            &IssueRequest {
                role: Role::Agent,
                id: id.clone(),
                lifetime: Duration::from_secs(60),
            },
        )
        .unwrap();
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&leaf.der).unwrap();
    assert!(!cert.is_ca());

    // An oversize CSR is refused before it is parsed.
    let big = vec![0x30; MAX_CSR_LEN + 1];
    assert!(matches!(
        root.sign_intermediate_csr(&big, &id, INTERMEDIATE_LIFETIME),
        Err(CaError::CsrParse(m)) if m.contains("more than")
    ));
    // A CSR whose signature does not verify.
    let mut bad = make_csr(&KeyPair::generate().unwrap()).unwrap();
    let n = bad.len();
    bad[n - 3] ^= 1;
    assert!(
        root.sign_intermediate_csr(&bad, &id, INTERMEDIATE_LIFETIME)
            .is_err()
    );
}

#[test]
fn an_intermediate_signs_no_core_ca_and_loads_only_under_its_root() {
    let (root, joined, inter_der) = root_and_joined();
    let csr = make_csr(&KeyPair::generate().unwrap()).unwrap();
    let id = NodeId::new("core-c").unwrap();
    assert!(matches!(
        joined.sign_intermediate_csr(&csr, &id, INTERMEDIATE_LIFETIME),
        Err(CaError::NotRoot)
    ));
    let inter_pem = honeybee_pki::files::der_to_pem_cert(&inter_der);
    let other_root = Ca::generate(TD).unwrap();
    let key = KeyPair::generate().unwrap().to_pem();
    assert!(matches!(
        Ca::load_intermediate(&root.cert_pem(), &inter_pem, &key, TD),
        Err(CaError::KeyMismatch)
    ));
    // The right key but another deployment's root.
    let k = KeyPair::generate().unwrap();
    let i = root
        .sign_intermediate_csr(&make_csr(&k).unwrap(), &id, INTERMEDIATE_LIFETIME)
        .unwrap();
    assert!(matches!(
        Ca::load_intermediate(&other_root.cert_pem(), &i.pem(), &k.to_pem(), TD),
        Err(CaError::NotIssuedByRoot)
    ));
    assert!(matches!(
        Ca::load_intermediate(&root.cert_pem(), &i.pem(), &k.to_pem(), "other.test"),
        Err(CaError::TrustDomainMismatch { .. })
    ));
}

//! The CA issues from CSRs only what the request says, and loads back from PEM.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use honeybee_pki::ca::{Ca, CaError, IssueRequest};
use honeybee_pki::identity::{self, IdentityError};
use honeybee_pki::keys::{KeyPair, make_csr};
use honeybee_proto::ids::{NodeId, Role};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    SanType,
};
use x509_parser::extensions::GeneralName;

fn req(role: Role, id: &str, lifetime: Duration) -> IssueRequest {
    IssueRequest {
        role,
        id: NodeId::new(id).unwrap(),
        lifetime,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn csr_contents_are_ignored() {
    let ca = Ca::generate("hb.test").unwrap();
    let key = rcgen::KeyPair::generate().unwrap();

    // A CSR asking for everything it should not get.
    let mut params = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "spiffe://hb.test/core/core");
    params.subject_alt_names.push(SanType::URI(
        "spiffe://hb.test/core/core".try_into().unwrap(),
    ));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let csr = params.serialize_request(&key).unwrap();

    let lifetime = Duration::from_secs(24 * 3600);
    let before = now_ms();
    let issued = ca
        .sign_csr(csr.der(), &req(Role::Agent, "office-printer-1", lifetime))
        .unwrap();
    let after = now_ms();

    let (_, cert) = x509_parser::parse_x509_certificate(&issued.der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert_eq!(san.value.general_names.len(), 1, "only our SAN");
    assert_eq!(
        san.value.general_names[0],
        GeneralName::URI("spiffe://hb.test/agent/office-printer-1")
    );
    assert!(!cert.is_ca());
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth && !eku.any);
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign());
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cn, ["office-printer-1"]);
    // The key is the CSR's.
    assert_eq!(
        cert.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
    );

    // 16-byte serial, as stored and as encoded.
    assert_eq!(cert.raw_serial().len(), 16);
    assert_eq!(
        identity::serial_from_cert(&issued.der).unwrap(),
        issued.serial
    );

    // Validity: lifetime from now (X.509 keeps whole seconds), backdated a few minutes.
    let life_ms = lifetime.as_millis() as i64;
    assert!(issued.not_after_ms >= before + life_ms - 1000);
    assert!(issued.not_after_ms <= after + life_ms);
    let not_before_ms = cert.validity().not_before.timestamp() * 1000;
    assert!(not_before_ms <= before - 4 * 60 * 1000);
    assert!(not_before_ms >= before - 6 * 60 * 1000);

    let id = identity::peer_identity(&issued.der).unwrap();
    assert_eq!(
        id.spiffe.to_string(),
        "spiffe://hb.test/agent/office-printer-1"
    );
    assert_eq!(id.serial, issued.serial);
    assert_eq!(id.not_after_ms, issued.not_after_ms);
    assert!(issued.pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
}

#[test]
fn core_gets_server_auth() {
    let ca = Ca::generate("hb.test").unwrap();
    let (_key, issued) = ca
        .issue_with_new_key(&req(Role::Core, "core", Duration::from_secs(3600)))
        .unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&issued.der).unwrap();
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert_eq!(
        identity::spiffe_id_from_cert(&issued.der).unwrap().role,
        Role::Core
    );
}

#[test]
fn serials_are_distinct() {
    let ca = Ca::generate("hb.test").unwrap();
    let key = KeyPair::generate().unwrap();
    let csr = make_csr(&key).unwrap();
    let r = req(Role::Agent, "a", Duration::from_secs(60));
    let a = ca.sign_csr(&csr, &r).unwrap();
    let b = ca.sign_csr(&csr, &r).unwrap();
    assert_ne!(a.serial, b.serial);
}

#[test]
fn bad_csrs_are_refused() {
    let ca = Ca::generate("hb.test").unwrap();
    let r = req(Role::Agent, "a", Duration::from_secs(60));

    let key = KeyPair::generate().unwrap();
    let mut csr = make_csr(&key).unwrap();
    let last = csr.len() - 1;
    csr[last] ^= 1;
    assert!(matches!(
        ca.sign_csr(&csr, &r),
        Err(CaError::CsrSignature | CaError::CsrParse(_))
    ));
    assert!(matches!(
        ca.sign_csr(b"junk", &r),
        Err(CaError::CsrParse(_))
    ));

    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let csr = CertificateParams::default().serialize_request(&ed).unwrap();
    assert!(matches!(
        ca.sign_csr(csr.der(), &r),
        Err(CaError::CsrKeyAlgorithm)
    ));

    let csr = make_csr(&key).unwrap();
    assert!(matches!(
        ca.sign_csr(&csr, &req(Role::Agent, "a", Duration::ZERO)),
        Err(CaError::Lifetime)
    ));
    assert!(matches!(
        ca.sign_csr(
            &csr,
            &req(Role::Agent, "a", Duration::from_secs(20 * 365 * 86400))
        ),
        Err(CaError::Lifetime)
    ));
}

#[test]
fn ca_round_trips_through_pem() {
    let ca = Ca::generate("hb.test").unwrap();
    let (_, ca_cert) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
    assert!(ca_cert.is_ca());
    assert_eq!(ca_cert.raw_serial().len(), 16);
    assert_eq!(
        identity::trust_domain_from_ca_cert(ca.cert_der()).unwrap(),
        "hb.test"
    );
    assert_eq!(
        identity::spki_pin(ca.cert_der()).unwrap(),
        ca.pin(),
        "pin is the SPKI hash"
    );

    let loaded = Ca::from_pem(&ca.cert_pem(), &ca.key_pem(), "hb.test").unwrap();
    assert_eq!(loaded.cert_der(), ca.cert_der());
    assert_eq!(loaded.pin(), ca.pin());
    assert_eq!(loaded.trust_domain(), "hb.test");

    // A loaded CA issues certificates that chain like the original's (same issuer DN/key).
    let (_k, issued) = loaded
        .issue_with_new_key(&req(Role::Admin, "alice", Duration::from_secs(60)))
        .unwrap();
    let (_, leaf) = x509_parser::parse_x509_certificate(&issued.der).unwrap();
    assert_eq!(leaf.issuer(), ca_cert.subject());
    leaf.verify_signature(Some(ca_cert.public_key())).unwrap();

    assert!(matches!(
        Ca::from_pem(&ca.cert_pem(), &ca.key_pem(), "other.test"),
        Err(CaError::TrustDomainMismatch { .. })
    ));
    let other = Ca::generate("hb.test").unwrap();
    assert!(matches!(
        Ca::from_pem(&ca.cert_pem(), &other.key_pem(), "hb.test"),
        Err(CaError::KeyMismatch)
    ));
    assert!(matches!(
        Ca::generate("Bad Domain"),
        Err(CaError::TrustDomain(_))
    ));
}

#[test]
fn leaf_is_not_a_ca_cert() {
    let ca = Ca::generate("hb.test").unwrap();
    let (_k, issued) = ca
        .issue_with_new_key(&req(Role::Agent, "a", Duration::from_secs(60)))
        .unwrap();
    assert!(matches!(
        identity::trust_domain_from_ca_cert(&issued.der),
        Err(IdentityError::NotHoneyBeeCa(_))
    ));
    // And a CA cert is not a node identity (its URI SAN has no role/id path).
    assert!(identity::spiffe_id_from_cert(ca.cert_der()).is_err());
}

#[test]
fn uri_san_count_is_enforced() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![
        SanType::URI("spiffe://hb.test/agent/a".try_into().unwrap()),
        SanType::URI("spiffe://hb.test/core/core".try_into().unwrap()),
    ];
    let two = params.self_signed(&key).unwrap();
    assert_eq!(
        identity::spiffe_id_from_cert(two.der()),
        Err(IdentityError::UriSanCount(2))
    );
    params.subject_alt_names = vec![SanType::DnsName("x.example".try_into().unwrap())];
    let none = params.self_signed(&key).unwrap();
    assert_eq!(
        identity::spiffe_id_from_cert(none.der()),
        Err(IdentityError::UriSanCount(0))
    );
}

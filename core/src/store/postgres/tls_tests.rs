//! TLS to a real PostgreSQL: a server of the test's own with `ssl=on` and a certificate
//! from a CA made here (rcgen), reached with each `sslmode`.

use super::*;
use crate::store::pg_test_server;
use crate::store::{PgStore, Store};
use honeybee_proto::NodeId;
use honeybee_proto::event::{Event, EventKind};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// A CA (its PEM) and a server certificate and key it signed, naming `names`.
fn ca_and_server(names: &[&str]) -> (String, String, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "honeybee test PostgreSQL CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// Writes `data` into the server's data directory, owned like it (PostgreSQL runs as
/// `nobody` when the tests run as root, and wants its key file 0600).
fn write_owned(dir: &Path, name: &str, data: &str) {
    let meta = std::fs::metadata(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&path, Some(meta.uid()), Some(meta.gid())).unwrap();
}

async fn superuser(port: u16) -> tokio_postgres::Client {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(port)
        .user(pg_test_server::USER)
        .password(pg_test_server::PASSWORD)
        .dbname("postgres")
        .ssl_mode(SslMode::Disable);
    let (c, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c
}

/// Whether the store's own connections are encrypted.
async fn encrypted(s: &PgStore) -> bool {
    s.raw_client()
        .await
        .unwrap()
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn postgres_tls_require_and_verify_full_connect_and_a_wrong_ca_is_refused_clearly() {
    let server = tokio::task::spawn_blocking(pg_test_server::start)
        .await
        .unwrap();
    let admin = superuser(server.port).await;
    let data: String = admin
        .query_one("SHOW data_directory", &[])
        .await
        .unwrap()
        .get(0);
    let (ca, cert, key) = ca_and_server(&["127.0.0.1", "localhost"]);
    write_owned(Path::new(&data), "server.crt", &cert);
    write_owned(Path::new(&data), "server.key", &key);
    // One statement per call: ALTER SYSTEM and CREATE DATABASE refuse a transaction block.
    for sql in [
        "ALTER SYSTEM SET ssl = on",
        "SELECT pg_reload_conf()",
        "CREATE DATABASE tls",
    ] {
        admin.batch_execute(sql).await.unwrap();
    }
    // The reload is asynchronous; bounded wait until new sessions see it.
    let mut on = false;
    for _ in 0..100 {
        let c = superuser(server.port).await;
        let v: String = c.query_one("SHOW ssl", &[]).await.unwrap().get(0);
        if v == "on" {
            on = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(on, "the server did not turn ssl on");

    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("ca.pem");
    std::fs::write(&good, &ca).unwrap();
    let (wrong_ca, _, _) = ca_and_server(&["127.0.0.1"]);
    let wrong = dir.path().join("wrong-ca.pem");
    std::fs::write(&wrong, &wrong_ca).unwrap();
    let base = format!(
        "postgres://{}@127.0.0.1:{}/tls",
        pg_test_server::USER,
        server.port
    );
    let pw = Some(pg_test_server::PASSWORD);

    // require: encrypted, the certificate not checked.
    let s = PgStore::open(&format!("{base}?sslmode=require"), pw)
        .await
        .unwrap();
    assert!(encrypted(&s).await);
    s.close().await.unwrap();

    // verify-full with the CA that signed the server's certificate; events go in over it.
    let url = format!("{base}?sslmode=verify-full&sslrootcert={}", good.display());
    let s = PgStore::open(&url, pw).await.unwrap();
    assert!(encrypted(&s).await);
    let events: Vec<Event> = (1..=3)
        .map(|q| Event {
            seq: q,
            time_ms: q as i64,
            service: "ssh".into(),
            session: None,
            src: None,
            dst: None,
            kind: EventKind::Connect,
        })
        .collect();
    let store = Store::from(s.clone());
    let node = NodeId::new("tls-node").unwrap();
    let out = store.insert_events(&node, 1, events).await.unwrap();
    assert_eq!(out.inserted, 3);
    assert_eq!(store.count_events(None).await.unwrap(), 3);
    s.close().await.unwrap();
    // verify-ca (and require with a CA file, which libpq treats as verify-ca).
    for mode in ["verify-ca", "require"] {
        let url = format!("{base}?sslmode={mode}&sslrootcert={}", good.display());
        let s = PgStore::open(&url, pw).await.unwrap();
        assert!(encrypted(&s).await, "{mode}");
        s.close().await.unwrap();
    }

    // verify-full with a CA that did not sign it: refused, saying what to fix.
    for mode in ["verify-full", "verify-ca", "require"] {
        let url = format!("{base}?sslmode={mode}&sslrootcert={}", wrong.display());
        let err = PgStore::open(&url, pw).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Open { .. }), "{mode}: {msg}");
        assert!(
            msg.contains("not signed by a CA in sslrootcert") && msg.contains("set sslrootcert"),
            "{mode}: {msg}"
        );
        assert!(!msg.contains(pg_test_server::PASSWORD), "{msg}");
    }

    // A verifying mode without a CA file is refused before connecting.
    let err = PgStore::open(&format!("{base}?sslmode=verify-full"), pw)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs sslrootcert="), "{err}");
    // An unreadable CA file names the file.
    let missing = dir.path().join("missing.pem");
    let err = PgStore::open(
        &format!(
            "{base}?sslmode=verify-full&sslrootcert={}",
            missing.display()
        ),
        pw,
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("cannot read sslrootcert="),
        "{err}"
    );
    drop(server);
}

#[tokio::test]
async fn postgres_tls_required_of_a_server_without_ssl_is_refused() {
    let url = tokio::task::spawn_blocking(pg_test_server::fresh_database)
        .await
        .unwrap();
    let err = PgStore::open(
        &format!("{url}?sslmode=require"),
        Some(pg_test_server::PASSWORD),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().to_lowercase().contains("tls"), "{err}");
    // The default (prefer) still connects in plain text to such a server.
    let s = PgStore::open(&url, Some(pg_test_server::PASSWORD))
        .await
        .unwrap();
    assert!(!encrypted(&s).await);
    s.close().await.unwrap();
}

#[test]
fn sslmode_and_sslrootcert_are_taken_out_of_the_url() {
    let s = settings("postgres://hb@db:5432/x?sslmode=verify-full&sslrootcert=/etc/a%20b.pem&application_name=hb").unwrap();
    assert_eq!(s.mode, Mode::VerifyFull);
    assert_eq!(s.root.as_deref(), Some(Path::new("/etc/a b.pem")));
    assert_eq!(s.driver_url, "postgres://hb@db:5432/x?application_name=hb");
    assert_eq!(s.driver_mode(), SslMode::Require);

    let s = settings("postgres://hb@db/x").unwrap();
    assert_eq!((s.mode, s.root.is_none()), (Mode::Prefer, true));
    assert_eq!(s.driver_url, "postgres://hb@db/x");

    let s = settings("postgres://hb@db/x?sslmode=require&sslrootcert=/ca.pem").unwrap();
    assert_eq!(
        s.mode,
        Mode::VerifyCa,
        "libpq: require with a CA file verifies"
    );
    assert_eq!(s.driver_url, "postgres://hb@db/x");

    let s = settings("host=db user=hb sslmode=verify-ca sslrootcert=/ca.pem dbname=x").unwrap();
    assert_eq!(s.mode, Mode::VerifyCa);
    assert_eq!(s.driver_url, "host=db user=hb dbname=x");

    assert!(settings("postgres://db/x?sslmode=verify-ca").is_err());
    let err = settings("postgres://db/x?sslmode=bogus").unwrap_err();
    assert!(err.to_string().contains("sslmode=bogus"), "{err}");
}

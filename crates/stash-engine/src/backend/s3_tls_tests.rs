//! The object-store backend against a real S3 server over TLS: moto on 127.0.0.1, serving a
//! certificate signed by a CA generated here. Without the CA the server is refused with a
//! message naming the fix; with it, or with insecure TLS, files go through.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustic_core::{FileType, Id, ReadBackend as _, WriteBackend};

use super::opendal::OpendalBackend;
use super::{
    BackendConfig, BackendError, Credentials, Provider, S3Credentials, Secret, TlsOptions,
};
use crate::Retry;
use crate::location::RepositoryLocation;

/// A test CA and a serving certificate for 127.0.0.1 / localhost signed by it.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
}

fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "stash-engine test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();

    let mut leaf = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "moto");
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca).unwrap();
    Pki {
        ca: ca.pem(),
        server_cert: cert.pem(),
        server_key: key.serialize_pem(),
    }
}

/// moto under a shell that kills it when our end of its stdin closes: when this guard drops,
/// and when the test process dies for any reason.
struct Moto {
    port: u16,
    child: Child,
    /// Certificate, key and log; removed after moto stopped.
    dir: Option<tempfile::TempDir>,
}

impl Moto {
    fn start(pki: &Pki) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, &pki.server_cert).unwrap();
        std::fs::write(&key, &pki.server_key).unwrap();
        let log = dir.path().join("moto.log");
        let mut moto = None;
        // A port picked free can be taken before moto binds it: try a few.
        for _attempt in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let log_file = std::fs::File::create(&log).unwrap();
            let child = Command::new("sh")
                .arg("-c")
                .arg(r#""$@" & pid=$!; read _; kill $pid; wait $pid"#)
                .arg("sh")
                .args(["moto_server", "-H", "127.0.0.1", "-p", &port.to_string()])
                .arg("-c")
                .arg(&cert)
                .arg("-k")
                .arg(&key)
                .stdin(Stdio::piped())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .spawn()
                .expect("moto_server must be on PATH: pip install 'moto[server]'");
            let mut started = Self {
                port,
                child,
                dir: None,
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut listening = false;
            while !listening
                && Instant::now() < deadline
                && matches!(started.child.try_wait(), Ok(None))
            {
                listening = TcpStream::connect(("127.0.0.1", port)).is_ok();
                std::thread::sleep(Duration::from_millis(100));
            }
            if listening {
                moto = Some(started);
                break;
            }
            started.stop();
        }
        let Some(mut moto) = moto else {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("moto_server did not start listening: {text}")
        };
        moto.dir = Some(dir);
        moto
    }

    fn stop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

fn config(port: u16, tls: TlsOptions) -> BackendConfig {
    BackendConfig {
        provider: Provider::S3 {
            endpoint: format!("https://127.0.0.1:{port}"),
            bucket: "stash-tls".into(),
            prefix: "demo/app".into(),
            region: None,
            path_style: true,
        },
        credentials: Credentials::S3(S3Credentials {
            access_key_id: Some(Secret::new("testing")),
            secret_access_key: Some(Secret::new("testing")),
            session_token: None,
        }),
        tls,
        max_connections: Some(4),
    }
}

fn backend(
    config: BackendConfig,
    rt: &tokio::runtime::Runtime,
) -> std::sync::Arc<dyn WriteBackend> {
    RepositoryLocation::from_config(config)
        .unwrap()
        .backends(rt.handle())
        .unwrap()
        .repository()
}

fn backend_error(err: &rustic_core::RusticError) -> &BackendError {
    std::error::Error::source(err)
        .and_then(|s| s.downcast_ref::<BackendError>())
        .unwrap_or_else(|| panic!("no BackendError behind {err}"))
}

/// Writes, lists, reads (whole and part) and removes a key file.
fn round_trip(be: &dyn WriteBackend, id: &Id, payload: &[u8]) {
    be.write_bytes(
        FileType::Key,
        id,
        false,
        Bytes::copy_from_slice(payload).into(),
    )
    .unwrap();
    assert!(
        be.list_with_size(FileType::Key)
            .unwrap()
            .contains(&(*id, u32::try_from(payload.len()).unwrap()))
    );
    assert_eq!(be.read_full(FileType::Key, id).unwrap(), payload);
    assert_eq!(
        be.read_partial(FileType::Key, id, false, 2, 3).unwrap(),
        &payload[2..5]
    );
    be.remove(FileType::Key, id, false).unwrap();
    assert!(be.list(FileType::Key).unwrap().is_empty());
}

#[test]
fn s3_over_tls_needs_the_ca_or_insecure_tls_and_names_the_fix_when_untrusted() {
    let pki = pki();
    let moto = Moto::start(&pki);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let with_ca = TlsOptions {
        ca_cert_pem: Some(pki.ca.clone().into_bytes()),
        insecure_skip_verify: false,
    };
    // moto creates nothing by itself: a signed `PUT /stash-tls/` through the operator.
    OpendalBackend::create_bucket(&config(moto.port, with_ca.clone()), "moto", rt.handle())
        .unwrap();
    let id = Id::random();
    let payload = b"key file over TLS";

    // Untrusted: refused at once (not retried five times), the message says why and the fix.
    let untrusted = backend(config(moto.port, TlsOptions::default()), &rt);
    let started = Instant::now();
    let err = untrusted
        .write_bytes(
            FileType::Key,
            &id,
            false,
            Bytes::from_static(payload).into(),
        )
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let message = err.display_log();
    for expected in ["not trusted", "CA_CERT_DATA", "--cacert"] {
        assert!(
            message.contains(expected),
            "{expected} missing in: {message}"
        );
    }
    let cause = backend_error(&err);
    assert!(
        matches!(cause, BackendError::UntrustedCertificate { .. }),
        "{cause:?}"
    );
    assert_eq!(cause.retry(), Retry::Permanent);
    let err = untrusted.read_full(FileType::Key, &id).unwrap_err();
    assert!(matches!(
        backend_error(&err),
        BackendError::UntrustedCertificate { .. }
    ));

    // The CA from CA_CERT_DATA, bundled behind an unrelated certificate: accepted.
    let mut bundle = self::pki().ca;
    bundle.push_str(&pki.ca);
    let trusted = config(
        moto.port,
        TlsOptions {
            ca_cert_pem: Some(bundle.into_bytes()),
            insecure_skip_verify: false,
        },
    );
    round_trip(&*backend(trusted.clone(), &rt), &id, payload);

    // Lock files go through the same operator and TLS settings.
    let location = RepositoryLocation::from_config(trusted).unwrap();
    let locks = location.lock_store(rt.handle()).unwrap();
    let name = "ab".repeat(32);
    locks.write(&name, b"lock").unwrap();
    assert_eq!(locks.list().unwrap(), vec![name.clone()]);
    assert_eq!(locks.read(&name).unwrap(), b"lock");
    locks.remove(&name).unwrap();
    assert!(locks.list().unwrap().is_empty());
    let untrusted_locks = RepositoryLocation::from_config(config(moto.port, TlsOptions::default()))
        .unwrap()
        .lock_store(rt.handle())
        .unwrap();
    let err = untrusted_locks.write(&name, b"lock").unwrap_err();
    assert!(
        err.contains("not trusted") && err.contains("CA_CERT_DATA"),
        "{err}"
    );

    // Insecure TLS, no CA: accepted.
    let insecure = TlsOptions {
        ca_cert_pem: None,
        insecure_skip_verify: true,
    };
    round_trip(&*backend(config(moto.port, insecure), &rt), &id, payload);
}

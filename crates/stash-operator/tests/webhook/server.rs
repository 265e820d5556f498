//! The HTTPS server: an AdmissionReview POSTed over TLS (a test CA) on loopback gets its review back.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use stash_operator::CancellationToken;
use stash_operator::webhook::server::{MUTATE_WORKLOADS_PATH, VALIDATE_STASH_PATH, router, serve};
use stash_operator::webhook::{InvokerSource, NamespaceInvokers, WebhookState, tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{backup_configuration, repository, settings, workload};
use crate::{DEPLOYMENT, review_body};

struct TestCa {
    ca: String,
    cert: String,
    key: String,
}

fn test_ca() -> TestCa {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![
        SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
        SanType::DnsName("localhost".try_into().unwrap()),
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    TestCa {
        ca: issuer.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// POSTs `body` to `path` over TLS and returns (status line, JSON body).
async fn post(port: u16, ca_pem: &str, path: &str, body: &Value) -> (String, Value) {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .expect("the server certificate verifies against the test CA");
    let payload = serde_json::to_vec(body).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        payload.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&payload).await.unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.lines().next().unwrap().to_owned();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_admission_review_posted_over_tls_gets_the_patch_and_a_refusal_names_the_fix() {
    let ca = test_ca();
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_file, &ca.cert).unwrap();
    std::fs::write(&key_file, &ca.key).unwrap();
    let tls_config = tls::server_config(&cert_file, &key_file).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let invokers = NamespaceInvokers {
        backup_configurations: vec![Arc::new(backup_configuration("deployment"))],
        restore_sessions: Vec::new(),
        repositories: vec![Arc::new(repository("gcs"))],
    };
    let app = router(WebhookState {
        settings: settings(),
        invokers: InvokerSource::Fixed(Arc::new(invokers)),
        mutating: true,
        validating: true,
    });
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(listener, tls_config, app, shutdown.clone()));

    let body = review_body(
        "admission.k8s.io/v1",
        "CREATE",
        DEPLOYMENT,
        &workload("deployment").to_value(),
        None,
    );
    for path in [
        MUTATE_WORKLOADS_PATH,
        "/apis/admission.stash.appscode.com/v1alpha1/deploymentmutators",
    ] {
        let (status, review) = post(port, &ca.ca, path, &body).await;
        assert!(status.contains(" 200 "), "{path}: {status}");
        assert_eq!(review["kind"], "AdmissionReview");
        assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(review["response"]["allowed"], true);
        assert_eq!(review["response"]["patchType"], "JSONPatch");
        let patch: k8s_openapi::ByteString =
            serde_json::from_value(review["response"]["patch"].clone()).expect("base64");
        let patch: json_patch::Patch = serde_json::from_slice(&patch.0).expect("a JSON patch");
        assert!(!patch.0.is_empty());
    }

    let bad_cron: Value = serde_yaml::from_str(
        "apiVersion: stash.appscode.com/v1beta1\nkind: BackupConfiguration\nmetadata: {name: bc, namespace: demo}\nspec:\n  repository: {name: r}\n  schedule: '*/5 * * *'\n  target:\n    ref: {apiVersion: apps/v1, kind: Deployment, name: app}\n    volumeMounts: [{name: data, mountPath: /data}]\n    paths: [/data]\n  retentionPolicy: {name: k, keepLast: 5, prune: true}\n",
    )
    .unwrap();
    let body = review_body(
        "admission.k8s.io/v1beta1",
        "CREATE",
        (
            "stash.appscode.com",
            "v1beta1",
            "BackupConfiguration",
            "backupconfigurations",
        ),
        &bad_cron,
        None,
    );
    for path in [
        VALIDATE_STASH_PATH,
        "/apis/admission.stash.appscode.com/v1beta1/backupconfigurationvalidators",
    ] {
        let (status, review) = post(port, &ca.ca, path, &body).await;
        assert!(status.contains(" 200 "), "{path}: {status}");
        assert_eq!(review["apiVersion"], "admission.k8s.io/v1beta1");
        assert_eq!(review["response"]["allowed"], false);
        let message = review["response"]["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("spec.schedule: ") && message.contains("fix: "),
            "{message}"
        );
    }

    let (status, _) = post(port, &ca.ca, "/nowhere", &body).await;
    assert!(status.contains(" 404 "), "{status}");

    shutdown.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .expect("the server stops on the shutdown token")
        .unwrap();
}

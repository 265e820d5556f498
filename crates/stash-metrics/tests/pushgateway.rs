//! Pushes to the real Prometheus Pushgateway (Debian's `prometheus-pushgateway`, started by
//! `stash_testenv`) and reads the metrics back from its `/metrics`.

#![allow(clippy::float_cmp, reason = "the values read back are exact in f64")]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use pretty_assertions::assert_eq;
use stash_api::phase::HostBackupPhase;
use stash_api::v1beta1::{FileStats, HostBackupStats, SnapshotStats};
use stash_metrics::repository::RepositoryLabels;
use stash_metrics::{
    Metric, PushError, Pushgateway, SessionLabels, TargetLabels, backup, job_name, repository,
};
use stash_testenv::pushgateway::Pushgateway as TestGateway;

/// One sample line of the text format: name, labels (unescaped), value.
#[derive(Debug, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line
        .rsplit_once(' ')
        .expect("a sample line ends with its value");
    let (name, mut rest) = series.split_once('{').unwrap_or((series, "}"));
    let mut labels = BTreeMap::new();
    while let Some((key, after)) = rest.split_once("=\"") {
        let key = key.trim_start_matches(',');
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("a closed label value") {
                (_, '\\') => match chars.next().expect("an escaped character").1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.to_owned(), value);
        rest = &after[end + 1..];
    }
    Sample {
        name: name.to_owned(),
        labels,
        value: value.parse().expect("a numeric value"),
    }
}

/// The samples of `name` in the group of `job`.
fn samples(gateway: &TestGateway, name: &str, job: &str) -> Vec<Sample> {
    gateway
        .samples(name)
        .iter()
        .map(|line| parse_sample(line))
        .filter(|s| s.labels.get("job").map(String::as_str) == Some(job))
        .collect()
}

fn value_of(gateway: &TestGateway, name: &str, job: &str) -> f64 {
    let found = samples(gateway, name, job);
    assert_eq!(found.len(), 1, "{name} in job {job}: {found:?}");
    found[0].value
}

fn session_labels(name: &str) -> SessionLabels {
    SessionLabels {
        invoker_kind: "BackupConfiguration".into(),
        invoker_name: name.into(),
        namespace: "demo".into(),
        driver: "Restic".into(),
        repository: Some("s3-repo".into()),
    }
}

fn target_labels() -> TargetLabels {
    TargetLabels {
        kind: "Deployment".into(),
        group: "apps".into(),
        name: "stash-demo".into(),
    }
}

fn host_stats(hostname: &str) -> HostBackupStats {
    HostBackupStats {
        hostname: Some(hostname.into()),
        phase: Some(HostBackupPhase::Succeeded),
        duration: Some("1m3s".into()),
        error: None,
        snapshots: Some(vec![SnapshotStats {
            name: Some("4fa8c2d1".into()),
            path: Some("/source/data".into()),
            total_size: Some("2.500 MiB".into()),
            uploaded: Some("1.000 KiB".into()),
            processing_time: Some("0:42".into()),
            file_stats: Some(FileStats {
                total_files: Some(12),
                new_files: Some(4),
                modified_files: Some(1),
                unmodified_files: Some(7),
            }),
        }]),
        progress: None,
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn host_and_session_metrics_pushed_to_a_job_are_read_back_with_their_labels_and_values() {
    let gateway = TestGateway::start();
    let pusher = Pushgateway::new(&gateway.url()).unwrap();
    let session = session_labels("deployment-backup");
    let job = job_name("BackupConfiguration", "demo", "deployment-backup");
    assert_eq!(job, "backupconfiguration-demo-deployment-backup");

    pusher
        .push(
            &job,
            &backup::host(&session, &target_labels(), &host_stats("host-0")),
        )
        .await
        .unwrap();
    let finished = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_600_007);
    pusher
        .push(
            &job,
            &backup::session(&session, true, Duration::from_secs(75), 1, finished),
        )
        .await
        .unwrap();

    let host = samples(&gateway, "stash_backup_host_backup_success", &job);
    assert_eq!(
        host,
        [Sample {
            name: "stash_backup_host_backup_success".into(),
            labels: labels(&[
                ("driver", "Restic"),
                ("group", "apps"),
                ("hostname", "host-0"),
                ("instance", ""),
                ("invoker_kind", "BackupConfiguration"),
                ("invoker_name", "deployment-backup"),
                ("job", &job),
                ("kind", "Deployment"),
                ("name", "stash-demo"),
                ("namespace", "demo"),
                ("repository", "s3-repo"),
            ]),
            value: 1.0,
        }]
    );
    let host_figures = [
        ("stash_backup_host_backup_duration_seconds", 63.0),
        ("stash_backup_host_data_size_bytes", 2.5 * 1024.0 * 1024.0),
        ("stash_backup_host_data_uploaded_bytes", 1024.0),
        ("stash_backup_host_data_processing_time_seconds", 42.0),
        ("stash_backup_host_files_total", 12.0),
        ("stash_backup_host_files_new", 4.0),
        ("stash_backup_host_files_modified", 1.0),
        ("stash_backup_host_files_unmodified", 7.0),
        ("stash_appscode_com_backupsession_host_backup_success", 1.0),
        (
            "stash_appscode_com_backupsession_host_data_size_bytes",
            2.5 * 1024.0 * 1024.0,
        ),
    ];
    for (name, expected) in host_figures {
        assert_eq!(value_of(&gateway, name, &job), expected, "{name}");
    }

    // The session push added its names; the host's, pushed before, are still there.
    let session_samples = samples(&gateway, "stash_backup_session_success", &job);
    assert_eq!(session_samples.len(), 1);
    assert_eq!(
        session_samples[0].labels,
        labels(&[
            ("driver", "Restic"),
            ("instance", ""),
            ("invoker_kind", "BackupConfiguration"),
            ("invoker_name", "deployment-backup"),
            ("job", &job),
            ("namespace", "demo"),
            ("repository", "s3-repo"),
        ])
    );
    let session_figures = [
        ("stash_backup_session_success", 1.0),
        ("stash_backup_session_duration_seconds", 75.0),
        ("stash_backup_target_count_total", 1.0),
        ("stash_backup_last_success_time_seconds", 1_764_600_007.0),
        ("stash_appscode_com_backupsession_success", 1.0),
        ("stash_appscode_com_backupsession_duration_seconds", 75.0),
    ];
    for (name, expected) in session_figures {
        assert_eq!(value_of(&gateway, name, &job), expected, "{name}");
    }
    assert_eq!(
        value_of(&gateway, "stash_backup_host_files_total", &job),
        12.0,
        "the session push removed the host metrics"
    );
}

#[tokio::test]
async fn a_failed_session_replaces_success_with_zero_and_leaves_the_last_success_figures() {
    let gateway = TestGateway::start();
    let pusher = Pushgateway::new(&gateway.url()).unwrap();
    let session = session_labels("nightly");
    let job = job_name("BackupConfiguration", "demo", "nightly");
    let finished = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);

    pusher
        .push(
            &job,
            &backup::session(&session, true, Duration::from_secs(5), 1, finished),
        )
        .await
        .unwrap();
    let failed = backup::session(
        &session,
        false,
        Duration::from_secs(9),
        1,
        SystemTime::now(),
    );
    assert_eq!(failed.len(), 2);
    pusher.push(&job, &failed).await.unwrap();

    assert_eq!(
        value_of(&gateway, "stash_backup_session_success", &job),
        0.0
    );
    assert_eq!(
        value_of(&gateway, "stash_appscode_com_backupsession_success", &job),
        0.0
    );
    // Add semantics: the failure did not touch the time of the last success.
    assert_eq!(
        value_of(&gateway, "stash_backup_last_success_time_seconds", &job),
        1_700_000_000.0
    );
}

#[tokio::test]
async fn hosts_pushed_into_their_own_groups_of_one_job_all_stay() {
    let gateway = TestGateway::start();
    let pusher = Pushgateway::new(&gateway.url()).unwrap();
    let session = session_labels("statefulset-backup");
    let job = job_name("BackupConfiguration", "demo", "statefulset-backup");
    for host in ["host-0", "host-1"] {
        pusher
            .push_grouped(
                &job,
                &[("hostname", host)],
                &backup::host(&session, &target_labels(), &host_stats(host)),
            )
            .await
            .unwrap();
    }
    let mut hosts: Vec<String> = samples(&gateway, "stash_backup_host_backup_success", &job)
        .into_iter()
        .map(|s| s.labels["hostname"].clone())
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["host-0", "host-1"]);
}

#[tokio::test]
async fn label_values_with_quotes_backslashes_and_newlines_arrive_unchanged() {
    let gateway = TestGateway::start();
    let pusher = Pushgateway::new(&gateway.url()).unwrap();
    let odd = "C:\\backups \"weekly\"\nsecond line";
    let metrics = repository::metrics(
        &RepositoryLabels {
            name: "odd-repo".into(),
            namespace: "demo".into(),
            backend: "s3".into(),
            bucket: Some("stash".into()),
            prefix: Some(odd.into()),
        },
        Some(true),
        4096,
        3,
        1,
    );
    pusher
        .push("repository-demo-odd-repo", &metrics)
        .await
        .unwrap();

    let found = samples(
        &gateway,
        "stash_repository_size_bytes",
        "repository-demo-odd-repo",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].labels["prefix"], odd);
    assert_eq!(found[0].labels["bucket"], "stash");
    assert_eq!(found[0].value, 4096.0);
    assert_eq!(
        value_of(
            &gateway,
            "stash_appscode_com_repository_snapshot_cleaned",
            "repository-demo-odd-repo"
        ),
        1.0
    );
}

#[tokio::test]
async fn a_push_clashing_with_the_gateways_metrics_is_rejected_naming_the_url_and_status() {
    let gateway = TestGateway::start();
    let pusher = Pushgateway::new(&gateway.url()).unwrap();
    // Another client's counter of the same name: a gauge of that name cannot join it.
    gateway.push("job-a", "# TYPE stash_clash counter\nstash_clash 1\n");
    let err = pusher
        .push(
            "job-b",
            &[Metric::gauge("stash_clash", "a gauge", &[], 1.0)],
        )
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, PushError::Rejected { status: 400, .. }),
        "{message}"
    );
    assert!(
        message.contains(&format!("{}/metrics/job/job-b", gateway.url())),
        "{message}"
    );
    assert!(!err.is_temporary());
}

#[tokio::test]
async fn an_unreachable_pushgateway_gives_an_error_naming_its_url() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let pusher = Pushgateway::new(&url).unwrap();
    let session = session_labels("gone");
    let err = pusher
        .push(
            "backupconfiguration-demo-gone",
            &backup::session(&session, true, Duration::from_secs(1), 1, SystemTime::now()),
        )
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, PushError::Unreachable { .. }), "{message}");
    assert!(
        message.contains(&format!("{url}/metrics/job/backupconfiguration-demo-gone")),
        "{message}"
    );
    assert!(message.contains("--pushgateway-url"), "{message}");
    assert!(err.is_temporary());
}

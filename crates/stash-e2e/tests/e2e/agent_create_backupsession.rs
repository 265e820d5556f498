//! `stash_agent::create_backupsession::run`, what the trigger CronJob runs on every tick, against the
//! real API server (no operator running): the BackupSession of Stash's BackupConfiguration example is
//! named, labelled and owned as Stash does it, garbage-collected with its invoker, never fails on a
//! name taken in the same second, and a missing invoker is named in the error.

// Kind names (BackupConfiguration, BackupSession) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use stash_agent::create_backupsession::{
    self, CreateBackupSession, CreateBackupSessionError, Invoker, InvokerKind,
};
use stash_api::common::RetryConfig;
use stash_api::labels;
use stash_api::v1beta1::{BackupBatch, BackupConfiguration, BackupSession};
use stash_testenv::{TestEnv, wait_for};

use crate::TIMEOUT;

const EXAMPLE: &str = include_str!(
    "../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
);

/// Stash's example BackupConfiguration, created in `namespace` with `retryConfig.maxRetry: 2`.
async fn create_example(client: Client, namespace: &str) -> BackupConfiguration {
    let mut bc: BackupConfiguration = serde_yaml::from_str(EXAMPLE).unwrap();
    bc.metadata.namespace = Some(namespace.to_owned());
    bc.spec.retry_config = Some(RetryConfig {
        max_retry: Some(2),
        delay: None,
    });
    Api::<BackupConfiguration>::namespaced(client, namespace)
        .create(&PostParams::default(), &bc)
        .await
        .expect("create the example BackupConfiguration")
}

fn args(namespace: &str, name: &str) -> CreateBackupSession {
    CreateBackupSession {
        invoker_kind: InvokerKind::BackupConfiguration,
        invoker_name: name.to_owned(),
        namespace: namespace.to_owned(),
    }
}

fn unix_now() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since_epoch.as_secs()).unwrap()
}

fn unix_suffix(session_name: &str) -> i64 {
    session_name
        .rsplit_once('-')
        .and_then(|(_, suffix)| suffix.parse().ok())
        .unwrap_or_else(|| panic!("`{session_name}` does not end in -<unix seconds>"))
}

#[tokio::test]
async fn create_backupsession_creates_a_session_owned_and_labelled_by_its_backup_configuration_that_gc_removes_with_it()
 {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let bc = create_example(env.client(), &ns).await;

    let before = unix_now();
    let created = create_backupsession::run(env.client(), &args(&ns, "deployment-backup"))
        .await
        .expect("create-backupsession");
    let after = unix_now();

    assert_eq!(created.namespace, *ns);
    assert!(
        created.name.starts_with("deployment-backup-")
            && (before..=after).contains(&unix_suffix(&created.name)),
        "name {} is not deployment-backup-<now>",
        created.name
    );

    let sessions: Api<BackupSession> = Api::namespaced(env.client(), &ns);
    let session = sessions
        .get(&created.name)
        .await
        .expect("read the BackupSession back");
    let session_labels = session.labels();
    for (key, value) in [
        (labels::LABEL_INVOKER_TYPE, "BackupConfiguration"),
        (labels::LABEL_INVOKER_NAME, "deployment-backup"),
        (labels::LABEL_COMPONENT, labels::COMPONENT_BACKUP),
        (labels::LABEL_MANAGED_BY, labels::MANAGED_BY),
        (labels::LABEL_TARGET_KIND, "Deployment"),
        (labels::LABEL_TARGET_NAME, "stash-demo"),
        (labels::LABEL_TARGET_NAMESPACE, ns.name()),
    ] {
        assert_eq!(
            session_labels.get(key).map(String::as_str),
            Some(value),
            "label {key} in {session_labels:?}"
        );
    }

    let owners = session.owner_references();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners[0].api_version, "stash.appscode.com/v1beta1");
    assert_eq!(owners[0].kind, "BackupConfiguration");
    assert_eq!(owners[0].name, "deployment-backup");
    assert_eq!(Some(&owners[0].uid), bc.metadata.uid.as_ref());
    assert_eq!(owners[0].controller, Some(true));

    let invoker = session.spec.invoker.as_ref().expect("spec.invoker");
    assert_eq!(invoker.api_group.as_deref(), Some("stash.appscode.com"));
    assert_eq!(invoker.kind, "BackupConfiguration");
    assert_eq!(invoker.name, "deployment-backup");
    assert_eq!(session.spec.retry_left, Some(2));
    let managers: Vec<_> = session
        .managed_fields()
        .iter()
        .filter_map(|entry| entry.manager.as_deref())
        .collect();
    assert_eq!(managers, [labels::FIELD_MANAGER_AGENT]);

    // The invoker is the session's controller: kube-controller-manager's garbage collector removes the
    // session once the BackupConfiguration is gone.
    Api::<BackupConfiguration>::namespaced(env.client(), &ns)
        .delete("deployment-backup", &DeleteParams::default())
        .await
        .expect("delete the BackupConfiguration");
    wait_for(
        "the garbage collector to delete the BackupSession of the deleted BackupConfiguration",
        TIMEOUT,
        || {
            let sessions = sessions.clone();
            let name = created.name.clone();
            async move {
                match sessions.get_opt(&name).await {
                    Ok(None) => Ok(()),
                    Ok(Some(s)) => Err(format!(
                        "{name} still there, deletionTimestamp {:?}",
                        s.metadata.deletion_timestamp
                    )),
                    Err(err) => Err(err.to_string()),
                }
            }
        },
    )
    .await;
}

#[tokio::test]
async fn create_backupsession_takes_the_next_free_second_when_this_seconds_names_are_taken() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let bc = create_example(env.client(), &ns).await;

    // Another tick already took the names of this second and the next two.
    let now = unix_now();
    let sessions: Api<BackupSession> = Api::namespaced(env.client(), &ns);
    let invoker = Invoker::Configuration(Box::new(bc));
    for second in now..now + 3 {
        let taken = create_backupsession::build_backup_session(&invoker, second).unwrap();
        sessions
            .create(&PostParams::default(), &taken)
            .await
            .expect("create a session for a taken name");
    }

    let created = create_backupsession::run(env.client(), &args(&ns, "deployment-backup"))
        .await
        .expect("create-backupsession despite the taken names");
    assert!(
        unix_suffix(&created.name) >= now + 3,
        "{} reuses a taken second (taken: {now}..{})",
        created.name,
        now + 3
    );
    let all = sessions.list(&ListParams::default()).await.unwrap();
    assert_eq!(all.items.len(), 4, "three taken + the new one");
}

#[tokio::test]
async fn create_backupsession_for_a_missing_backup_configuration_names_it_and_the_flags_to_fix() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;

    let err = create_backupsession::run(env.client(), &args(&ns, "no-such-backup"))
        .await
        .expect_err("a missing invoker is an error");
    assert!(
        matches!(err, CreateBackupSessionError::InvokerNotFound { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "BackupConfiguration {}/no-such-backup not found; create it, or fix \
             --invoker-kind/--invoker-name (and the pod's namespace) of the trigger CronJob",
            ns.name()
        )
    );
    let sessions: Api<BackupSession> = Api::namespaced(env.client(), &ns);
    assert!(
        sessions
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "no BackupSession without an invoker"
    );
}

const BATCH_EXAMPLE: &str =
    include_str!("../../../stash-api/tests/fixtures/stash-examples/backupbatch.yaml");

#[tokio::test]
async fn create_backupsession_for_a_backup_batch_carries_the_batch_labels_and_the_defaulted_max_retry()
 {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let mut batch: BackupBatch = serde_yaml::from_str(BATCH_EXAMPLE).unwrap();
    batch.metadata.namespace = Some(ns.name().to_owned());
    batch.metadata.labels = Some([("app".to_owned(), "wordpress".to_owned())].into());
    // An empty retryConfig: the CRD defaults maxRetry to 1, as Stash's does.
    batch.spec.retry_config = Some(RetryConfig::default());
    let batch = Api::<BackupBatch>::namespaced(env.client(), &ns)
        .create(&PostParams::default(), &batch)
        .await
        .expect("create the example BackupBatch");

    let args = CreateBackupSession {
        invoker_kind: InvokerKind::BackupBatch,
        invoker_name: "deploy-backup-batch".to_owned(),
        namespace: ns.name().to_owned(),
    };
    let created = create_backupsession::run(env.client(), &args)
        .await
        .expect("create-backupsession");
    assert!(
        created.name.starts_with("deploy-backup-batch-"),
        "{created:?}"
    );

    let session = Api::<BackupSession>::namespaced(env.client(), &ns)
        .get(&created.name)
        .await
        .expect("read the BackupSession back");
    let session_labels = session.labels();
    assert_eq!(session_labels["app"], "wordpress");
    assert_eq!(session_labels[labels::LABEL_INVOKER_TYPE], "BackupBatch");
    assert_eq!(
        session_labels[labels::LABEL_INVOKER_NAME],
        "deploy-backup-batch"
    );
    assert!(
        !session_labels.contains_key(labels::LABEL_TARGET_KIND),
        "a batch has one target per member, so no target labels: {session_labels:?}"
    );
    let owner = &session.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), Some(&owner.uid)),
        ("BackupBatch", batch.metadata.uid.as_ref())
    );
    assert_eq!(
        session.spec.invoker.as_ref().map(|i| i.kind.as_str()),
        Some("BackupBatch")
    );
    assert_eq!(session.spec.retry_left, Some(1));
}

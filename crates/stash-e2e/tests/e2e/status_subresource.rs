//! Status written through the status subresource reads back unchanged, for the shapes the
//! operator and agents write (Stash's own field names and values), and spec writes never
//! touch it.

use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::{BackupSession, RestoreSession};
use stash_testenv::TestEnv;

fn backup_session_status() -> serde_json::Value {
    json!({
        "phase": "Succeeded",
        "sessionDuration": "43s",
        "conditions": [{
            "type": "BackendRepositoryInitialized",
            "status": "True",
            "reason": "BackendRepositoryFound",
            "message": "Repository exist in the backend.",
            "lastTransitionTime": "2026-11-24T10:00:00Z"
        }, {
            "type": "MetricsPushed", "status": "True", "reason": "SuccessfullyPushedMetrics",
            "lastTransitionTime": "2026-11-24T10:00:43Z"
        }],
        "targets": [{
            "ref": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "stash-demo"},
            "totalHosts": 1,
            "phase": "Succeeded",
            "preBackupActions": ["InitializeBackendRepository"],
            "postBackupActions": ["ApplyRetentionPolicy", "VerifyRepositoryIntegrity", "SendRepositoryMetrics"],
            "stats": [{
                "hostname": "host-0",
                "phase": "Succeeded",
                "duration": "2.125s",
                "snapshots": [{
                    "name": "0d9826f7",
                    "path": "/source/data",
                    "totalSize": "52.861 MiB",
                    "uploaded": "3.370 MiB",
                    "processingTime": "0:01",
                    "fileStats": {"totalFiles": 4, "newFiles": 4, "modifiedFiles": 0, "unmodifiedFiles": 0}
                }]
            }],
            "conditions": [{"type": "BackupExecutorEnsured", "status": "True", "reason": "SuccessfullyEnsuredBackupExecutor",
                            "lastTransitionTime": "2026-11-24T10:00:01Z"}]
        }]
    })
}

#[tokio::test]
async fn backup_session_status_written_through_the_subresource_reads_back_unchanged() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let api: Api<BackupSession> = Api::namespaced(env.client(), &ns);
    let session: BackupSession = serde_json::from_value(json!({
        "apiVersion": "stash.appscode.com/v1beta1",
        "kind": "BackupSession",
        "metadata": {"name": "deployment-backup-1764000000",
                     "labels": {"stash.appscode.com/invoker-type": "BackupConfiguration",
                                "stash.appscode.com/invoker-name": "deployment-backup"}},
        "spec": {"invoker": {"apiGroup": "stash.appscode.com", "kind": "BackupConfiguration", "name": "deployment-backup"}}
    }))
    .unwrap();
    api.create(&PostParams::default(), &session)
        .await
        .expect("create BackupSession");

    let status = backup_session_status();
    // The typed status accepts what Stash writes …
    let typed: stash_api::v1beta1::BackupSessionStatus =
        serde_json::from_value(status.clone()).unwrap();
    let params = PatchParams::apply("stash.appscode.com/operator").force();
    let patch = json!({"apiVersion": "stash.appscode.com/v1beta1", "kind": "BackupSession", "status": typed});
    api.patch_status(
        "deployment-backup-1764000000",
        &params,
        &Patch::Apply(&patch),
    )
    .await
    .expect("patch status");

    // … and the server keeps every field of it.
    let read = api
        .get_status("deployment-backup-1764000000")
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(read.status.as_ref().unwrap()).unwrap(),
        status
    );

    // A spec write through the main resource leaves status alone, and a status in it is ignored.
    let mut changed = read.clone();
    changed.metadata.managed_fields = None;
    changed.spec.retry_left = Some(2);
    changed.status = None;
    let replaced = api
        .replace(
            "deployment-backup-1764000000",
            &PostParams::default(),
            &changed,
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(replaced.status.unwrap()).unwrap(),
        status
    );
}

#[tokio::test]
async fn repository_and_restore_session_status_read_back_unchanged() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;

    let repos: Api<Repository> = Api::namespaced(env.client(), &ns);
    let repo: Repository = serde_json::from_value(json!({
        "apiVersion": "stash.appscode.com/v1alpha1", "kind": "Repository",
        "metadata": {"name": "s3-repo"},
        "spec": {"backend": {"s3": {"endpoint": "s3.amazonaws.com", "bucket": "stash-demo", "prefix": "/demo/deployment"},
                             "storageSecretName": "s3-secret"}}
    }))
    .unwrap();
    repos
        .create(&PostParams::default(), &repo)
        .await
        .expect("create Repository");
    let repo_status = json!({
        "observedGeneration": 1,
        "integrity": true,
        "totalSize": "2.567 KiB",
        "snapshotCount": 5,
        "snapshotsRemovedOnLastCleanup": 1,
        "lastBackupTime": "2026-11-24T10:00:00Z",
        "references": [{"apiGroup": "stash.appscode.com", "kind": "BackupConfiguration", "namespace": ns.name(), "name": "deployment-backup"}]
    });
    let params = PatchParams::apply("stash.appscode.com/agent").force();
    repos
        .patch_status("s3-repo", &params, &Patch::Apply(&json!({"apiVersion": "stash.appscode.com/v1alpha1", "kind": "Repository", "status": repo_status})))
        .await
        .expect("patch Repository status");
    let read = repos.get_status("s3-repo").await.unwrap();
    assert_eq!(
        serde_json::to_value(read.status.unwrap()).unwrap(),
        repo_status
    );

    let restores: Api<RestoreSession> = Api::namespaced(env.client(), &ns);
    let restore: RestoreSession = serde_json::from_value(json!({
        "apiVersion": "stash.appscode.com/v1beta1", "kind": "RestoreSession",
        "metadata": {"name": "deployment-restore"},
        "spec": {"repository": {"name": "s3-repo"},
                 "target": {"ref": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "stash-recovered"},
                            "volumeMounts": [{"name": "source-data", "mountPath": "/source/data"}],
                            "rules": [{"paths": ["/source/data"]}]}}
    }))
    .unwrap();
    restores
        .create(&PostParams::default(), &restore)
        .await
        .expect("create RestoreSession");
    let restore_status = json!({
        "phase": "Succeeded",
        "totalHosts": 1,
        "sessionDuration": "12s",
        "stats": [{"hostname": "host-0", "phase": "Succeeded", "duration": "1.5s"}],
        "conditions": [{"type": "RestoreCompleted", "status": "True", "reason": "PostRestoreTasksExecuted",
                        "lastTransitionTime": "2026-11-24T10:00:12Z"}]
    });
    restores
        .patch_status("deployment-restore", &params, &Patch::Apply(&json!({"apiVersion": "stash.appscode.com/v1beta1", "kind": "RestoreSession", "status": restore_status})))
        .await
        .expect("patch RestoreSession status");
    let read = restores.get_status("deployment-restore").await.unwrap();
    assert_eq!(
        serde_json::to_value(read.status.unwrap()).unwrap(),
        restore_status
    );
}

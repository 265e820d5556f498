//! A Job whose pod runs the real `stash` binary through the pod runner.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams, PostParams};
use stash_testenv::{STASH_IMAGE, TestEnv, wait_for};

use crate::TIMEOUT;

const PASSWORD: &str = "not-a-secret";

/// A Job that initializes a repository on a PVC (init container `stash init`),
/// then backs up a hostPath directory into it (container `stash backup`). The
/// password comes from a Secret, the host name from the downward API.
fn backup_job(name: &str, host_path: &str) -> Job {
    let env = serde_json::json!([
        {"name": "RESTIC_REPOSITORY", "value": "/stash/repo"},
        {"name": "RESTIC_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "repo-password", "key": "RESTIC_PASSWORD"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]);
    let mounts = serde_json::json!([
        {"name": "repo", "mountPath": "/stash"},
        {"name": "data", "mountPath": "/source/data", "readOnly": true},
    ]);
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "initContainers": [{"name": "init-repo", "image": STASH_IMAGE, "args": ["init"], "env": env, "volumeMounts": mounts}],
                "containers": [{
                    "name": "backup", "image": STASH_IMAGE,
                    "args": ["backup", "--host", "$(POD_NAME)", "--tag", "e2e", "/source/data"],
                    "env": env, "volumeMounts": mounts,
                }],
                "volumes": [
                    {"name": "repo", "persistentVolumeClaim": {"claimName": "backup-repo"}},
                    {"name": "data", "hostPath": {"path": host_path, "type": "Directory"}},
                ],
            }},
        },
    }))
    .expect("static Job")
}

#[tokio::test]
#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end story: set up, run, check the pod, restore"
)]
async fn job_whose_pod_runs_stash_init_and_backup_completes_and_the_snapshot_restores() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();

    let host_path = format!("/data/{}", ns.name());
    let data = ns.host_path(&host_path);
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("hello.txt"), "hello from the e2e test\n").unwrap();
    std::fs::write(
        data.join("sub/numbers.bin"),
        (0..=255u8).cycle().take(300_000).collect::<Vec<u8>>(),
    )
    .unwrap();

    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "repo-password"}, "stringData": {"RESTIC_PASSWORD": PASSWORD},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create Secret");
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    jobs.create(&PostParams::default(), &backup_job("backup", &host_path))
        .await
        .expect("create Job");

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let logs = || async {
        let list = pods
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        list.iter()
            .filter_map(|p| p.metadata.name.clone())
            .map(|p| {
                format!(
                    "--- {p} init-repo:\n{}\n--- {p} backup:\n{}",
                    ns.container_log(&p, "init-repo"),
                    ns.container_log(&p, "backup")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let outcome = wait_for("the Job to reach Complete or Failed", TIMEOUT, || async {
        let job = jobs.get("backup").await.map_err(|e| e.to_string())?;
        let conds = job.status.and_then(|s| s.conditions).unwrap_or_default();
        conds
            .iter()
            .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
            .map(|c| c.type_.clone())
            .ok_or_else(|| {
                format!(
                    "conditions {:?}",
                    conds
                        .iter()
                        .map(|c| (&c.type_, &c.status))
                        .collect::<Vec<_>>()
                )
            })
    })
    .await;
    assert_eq!(
        outcome,
        "Complete",
        "the Job failed; container logs:\n{}",
        logs().await
    );

    // The pod ended as the kubelet would report it.
    let pod = pods
        .list(&ListParams::default().labels("job-name=backup"))
        .await
        .unwrap()
        .items
        .pop()
        .expect("the Job's pod");
    let status = pod.status.clone().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Succeeded"));
    for cs in status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
    {
        let terminated = cs
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .expect("container terminated");
        assert_eq!(terminated.exit_code, 0, "container {}", cs.name);
    }

    // The repository on the claim's directory has the snapshot: restore it with the same binary and compare.
    let pod_name = pod.metadata.name.clone().unwrap();
    let repo = ns.pvc_dir("backup-repo").join("repo");
    let target = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env.pod_runner().stash_bin())
        .args(["restore", "-r"])
        .arg(&repo)
        .args(["latest", "--host", &pod_name, "--target"])
        .arg(target.path())
        .env("RESTIC_PASSWORD", PASSWORD)
        .output()
        .expect("run stash restore");
    assert!(
        out.status.success(),
        "stash restore failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs().await
    );
    // The pod saw the hostPath at its mountPath: the snapshot holds /source/data.
    let restored = target.path().join("source/data");
    assert_eq!(
        std::fs::read_to_string(restored.join("hello.txt")).unwrap(),
        "hello from the e2e test\n"
    );
    assert_eq!(
        std::fs::read(restored.join("sub/numbers.bin")).unwrap(),
        std::fs::read(data.join("sub/numbers.bin")).unwrap()
    );
}

#[tokio::test]
async fn job_whose_stash_container_fails_reports_the_exit_code_and_the_job_fails() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let job: Job = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "bad"},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "stash", "image": STASH_IMAGE, "args": ["no-such-subcommand"]}],
        }}},
    }))
    .unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create Job");
    wait_for("the Job to fail", TIMEOUT, || async {
        let job = jobs.get("bad").await.map_err(|e| e.to_string())?;
        let failed = job
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Failed" && c.status == "True");
        if failed {
            Ok(())
        } else {
            Err("not Failed".into())
        }
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    let pod = pods
        .list(&ListParams::default().labels("job-name=bad"))
        .await
        .unwrap()
        .items
        .pop()
        .expect("the Job's pod");
    let status = pod.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    let terminated = status.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .expect("terminated");
    let direct = std::process::Command::new(env.pod_runner().stash_bin())
        .arg("no-such-subcommand")
        .output()
        .unwrap();
    assert_ne!(terminated.exit_code, 0);
    assert_eq!(
        Some(terminated.exit_code),
        direct.status.code(),
        "the pod reports the exit code the binary returns"
    );
    let log = ns.container_log(pod.metadata.name.as_deref().unwrap(), "stash");
    assert!(log.contains("no-such-subcommand"), "container log:\n{log}");
}

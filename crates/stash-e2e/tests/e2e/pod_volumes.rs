//! Stash containers see their volumes where a kubelet puts them: each container runs in a
//! mount namespace of its own with every volumeMount bound at its `mountPath`.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use stash_testenv::{STASH_IMAGE, TestNamespace, wait_for};

use crate::TIMEOUT;

const PASSWORD: &str = "not-a-secret";

async fn run_to_completion(client: kube::Client, ns: &TestNamespace, pod: &Pod) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client, ns);
    let name = pod.metadata.name.clone().unwrap_or_default();
    pods.create(&PostParams::default(), pod)
        .await
        .expect("create Pod");
    wait_for("the pod to end", TIMEOUT, || async {
        let pod = pods.get(&name).await.map_err(|e| e.to_string())?;
        match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
            Some("Succeeded" | "Failed") => Ok(pod),
            other => Err(format!("phase {other:?}")),
        }
    })
    .await
}

fn logs(ns: &TestNamespace, pod: &str, containers: &[&str]) -> String {
    containers
        .iter()
        .map(|c| format!("--- {c}:\n{}", ns.container_log(pod, c)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `stash init` and `stash backup` (init containers) keep the repository in an emptyDir at
/// `/tmp`; the backup reads a PVC at `/source/data`; `stash restore` (the main container) finds
/// the repository in the same emptyDir and writes into a `subPath` of the PVC.
#[tokio::test]
async fn stash_containers_see_a_pvc_at_its_mount_path_and_share_an_emptydir_at_tmp() {
    let env = stash_testenv::TestEnv::shared().await;
    let ns = env.namespace().await;
    let source = ns.pvc_dir("source");
    std::fs::create_dir_all(source.join("data/sub")).unwrap();
    std::fs::write(source.join("data/hello.txt"), "hello from a PVC\n").unwrap();
    std::fs::write(source.join("data/sub/n.txt"), "42\n").unwrap();

    let env_vars = serde_json::json!([
        {"name": "RESTIC_REPOSITORY", "value": "/tmp/repo"},
        {"name": "RESTIC_PASSWORD", "value": PASSWORD},
    ]);
    let tmp = serde_json::json!({"name": "tmp-dir", "mountPath": "/tmp"});
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "volumes"},
        "spec": {
            "restartPolicy": "Never",
            "initContainers": [
                {"name": "init", "image": STASH_IMAGE, "args": ["init"], "env": env_vars, "volumeMounts": [tmp]},
                {"name": "backup", "image": STASH_IMAGE, "env": env_vars,
                 "args": ["backup", "--host", "volumes", "/source/data"],
                 "volumeMounts": [tmp, {"name": "source", "mountPath": "/source", "readOnly": true}]},
            ],
            "containers": [
                {"name": "restore", "image": STASH_IMAGE, "env": env_vars, "workingDir": "/restored",
                 "args": ["restore", "latest", "--target", "."],
                 "volumeMounts": [tmp, {"name": "source", "mountPath": "/restored", "subPath": "restored"}]},
            ],
            "volumes": [
                {"name": "source", "persistentVolumeClaim": {"claimName": "source"}},
                {"name": "tmp-dir", "emptyDir": {}},
            ],
        },
    }))
    .expect("static Pod");
    let done = run_to_completion(env.client(), &ns, &pod).await;
    let phase = done.status.and_then(|s| s.phase);
    assert_eq!(
        phase.as_deref(),
        Some("Succeeded"),
        "{}",
        logs(&ns, "volumes", &["init", "backup", "restore"])
    );

    // The snapshot holds the container path, and the restore landed in the claim's subPath.
    let restored = source.join("restored/source/data");
    assert_eq!(
        std::fs::read_to_string(restored.join("hello.txt")).unwrap(),
        "hello from a PVC\n"
    );
    assert_eq!(
        std::fs::read_to_string(restored.join("sub/n.txt")).unwrap(),
        "42\n"
    );
    // The repository lives in the pod's emptyDir, not in the host's /tmp.
    let empty_dir = env
        .pod_runner()
        .work_dir()
        .join("pods")
        .join(ns.name())
        .join("volumes/volumes/tmp-dir/repo");
    assert!(
        empty_dir.join("config").is_file(),
        "no repository in the emptyDir {}",
        empty_dir.display()
    );
}

#[tokio::test]
async fn a_read_only_volume_mount_cannot_be_written_by_the_container() {
    let env = stash_testenv::TestEnv::shared().await;
    let ns = env.namespace().await;
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "read-only"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "init", "image": STASH_IMAGE, "args": ["init"],
                "env": [{"name": "RESTIC_REPOSITORY", "value": "/repo/r"}, {"name": "RESTIC_PASSWORD", "value": PASSWORD}],
                "volumeMounts": [{"name": "repo", "mountPath": "/repo", "readOnly": true}],
            }],
            "volumes": [{"name": "repo", "persistentVolumeClaim": {"claimName": "repo"}}],
        },
    }))
    .expect("static Pod");
    let done = run_to_completion(env.client(), &ns, &pod).await;
    let log = ns.container_log("read-only", "init");
    assert_eq!(
        done.status.and_then(|s| s.phase).as_deref(),
        Some("Failed"),
        "{log}"
    );
    assert!(
        log.to_lowercase().contains("read-only"),
        "the error says why: {log}"
    );
    assert!(
        !ns.pvc_dir("repo").join("r").exists(),
        "nothing was written to the claim"
    );
}

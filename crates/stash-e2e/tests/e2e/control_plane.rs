//! The controller-manager's controllers and the garbage collector work against our pod runner.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use stash_testenv::{TestEnv, wait_for};

use crate::TIMEOUT;

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
            },
        },
    }))
    .expect("static Deployment")
}

async fn pods_of(api: &Api<Pod>, app: &str) -> Vec<Pod> {
    api.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("list pods")
        .items
}

#[tokio::test]
async fn deployment_gets_its_replicaset_and_running_ready_pods_from_the_controller_manager() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment("web", 2))
        .await
        .expect("create Deployment");

    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let replica_set = wait_for("the Deployment's ReplicaSet", TIMEOUT, || async {
        let list = rs
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        list.items
            .into_iter()
            .next()
            .ok_or_else(|| "no ReplicaSet".to_owned())
    })
    .await;
    let owner = &replica_set
        .metadata
        .owner_references
        .as_ref()
        .expect("ReplicaSet has an owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Deployment", "web")
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let running = wait_for(
        "2 pods bound to the pod runner's node, Running and Ready",
        TIMEOUT,
        || async {
            let list = pods_of(&pods, "web").await;
            let ready: Vec<Pod> = list
                .iter()
                .filter(|p| {
                    let status = p.status.clone().unwrap_or_default();
                    status.phase.as_deref() == Some("Running")
                        && status
                            .conditions
                            .iter()
                            .flatten()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                })
                .cloned()
                .collect();
            if ready.len() == 2 {
                Ok(ready)
            } else {
                Err(format!(
                    "{} pods, {} running and ready",
                    list.len(),
                    ready.len()
                ))
            }
        },
    )
    .await;
    for pod in &running {
        let spec = pod.spec.as_ref().expect("pod spec");
        assert_eq!(spec.node_name.as_deref(), Some(stash_testenv::NODE_NAME));
        assert_eq!(
            pod.metadata.owner_references.as_ref().expect("pod owner")[0].kind,
            "ReplicaSet"
        );
    }
    // The pod IPs are distinct, as EndpointSlices require.
    let ips: std::collections::BTreeSet<_> = running
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    assert_eq!(ips.len(), 2, "pod IPs {ips:?}");

    // The Deployment controller sees them as available.
    wait_for("Deployment status availableReplicas=2", TIMEOUT, || async {
        let d = deployments.get("web").await.map_err(|e| e.to_string())?;
        let available = d.status.and_then(|s| s.available_replicas).unwrap_or(0);
        if available == 2 {
            Ok(())
        } else {
            Err(format!("availableReplicas={available}"))
        }
    })
    .await;

    // Scaling down makes the runner act as the kubelet: the extra pod goes away.
    deployments
        .patch(
            "web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"replicas": 1}})),
        )
        .await
        .expect("scale down");
    wait_for("scale-down to 1 pod", TIMEOUT, || async {
        let n = pods_of(&pods, "web").await.len();
        if n == 1 {
            Ok(())
        } else {
            Err(format!("{n} pods"))
        }
    })
    .await;
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_its_dependents() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();

    // A Deployment: its ReplicaSet and pods go with it (background propagation).
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment("gc", 1))
        .await
        .expect("create Deployment");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    wait_for("the Deployment's pod", TIMEOUT, || async {
        let n = pods_of(&pods, "gc").await.len();
        if n == 1 {
            Ok(())
        } else {
            Err(format!("{n} pods"))
        }
    })
    .await;

    // And a plain owner reference between two ConfigMaps.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let owner = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "owner"}})).unwrap(),
        )
        .await
        .expect("create owner");
    let dependent: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": "dependent", "ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid.clone().unwrap(),
    }]}}))
    .unwrap();
    cms.create(&PostParams::default(), &dependent)
        .await
        .expect("create dependent");

    deployments
        .delete("gc", &DeleteParams::background())
        .await
        .expect("delete Deployment");
    cms.delete("owner", &DeleteParams::background())
        .await
        .expect("delete owner");

    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    wait_for("the garbage collector to remove the ReplicaSet, its pod and the dependent ConfigMap", TIMEOUT, || async {
        let rs_left = rs.list(&ListParams::default()).await.map_err(|e| e.to_string())?.items.len();
        let pods_left = pods_of(&pods, "gc").await.len();
        let dependent_left = cms.get_opt("dependent").await.map_err(|e| e.to_string())?.is_some();
        if rs_left == 0 && pods_left == 0 && !dependent_left {
            Ok(())
        } else {
            Err(format!("{rs_left} ReplicaSets, {pods_left} pods, dependent ConfigMap present: {dependent_left}"))
        }
    })
    .await;
}

#[tokio::test]
async fn kubectl_built_with_the_control_plane_lists_namespaces() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let out = env
        .kubectl()
        .args(["get", "ns", "-o", "name"])
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l == format!("namespace/{}", ns.name())),
        "kubectl get ns printed:\n{stdout}"
    );
    // The namespace is really there for the client too.
    Api::<Namespace>::all(env.client())
        .get(ns.name())
        .await
        .expect("namespace exists");
}

fn ready_count(pods: &[Pod]) -> usize {
    pods.iter()
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count()
}

#[tokio::test]
async fn daemonset_and_ordered_statefulset_get_ready_pods_on_the_pod_runner_node() {
    use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let template = |app: &str| {
        serde_json::json!({
            "metadata": {"labels": {"app": app}},
            "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
        })
    };
    let ds: DaemonSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "ds"},
        "spec": {"selector": {"matchLabels": {"app": "ds"}}, "template": template("ds")},
    }))
    .unwrap();
    let sts: StatefulSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "sts"},
        "spec": {"replicas": 2, "serviceName": "sts", "selector": {"matchLabels": {"app": "sts"}}, "template": template("sts")},
    }))
    .unwrap();
    Api::<DaemonSet>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &ds)
        .await
        .expect("create DaemonSet");
    Api::<StatefulSet>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &sts)
        .await
        .expect("create StatefulSet");

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    wait_for(
        "1 ready DaemonSet pod (the DaemonSet controller pins it to our node)",
        TIMEOUT,
        || async {
            let list = pods_of(&pods, "ds").await;
            if ready_count(&list) == 1 {
                Ok(())
            } else {
                Err(format!("{} pods, {} ready", list.len(), ready_count(&list)))
            }
        },
    )
    .await;
    // OrderedReady: sts-1 is created only once sts-0 is Running and Ready.
    wait_for(
        "StatefulSet pods sts-0 and sts-1 ready",
        TIMEOUT,
        || async {
            let list = pods_of(&pods, "sts").await;
            let names: Vec<_> = list
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            if ready_count(&list) == 2 {
                Ok(())
            } else {
                Err(format!("pods {names:?}, {} ready", ready_count(&list)))
            }
        },
    )
    .await;
    let mut names: Vec<_> = pods_of(&pods, "sts")
        .await
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    names.sort();
    assert_eq!(names, ["sts-0", "sts-1"]);
}

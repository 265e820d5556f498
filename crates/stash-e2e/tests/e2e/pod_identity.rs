//! A pod with the `ServiceAccount` identity reaches the API as its service account, through
//! kube's in-cluster configuration, so RBAC applies: what its Role allows in its own namespace
//! works, the same request for another namespace is forbidden.

use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ListParams, PostParams};
use stash_api::v1beta1::{BackupConfiguration, BackupSession};
use stash_testenv::pod_runner::IDENTITY_ANNOTATION;
use stash_testenv::{STASH_IMAGE, TestEnv, wait_for};

use crate::TIMEOUT;

const EXAMPLE: &str = include_str!(
    "../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
);

async fn create<K>(client: &kube::Client, ns: &str, value: serde_json::Value)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + k8s_openapi::serde::de::DeserializeOwned
        + k8s_openapi::serde::Serialize,
    K::DynamicType: Default,
{
    let object: K = serde_json::from_value(value).expect("a valid object");
    Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("create {object:?}: {e}"));
}

/// `ServiceAccount` `sidecar` with the Role a backup sidecar's service account could have: its
/// namespace's Secrets, invokers and sessions.
async fn grant_own_namespace(client: &kube::Client, ns: &str) {
    create::<ServiceAccount>(
        client,
        ns,
        serde_json::json!({"metadata": {"name": "sidecar"}}),
    )
    .await;
    create::<Role>(client, ns, serde_json::json!({
        "metadata": {"name": "sidecar"},
        "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
            {"apiGroups": ["stash.appscode.com"], "resources": ["backupconfigurations"], "verbs": ["get", "list"]},
            {"apiGroups": ["stash.appscode.com"], "resources": ["backupsessions"], "verbs": ["get", "list", "create"]},
        ],
    }))
    .await;
    create::<RoleBinding>(
        client,
        ns,
        serde_json::json!({
            "metadata": {"name": "sidecar"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "sidecar"},
            "subjects": [{"kind": "ServiceAccount", "name": "sidecar", "namespace": ns}],
        }),
    )
    .await;
}

async fn create_example_and_secret(client: &kube::Client, ns: &str, secret: &str) {
    let mut bc: BackupConfiguration = serde_yaml::from_str(EXAMPLE).expect("the example parses");
    bc.metadata.namespace = Some(ns.to_owned());
    Api::<BackupConfiguration>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &bc)
        .await
        .expect("create the BackupConfiguration");
    create::<Secret>(
        client,
        ns,
        serde_json::json!({"metadata": {"name": secret}, "stringData": {"k": "v"}}),
    )
    .await;
}

/// Runs `stash create-backupsession` (plus `extra` args) in a pod of `ServiceAccount` `sidecar`
/// with the `ServiceAccount` identity (a token bound to the pod) and returns its phase and log.
async fn trigger(
    client: &kube::Client,
    ns: &stash_testenv::TestNamespace,
    name: &str,
    extra: &[&str],
) -> (String, String) {
    let mut args = vec![
        "create-backupsession",
        "--invoker-kind=BackupConfiguration",
        "--invoker-name=deployment-backup",
    ];
    args.extend(extra);
    create::<Pod>(client, ns, serde_json::json!({
        "metadata": {"name": name, "annotations": {IDENTITY_ANNOTATION: "service-account"}},
        "spec": {"restartPolicy": "Never", "serviceAccountName": "sidecar", "containers": [{"name": "trigger", "image": STASH_IMAGE, "args": args}]},
    }))
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let (phase, message) = wait_for("the trigger pod to end", TIMEOUT, || async {
        let pod = pods.get(name).await.map_err(|e| e.to_string())?;
        let status = pod.status.unwrap_or_default();
        match status.phase {
            Some(p) if p == "Succeeded" || p == "Failed" => Ok((p, status.message)),
            other => Err(format!("phase {other:?}")),
        }
    })
    .await;
    let log = ns.container_log(name, "trigger");
    (phase, format!("pod message: {message:?}\nlog:\n{log}"))
}

#[tokio::test]
async fn a_service_account_pod_may_do_what_its_role_allows_in_its_namespace_and_is_forbidden_elsewhere()
 {
    let env = TestEnv::shared().await;
    let own = env.namespace().await;
    let other = env.namespace().await;
    let client = env.client();
    grant_own_namespace(&client, &own).await;
    create_example_and_secret(&client, &own, "mine").await;
    create_example_and_secret(&client, &other, "theirs").await;

    // The namespace comes from the service account's `namespace` file, the API from the
    // in-cluster env and token.
    let (phase, log) = trigger(&client, &own, "own", &[]).await;
    assert_eq!(phase, "Succeeded", "{log}");
    let sessions = |ns: String| {
        let client = client.clone();
        async move {
            Api::<BackupSession>::namespaced(client, &ns)
                .list(&ListParams::default())
                .await
                .expect("list BackupSessions")
                .items
                .len()
        }
    };
    assert_eq!(sessions(own.name().to_owned()).await, 1, "{log}");

    let other_ns = format!("--namespace={}", other.name());
    let (phase, log) = trigger(&client, &own, "elsewhere", &[&other_ns]).await;
    assert_eq!(phase, "Failed", "{log}");
    let user = format!("system:serviceaccount:{}:sidecar", own.name());
    assert!(
        log.contains("forbidden") && log.contains(&user),
        "the error says {user} is forbidden: {log}"
    );
    assert_eq!(sessions(other.name().to_owned()).await, 0);

    // The token the pod got reads its own namespace's Secret, not another namespace's.
    let token = env
        .pod_runner()
        .service_account_token(&own, "own")
        .expect("the pod got a service-account token");
    let mut config = env.config().clone();
    config.auth_info = serde_json::from_value(serde_json::json!({"token": token.trim()}))
        .expect("a token AuthInfo");
    let as_pod = kube::Client::try_from(config).expect("a client with the pod's token");
    Api::<Secret>::namespaced(as_pod.clone(), &own)
        .get("mine")
        .await
        .expect("the pod's identity reads its own namespace's Secret");
    match Api::<Secret>::namespaced(as_pod, &other)
        .get("theirs")
        .await
    {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("reading another namespace's Secret must be forbidden, got {other:?}"),
    }
}

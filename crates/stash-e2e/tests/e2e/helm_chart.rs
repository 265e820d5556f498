//! `deploy/chart`: `helm lint` passes, `helm template` renders the objects of `deploy/operator` (plus the
//! webhook certificate it generates), and the embedded-cluster rendering, applied to a fresh control plane,
//! runs an operator that is Ready and answers its webhooks. `helm` comes from `scripts/build-helm`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;
use stash_testenv::pushgateway::Pushgateway;
use stash_testenv::{Options, TestEnv, paths, servers};

use crate::TIMEOUT;
use crate::deploy_manifests::the_installed_operator_answers;

/// The helm `scripts/build-helm` builds, or a panic naming that script.
pub(crate) fn helm() -> PathBuf {
    let output = Command::new(paths::repo_root().join("scripts/build-helm"))
        .arg("--print-path")
        .output()
        .expect("run scripts/build-helm --print-path");
    assert!(
        output.status.success(),
        "helm is not built: run scripts/build-helm (or scripts/setup)\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

pub(crate) fn chart() -> PathBuf {
    paths::repo_root().join("deploy/chart")
}

/// Runs `command`, panicking with its output unless it succeeds; returns stdout.
pub(crate) fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

pub(crate) fn helm_template(extra: &[&str]) -> String {
    run(Command::new(helm())
        .args(["template", "stash"])
        .arg(chart())
        .args(["--namespace", "kube-system"])
        .args(extra))
}

pub(crate) fn documents(text: &str) -> Vec<Value> {
    text.split("\n---")
        .filter_map(|doc| serde_yaml::from_str::<Value>(doc).ok())
        .filter(|v| v.get("kind").is_some())
        .collect()
}

fn remove(value: &mut Value, path: &[&str]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = value;
    for key in parents {
        match at.get_mut(*key) {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Some(map) = at.as_mapping_mut() {
        map.remove(*last);
    }
}

/// The object without what only says who rendered it (labels, annotations) or what each render
/// generates anew (the certificate in the caBundles).
fn comparable(mut object: Value) -> Value {
    remove(&mut object, &["metadata", "labels"]);
    remove(&mut object, &["metadata", "annotations"]);
    remove(&mut object, &["spec", "template", "metadata"]);
    remove(&mut object, &["spec", "caBundle"]);
    if let Some(webhooks) = object.get_mut("webhooks").and_then(Value::as_sequence_mut) {
        for webhook in webhooks {
            remove(webhook, &["clientConfig", "caBundle"]);
        }
    }
    object
}

fn key(object: &Value) -> String {
    let field = |path: &[&str]| {
        path.iter()
            .try_fold(object, |v, k| v.get(*k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    format!(
        "{} {}/{}",
        field(&["kind"]),
        field(&["metadata", "namespace"]),
        field(&["metadata", "name"])
    )
}

fn by_key(objects: Vec<Value>) -> std::collections::BTreeMap<String, Value> {
    objects
        .into_iter()
        .map(|o| (key(&o), comparable(o)))
        .collect()
}

#[test]
fn helm_lint_passes_on_the_chart() {
    let out = run(Command::new(helm()).args(["lint", "--strict"]).arg(chart()));
    assert!(out.contains("0 chart(s) failed"), "{out}");
}

#[test]
fn the_chart_renders_the_objects_of_the_plain_manifests_plus_the_webhook_certificate() {
    let kubectl = paths::k8s_bin_dir()
        .unwrap_or_else(|e| panic!("{}", stash_testenv::error_chain(&e)))
        .join("kubectl");
    let plain = by_key(documents(&run(Command::new(&kubectl)
        .arg("kustomize")
        .arg(paths::repo_root().join("deploy/operator")))));
    let mut rendered = by_key(documents(&helm_template(&[])));
    let secret = rendered
        .remove("Secret kube-system/stash-apiserver-cert")
        .expect("the chart generates the webhook serving Secret");
    assert_eq!(
        secret.get("type").and_then(Value::as_str),
        Some("kubernetes.io/tls")
    );
    assert_eq!(
        plain.keys().collect::<Vec<_>>(),
        rendered.keys().collect::<Vec<_>>(),
        "the same objects"
    );
    for (key, object) in &plain {
        assert_eq!(
            object, &rendered[key],
            "{key}: deploy/chart renders it as deploy/operator has it"
        );
    }
}

/// The embedded-cluster rendering: loopback ports, the cluster's Pushgateway, the test image, CRDs.
fn render_for_the_embedded_cluster(dir: &Path, pushgateway_url: &str) -> (PathBuf, u16) {
    let secure_port = servers::free_port();
    let metrics_port = std::iter::repeat_with(servers::free_port)
        .find(|&p| p != secure_port)
        .unwrap();
    let rendered = helm_template(&[
        "--include-crds",
        "--set",
        "embedded.enabled=true",
        "--set",
        &format!("embedded.securePort={secure_port}"),
        "--set",
        &format!("embedded.metricsPort={metrics_port}"),
        "--set",
        &format!("pushgateway.url={pushgateway_url}"),
        "--set",
        "image.tag=test",
    ]);
    let file = dir.join("stash.yaml");
    std::fs::write(&file, rendered).unwrap();
    (file, metrics_port)
}

#[test]
fn the_rendered_chart_applied_to_the_embedded_cluster_runs_a_ready_operator() {
    let env = TestEnv::start(&Options {
        dir: None,
        install_crds: false,
        pod_runner: true,
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{}", stash_testenv::error_chain(&e)));
    let pushgateway = Pushgateway::start();
    let dir = tempfile::tempdir().unwrap();
    let (file, metrics_port) = render_for_the_embedded_cluster(dir.path(), &pushgateway.url());
    run(env
        .kubectl()
        .args(["apply", "--server-side", "-f"])
        .arg(&file));
    run(env.kubectl().args([
        "-n",
        "kube-system",
        "rollout",
        "status",
        "deployment/stash",
        &format!("--timeout={}s", TIMEOUT.as_secs()),
    ]));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let readyz = format!("http://127.0.0.1:{metrics_port}/readyz");
        stash_testenv::wait_for("the operator to answer /readyz", TIMEOUT, || async {
            match servers::get(&readyz) {
                Ok(r) if r.is_success() => Ok(()),
                Ok(r) => Err(format!("answered {}", r.status)),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        Box::pin(the_installed_operator_answers(env.client())).await;
    });
    drop(runtime);
    drop(env);
}

// `helm template` with the values a cluster operator sets: each test renders and reads the objects.

/// The rendered objects of `--set` pairs (release `stash` in kube-system).
fn render_with(values: &[&str]) -> Vec<Value> {
    let sets: Vec<String> = values.iter().map(|v| format!("--set={v}")).collect();
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    documents(&helm_template(&sets))
}

fn find<'a>(objects: &'a [Value], kind: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o.get("kind").and_then(Value::as_str) == Some(kind))
}

fn operator_deployment(objects: &[Value]) -> &Value {
    find(objects, "Deployment").expect("the chart renders the operator Deployment")
}

fn pod_spec(objects: &[Value]) -> &Value {
    &operator_deployment(objects)["spec"]["template"]["spec"]
}

fn container<'a>(objects: &'a [Value], name: &str) -> Option<&'a Value> {
    pod_spec(objects)["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str() == Some(name))
}

fn operator_args(objects: &[Value]) -> Vec<String> {
    container(objects, "operator").expect("an operator container")["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

fn has_arg(objects: &[Value], arg: &str) -> bool {
    operator_args(objects).iter().any(|a| a == arg)
}

fn service_ports(objects: &[Value]) -> Vec<u64> {
    find(objects, "Service").expect("the operator Service")["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_u64().unwrap())
        .collect()
}

#[test]
fn the_bundled_pushgateway_is_a_sidecar_of_the_operator_pod_that_executors_reach_through_the_service()
 {
    let objects = render_with(&["pushgateway.image.tag=v1.99.0"]);
    let sidecar = container(&objects, "pushgateway").expect("a pushgateway container");
    assert_eq!(sidecar["image"].as_str(), Some("prom/pushgateway:v1.99.0"));
    assert!(
        sidecar["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|a| a.as_str() == Some("--web.listen-address=:56789")),
        "the sidecar listens on Stash's port 56789: {sidecar:?}"
    );
    // The operator hands the URL to executors in other pods: loopback would not reach the sidecar.
    assert!(
        has_arg(
            &objects,
            "--pushgateway-url=http://stash.kube-system.svc:56789"
        ),
        "{:?}",
        operator_args(&objects)
    );
    assert!(service_ports(&objects).contains(&56789));
}

#[test]
fn a_pushgateway_url_of_ones_own_replaces_the_sidecar() {
    let objects = render_with(&[
        "pushgateway.enabled=false",
        "pushgateway.url=http://pushgateway.monitoring.svc:9091",
    ]);
    assert!(container(&objects, "pushgateway").is_none());
    assert!(has_arg(
        &objects,
        "--pushgateway-url=http://pushgateway.monitoring.svc:9091"
    ));
    assert!(!service_ports(&objects).contains(&56789));
}

#[test]
fn rendering_without_any_pushgateway_fails_naming_the_values_to_set() {
    let output = Command::new(helm())
        .args(["template", "stash"])
        .arg(chart())
        .args(["--set", "pushgateway.enabled=false"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "helm template succeeded");
    assert!(
        stderr.contains("pushgateway.url") && stderr.contains("pushgateway.enabled"),
        "{stderr}"
    );
}

#[test]
fn the_operator_pod_runs_as_non_root_with_a_read_only_root_filesystem_and_no_capabilities() {
    let objects = render_with(&[]);
    let pod = pod_spec(&objects);
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(65534));
    for name in ["operator", "pushgateway"] {
        let context = &container(&objects, name).unwrap()["securityContext"];
        assert_eq!(
            context["readOnlyRootFilesystem"].as_bool(),
            Some(true),
            "{name}"
        );
        assert_eq!(
            context["allowPrivilegeEscalation"].as_bool(),
            Some(false),
            "{name}"
        );
        assert_eq!(
            context["capabilities"]["drop"],
            serde_yaml::from_str::<Value>("[ALL]").unwrap(),
            "{name}"
        );
    }
}

#[test]
fn a_pod_disruption_budget_comes_with_more_than_one_replica_or_when_asked() {
    assert!(
        find(&render_with(&[]), "PodDisruptionBudget").is_none(),
        "one replica: no budget, which would block node drains"
    );
    let objects = render_with(&["replicaCount=2"]);
    let budget = find(&objects, "PodDisruptionBudget").expect("a PodDisruptionBudget");
    assert_eq!(budget["spec"]["minAvailable"].as_u64(), Some(1));
    assert_eq!(
        budget["spec"]["selector"],
        operator_deployment(&objects)["spec"]["selector"],
        "the budget selects the operator pods"
    );
    assert_eq!(
        operator_deployment(&objects)["spec"]["replicas"].as_u64(),
        Some(2)
    );

    let asked = render_with(&[
        "podDisruptionBudget.enabled=true",
        "podDisruptionBudget.maxUnavailable=1",
    ]);
    let budget = find(&asked, "PodDisruptionBudget").expect("a PodDisruptionBudget when enabled");
    assert_eq!(budget["spec"]["maxUnavailable"].as_u64(), Some(1));
    assert!(budget["spec"].get("minAvailable").is_none());

    let refused = render_with(&["replicaCount=3", "podDisruptionBudget.enabled=false"]);
    assert!(find(&refused, "PodDisruptionBudget").is_none());
}

#[test]
fn the_image_and_its_pull_secrets_reach_the_pod_and_the_flags_for_the_executors() {
    let objects = render_with(&[
        "image.registry=registry.example.com/backup",
        "image.tag=v9.9.9",
        "image.pullPolicy=Always",
        "imagePullSecrets[0].name=regcred",
        "imagePullSecrets[1].name=mirror",
    ]);
    let operator = container(&objects, "operator").unwrap();
    assert_eq!(
        operator["image"].as_str(),
        Some("registry.example.com/backup/stash:v9.9.9")
    );
    assert_eq!(operator["imagePullPolicy"].as_str(), Some("Always"));
    assert_eq!(
        pod_spec(&objects)["imagePullSecrets"],
        serde_yaml::from_str::<Value>("[{name: regcred}, {name: mirror}]").unwrap()
    );
    for arg in [
        "--docker-registry=registry.example.com/backup",
        "--image=stash",
        "--image-tag=v9.9.9",
        "--image-pull-secrets=regcred,mirror",
    ] {
        assert!(
            has_arg(&objects, arg),
            "{arg} in {:?}",
            operator_args(&objects)
        );
    }
}

fn kinds(objects: &[Value]) -> Vec<&str> {
    objects.iter().filter_map(|o| o["kind"].as_str()).collect()
}

#[test]
fn webhooks_turned_off_render_no_webhook_configuration_and_the_operator_flags_say_so() {
    let objects = render_with(&["webhook.mutating=false", "webhook.validating=false"]);
    let kinds = kinds(&objects);
    assert!(
        !kinds.contains(&"MutatingWebhookConfiguration"),
        "{kinds:?}"
    );
    assert!(
        !kinds.contains(&"ValidatingWebhookConfiguration"),
        "{kinds:?}"
    );
    assert!(has_arg(&objects, "--enable-mutating-webhook=false"));
    assert!(has_arg(&objects, "--enable-validating-webhook=false"));

    let validating_only = render_with(&["webhook.mutating=false"]);
    let kinds_validating = self::kinds(&validating_only);
    assert!(!kinds_validating.contains(&"MutatingWebhookConfiguration"));
    assert!(kinds_validating.contains(&"ValidatingWebhookConfiguration"));
    assert!(has_arg(&validating_only, "--enable-mutating-webhook=false"));
    assert!(has_arg(
        &validating_only,
        "--enable-validating-webhook=true"
    ));
}

#[test]
fn with_no_webhook_and_no_snapshot_api_the_operator_serves_no_tls_and_gets_no_certificate() {
    let objects = render_with(&[
        "webhook.mutating=false",
        "webhook.validating=false",
        "snapshotAPI.enabled=false",
    ]);
    assert!(
        !kinds(&objects).contains(&"Secret"),
        "{:?}",
        kinds(&objects)
    );
    assert!(
        !operator_args(&objects)
            .iter()
            .any(|a| a.starts_with("--tls-")),
        "{:?}",
        operator_args(&objects)
    );
    let served_api = render_with(&["webhook.mutating=false", "webhook.validating=false"]);
    assert!(
        kinds(&served_api).contains(&"Secret"),
        "the Snapshot API (on by default) is served with the generated certificate"
    );
}

#[test]
fn scheduling_log_level_labels_and_annotations_reach_the_operator_pod() {
    let objects = render_with(&[
        "operator.logLevel=6",
        "nodeSelector.kubernetes\\.io/os=linux",
        "tolerations[0].key=CriticalAddonsOnly",
        "tolerations[0].operator=Exists",
        "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight=1",
        "priorityClassName=system-cluster-critical",
        "commonLabels.team=storage",
        "annotations.owner=storage-team",
        "podAnnotations.example\\.com/owner=storage-team",
        "podLabels.tier=control",
    ]);
    assert!(has_arg(&objects, "--v=6"));
    let pod = pod_spec(&objects);
    assert_eq!(
        pod["nodeSelector"]["kubernetes.io/os"].as_str(),
        Some("linux")
    );
    assert_eq!(
        pod["tolerations"][0]["key"].as_str(),
        Some("CriticalAddonsOnly")
    );
    assert!(pod["affinity"]["podAntiAffinity"].is_mapping());
    assert_eq!(
        pod["priorityClassName"].as_str(),
        Some("system-cluster-critical")
    );

    let deployment = operator_deployment(&objects);
    assert_eq!(
        deployment["metadata"]["annotations"]["owner"].as_str(),
        Some("storage-team")
    );
    let template = &deployment["spec"]["template"]["metadata"];
    assert_eq!(
        template["annotations"]["example.com/owner"].as_str(),
        Some("storage-team")
    );
    assert_eq!(template["labels"]["tier"].as_str(), Some("control"));
    // Every object of the release carries the common labels but the executor ClusterRoles, which the
    // operator server-side applies with its own labels.
    for object in &objects {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let labels = &object["metadata"]["labels"];
        let label = labels["team"].as_str();
        if labels["app.kubernetes.io/managed-by"].as_str() == Some("stash.appscode.com") {
            assert_eq!(label, None, "{name}");
        } else {
            assert_eq!(
                label,
                Some("storage"),
                "{} {name}",
                object["kind"].as_str().unwrap()
            );
        }
    }
    assert!(
        deployment["spec"]["selector"]["matchLabels"]
            .get("team")
            .is_none(),
        "the selector (immutable) stays as it was"
    );
}

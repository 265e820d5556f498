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
fn helm() -> PathBuf {
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

fn chart() -> PathBuf {
    paths::repo_root().join("deploy/chart")
}

/// Runs `command`, panicking with its output unless it succeeds; returns stdout.
fn run(command: &mut Command) -> String {
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

fn helm_template(extra: &[&str]) -> String {
    run(Command::new(helm())
        .args(["template", "stash"])
        .arg(chart())
        .args(["--namespace", "kube-system"])
        .args(extra))
}

fn documents(text: &str) -> Vec<Value> {
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

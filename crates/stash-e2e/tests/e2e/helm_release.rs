//! The chart as a release: the previous chart version (deploy/chart as the last commit with another
//! `version:` in Chart.yaml had it, packaged with `helm package`) is `helm install`ed on a fresh embedded
//! cluster, a Repository, its Secret and a BackupConfiguration are created, and `helm upgrade` moves
//! the release to the current chart as `scripts/build-chart` packages it. The objects survive unchanged
//! (same uid, same spec), the new operator pod is Ready and leads, and it still reconciles: a changed
//! schedule reaches the trigger CronJob.
//!
//! The release goes through helm itself (its release Secrets, its three-way merge), not `helm template
//! | kubectl apply`: the embedded cluster is a real API server, and the pod runner runs the chart's
//! operator pod (image `stash-rs/stash:test`) as a local process.

// Kind names (BackupConfiguration, CronJob) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use stash_api::phase::BackupInvokerPhase;
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::BackupConfiguration;
use stash_testenv::pushgateway::Pushgateway;
use stash_testenv::{Options, TestEnv, paths, servers, wait_for};

use crate::TIMEOUT;
use crate::helm_chart::{helm, run};

const EXAMPLE: &str = include_str!(
    "../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
);
const NAMESPACE: &str = "demo";
/// Never due while the test runs (an executor would dial the example's GCS bucket); the upgraded
/// operator must move the CronJob to [`LATER`].
const SCHEDULE: &str = "0 0 1 1 *";
const LATER: &str = "0 0 1 2 *";
const OPERATOR_SELECTOR: &str = "app.kubernetes.io/name=stash,app.kubernetes.io/component=operator";

/// `version:` of a Chart.yaml.
fn chart_version(chart_yaml: &str) -> String {
    let chart: serde_yaml::Value = serde_yaml::from_str(chart_yaml).expect("Chart.yaml is YAML");
    chart["version"]
        .as_str()
        .expect("Chart.yaml has a version")
        .to_owned()
}

fn git(args: &[&str]) -> String {
    run(Command::new("git")
        .arg("-C")
        .arg(paths::repo_root())
        .args(args))
}

/// The previous release of the chart: deploy/chart (and the CRDs its `crds` link points at) as the
/// newest commit whose Chart.yaml has another version than the working tree's, extracted into `dir`.
/// Returns that chart's directory and version.
fn previous_chart(dir: &Path) -> (PathBuf, String) {
    let current = chart_version(
        &std::fs::read_to_string(paths::repo_root().join("deploy/chart/Chart.yaml")).unwrap(),
    );
    let (commit, version) = git(&["log", "--format=%H", "--", "deploy/chart/Chart.yaml"])
        .lines()
        .map(|commit| {
            let version = chart_version(&git(&["show", &format!("{commit}:deploy/chart/Chart.yaml")]));
            (commit.to_owned(), version)
        })
        .find(|(_, version)| *version != current)
        .unwrap_or_else(|| {
            panic!("no commit has a deploy/chart/Chart.yaml version other than {current}: the git history is needed (not a shallow clone)")
        });
    let tar = dir.join("previous.tar");
    git(&[
        "archive",
        "--format=tar",
        "-o",
        tar.to_str().unwrap(),
        &commit,
        "deploy/chart",
        "deploy/crds",
    ]);
    let tree = dir.join("previous");
    std::fs::create_dir_all(&tree).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&tree));
    (tree.join("deploy/chart"), version)
}

fn package(chart: &Path, destination: &Path) -> PathBuf {
    run(Command::new(helm())
        .arg("package")
        .arg(chart)
        .arg("--destination")
        .arg(destination));
    std::fs::read_dir(destination)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "tgz"))
        .expect("helm package writes a .tgz")
}

/// The current chart as `scripts/build-chart` packages it (lint --strict first).
fn build_chart() -> PathBuf {
    let out = run(&mut Command::new(
        paths::repo_root().join("scripts/build-chart"),
    ));
    PathBuf::from(out.lines().last().expect("build-chart prints the archive"))
}

/// helm against the embedded cluster, with its own config, cache and data directories.
struct Helm<'a> {
    env: &'a TestEnv,
    home: PathBuf,
}

impl Helm<'_> {
    fn command(&self) -> Command {
        let mut command = Command::new(helm());
        command
            .arg("--kubeconfig")
            .arg(self.env.kubeconfig_path())
            .args(["--namespace", "kube-system"])
            .env("HELM_CONFIG_HOME", self.home.join("config"))
            .env("HELM_CACHE_HOME", self.home.join("cache"))
            .env("HELM_DATA_HOME", self.home.join("data"));
        command
    }

    /// `helm <verb> stash <archive>` with the embedded cluster's values on fresh loopback ports;
    /// returns the metrics port.
    fn release(&self, verb: &str, archive: &Path, pushgateway_url: &str, extra: &[&str]) -> u16 {
        let secure_port = servers::free_port();
        let metrics_port = std::iter::repeat_with(servers::free_port)
            .find(|&p| p != secure_port)
            .unwrap();
        let values = [
            "embedded.enabled=true".to_owned(),
            format!("embedded.securePort={secure_port}"),
            format!("embedded.metricsPort={metrics_port}"),
            format!("pushgateway.url={pushgateway_url}"),
            "image.tag=test".to_owned(),
        ];
        let mut command = self.command();
        command.args([verb, "stash"]).arg(archive);
        for value in values
            .iter()
            .map(String::as_str)
            .chain(extra.iter().copied())
        {
            command.arg(format!("--set={value}"));
        }
        run(&mut command);
        metrics_port
    }

    /// The release's chart (`stash-<version>`) and status, as `helm list` reports them.
    fn deployed_chart(&self) -> (String, String) {
        let list: serde_json::Value =
            serde_json::from_str(&run(self.command().args(["list", "--output", "json"]))).unwrap();
        let release = list
            .as_array()
            .and_then(|l| l.iter().find(|r| r["name"] == "stash"))
            .unwrap_or_else(|| panic!("no release stash in {list}"));
        (
            release["chart"].as_str().unwrap().to_owned(),
            release["status"].as_str().unwrap().to_owned(),
        )
    }
}

/// Waits for the rollout of deployment/stash, the operator's /readyz on `metrics_port`, and its
/// leader Lease held by the one pod of chart `stash-<version>`.
async fn operator_ready_and_leading(env: &TestEnv, metrics_port: u16, version: &str) {
    run(env.kubectl().args([
        "-n",
        "kube-system",
        "rollout",
        "status",
        "deployment/stash",
        &format!("--timeout={}s", TIMEOUT.as_secs()),
    ]));
    let readyz = format!("http://127.0.0.1:{metrics_port}/readyz");
    wait_for("the operator to answer /readyz", TIMEOUT, || async {
        match servers::get(&readyz) {
            Ok(r) if r.is_success() => Ok(()),
            Ok(r) => Err(format!("answered {}", r.status)),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    let client = env.client();
    let chart = format!("stash-{version}");
    let pods = Api::<Pod>::namespaced(client.clone(), "kube-system");
    let leases = Api::<Lease>::namespaced(client, "kube-system");
    wait_for(
        &format!("one operator pod of chart {chart}, holding the leader Lease"),
        TIMEOUT,
        || async {
            let list = pods
                .list(&ListParams::default().labels(OPERATOR_SELECTOR))
                .await
                .map_err(|e| e.to_string())?;
            let names: Vec<String> = list.items.iter().map(ResourceExt::name_any).collect();
            let [pod] = list.items.as_slice() else {
                return Err(format!("operator pods {names:?}"));
            };
            let label = pod.labels().get("helm.sh/chart").cloned();
            if label.as_deref() != Some(chart.as_str()) {
                return Err(format!("pod {} is of chart {label:?}", pod.name_any()));
            }
            let lease = leases
                .get_opt("stash-operator")
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no Lease kube-system/stash-operator yet")?;
            let holder = lease.spec.and_then(|s| s.holder_identity);
            if holder.as_deref() == Some(pod.name_any().as_str()) {
                Ok(())
            } else {
                Err(format!("Lease held by {holder:?}, not {}", pod.name_any()))
            }
        },
    )
    .await;
}

/// The objects a user created under the old release, as they were.
struct UserObjects {
    repository: Repository,
    secret: Secret,
    backup_configuration: BackupConfiguration,
}

async fn create_user_objects(client: &Client) -> UserObjects {
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).unwrap(),
        )
        .await
        .expect("create namespace demo");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "gcs-secret"},
        "stringData": {"RESTIC_PASSWORD": "changeit", "GOOGLE_PROJECT_ID": "e2e"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create Secret gcs-secret");
    crate::create_gcs_repository(client, NAMESPACE).await;
    // The example's target, scaled to zero: the operator injects and reconciles, no executor runs.
    let target: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "stash-demo", "labels": {"app": "stash-demo"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "stash-demo"}},
            "template": {
                "metadata": {"labels": {"app": "stash-demo"}},
                "spec": {
                    "containers": [{"name": "busybox", "image": "busybox",
                                    "volumeMounts": [{"name": "source-data", "mountPath": "/source/data"}]}],
                    "volumes": [{"name": "source-data", "emptyDir": {}}]
                }
            }
        }
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &target)
        .await
        .expect("create Deployment stash-demo");
    let mut bc: BackupConfiguration = serde_yaml::from_str(EXAMPLE).unwrap();
    bc.spec.schedule = Some(SCHEDULE.to_owned());
    Api::<BackupConfiguration>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &bc)
        .await
        .expect("the old release's webhook admits Stash's deployment example");
    current_user_objects(client).await
}

async fn current_user_objects(client: &Client) -> UserObjects {
    UserObjects {
        repository: Api::namespaced(client.clone(), NAMESPACE)
            .get("gcs-repo")
            .await
            .expect("Repository gcs-repo"),
        secret: Api::namespaced(client.clone(), NAMESPACE)
            .get("gcs-secret")
            .await
            .expect("Secret gcs-secret"),
        backup_configuration: Api::namespaced(client.clone(), NAMESPACE)
            .get("deployment-backup")
            .await
            .expect("BackupConfiguration deployment-backup"),
    }
}

/// BackupConfiguration deployment-backup is Ready and its trigger CronJob runs on `schedule`.
async fn reconciled_with_schedule(client: &Client, schedule: &str) {
    let bcs = Api::<BackupConfiguration>::namespaced(client.clone(), NAMESPACE);
    let cron_jobs = Api::<CronJob>::namespaced(client.clone(), NAMESPACE);
    wait_for(
        &format!("deployment-backup Ready with a trigger CronJob on {schedule:?}"),
        TIMEOUT,
        || async {
            let bc = bcs
                .get("deployment-backup")
                .await
                .map_err(|e| e.to_string())?;
            let phase = bc.status.as_ref().and_then(|s| s.phase);
            if phase != Some(BackupInvokerPhase::Ready) {
                return Err(format!("phase {phase:?}"));
            }
            let schedules: Vec<String> = cron_jobs
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items
                .into_iter()
                .filter(|c| c.name_any().starts_with("stash-trigger"))
                .map(|c| c.spec.schedule)
                .collect();
            if schedules == [schedule] {
                Ok(())
            } else {
                Err(format!("trigger CronJob schedules {schedules:?}"))
            }
        },
    )
    .await;
}

fn assert_unchanged(before: &UserObjects, after: &UserObjects) {
    let same = |what: &str, a: &kube::api::ObjectMeta, b: &kube::api::ObjectMeta| {
        assert_eq!(a.uid, b.uid, "{what} kept its uid through the upgrade");
    };
    same(
        "Repository gcs-repo",
        &before.repository.metadata,
        &after.repository.metadata,
    );
    same(
        "Secret gcs-secret",
        &before.secret.metadata,
        &after.secret.metadata,
    );
    same(
        "BackupConfiguration deployment-backup",
        &before.backup_configuration.metadata,
        &after.backup_configuration.metadata,
    );
    assert_eq!(
        serde_json::to_value(&before.repository.spec).unwrap(),
        serde_json::to_value(&after.repository.spec).unwrap(),
        "the Repository's spec is as created"
    );
    assert_eq!(
        before.secret.data, after.secret.data,
        "the Secret's data is as created"
    );
    assert_eq!(
        serde_json::to_value(&before.backup_configuration.spec).unwrap(),
        serde_json::to_value(&after.backup_configuration.spec).unwrap(),
        "the BackupConfiguration's spec is as created"
    );
}

#[test]
fn a_helm_upgrade_from_the_previous_chart_version_keeps_backup_configurations_and_repositories_and_the_new_operator_reconciles_them()
 {
    let dir = tempfile::tempdir().unwrap();
    let (previous_dir, previous_version) = previous_chart(dir.path());
    let packages = dir.path().join("packages");
    std::fs::create_dir_all(&packages).unwrap();
    let previous = package(&previous_dir, &packages);
    let current = build_chart();
    let current_version = chart_version(
        &std::fs::read_to_string(paths::repo_root().join("deploy/chart/Chart.yaml")).unwrap(),
    );
    assert_ne!(previous_version, current_version);

    let env = TestEnv::start(&Options {
        dir: None,
        install_crds: false,
        pod_runner: true,
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{}", stash_testenv::error_chain(&e)));
    let pushgateway = Pushgateway::start();
    let helm = Helm {
        env: &env,
        home: dir.path().join("helm"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _runtime_context = runtime.enter();
    let client = env.client();

    let old_metrics = helm.release("install", &previous, &pushgateway.url(), &[]);
    runtime.block_on(operator_ready_and_leading(
        &env,
        old_metrics,
        &previous_version,
    ));
    let before = runtime.block_on(async {
        let objects = create_user_objects(&client).await;
        reconciled_with_schedule(&client, SCHEDULE).await;
        objects
    });

    // The next version, on new loopback ports (the old pod holds its own until the rollout deletes
    // it, as a rolling update's surge pod would) and with a changed value.
    let new_metrics = helm.release(
        "upgrade",
        &current,
        &pushgateway.url(),
        &["operator.logLevel=5"],
    );
    assert_eq!(
        helm.deployed_chart(),
        (format!("stash-{current_version}"), "deployed".to_owned())
    );
    runtime.block_on(async {
        operator_ready_and_leading(&env, new_metrics, &current_version).await;
        let pods = Api::<Pod>::namespaced(client.clone(), "kube-system")
            .list(&ListParams::default().labels(OPERATOR_SELECTOR))
            .await
            .unwrap();
        let args = pods.items[0].spec.as_ref().unwrap().containers[0]
            .args
            .clone()
            .unwrap_or_default();
        assert!(
            args.iter().any(|a| a == "--v=5"),
            "the upgrade's value: {args:?}"
        );

        let after = current_user_objects(&client).await;
        assert_unchanged(&before, &after);
        let target = Api::<Deployment>::namespaced(client.clone(), NAMESPACE)
            .get("stash-demo")
            .await
            .unwrap();
        let containers = target.spec.template.spec.unwrap().containers;
        assert!(
            containers.iter().any(|c| c.name == "stash"),
            "the target keeps the backup sidecar through the upgrade"
        );

        // Still reconciling, through the new release's validating webhook and controllers.
        let bcs = Api::<BackupConfiguration>::namespaced(client.clone(), NAMESPACE);
        wait_for(
            "the new operator's webhook to admit a new schedule",
            TIMEOUT,
            || async {
                bcs.patch(
                    "deployment-backup",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"schedule": LATER}})),
                )
                .await
                .map(drop)
                .map_err(|e| e.to_string())
            },
        )
        .await;
        reconciled_with_schedule(&client, LATER).await;
    });
    drop(runtime);
    drop(env);
}

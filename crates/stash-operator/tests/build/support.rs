//! Fixtures and the snapshot helper shared by the build tests.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::{BackupBatch, BackupConfiguration, RestoreSession};
use stash_operator::{Settings, Workload};

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Stash's own example manifests: the in-repo copy kept by stash-api (`../shared/stash-examples`).
fn stash_example_path(name: &str) -> PathBuf {
    manifest_dir()
        .join("../stash-api/tests/fixtures/stash-examples")
        .join(name)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn parse<T: DeserializeOwned>(path: &Path) -> T {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// A Stash example as the API server would return it: with a uid and a generation.
pub fn stash_example<T: DeserializeOwned + HasMetadata>(name: &str) -> T {
    let mut object: T = parse(&stash_example_path(name));
    let meta = object.metadata_mut();
    meta.uid = Some(format!("00000000-0000-4000-8000-{:012}", name.len()));
    meta.generation = Some(1);
    object
}

pub trait HasMetadata {
    fn metadata_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
}

macro_rules! has_metadata {
    ($($t:ty),*) => {$(
        impl HasMetadata for $t {
            fn metadata_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }
    )*};
}
has_metadata!(BackupConfiguration, BackupBatch, RestoreSession, Repository);

pub fn backup_configuration(name: &str) -> BackupConfiguration {
    stash_example(&format!("backupconfiguration-{name}.yaml"))
}

pub fn restore_session(name: &str) -> RestoreSession {
    stash_example(&format!("restoresession-{name}.yaml"))
}

pub fn repository(name: &str) -> Repository {
    stash_example(&format!("repository-{name}.yaml"))
}

/// A workload fixture of this crate (`tests/fixtures/<name>.yaml`).
pub fn workload(name: &str) -> Workload {
    let path = manifest_dir()
        .join("tests/fixtures")
        .join(format!("{name}.yaml"));
    Workload::from_yaml(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The operator settings every snapshot is taken with.
pub fn settings() -> Settings {
    Settings {
        docker_registry: "appscode".to_owned(),
        image: "stash".to_owned(),
        image_tag: "v0.1.0".to_owned(),
        image_pull_secrets: Vec::new(),
        pushgateway_url: "http://stash.kube-system.svc:56789".to_owned(),
        use_kubeapiserver_fqdn_for_aks: true,
        log_level: Some(3),
        cron_job_psp: Vec::new(),
    }
}

/// Compares `documents` as YAML with `tests/fixtures/expected/<name>`, showing a line diff on mismatch.
/// With `UPDATE_EXPECT=1` the file is rewritten instead; review the diff before committing it.
pub fn expect_yaml<T: Serialize>(name: &str, documents: &[T]) {
    let actual = documents
        .iter()
        .map(|d| serde_yaml::to_string(d).expect("serializes as YAML"))
        .collect::<Vec<_>>()
        .join("---\n");
    let path = manifest_dir().join("tests/fixtures/expected").join(name);
    if std::env::var("UPDATE_EXPECT").as_deref() == Ok("1") {
        std::fs::write(&path, &actual).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} does not exist; run `UPDATE_EXPECT=1 cargo test -p stash-operator` to write it, then review it",
            path.display()
        )
    });
    pretty_assertions::assert_str_eq!(
        expected,
        actual,
        "{} differs from the built objects; if the change is intended, rerun with UPDATE_EXPECT=1 and review the diff",
        path.display()
    );
}

/// One container of the pod spec by name.
pub fn container<'a>(
    pod: &'a k8s_openapi::api::core::v1::PodSpec,
    name: &str,
) -> &'a k8s_openapi::api::core::v1::Container {
    pod.containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

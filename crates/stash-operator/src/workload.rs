//! The workloads a sidecar or restore init-container goes into: one type over k8s-openapi's Deployment,
//! StatefulSet, DaemonSet and ReplicaSet, so the builders touch "the pod template" and "the annotations"
//! without matching on the kind each time.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetUpdateStrategy, Deployment, ReplicaSet, RollingUpdateDaemonSet,
    StatefulSet, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use stash_api::labels;

/// API version of every supported workload kind.
pub const APPS_V1: &str = "apps/v1";
/// The service account a pod runs as when its template names none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
const ROLLING_UPDATE: &str = "RollingUpdate";

/// The kinds of workload the operator edits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 4] = [
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::ReplicaSet,
    ];

    /// The `kind` string.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::ReplicaSet => "ReplicaSet",
        }
    }

    /// The `kind` string in lower case, as Stash puts it into object names.
    #[must_use]
    pub fn lowercase(self) -> String {
        self.as_str().to_ascii_lowercase()
    }

    /// The kind named `kind`, if it is a workload kind.
    #[must_use]
    pub fn from_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// Whether this kind is backed up by a sidecar (§8.1): all of them. A standalone ReplicaSet is a
    /// Stash v0.9-v0.17 target, kept for old manifests with a deprecation warning (see
    /// [`WorkloadKind::is_deprecated`]); a ReplicaSet a Deployment manages is never a target
    /// ([`Workload::managing_deployment`]).
    #[must_use]
    pub fn has_sidecar_model(self) -> bool {
        true
    }

    /// Whether Stash dropped this target kind (ReplicaSet, in v0.18) and only old manifests name it.
    #[must_use]
    pub fn is_deprecated(self) -> bool {
        matches!(self, WorkloadKind::ReplicaSet)
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A workload read from YAML, JSON, the API server or an admission request.
#[derive(Clone, Debug, PartialEq)]
pub enum Workload {
    Deployment(Deployment),
    StatefulSet(StatefulSet),
    DaemonSet(DaemonSet),
    ReplicaSet(ReplicaSet),
}

/// Reading an object as a workload failed.
#[derive(Debug, thiserror::Error)]
pub enum ParseWorkloadError {
    #[error(
        "failed to read the workload: it has no `kind`; give a Deployment, StatefulSet, DaemonSet or ReplicaSet"
    )]
    MissingKind,
    #[error(
        "failed to read the workload: kind `{kind}` is not a workload stash edits; give a Deployment, StatefulSet, DaemonSet or ReplicaSet"
    )]
    UnsupportedKind { kind: String },
    #[error("failed to read the {kind}: it does not match the apps/v1 schema")]
    Decode {
        kind: WorkloadKind,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to read the workload: it is not valid YAML")]
    Yaml {
        #[source]
        source: serde_yaml::Error,
    },
}

impl Workload {
    /// Reads a workload from its JSON form, choosing the type from `kind`.
    pub fn from_value(value: Value) -> Result<Self, ParseWorkloadError> {
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .ok_or(ParseWorkloadError::MissingKind)?;
        let kind =
            WorkloadKind::from_kind(kind).ok_or_else(|| ParseWorkloadError::UnsupportedKind {
                kind: kind.to_owned(),
            })?;
        let decode = |source| ParseWorkloadError::Decode { kind, source };
        Ok(match kind {
            WorkloadKind::Deployment => {
                Self::Deployment(serde_json::from_value(value).map_err(decode)?)
            }
            WorkloadKind::StatefulSet => {
                Self::StatefulSet(serde_json::from_value(value).map_err(decode)?)
            }
            WorkloadKind::DaemonSet => {
                Self::DaemonSet(serde_json::from_value(value).map_err(decode)?)
            }
            WorkloadKind::ReplicaSet => {
                Self::ReplicaSet(serde_json::from_value(value).map_err(decode)?)
            }
        })
    }

    /// Reads a workload from one YAML document.
    pub fn from_yaml(text: &str) -> Result<Self, ParseWorkloadError> {
        let value: Value =
            serde_yaml::from_str(text).map_err(|source| ParseWorkloadError::Yaml { source })?;
        Self::from_value(value)
    }

    /// The JSON form, with `apiVersion` and `kind`.
    #[must_use]
    pub fn to_value(&self) -> Value {
        let value = match self {
            Self::Deployment(w) => serde_json::to_value(w),
            Self::StatefulSet(w) => serde_json::to_value(w),
            Self::DaemonSet(w) => serde_json::to_value(w),
            Self::ReplicaSet(w) => serde_json::to_value(w),
        };
        value.expect("k8s-openapi types always serialize")
    }

    #[must_use]
    pub fn kind(&self) -> WorkloadKind {
        match self {
            Self::Deployment(_) => WorkloadKind::Deployment,
            Self::StatefulSet(_) => WorkloadKind::StatefulSet,
            Self::DaemonSet(_) => WorkloadKind::DaemonSet,
            Self::ReplicaSet(_) => WorkloadKind::ReplicaSet,
        }
    }

    #[must_use]
    pub fn api_version(&self) -> &'static str {
        APPS_V1
    }

    #[must_use]
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Self::Deployment(w) => &w.metadata,
            Self::StatefulSet(w) => &w.metadata,
            Self::DaemonSet(w) => &w.metadata,
            Self::ReplicaSet(w) => &w.metadata,
        }
    }

    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Self::Deployment(w) => &mut w.metadata,
            Self::StatefulSet(w) => &mut w.metadata,
            Self::DaemonSet(w) => &mut w.metadata,
            Self::ReplicaSet(w) => &mut w.metadata,
        }
    }

    /// `metadata.name` (empty for an object not yet named, e.g. a `generateName` in admission).
    #[must_use]
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    #[must_use]
    pub fn namespace(&self) -> Option<&str> {
        self.metadata().namespace.as_deref()
    }

    /// The workload's own annotations (not the pod template's).
    #[must_use]
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata()
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
    }

    pub fn set_annotation(&mut self, key: &str, value: String) {
        set_annotation(&mut self.metadata_mut().annotations, key, value);
    }

    pub fn remove_annotation(&mut self, key: &str) {
        remove_annotation(&mut self.metadata_mut().annotations, key);
    }

    /// The pod template (`None` only for a ReplicaSet without one).
    #[must_use]
    pub fn pod_template(&self) -> Option<&PodTemplateSpec> {
        match self {
            Self::Deployment(w) => Some(&w.spec.template),
            Self::StatefulSet(w) => Some(&w.spec.template),
            Self::DaemonSet(w) => Some(&w.spec.template),
            Self::ReplicaSet(w) => w.spec.template.as_ref(),
        }
    }

    /// The pod template, created empty if the object has none.
    pub fn pod_template_mut(&mut self) -> &mut PodTemplateSpec {
        match self {
            Self::Deployment(w) => &mut w.spec.template,
            Self::StatefulSet(w) => &mut w.spec.template,
            Self::DaemonSet(w) => &mut w.spec.template,
            Self::ReplicaSet(w) => w.spec.template.get_or_insert_with(Default::default),
        }
    }

    #[must_use]
    pub fn pod_spec(&self) -> Option<&PodSpec> {
        self.pod_template().and_then(|t| t.spec.as_ref())
    }

    pub fn pod_spec_mut(&mut self) -> &mut PodSpec {
        self.pod_template_mut()
            .spec
            .get_or_insert_with(Default::default)
    }

    /// An annotation of the pod template.
    #[must_use]
    pub fn template_annotation(&self, key: &str) -> Option<&str> {
        self.pod_template()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(key))
            .map(String::as_str)
    }

    pub fn set_template_annotation(&mut self, key: &str, value: String) {
        let meta = self
            .pod_template_mut()
            .metadata
            .get_or_insert_with(Default::default);
        set_annotation(&mut meta.annotations, key, value);
    }

    pub fn remove_template_annotation(&mut self, key: &str) {
        let template = self.pod_template_mut();
        if let Some(meta) = template.metadata.as_mut() {
            remove_annotation(&mut meta.annotations, key);
            if *meta == ObjectMeta::default() {
                template.metadata = None;
            }
        }
    }

    /// The service account the pods run as: the one their executors' RBAC is bound to (§8.3).
    #[must_use]
    pub fn service_account_name(&self) -> &str {
        self.pod_spec()
            .and_then(|s| s.service_account_name.as_deref())
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_SERVICE_ACCOUNT)
    }

    /// The Deployment that manages this ReplicaSet, if it is one: Stash v0.17 left such ReplicaSets
    /// alone (§8.1), since their pod template is the Deployment's to write.
    #[must_use]
    pub fn managing_deployment(&self) -> Option<&str> {
        let Self::ReplicaSet(rs) = self else {
            return None;
        };
        managing_deployment(&rs.metadata)
    }

    /// Whether `pod` (one of this workload's) was created from the current pod template as far as stash
    /// is concerned: the same executor containers and the same invoker hashes. Stash v0.17 deleted the
    /// pods of a ReplicaSet that were not (§8.3), since a ReplicaSet never replaces its pods itself.
    #[must_use]
    pub fn pod_is_current(&self, pod: &Pod) -> bool {
        let template = self.pod_template();
        let template_spec = template.and_then(|t| t.spec.as_ref());
        let template_annotations = template
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref());
        let has = |spec: Option<&PodSpec>, init: bool, name: &str| {
            spec.is_some_and(|s| {
                let containers = if init {
                    s.init_containers.as_deref().unwrap_or_default()
                } else {
                    &s.containers
                };
                containers.iter().any(|c| c.name == name)
            })
        };
        let executors_match = [
            (false, labels::CONTAINER_SIDECAR),
            (true, labels::CONTAINER_INIT),
        ]
        .into_iter()
        .all(|(init, name)| has(template_spec, init, name) == has(pod.spec.as_ref(), init, name));
        let annotation = |annotations: Option<&BTreeMap<String, String>>, key: &str| {
            annotations.and_then(|a| a.get(key)).cloned()
        };
        executors_match
            && [
                labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER_HASH,
                labels::ANNOTATION_LAST_APPLIED_RESTORE_INVOKER_HASH,
            ]
            .into_iter()
            .all(|key| {
                annotation(template_annotations, key)
                    == annotation(pod.metadata.annotations.as_ref(), key)
            })
    }

    /// A controller reference to this workload, for objects that should go when it goes. `None` until the
    /// API server has given it a uid.
    #[must_use]
    pub fn owner_reference(&self) -> Option<OwnerReference> {
        let meta = self.metadata();
        Some(OwnerReference {
            api_version: APPS_V1.to_owned(),
            kind: self.kind().as_str().to_owned(),
            name: meta.name.clone()?,
            uid: meta.uid.clone()?,
            controller: Some(true),
            block_owner_deletion: Some(true),
        })
    }

    /// Makes a changed pod template reach the pods by itself, as Stash does after every injection and
    /// removal (§8.3): StatefulSets and DaemonSets with `OnDelete` would otherwise keep the old pods, and
    /// a DaemonSet that may take no pod down (and surge none) never rolls. Deployments and ReplicaSets are
    /// left alone.
    pub fn force_rolling_update(&mut self) {
        match self {
            Self::StatefulSet(w) => {
                let strategy = w
                    .spec
                    .update_strategy
                    .get_or_insert_with(StatefulSetUpdateStrategy::default);
                if strategy.type_.as_deref() != Some(ROLLING_UPDATE) {
                    strategy.type_ = Some(ROLLING_UPDATE.to_owned());
                }
            }
            Self::DaemonSet(w) => {
                let strategy = w
                    .spec
                    .update_strategy
                    .get_or_insert_with(DaemonSetUpdateStrategy::default);
                if strategy.type_.as_deref() != Some(ROLLING_UPDATE) {
                    strategy.type_ = Some(ROLLING_UPDATE.to_owned());
                }
                let rolling = strategy
                    .rolling_update
                    .get_or_insert_with(RollingUpdateDaemonSet::default);
                if is_zero(rolling.max_unavailable.as_ref()) && is_zero(rolling.max_surge.as_ref())
                {
                    rolling.max_unavailable = Some(IntOrString::Int(1));
                }
            }
            Self::Deployment(_) | Self::ReplicaSet(_) => {}
        }
    }
}

impl fmt::Display for Workload {
    /// `Deployment demo/stash-demo`, the form errors and events use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.namespace() {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind(), self.name()),
            None => write!(f, "{} {}", self.kind(), self.name()),
        }
    }
}

impl From<Deployment> for Workload {
    fn from(w: Deployment) -> Self {
        Self::Deployment(w)
    }
}

impl From<StatefulSet> for Workload {
    fn from(w: StatefulSet) -> Self {
        Self::StatefulSet(w)
    }
}

impl From<DaemonSet> for Workload {
    fn from(w: DaemonSet) -> Self {
        Self::DaemonSet(w)
    }
}

impl From<ReplicaSet> for Workload {
    fn from(w: ReplicaSet) -> Self {
        Self::ReplicaSet(w)
    }
}

/// The name of the Deployment among `metadata`'s owners, if any.
#[must_use]
pub fn managing_deployment(metadata: &ObjectMeta) -> Option<&str> {
    metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "Deployment" && o.api_version.starts_with("apps/"))
        .map(|o| o.name.as_str())
}

/// Unset, `0` and `0%` all stop a rolling update from taking a pod down.
fn is_zero(value: Option<&IntOrString>) -> bool {
    match value {
        None => true,
        Some(IntOrString::Int(n)) => *n == 0,
        Some(IntOrString::String(s)) => s.trim_end_matches('%').trim() == "0",
    }
}

pub(crate) fn set_annotation(
    annotations: &mut Option<BTreeMap<String, String>>,
    key: &str,
    value: String,
) {
    annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.to_owned(), value);
}

/// Removes `key`, and the map with it once empty, so a removal leaves the object as it was before.
pub(crate) fn remove_annotation(annotations: &mut Option<BTreeMap<String, String>>, key: &str) {
    if let Some(map) = annotations.as_mut() {
        map.remove(key);
        if map.is_empty() {
            *annotations = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn workload(yaml: &str) -> Workload {
        Workload::from_yaml(yaml).unwrap()
    }

    #[test]
    fn a_workload_is_read_by_its_kind_and_written_back_unchanged() {
        let yaml = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: d\n  namespace: demo\nspec:\n  selector:\n    matchLabels:\n      app: d\n  template:\n    metadata:\n      labels:\n        app: d\n    spec:\n      containers:\n      - name: app\n        image: busybox\n";
        let w = workload(yaml);
        assert_eq!(w.kind(), WorkloadKind::DaemonSet);
        assert_eq!(w.to_string(), "DaemonSet demo/d");
        let back: Value = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(w.to_value(), back);
    }

    #[test]
    fn a_pod_is_not_a_workload_and_the_error_names_the_kinds_that_are() {
        let err =
            Workload::from_yaml("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to read the workload: kind `Pod` is not a workload stash edits; give a Deployment, StatefulSet, DaemonSet or ReplicaSet"
        );
    }

    #[test]
    fn the_service_account_defaults_to_default() {
        let w = workload(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  selector: {}\n  template: {}\n",
        );
        assert_eq!(w.service_account_name(), "default");
    }

    #[test]
    fn an_on_delete_statefulset_is_switched_to_rolling_update() {
        let mut w = workload(
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: s\nspec:\n  selector: {}\n  serviceName: s\n  template: {}\n  updateStrategy:\n    type: OnDelete\n",
        );
        w.force_rolling_update();
        let Workload::StatefulSet(s) = w else {
            unreachable!()
        };
        assert_eq!(
            s.spec.update_strategy.unwrap().type_.as_deref(),
            Some("RollingUpdate")
        );
    }

    #[test]
    fn a_daemonset_that_may_take_no_pod_down_gets_max_unavailable_one() {
        let mut w = workload(
            "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: d\nspec:\n  selector: {}\n  template: {}\n  updateStrategy:\n    type: OnDelete\n    rollingUpdate:\n      maxUnavailable: 0\n",
        );
        w.force_rolling_update();
        let Workload::DaemonSet(d) = w else {
            unreachable!()
        };
        let strategy = d.spec.update_strategy.unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
        assert_eq!(
            strategy.rolling_update.unwrap().max_unavailable,
            Some(IntOrString::Int(1))
        );
    }

    #[test]
    fn a_daemonset_that_surges_keeps_its_rolling_update_settings() {
        let mut w = workload(
            "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: d\nspec:\n  selector: {}\n  template: {}\n  updateStrategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 0\n",
        );
        let before = w.clone();
        w.force_rolling_update();
        assert_eq!(w, before);
    }

    const REPLICA_SET: &str = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: r\n  namespace: demo\nspec:\n  selector: {}\n  template:\n    metadata:\n      annotations:\n        stash.appscode.com/last-applied-backup-invoker-hash: \"42\"\n    spec:\n      containers:\n      - name: app\n      - name: stash\n";

    #[test]
    fn a_replicaset_owned_by_a_deployment_names_it_and_a_standalone_one_does_not() {
        let standalone = workload(REPLICA_SET);
        assert_eq!(standalone.managing_deployment(), None);
        let mut owned = standalone.clone();
        owned.metadata_mut().owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".to_owned(),
            kind: "Deployment".to_owned(),
            name: "web".to_owned(),
            uid: "u".to_owned(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        assert_eq!(owned.managing_deployment(), Some("web"));
    }

    #[test]
    fn a_pod_without_the_sidecar_or_with_an_old_hash_is_not_current_and_one_like_the_template_is() {
        let rs = workload(REPLICA_SET);
        let pod = |hash: Option<&str>, containers: &[&str]| -> Pod {
            let annotations = hash.map(|h| {
                format!("  annotations:\n    stash.appscode.com/last-applied-backup-invoker-hash: \"{h}\"\n")
            });
            let containers = containers.join("\n  - name: ");
            serde_yaml::from_str(&format!(
                "metadata:\n  name: p\n{}spec:\n  containers:\n  - name: {containers}\n",
                annotations.unwrap_or_default()
            ))
            .unwrap()
        };
        assert!(rs.pod_is_current(&pod(Some("42"), &["app", "stash"])));
        assert!(!rs.pod_is_current(&pod(None, &["app"])));
        assert!(!rs.pod_is_current(&pod(Some("41"), &["app", "stash"])));
        assert!(!rs.pod_is_current(&pod(Some("42"), &["app"])));
    }

    #[test]
    fn removing_the_last_annotation_removes_the_map() {
        let mut w = workload(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  selector: {}\n  template: {}\n",
        );
        let before = w.clone();
        w.set_annotation("a", "b".to_owned());
        w.set_template_annotation("c", "d".to_owned());
        w.remove_annotation("a");
        w.remove_template_annotation("c");
        assert_eq!(w, before);
    }
}

//! Labels of session, target and host metrics (§13.3) and the Pushgateway job name (§13.1).

use stash_api::common::TargetRef;

/// Who ran the session: the labels every session, target and host metric carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionLabels {
    /// `BackupConfiguration`, `BackupBatch`, `RestoreSession` or `RestoreBatch`.
    pub invoker_kind: String,
    pub invoker_name: String,
    /// Namespace of the invoker.
    pub namespace: String,
    /// `Restic` or `VolumeSnapshotter`.
    pub driver: String,
    /// Name of the Repository; `None` for the `VolumeSnapshotter` driver, which has none.
    pub repository: Option<String>,
}

/// What was backed up or restored: target and host metrics add these to [`SessionLabels`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetLabels {
    /// `Deployment`, `StatefulSet`, …; `PersistentVolumeClaim` for the `VolumeSnapshotter` driver.
    pub kind: String,
    /// API group of the target (`apps`), empty for the core group.
    pub group: String,
    pub name: String,
}

impl TargetLabels {
    /// From an invoker's `target.ref`: the group is the part of `apiVersion` before `/`
    /// (`apps/v1` → `apps`, `v1` → empty).
    #[must_use]
    pub fn from_target_ref(target: &TargetRef) -> Self {
        let group = target
            .api_version
            .as_deref()
            .and_then(|version| version.split_once('/'))
            .map_or("", |(group, _)| group);
        Self {
            kind: target.kind.clone(),
            group: group.to_owned(),
            name: target.name.clone(),
        }
    }
}

/// The Pushgateway job of an invoker: `<lowercase kind>-<namespace>-<name>`, e.g.
/// `backupconfiguration-demo-deployment-backup`.
#[must_use]
pub fn job_name(invoker_kind: &str, invoker_namespace: &str, invoker_name: &str) -> String {
    format!(
        "{}-{invoker_namespace}-{invoker_name}",
        invoker_kind.to_lowercase()
    )
}

/// `invoker_kind`, `invoker_name`, `namespace`, `driver`, and `repository` when there is one.
#[must_use]
pub fn session_labels(session: &SessionLabels) -> Vec<(String, String)> {
    let mut labels = vec![
        pair("invoker_kind", &session.invoker_kind),
        pair("invoker_name", &session.invoker_name),
        pair("namespace", &session.namespace),
        pair("driver", &session.driver),
    ];
    if let Some(repository) = &session.repository {
        labels.push(pair("repository", repository));
    }
    labels
}

/// [`session_labels`] plus `kind`, `group`, `name` of the target.
#[must_use]
pub fn target_labels(session: &SessionLabels, target: &TargetLabels) -> Vec<(String, String)> {
    let mut labels = session_labels(session);
    labels.extend([
        pair("kind", &target.kind),
        pair("group", &target.group),
        pair("name", &target.name),
    ]);
    labels
}

/// [`target_labels`] plus `hostname`.
#[must_use]
pub fn host_labels(
    session: &SessionLabels,
    target: &TargetLabels,
    hostname: &str,
) -> Vec<(String, String)> {
    let mut labels = target_labels(session, target);
    labels.push(pair("hostname", hostname));
    labels
}

pub(crate) fn pair(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_name_is_the_lowercase_invoker_kind_then_namespace_then_name() {
        assert_eq!(
            job_name("BackupConfiguration", "demo", "deployment-backup"),
            "backupconfiguration-demo-deployment-backup"
        );
        assert_eq!(
            job_name("RestoreSession", "prod", "restore-db"),
            "restoresession-prod-restore-db"
        );
    }

    #[test]
    fn target_group_is_the_api_group_of_the_target_ref_and_empty_for_core() {
        let deployment = TargetRef {
            api_version: Some("apps/v1".into()),
            kind: "Deployment".into(),
            name: "web".into(),
            namespace: None,
        };
        assert_eq!(
            TargetLabels::from_target_ref(&deployment),
            TargetLabels {
                kind: "Deployment".into(),
                group: "apps".into(),
                name: "web".into()
            }
        );
        let pvc = TargetRef {
            api_version: Some("v1".into()),
            kind: "PersistentVolumeClaim".into(),
            name: "data".into(),
            namespace: None,
        };
        assert_eq!(TargetLabels::from_target_ref(&pvc).group, "");
    }

    #[test]
    fn repository_label_is_left_out_for_the_volume_snapshotter_driver() {
        let session = SessionLabels {
            invoker_kind: "BackupConfiguration".into(),
            invoker_name: "pvc-snapshot".into(),
            namespace: "demo".into(),
            driver: "VolumeSnapshotter".into(),
            repository: None,
        };
        let names: Vec<_> = session_labels(&session)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(
            names,
            ["invoker_kind", "invoker_name", "namespace", "driver"]
        );
    }
}

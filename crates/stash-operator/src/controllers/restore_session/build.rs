//! Stage 3 (pure): what a valid RestoreSession amounts to, from the shared builders: the workload with
//! `stash-init` first among its init-containers and the restore annotations, the init-container's RBAC,
//! and the number of hosts that restore (§8.5).

use super::validate::ValidRestoreSession;
use crate::build::init_container::{InjectInitContainerError, inject_init_container_into_workload};
use crate::build::rbac::{BuildRbacError, ExecutorRbac, restore_init_container_rbac};
use crate::controllers::backup_configuration::build::is_subset;
use crate::invoker::RestoreInvoker;
use crate::settings::Settings;
use crate::workload::Workload;

/// The desired state.
#[derive(Clone, Debug)]
pub struct Resources {
    /// The workload as it should be.
    pub workload: Workload,
    /// Whether the workload as read already carries this init-container and these annotations: then it
    /// is not written.
    pub current: bool,
    pub rbac: ExecutorRbac,
    /// `status.totalHosts`.
    pub total_hosts: i32,
}

/// Building the desired objects failed: the spec asks for something the builders cannot make.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("failed to build the RBAC objects of the init-container")]
    Rbac {
        #[source]
        source: BuildRbacError,
    },
    #[error("failed to inject the init-container")]
    InitContainer {
        #[source]
        source: InjectInitContainerError,
    },
}

impl BuildError {
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Rbac { .. } => "RbacBuildFailed",
            Self::InitContainer { .. } => "InitContainerInjectionFailed",
        }
    }

    /// The message a user acts on: the builder's own, which names the field and the fix.
    #[must_use]
    pub fn user_message(&self) -> String {
        match self {
            Self::Rbac { source } => source.to_string(),
            Self::InitContainer { source } => source.to_string(),
        }
    }
}

/// The hosts that restore into `workload` (§8.5): one leader pod of a Deployment (or ReplicaSet) restores
/// `host-0`, every StatefulSet replica its own ordinal, every scheduled DaemonSet pod its node.
#[must_use]
pub fn total_hosts(workload: &Workload) -> i32 {
    match workload {
        Workload::Deployment(_) | Workload::ReplicaSet(_) => 1,
        Workload::StatefulSet(sts) => sts.spec.replicas.unwrap_or(1),
        Workload::DaemonSet(ds) => ds.status.as_ref().map_or(0, |s| s.desired_number_scheduled),
    }
}

/// Whether everything `patched` sets on `workload` is already there (possibly with API-server defaults).
fn is_current(patched: &Workload, workload: &Workload) -> bool {
    let (wanted, present) = (patched.to_value(), workload.to_value());
    is_subset(&wanted["spec"], &present["spec"])
        && is_subset(
            &wanted["metadata"]["annotations"],
            &present["metadata"]["annotations"],
        )
}

/// Stage 3 of the pipeline.
pub fn build(
    valid: &ValidRestoreSession<'_>,
    settings: &Settings,
) -> Result<Resources, BuildError> {
    let invoker = RestoreInvoker::Session(valid.rs);
    let workload = valid.workload;
    let target = invoker
        .targets()
        .into_iter()
        .next()
        .expect("a RestoreSession has exactly one target");
    let mut patched = workload.clone();
    inject_init_container_into_workload(&mut patched, &target, valid.repository, settings)
        .map_err(|source| BuildError::InitContainer { source })?;
    let rbac = restore_init_container_rbac(workload, valid.repository)
        .map_err(|source| BuildError::Rbac { source })?;
    Ok(Resources {
        current: is_current(&patched, workload),
        workload: patched,
        rbac,
        total_hosts: total_hosts(workload),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use stash_api::labels;
    use stash_api::v1alpha1::Repository;
    use stash_api::v1beta1::RestoreSession;

    const EXAMPLE: &str = include_str!(
        "../../../../stash-api/tests/fixtures/stash-examples/restoresession-deployment.yaml"
    );

    fn restore_session() -> RestoreSession {
        let mut rs: RestoreSession = serde_yaml::from_str(EXAMPLE).unwrap();
        rs.metadata.uid = Some("rs-1".to_owned());
        rs
    }

    fn repository() -> Repository {
        serde_yaml::from_str(
            "apiVersion: stash.appscode.com/v1alpha1\nkind: Repository\nmetadata:\n  name: gcs-repo\n  namespace: demo\nspec:\n  backend:\n    gcs:\n      bucket: stash-testing\n      prefix: /demo/deployment\n    storageSecretName: gcs-secret\n",
        )
        .unwrap()
    }

    fn workload(yaml_kind_spec: &str) -> Workload {
        Workload::from_yaml(&format!(
            "apiVersion: apps/v1\nmetadata:\n  name: stash-recovered\n  namespace: demo\n  uid: w-1\n{yaml_kind_spec}"
        ))
        .unwrap()
    }

    fn deployment() -> Workload {
        workload(
            "kind: Deployment\nspec:\n  selector:\n    matchLabels:\n      app: r\n  template:\n    metadata:\n      labels:\n        app: r\n    spec:\n      serviceAccountName: restorer\n      initContainers:\n      - name: migrate\n        image: busybox\n      containers:\n      - name: busybox\n        image: busybox\n      volumes:\n      - name: source-data\n        emptyDir: {}\n",
        )
    }

    fn init_container_names(workload: &Workload) -> Vec<String> {
        workload
            .pod_spec()
            .unwrap()
            .init_containers
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect()
    }

    #[test]
    fn stash_init_goes_before_the_existing_init_containers_with_the_restore_annotations() {
        let rs = restore_session();
        let (repository, workload) = (repository(), deployment());
        let valid = ValidRestoreSession {
            rs: &rs,
            repository: &repository,
            workload: &workload,
        };
        let resources = build(&valid, &Settings::default()).unwrap();
        assert!(!resources.current);
        assert_eq!(resources.total_hosts, 1);
        assert_eq!(
            init_container_names(&resources.workload),
            ["stash-init", "migrate"]
        );
        let patched = &resources.workload;
        assert_eq!(
            patched.annotation(labels::ANNOTATION_LAST_APPLIED_RESTORE_INVOKER_KIND),
            Some("RestoreSession")
        );
        assert!(
            patched
                .annotation(labels::ANNOTATION_LAST_APPLIED_RESTORE_INVOKER)
                .is_some_and(|a| a.contains("\"name\":\"deployment-restore\""))
        );
        assert!(
            patched
                .template_annotation(labels::ANNOTATION_LAST_APPLIED_RESTORE_INVOKER_HASH)
                .is_some()
        );
        let binding = &resources.rbac.role_binding;
        assert_eq!(binding.role_ref.name, "stash-restore-init-container");
        assert_eq!(
            binding.subjects.as_ref().unwrap()[0].name,
            "restorer",
            "bound to the pods' service account"
        );
    }

    #[test]
    fn a_workload_that_already_carries_the_init_container_is_current() {
        let rs = restore_session();
        let repository = repository();
        let workload = deployment();
        let valid = ValidRestoreSession {
            rs: &rs,
            repository: &repository,
            workload: &workload,
        };
        let once = build(&valid, &Settings::default()).unwrap().workload;
        let again = ValidRestoreSession {
            workload: &once,
            ..valid
        };
        let twice = build(&again, &Settings::default()).unwrap();
        assert!(twice.current);
        assert_eq!(twice.workload, once);
    }

    #[test]
    fn every_statefulset_replica_and_every_scheduled_daemonset_pod_is_a_host() {
        let sts = workload(
            "kind: StatefulSet\nspec:\n  replicas: 3\n  serviceName: s\n  selector: {}\n  template: {}\n",
        );
        assert_eq!(total_hosts(&sts), 3);
        let ds = workload(
            "kind: DaemonSet\nspec:\n  selector: {}\n  template: {}\nstatus:\n  currentNumberScheduled: 2\n  desiredNumberScheduled: 2\n  numberMisscheduled: 0\n  numberReady: 0\n",
        );
        assert_eq!(total_hosts(&ds), 2);
    }
}

//! Stage 3 (pure): the objects a valid BackupConfiguration amounts to, from the shared builders: the
//! trigger CronJob and its RBAC, and for the sidecar model the workload with the sidecar and the
//! sidecar's RBAC.

use k8s_openapi::api::batch::v1::CronJob;
use serde_json::Value;

use super::validate::{SidecarTarget, ValidBackupConfiguration};
use crate::build::cronjob::{BuildCronJobError, trigger_cronjob};
use crate::build::rbac::{BuildRbacError, ExecutorRbac, sidecar_rbac, trigger_cronjob_rbac};
use crate::build::sidecar::{InjectSidecarError, inject_sidecar_into_workload, sidecar_is_current};
use crate::invoker::BackupInvoker;
use crate::settings::Settings;
use crate::workload::Workload;

/// The desired state.
#[derive(Clone, Debug)]
pub struct Resources {
    pub cronjob: CronJob,
    pub cronjob_rbac: ExecutorRbac,
    pub sidecar: Option<SidecarResources>,
}

/// The workload with the sidecar, and what it needs.
#[derive(Clone, Debug)]
pub struct SidecarResources {
    /// The workload as it should be.
    pub workload: Workload,
    /// Whether the workload as read already carries this sidecar and hash: then it is not written.
    pub current: bool,
    pub rbac: ExecutorRbac,
}

/// Building the desired objects failed: the spec asks for something the builders cannot make.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("failed to build the trigger CronJob")]
    CronJob {
        #[source]
        source: BuildCronJobError,
    },
    #[error("failed to build the RBAC objects")]
    Rbac {
        #[source]
        source: BuildRbacError,
    },
    #[error("failed to inject the sidecar")]
    Sidecar {
        #[source]
        source: InjectSidecarError,
    },
}

impl BuildError {
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::CronJob { .. } => "CronJobBuildFailed",
            Self::Rbac { .. } => "RbacBuildFailed",
            Self::Sidecar { .. } => "SidecarInjectionFailed",
        }
    }

    /// The message a user acts on: the builder's own, which names the field and the fix.
    #[must_use]
    pub fn user_message(&self) -> String {
        match self {
            Self::CronJob { source } => source.to_string(),
            Self::Rbac { source } => source.to_string(),
            Self::Sidecar { source } => source.to_string(),
        }
    }
}

/// Whether everything `wanted` sets is set to the same value in `present`: the API server adds defaults
/// (`terminationMessagePath`, `fieldRef.apiVersion`, ...) to the injected sidecar, so a workload read back
/// never equals the built one, yet needs no update.
#[must_use]
pub fn is_subset(wanted: &Value, present: &Value) -> bool {
    match (wanted, present) {
        (Value::Object(w), Value::Object(p)) => w
            .iter()
            .all(|(k, v)| v.is_null() || p.get(k).is_some_and(|pv| is_subset(v, pv))),
        (Value::Array(w), Value::Array(p)) => {
            w.len() == p.len() && w.iter().zip(p).all(|(a, b)| is_subset(a, b))
        }
        (Value::Null, _) => true,
        (w, p) => w == p,
    }
}

/// Stage 3 of the pipeline.
pub fn build(
    valid: &ValidBackupConfiguration<'_>,
    settings: &Settings,
) -> Result<Resources, BuildError> {
    let invoker = BackupInvoker::Configuration(valid.bc);
    let cronjob =
        trigger_cronjob(invoker, settings).map_err(|source| BuildError::CronJob { source })?;
    let cronjob_rbac =
        trigger_cronjob_rbac(invoker, settings).map_err(|source| BuildError::Rbac { source })?;
    let sidecar = match valid.sidecar {
        SidecarTarget::Inject(workload) => {
            let target = invoker
                .target_for(workload)
                .expect("validate only injects into a workload the target names");
            let mut patched = workload.clone();
            inject_sidecar_into_workload(&mut patched, &target, valid.repository, settings)
                .map_err(|source| BuildError::Sidecar { source })?;
            let current = sidecar_is_current(workload, &target, valid.repository, settings)
                || is_subset(&patched.to_value()["spec"], &workload.to_value()["spec"]);
            let rbac = sidecar_rbac(workload, valid.repository)
                .map_err(|source| BuildError::Rbac { source })?;
            Some(SidecarResources {
                workload: patched,
                current,
                rbac,
            })
        }
        SidecarTarget::None | SidecarTarget::Superseded { .. } => None,
    };
    Ok(Resources {
        cronjob,
        cronjob_rbac,
        sidecar,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_container_read_back_with_server_defaults_still_counts_as_current() {
        let wanted = json!({"containers": [{"name": "stash", "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]});
        let present = json!({"containers": [{"name": "stash", "terminationMessagePath": "/dev/termination-log", "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}]}]});
        assert!(is_subset(&wanted, &present));
    }

    #[test]
    fn a_changed_argument_or_a_missing_container_is_not_current() {
        let wanted = json!({"containers": [{"name": "app"}, {"name": "stash", "args": ["run-backup", "--v=3"]}]});
        let changed = json!({"containers": [{"name": "app"}, {"name": "stash", "args": ["run-backup", "--v=4"]}]});
        let missing = json!({"containers": [{"name": "app"}]});
        assert!(!is_subset(&wanted, &changed));
        assert!(!is_subset(&wanted, &missing));
    }
}

//! Stage 1: read what a BackupSession names: its invoker (BackupConfiguration or BackupBatch), the other
//! sessions of that invoker (by the invoker labels, §5.2), and the target workloads. Absent objects are
//! `None`; only failed reads are errors.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use stash_api::common::{RetryConfig, TargetRef};
use stash_api::labels;
use stash_api::phase::BackupInvokerPhase;
use stash_api::v1beta1::{BackupBatch, BackupConfiguration, BackupSession};

use crate::invoker::{BackupInvoker, BackupInvokerKind};
use crate::workload::{Workload, WorkloadKind};

/// The invoker a session names, as read from the API server.
#[derive(Clone, Debug)]
pub enum InvokerObject {
    Configuration(Box<BackupConfiguration>),
    Batch(Box<BackupBatch>),
}

impl InvokerObject {
    #[must_use]
    pub fn invoker(&self) -> BackupInvoker<'_> {
        match self {
            Self::Configuration(bc) => BackupInvoker::Configuration(bc),
            Self::Batch(bb) => BackupInvoker::Batch(bb),
        }
    }

    #[must_use]
    pub fn phase(&self) -> Option<BackupInvokerPhase> {
        match self {
            Self::Configuration(bc) => bc.status.as_ref().and_then(|s| s.phase),
            Self::Batch(bb) => bb.status.as_ref().and_then(|s| s.phase),
        }
    }

    #[must_use]
    pub fn backup_history_limit(&self) -> Option<i32> {
        match self {
            Self::Configuration(bc) => bc.spec.backup_history_limit,
            Self::Batch(bb) => bb.spec.backup_history_limit,
        }
    }

    #[must_use]
    pub fn time_out(&self) -> Option<&str> {
        match self {
            Self::Configuration(bc) => bc.spec.time_out.as_deref(),
            Self::Batch(bb) => bb.spec.time_out.as_deref(),
        }
        .filter(|t| !t.is_empty())
    }

    #[must_use]
    pub fn retry_config(&self) -> Option<&RetryConfig> {
        match self {
            Self::Configuration(bc) => bc.spec.retry_config.as_ref(),
            Self::Batch(bb) => bb.spec.retry_config.as_ref(),
        }
    }
}

/// The invoker a session names: `spec.invoker`, or the obsolete `spec.backupConfiguration`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvokerKey {
    pub kind: BackupInvokerKind,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for InvokerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Why a session names no invoker the operator can read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvokerKeyProblem {
    Missing,
    UnknownKind(String),
}

/// The invoker `session` names.
pub fn invoker_key(session: &BackupSession) -> Result<InvokerKey, InvokerKeyProblem> {
    let namespace = session.namespace().unwrap_or_default();
    if let Some(invoker) = &session.spec.invoker {
        let kind = BackupInvokerKind::from_kind(&invoker.kind)
            .ok_or_else(|| InvokerKeyProblem::UnknownKind(invoker.kind.clone()))?;
        return Ok(InvokerKey {
            kind,
            namespace,
            name: invoker.name.clone(),
        });
    }
    match &session.spec.backup_configuration {
        Some(obsolete) => Ok(InvokerKey {
            kind: BackupInvokerKind::BackupConfiguration,
            namespace,
            name: obsolete.name.clone(),
        }),
        None => Err(InvokerKeyProblem::Missing),
    }
}

/// The label selector of an invoker's sessions (§5.2).
#[must_use]
pub fn sessions_selector(key: &InvokerKey) -> String {
    format!(
        "{}={},{}={}",
        labels::LABEL_INVOKER_TYPE,
        key.kind,
        labels::LABEL_INVOKER_NAME,
        key.name
    )
}

/// Reading a referenced object failed (not: the object is missing).
#[derive(Debug, thiserror::Error)]
pub enum DereferenceError {
    #[error("failed to read {invoker} (BackupSession.spec.invoker)")]
    ReadInvoker {
        invoker: InvokerKey,
        #[source]
        source: kube::Error,
    },
    #[error("failed to list the BackupSessions of {invoker}")]
    ListSessions {
        invoker: InvokerKey,
        #[source]
        source: kube::Error,
    },
    #[error("failed to read {kind} {namespace}/{name} (the invoker's target)")]
    ReadTarget {
        kind: WorkloadKind,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Reads the invoker, `None` if it does not exist.
pub async fn read_invoker(
    client: &Client,
    key: &InvokerKey,
) -> Result<Option<InvokerObject>, DereferenceError> {
    let error = |source| DereferenceError::ReadInvoker {
        invoker: key.clone(),
        source,
    };
    Ok(match key.kind {
        BackupInvokerKind::BackupConfiguration => {
            Api::<BackupConfiguration>::namespaced(client.clone(), &key.namespace)
                .get_opt(&key.name)
                .await
                .map_err(error)?
                .map(|bc| InvokerObject::Configuration(Box::new(bc)))
        }
        BackupInvokerKind::BackupBatch => {
            Api::<BackupBatch>::namespaced(client.clone(), &key.namespace)
                .get_opt(&key.name)
                .await
                .map_err(error)?
                .map(|bb| InvokerObject::Batch(Box::new(bb)))
        }
    })
}

/// Every BackupSession of the invoker, read from the API server rather than a cache so that a session
/// made Running a moment ago is seen.
pub async fn list_sessions(
    client: &Client,
    key: &InvokerKey,
) -> Result<Vec<BackupSession>, DereferenceError> {
    Api::<BackupSession>::namespaced(client.clone(), &key.namespace)
        .list(&ListParams::default().labels(&sessions_selector(key)))
        .await
        .map(|list| list.items)
        .map_err(|source| DereferenceError::ListSessions {
            invoker: key.clone(),
            source,
        })
}

/// The workload `reference` names in `namespace`, `None` if it is not an `apps/v1` workload kind or does
/// not exist.
pub async fn read_workload(
    client: &Client,
    reference: &TargetRef,
    namespace: &str,
) -> Result<Option<Workload>, DereferenceError> {
    let Some(kind) = WorkloadKind::from_kind(&reference.kind) else {
        return Ok(None);
    };
    let name = reference.name.as_str();
    let result = match kind {
        WorkloadKind::Deployment => Api::<Deployment>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await
            .map(|w| w.map(Workload::from)),
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await
            .map(|w| w.map(Workload::from)),
        WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await
            .map(|w| w.map(Workload::from)),
        WorkloadKind::ReplicaSet => {
            Api::<k8s_openapi::api::apps::v1::ReplicaSet>::namespaced(client.clone(), namespace)
                .get_opt(name)
                .await
                .map(|w| w.map(Workload::from))
        }
    };
    result.map_err(|source| DereferenceError::ReadTarget {
        kind,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    })
}

/// The workload of each target of `invoker`, keyed by target index.
pub async fn read_workloads(
    client: &Client,
    invoker: BackupInvoker<'_>,
) -> Result<BTreeMap<usize, Workload>, DereferenceError> {
    let mut out = BTreeMap::new();
    for info in invoker.targets() {
        let Some(target) = info.target else { continue };
        if let Some(workload) =
            read_workload(client, &target.reference, info.target_namespace()).await?
        {
            out.insert(info.index, workload);
        }
    }
    Ok(out)
}

//! `kubectl stash pause backup` / `resume backup`: set `spec.paused` of a BackupConfiguration or
//! BackupBatch; the operator then suspends (or resumes) its trigger CronJob.

use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource};
use serde_json::json;
use stash_api::v1beta1::{BackupBatch, BackupConfiguration};

use crate::KubectlError;

/// Field manager of the plugin's writes, so `managedFields` tell who paused a backup.
pub const FIELD_MANAGER: &str = "kubectl-stash";

/// The invoker whose schedule is paused or resumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PausableKind {
    BackupConfiguration,
    BackupBatch,
}

impl PausableKind {
    fn kind(self) -> &'static str {
        match self {
            Self::BackupConfiguration => "BackupConfiguration",
            Self::BackupBatch => "BackupBatch",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Self::BackupConfiguration => "backupconfigurations",
            Self::BackupBatch => "backupbatches",
        }
    }
}

/// Sets `spec.paused` of the invoker `namespace/name` to `paused`.
#[tracing::instrument(skip(client))]
pub async fn set_paused(
    client: Client,
    kind: PausableKind,
    namespace: &str,
    name: &str,
    paused: bool,
) -> Result<(), KubectlError> {
    match kind {
        PausableKind::BackupConfiguration => {
            patch::<BackupConfiguration>(client, kind, namespace, name, paused).await
        }
        PausableKind::BackupBatch => {
            patch::<BackupBatch>(client, kind, namespace, name, paused).await
        }
    }
}

async fn patch<K>(
    client: Client,
    kind: PausableKind,
    namespace: &str,
    name: &str,
    paused: bool,
) -> Result<(), KubectlError>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client, namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let body = json!({"spec": {"paused": paused}});
    match api.patch(name, &params, &Patch::Merge(&body)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(KubectlError::InvokerNotFound {
            kind: kind.kind(),
            plural: kind.plural(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }),
        Err(source) => Err(KubectlError::Patch {
            kind: kind.kind(),
            plural: kind.plural(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source: Box::new(source),
        }),
    }
}

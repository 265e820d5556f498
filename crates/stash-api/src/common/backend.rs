//! `spec.backend` of a Repository (kmodules objectstore-api `Backend`): one storage provider block plus
//! the name of the Secret holding `RESTIC_PASSWORD` and the provider's credentials.

use super::volume_source::VolumeSource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a restic repository lives. Exactly one provider block must be set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    /// Secret (in the Repository's namespace) holding `RESTIC_PASSWORD` and provider credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_secret_name: Option<String>,
    /// A Kubernetes volume mounted into the backup/restore containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalSpec>,
    /// Amazon S3 or an S3-compatible server (MinIO, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Spec>,
    /// Google Cloud Storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcs: Option<GcsSpec>,
    /// Azure Blob Storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureSpec>,
    /// OpenStack Swift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swift: Option<SwiftSpec>,
    /// Backblaze B2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b2: Option<B2Spec>,
    /// restic REST server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest: Option<RestServerSpec>,
}

/// The storage providers, in Stash's detection order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    Local,
    S3,
    Gcs,
    Azure,
    Swift,
    B2,
    Rest,
}

impl Provider {
    /// All providers in Stash's detection order.
    pub const ALL: [Provider; 7] = [
        Provider::Local,
        Provider::S3,
        Provider::Gcs,
        Provider::Azure,
        Provider::Swift,
        Provider::B2,
        Provider::Rest,
    ];

    /// Stash's provider string, which is also the JSON key of the provider block.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Local => "local",
            Provider::S3 => "s3",
            Provider::Gcs => "gcs",
            Provider::Azure => "azure",
            Provider::Swift => "swift",
            Provider::B2 => "b2",
            Provider::Rest => "rest",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Backend {
    /// Every provider block that is set, in detection order (a valid backend has exactly one).
    #[must_use]
    pub fn providers(&self) -> Vec<Provider> {
        Provider::ALL
            .into_iter()
            .filter(|p| match p {
                Provider::Local => self.local.is_some(),
                Provider::S3 => self.s3.is_some(),
                Provider::Gcs => self.gcs.is_some(),
                Provider::Azure => self.azure.is_some(),
                Provider::Swift => self.swift.is_some(),
                Provider::B2 => self.b2.is_some(),
                Provider::Rest => self.rest.is_some(),
            })
            .collect()
    }

    /// The provider Stash would use (the first one set in detection order).
    #[must_use]
    pub fn provider(&self) -> Option<Provider> {
        self.providers().first().copied()
    }

    /// `maxConnections` of the gcs/azure/b2 block (0 = restic default).
    #[must_use]
    pub fn max_connections(&self) -> i64 {
        self.gcs
            .as_ref()
            .and_then(|b| b.max_connections)
            .or_else(|| self.azure.as_ref().and_then(|b| b.max_connections))
            .or_else(|| self.b2.as_ref().and_then(|b| b.max_connections))
            .unwrap_or(0)
    }
}

/// `backend.local`: any core VolumeSource inline plus where to mount it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalSpec {
    /// The volume holding the repository (`hostPath`, `persistentVolumeClaim`, `nfs`, ...).
    #[serde(flatten)]
    pub volume_source: VolumeSource,
    /// Where the volume is mounted in the stash containers; this directory is the restic repository.
    pub mount_path: String,
    /// Sub-path of the volume to mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
}

/// `backend.s3`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Spec {
    /// Server URL, used verbatim (`s3.amazonaws.com`, `https://minio.example:9000`).
    pub endpoint: String,
    /// Bucket name.
    pub bucket: String,
    /// Path prefix inside the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Region (exported as `AWS_DEFAULT_REGION`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Skip TLS certificate verification.
    #[serde(
        rename = "insecureTLS",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub insecure_tls: Option<bool>,
}

/// `backend.gcs`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcsSpec {
    /// Bucket name.
    pub bucket: String,
    /// Path prefix inside the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Parallel connections (0 = restic default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i64>,
}

/// `backend.azure`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureSpec {
    /// Blob container name.
    pub container: String,
    /// Path prefix inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Parallel connections (0 = restic default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i64>,
}

/// `backend.swift`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwiftSpec {
    /// Swift container name.
    pub container: String,
    /// Path prefix inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// `backend.b2`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct B2Spec {
    /// Bucket name.
    pub bucket: String,
    /// Path prefix inside the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Parallel connections (0 = restic default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i64>,
}

/// `backend.rest`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestServerSpec {
    /// REST server URL; its path is the repository location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

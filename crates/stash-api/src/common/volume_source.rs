//! The core `VolumeSource` (a Volume without its name). k8s-openapi only ships `Volume`, which inlines the
//! sources next to `name`; Stash's `backend.local` inlines a VolumeSource, so it is spelled out here with the
//! same JSON names and k8s-openapi's source types.

use k8s_openapi::api::core::v1 as core;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Every volume source a Pod volume may use; at most one should be set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_elastic_block_store: Option<core::AWSElasticBlockStoreVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_disk: Option<core::AzureDiskVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_file: Option<core::AzureFileVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cephfs: Option<core::CephFSVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cinder: Option<core::CinderVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<core::ConfigMapVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csi: Option<core::CSIVolumeSource>,
    #[serde(
        rename = "downwardAPI",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub downward_api: Option<core::DownwardAPIVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<core::EmptyDirVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<core::EphemeralVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fc: Option<core::FCVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flex_volume: Option<core::FlexVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flocker: Option<core::FlockerVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gce_persistent_disk: Option<core::GCEPersistentDiskVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_repo: Option<core::GitRepoVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glusterfs: Option<core::GlusterfsVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<core::HostPathVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<core::ImageVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iscsi: Option<core::ISCSIVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfs: Option<core::NFSVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<core::PersistentVolumeClaimVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photon_persistent_disk: Option<core::PhotonPersistentDiskVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portworx_volume: Option<core::PortworxVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projected: Option<core::ProjectedVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quobyte: Option<core::QuobyteVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rbd: Option<core::RBDVolumeSource>,
    #[serde(rename = "scaleIO", default, skip_serializing_if = "Option::is_none")]
    pub scale_io: Option<core::ScaleIOVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<core::SecretVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storageos: Option<core::StorageOSVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsphere_volume: Option<core::VsphereVirtualDiskVolumeSource>,
}

impl VolumeSource {
    /// The JSON names of the sources that are set.
    #[must_use]
    pub fn set_sources(&self) -> Vec<&'static str> {
        let mut set = Vec::new();
        if self.aws_elastic_block_store.is_some() {
            set.push("awsElasticBlockStore");
        }
        if self.azure_disk.is_some() {
            set.push("azureDisk");
        }
        if self.azure_file.is_some() {
            set.push("azureFile");
        }
        if self.cephfs.is_some() {
            set.push("cephfs");
        }
        if self.cinder.is_some() {
            set.push("cinder");
        }
        if self.config_map.is_some() {
            set.push("configMap");
        }
        if self.csi.is_some() {
            set.push("csi");
        }
        if self.downward_api.is_some() {
            set.push("downwardAPI");
        }
        if self.empty_dir.is_some() {
            set.push("emptyDir");
        }
        if self.ephemeral.is_some() {
            set.push("ephemeral");
        }
        if self.fc.is_some() {
            set.push("fc");
        }
        if self.flex_volume.is_some() {
            set.push("flexVolume");
        }
        if self.flocker.is_some() {
            set.push("flocker");
        }
        if self.gce_persistent_disk.is_some() {
            set.push("gcePersistentDisk");
        }
        if self.git_repo.is_some() {
            set.push("gitRepo");
        }
        if self.glusterfs.is_some() {
            set.push("glusterfs");
        }
        if self.host_path.is_some() {
            set.push("hostPath");
        }
        if self.image.is_some() {
            set.push("image");
        }
        if self.iscsi.is_some() {
            set.push("iscsi");
        }
        if self.nfs.is_some() {
            set.push("nfs");
        }
        if self.persistent_volume_claim.is_some() {
            set.push("persistentVolumeClaim");
        }
        if self.photon_persistent_disk.is_some() {
            set.push("photonPersistentDisk");
        }
        if self.portworx_volume.is_some() {
            set.push("portworxVolume");
        }
        if self.projected.is_some() {
            set.push("projected");
        }
        if self.quobyte.is_some() {
            set.push("quobyte");
        }
        if self.rbd.is_some() {
            set.push("rbd");
        }
        if self.scale_io.is_some() {
            set.push("scaleIO");
        }
        if self.secret.is_some() {
            set.push("secret");
        }
        if self.storageos.is_some() {
            set.push("storageos");
        }
        if self.vsphere_volume.is_some() {
            set.push("vsphereVolume");
        }
        set
    }

    /// A Pod volume named `name` with this source.
    #[must_use]
    pub fn to_volume(&self, name: &str) -> core::Volume {
        core::Volume {
            name: name.to_owned(),
            aws_elastic_block_store: self.aws_elastic_block_store.clone(),
            azure_disk: self.azure_disk.clone(),
            azure_file: self.azure_file.clone(),
            cephfs: self.cephfs.clone(),
            cinder: self.cinder.clone(),
            config_map: self.config_map.clone(),
            csi: self.csi.clone(),
            downward_api: self.downward_api.clone(),
            empty_dir: self.empty_dir.clone(),
            ephemeral: self.ephemeral.clone(),
            fc: self.fc.clone(),
            flex_volume: self.flex_volume.clone(),
            flocker: self.flocker.clone(),
            gce_persistent_disk: self.gce_persistent_disk.clone(),
            git_repo: self.git_repo.clone(),
            glusterfs: self.glusterfs.clone(),
            host_path: self.host_path.clone(),
            image: self.image.clone(),
            iscsi: self.iscsi.clone(),
            nfs: self.nfs.clone(),
            persistent_volume_claim: self.persistent_volume_claim.clone(),
            photon_persistent_disk: self.photon_persistent_disk.clone(),
            portworx_volume: self.portworx_volume.clone(),
            projected: self.projected.clone(),
            quobyte: self.quobyte.clone(),
            rbd: self.rbd.clone(),
            scale_io: self.scale_io.clone(),
            secret: self.secret.clone(),
            storageos: self.storageos.clone(),
            vsphere_volume: self.vsphere_volume.clone(),
        }
    }
}

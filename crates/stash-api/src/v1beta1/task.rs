//! `Task` (cluster scoped): the ordered Functions that make up a job-model backup or restore.

use k8s_openapi::api::core::v1::Volume;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::Param;

/// Spec of a Task.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "stash.appscode.com",
    version = "v1beta1",
    kind = "Task",
    plural = "tasks",
    singular = "task",
    derive = "PartialEq",
    doc = "Ordered Functions run as one job-model backup or restore.",
    shortname = "task",
    category = "stash",
    category = "appscode",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    /// Each step becomes a container; all but the last are init-containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<FunctionRef>>,
    /// Volumes of the job pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<Volume>>,
}

/// A step of a Task.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunctionRef {
    /// Function name.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<Param>>,
}

//! Hooks (kmodules prober `Handler`) run before/after a backup or restore.

use k8s_openapi::api::core::v1::{ExecAction, HTTPGetAction, HTTPHeader, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One hook: every action that is set runs, in the order exec → httpGet → httpPost → tcpSocket.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Handler {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HTTPGetAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_post: Option<HTTPPostAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TCPSocketAction>,
    /// Container to exec into / resolve named ports against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
}

impl Handler {
    /// Whether at least one action is set.
    #[must_use]
    pub fn has_action(&self) -> bool {
        self.exec.is_some()
            || self.http_get.is_some()
            || self.http_post.is_some()
            || self.tcp_socket.is_some()
    }
}

/// An HTTP POST hook action.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HTTPPostAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub port: IntOrString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_headers: Option<Vec<HTTPHeader>>,
    /// Request body; rendered as a Go template when it contains `{{`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Form data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<Vec<FormEntry>>,
}

/// One form field of an HTTP POST hook.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FormEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

/// When a post hook runs, compared against the target's phase.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum HookExecutionPolicy {
    #[default]
    Always,
    OnSuccess,
    OnFailure,
    /// Added after Stash v0.24: run only when the last retry failed.
    OnFinalRetryFailure,
}

/// A post hook: a Handler plus its execution policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostHookSpec {
    #[serde(flatten)]
    pub handler: Handler,
    /// `Always` (default), `OnSuccess`, `OnFailure` or `OnFinalRetryFailure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Always"))]
    pub execution_policy: Option<HookExecutionPolicy>,
}

/// `hooks` of BackupConfiguration / BackupBatch / BackupBlueprint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupHooks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_backup: Option<Handler>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_backup: Option<PostHookSpec>,
}

/// `hooks` of RestoreSession / RestoreBatch.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreHooks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_restore: Option<Handler>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_restore: Option<PostHookSpec>,
}

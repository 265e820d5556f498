//! The credentials a stash container gets: the admin kubeconfig, or its pod's service account
//! as a kubelet hands it out (a `TokenRequest` token bound to the pod, the cluster CA and the
//! namespace, mounted at [`SERVICE_ACCOUNT_DIR`], and `KUBERNETES_SERVICE_HOST`/`_PORT`), so
//! that kube's `Config::infer()` takes the in-cluster path and RBAC applies.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::Client;
use kube::api::{Api, PostParams};

use super::mounts::BindMount;

/// Where a kubelet mounts the service account's `token`, `ca.crt` and `namespace`.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Pod annotation that picks the identity of one pod (`admin` or `service-account`),
/// whatever [`super::Config::identity`] says.
pub const IDENTITY_ANNOTATION: &str = "stash-testenv/identity";

/// How long a token lives: longer than any test, as the runner never refreshes it.
const TOKEN_SECONDS: i64 = 24 * 3600;

/// The KCM creates the `default` `ServiceAccount` of a namespace a moment after the namespace.
const SERVICE_ACCOUNT_WAIT: Duration = Duration::from_secs(30);

/// Whose credentials the processes of stash containers get.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PodIdentity {
    /// The admin kubeconfig (`system:masters`) at [`super::ADMIN_KUBECONFIG`]: RBAC is not
    /// exercised.
    #[default]
    Admin,
    /// The pod's service account (`spec.serviceAccountName`, else `default`), as a kubelet
    /// gives it; no `KUBECONFIG`. `automountServiceAccountToken: false` means no credentials.
    ServiceAccount,
}

impl PodIdentity {
    /// The identity of `pod`: its [`IDENTITY_ANNOTATION`], else `default`.
    pub fn of(pod: &Pod, default: Self) -> Result<Self, String> {
        let annotation = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(IDENTITY_ANNOTATION));
        match annotation.map(String::as_str) {
            None => Ok(default),
            Some("admin") => Ok(Self::Admin),
            Some("service-account") => Ok(Self::ServiceAccount),
            Some(other) => Err(format!(
                "annotation {IDENTITY_ANNOTATION}: {other:?} is neither \"admin\" nor \"service-account\""
            )),
        }
    }
}

/// What in-cluster configuration needs: the API server's port on 127.0.0.1 (its serving
/// certificate has that IP SAN) and the CA that signed it.
#[derive(Debug, Clone)]
pub struct InCluster {
    pub port: u16,
    pub ca_file: PathBuf,
}

/// A service account's credentials for one pod: the directory to bind at
/// [`SERVICE_ACCOUNT_DIR`] (written under `pod_dir`) and the env a kubelet sets.
pub struct Credentials {
    pub mount: BindMount,
    pub env: Vec<(String, String)>,
}

/// Requests a token for `pod`'s service account, bound to the pod when the pod names its
/// account, and writes the files a kubelet mounts. `None` when the pod opts out with `automountServiceAccountToken: false`.
pub async fn service_account(
    client: &Client,
    pod: &Pod,
    in_cluster: &InCluster,
    pod_dir: &Path,
) -> Result<Option<Credentials>, String> {
    let spec = pod.spec.clone().unwrap_or_default();
    if spec.automount_service_account_token == Some(false) {
        return Ok(None);
    }
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let named = spec.service_account_name.filter(|s| !s.is_empty());
    // Without the ServiceAccount admission plugin (see control_plane) nothing defaults
    // `serviceAccountName` to `default`, and the API server refuses to bind a token for
    // `default` to a pod that names no account: such a token is bound to its expiry only.
    let bound_to = named.is_some().then_some(pod);
    let account = named.unwrap_or_else(|| "default".to_owned());
    let token = request_token(client, bound_to, &ns, &account).await?;
    let ca = std::fs::read(&in_cluster.ca_file)
        .map_err(|e| format!("reading {}: {e}", in_cluster.ca_file.display()))?;
    let dir = pod_dir.join("serviceaccount");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    for (file, data) in [
        ("token", token.as_bytes()),
        ("ca.crt", &ca[..]),
        ("namespace", ns.as_bytes()),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, data).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    let port = in_cluster.port.to_string();
    Ok(Some(Credentials {
        mount: BindMount {
            source: dir,
            target: SERVICE_ACCOUNT_DIR.to_owned(),
            read_only: true,
        },
        env: vec![
            ("KUBERNETES_SERVICE_HOST".into(), "127.0.0.1".into()),
            ("KUBERNETES_SERVICE_PORT".into(), port.clone()),
            ("KUBERNETES_SERVICE_PORT_HTTPS".into(), port),
        ],
    }))
}

async fn request_token(
    client: &Client,
    bound_to: Option<&Pod>,
    ns: &str,
    account: &str,
) -> Result<String, String> {
    let bound_object = bound_to.map(|pod| {
        serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "name": pod.metadata.name, "uid": pod.metadata.uid})
    });
    let request: TokenRequest = serde_json::from_value(serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": [], "expirationSeconds": TOKEN_SECONDS, "boundObjectRef": bound_object},
    }))
    .expect("static TokenRequest");
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    loop {
        match api
            .create_subresource::<_, TokenRequest>(
                "token",
                account,
                &PostParams::default(),
                &request,
            )
            .await
        {
            Ok(granted) => {
                return granted.status.and_then(|s| s.token).ok_or_else(|| {
                    format!("the TokenRequest for ServiceAccount {ns}/{account} returned no token")
                });
            }
            Err(kube::Error::Api(s))
                if s.code == 404 && started.elapsed() < SERVICE_ACCOUNT_WAIT =>
            {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => {
                return Err(format!(
                    "requesting a token for ServiceAccount {ns}/{account} (does it exist?): {e}"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(annotation: Option<&str>) -> Pod {
        let annotations = annotation.map(|a| serde_json::json!({IDENTITY_ANNOTATION: a}));
        serde_json::from_value(
            serde_json::json!({"metadata": {"name": "p", "annotations": annotations}}),
        )
        .expect("test pod")
    }

    #[test]
    fn a_pods_annotation_overrides_the_runners_identity_and_a_typo_is_an_error() {
        assert_eq!(
            PodIdentity::of(&pod(None), PodIdentity::Admin),
            Ok(PodIdentity::Admin)
        );
        assert_eq!(
            PodIdentity::of(&pod(Some("service-account")), PodIdentity::Admin),
            Ok(PodIdentity::ServiceAccount)
        );
        assert_eq!(
            PodIdentity::of(&pod(Some("admin")), PodIdentity::ServiceAccount),
            Ok(PodIdentity::Admin)
        );
        assert!(PodIdentity::of(&pod(Some("serviceaccount")), PodIdentity::Admin).is_err());
    }
}

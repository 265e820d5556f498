//! Who this pod is in a backup (§8.5): the restic `--host` it backs up as, and how it takes turns
//! with the other pods of its workload.

use stash_api::labels;

/// How the pods of one workload share the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Election {
    /// Deployment-like workloads: the pods are copies of each other, so one leader pod (holder
    /// of the Lease for the sidecar's whole life) backs up for all of them.
    Leader,
    /// StatefulSet and DaemonSet: every pod backs up its own data, one pod at a time, each
    /// holding the Lease for one session.
    EachPodInTurn,
}

/// The host identity of this pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// restic's `--host`, and the `hostname` of the pod's `stats[]` entry.
    pub name: String,
    pub election: Election,
    /// The Lease serialising the pods: `lock-<lowercase kind>-<workload>-backup`.
    pub lease_name: String,
}

/// Why the pod cannot tell its host name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error(
        "--target-kind={kind} is not backed up by the stash sidecar; use Deployment, DeploymentConfig, ReplicaSet, ReplicationController, StatefulSet or DaemonSet"
    )]
    UnsupportedKind { kind: String },
    #[error(
        "a StatefulSet pod needs POD_NAME ending in -<ordinal>, got `{pod_name}`; set POD_NAME from the downward API field metadata.name"
    )]
    NoOrdinal { pod_name: String },
    #[error("a DaemonSet pod needs NODE_NAME; set it from the downward API field spec.nodeName")]
    NoNodeName,
}

/// The host of a pod of `target_kind` named `pod_name` on `node_name`, given the target's `alias`.
pub fn host_for(
    target_kind: &str,
    target_name: &str,
    alias: Option<&str>,
    pod_name: &str,
    node_name: Option<&str>,
) -> Result<Host, HostError> {
    let alias = alias.filter(|a| !a.is_empty());
    let (name, election) = match target_kind {
        "Deployment" | "DeploymentConfig" | "ReplicaSet" | "ReplicationController" => (
            alias.unwrap_or(labels::DEFAULT_HOST).to_owned(),
            Election::Leader,
        ),
        "StatefulSet" => {
            let ordinal = pod_name
                .rsplit_once('-')
                .map(|(_, last)| last)
                .filter(|last| !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| HostError::NoOrdinal {
                    pod_name: pod_name.to_owned(),
                })?;
            (
                format!("{}-{ordinal}", alias.unwrap_or("host")),
                Election::EachPodInTurn,
            )
        }
        "DaemonSet" => {
            let node = node_name
                .filter(|n| !n.is_empty())
                .ok_or(HostError::NoNodeName)?;
            let name = alias.map_or_else(|| node.to_owned(), |alias| format!("{alias}-{node}"));
            (name, Election::EachPodInTurn)
        }
        other => {
            return Err(HostError::UnsupportedKind {
                kind: other.to_owned(),
            });
        }
    };
    Ok(Host {
        name,
        election,
        lease_name: lease_name(target_kind, target_name),
    })
}

/// `lock-<lowercase kind>-<workload name>-backup`, Stash's lock name (§8.6).
#[must_use]
pub fn lease_name(target_kind: &str, target_name: &str) -> String {
    format!(
        "lock-{}-{target_name}-backup",
        target_kind.to_ascii_lowercase()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(kind: &str, alias: Option<&str>, pod: &str, node: Option<&str>) -> Host {
        host_for(kind, "app", alias, pod, node).expect("a host")
    }

    #[test]
    fn a_deployment_pod_backs_up_as_host_0_or_its_alias_after_winning_the_lease() {
        let h = host("Deployment", None, "app-7d9f-x2k4", None);
        assert_eq!(h.name, "host-0");
        assert_eq!(h.election, Election::Leader);
        assert_eq!(h.lease_name, "lock-deployment-app-backup");
        assert_eq!(
            host("Deployment", Some("web"), "app-7d9f-x2k4", None).name,
            "web"
        );
        assert_eq!(host("ReplicaSet", None, "app-x2k4", None).name, "host-0");
    }

    #[test]
    fn a_statefulset_pod_backs_up_as_host_ordinal_from_the_last_token_of_its_name() {
        let h = host("StatefulSet", None, "my-db-2", None);
        assert_eq!(h.name, "host-2");
        assert_eq!(h.election, Election::EachPodInTurn);
        assert_eq!(h.lease_name, "lock-statefulset-app-backup");
        assert_eq!(
            host("StatefulSet", Some("db"), "my-db-10", None).name,
            "db-10"
        );
        assert_eq!(
            host_for("StatefulSet", "app", None, "my-db", None),
            Err(HostError::NoOrdinal {
                pod_name: "my-db".to_owned()
            })
        );
    }

    #[test]
    fn a_daemonset_pod_backs_up_as_its_node_name_prefixed_by_the_alias() {
        assert_eq!(
            host("DaemonSet", None, "agent-x", Some("node-1")).name,
            "node-1"
        );
        assert_eq!(
            host("DaemonSet", Some("logs"), "agent-x", Some("node-1")).name,
            "logs-node-1"
        );
        assert_eq!(
            host_for("DaemonSet", "app", None, "agent-x", None),
            Err(HostError::NoNodeName)
        );
    }

    #[test]
    fn a_kind_without_a_sidecar_is_refused_naming_the_kinds_that_have_one() {
        let err = host_for("PersistentVolumeClaim", "data", None, "p", None).unwrap_err();
        assert!(err.to_string().contains("StatefulSet"), "{err}");
    }
}

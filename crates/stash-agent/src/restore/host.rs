//! Which host a pod restores (§8.5): the restic `--host` its data was backed up under, and the
//! `hostname` of its `stats[]` entry.

/// The Lease the pods of a restore target take turns on: `lock-<lowercase kind>-<name>-restore`,
/// so of a Deployment's replicas (which share `host-0`) only the first restores and the others
/// find the host final when their turn comes.
#[must_use]
pub fn lease_name(target_kind: &str, target_name: &str) -> String {
    format!("lock-{}-{target_name}-restore", target_kind.to_lowercase())
}

/// A host name cannot be formed from what the pod knows; each message names the variable to set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error(
        "cannot tell this StatefulSet pod's ordinal: POD_NAME is not set; the init-container needs env POD_NAME from fieldRef metadata.name"
    )]
    NoPodName,
    #[error(
        "cannot tell this StatefulSet pod's ordinal: POD_NAME `{0}` does not end in -<ordinal>"
    )]
    NoOrdinal(String),
    #[error(
        "cannot tell this DaemonSet pod's node: NODE_NAME is not set; the init-container needs env NODE_NAME from fieldRef spec.nodeName"
    )]
    NoNodeName,
}

/// The host name of a pod of a `target_kind` workload: `alias`/`host-0` for single-host kinds,
/// `<alias>-<ordinal>`/`host-<ordinal>` for a StatefulSet (ordinal = last `-` token of `POD_NAME`),
/// `<alias>-<NODE_NAME>`/`<NODE_NAME>` for a DaemonSet. An empty alias counts as none.
pub fn host_name(
    target_kind: &str,
    alias: Option<&str>,
    pod_name: Option<&str>,
    node_name: Option<&str>,
) -> Result<String, HostError> {
    let alias = alias.map(str::trim).filter(|a| !a.is_empty());
    match target_kind {
        "StatefulSet" => {
            let pod = pod_name.ok_or(HostError::NoPodName)?;
            let ordinal = pod
                .rsplit_once('-')
                .map(|(_, last)| last)
                .filter(|last| !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| HostError::NoOrdinal(pod.to_owned()))?;
            Ok(format!("{}-{ordinal}", alias.unwrap_or("host")))
        }
        "DaemonSet" => {
            let node = node_name.ok_or(HostError::NoNodeName)?;
            Ok(alias.map_or_else(|| node.to_owned(), |a| format!("{a}-{node}")))
        }
        _ => Ok(alias.unwrap_or("host-0").to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_named_after_the_lowercase_target_kind_and_name() {
        assert_eq!(
            lease_name("StatefulSet", "sample-sts"),
            "lock-statefulset-sample-sts-restore"
        );
    }

    #[test]
    fn a_deployment_pod_restores_host_0_or_its_alias() {
        assert_eq!(
            host_name("Deployment", None, Some("app-5d8f-x2"), None).unwrap(),
            "host-0"
        );
        assert_eq!(
            host_name("Deployment", Some("  "), None, None).unwrap(),
            "host-0"
        );
        assert_eq!(
            host_name("ReplicaSet", Some("db"), None, None).unwrap(),
            "db"
        );
    }

    #[test]
    fn a_statefulset_pod_restores_the_host_of_its_ordinal() {
        assert_eq!(
            host_name("StatefulSet", None, Some("sample-sts-2"), None).unwrap(),
            "host-2"
        );
        assert_eq!(
            host_name("StatefulSet", Some("mysql"), Some("sample-sts-10"), None).unwrap(),
            "mysql-10"
        );
    }

    #[test]
    fn a_statefulset_pod_without_an_ordinal_is_told_which_variable_is_wrong() {
        assert_eq!(
            host_name("StatefulSet", None, None, None),
            Err(HostError::NoPodName)
        );
        let err = host_name("StatefulSet", None, Some("sample-sts-abc"), None).unwrap_err();
        assert!(err.to_string().contains("sample-sts-abc"), "{err}");
    }

    #[test]
    fn a_daemonset_pod_restores_the_host_of_its_node() {
        assert_eq!(
            host_name("DaemonSet", None, Some("ds-xyz"), Some("node-a")).unwrap(),
            "node-a"
        );
        assert_eq!(
            host_name("DaemonSet", Some("logs"), None, Some("node-a")).unwrap(),
            "logs-node-a"
        );
        assert_eq!(
            host_name("DaemonSet", None, Some("ds-xyz"), None),
            Err(HostError::NoNodeName)
        );
    }
}

//! What a process learns about the pod it runs in.

use std::path::Path;

/// Environment variables Stash (kmodules' `meta.Namespace()`) reads the pod's namespace from, in order.
pub const NAMESPACE_ENV_VARS: [&str; 2] = ["KUBE_NAMESPACE", "MY_POD_NAMESPACE"];

/// The namespace file of the pod's service account token mount.
pub const SERVICE_ACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The namespace of the pod this process runs in, found the way Stash finds it: `KUBE_NAMESPACE`, then
/// `MY_POD_NAMESPACE`, then the service account's namespace file. `None` when none of them says (Stash
/// would fall back to `default`; the caller decides, e.g. the kubeconfig's namespace).
#[must_use]
pub fn namespace_from_env() -> Option<String> {
    namespace_from(
        |var| std::env::var(var).ok(),
        Path::new(SERVICE_ACCOUNT_NAMESPACE_FILE),
    )
}

/// [`namespace_from_env`] with the environment and the namespace file passed in.
pub fn namespace_from(
    env: impl Fn(&str) -> Option<String>,
    service_account_namespace_file: &Path,
) -> Option<String> {
    NAMESPACE_ENV_VARS
        .iter()
        .filter_map(|var| env(var))
        .map(|value| value.trim().to_owned())
        .find(|value| !value.is_empty())
        .or_else(|| {
            std::fs::read_to_string(service_account_namespace_file)
                .ok()
                .map(|content| content.trim().to_owned())
                .filter(|ns| !ns.is_empty())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |var| {
            pairs
                .iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn kube_namespace_wins_over_my_pod_namespace_and_the_service_account_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("namespace");
        std::fs::write(&file, "from-file\n").unwrap();
        let pairs = [("KUBE_NAMESPACE", "kube"), ("MY_POD_NAMESPACE", "pod")];
        assert_eq!(namespace_from(env(&pairs), &file).as_deref(), Some("kube"));
        let pairs = [("KUBE_NAMESPACE", ""), ("MY_POD_NAMESPACE", "pod")];
        assert_eq!(namespace_from(env(&pairs), &file).as_deref(), Some("pod"));
    }

    #[test]
    fn the_service_account_file_is_read_trimmed_when_no_variable_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("namespace");
        std::fs::write(&file, "demo\n").unwrap();
        assert_eq!(namespace_from(env(&[]), &file).as_deref(), Some("demo"));
    }

    #[test]
    fn nothing_set_and_no_file_gives_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(namespace_from(env(&[]), &dir.path().join("absent")), None);
    }
}

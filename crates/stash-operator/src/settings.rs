//! Operator-wide settings the builders need: the subset of Stash's operator flags (§15) that ends up in
//! the containers, CronJobs and RBAC objects the operator creates.

/// Where pushes go when the operator is not told: Stash's fallback constant (§13.1).
pub const DEFAULT_PUSHGATEWAY_URL: &str = "http://localhost:56789";
/// Port of the Pushgateway sidecar of the operator pod (§13.1).
pub const PUSHGATEWAY_PORT: u16 = 56789;

/// Settings shared by every builder. One value per operator process, built from its flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `--docker-registry` (default `appscode`).
    pub docker_registry: String,
    /// `--image` (default `stash`).
    pub image: String,
    /// `--image-tag` (default: the operator's own version).
    pub image_tag: String,
    /// `--image-pull-secrets`: Secrets in the operator namespace that pull the image. Each is copied
    /// next to the workload or CronJob as `<secret>-<lowercase-invoker-kind>-<invoker-name>` (§8.3).
    pub image_pull_secrets: Vec<String>,
    /// `--pushgateway-url`, handed to every executor as `--pushgateway-url`.
    pub pushgateway_url: String,
    /// `--use-kubeapiserver-fqdn-for-aks` (Stash's default is `true`).
    pub use_kubeapiserver_fqdn_for_aks: bool,
    /// `--v`: the operator's log verbosity, passed on to the executors so their logs match.
    pub log_level: Option<u8>,
    /// `--cron-job-psp`: PodSecurityPolicies the trigger CronJob may `use` (empty on clusters without PSP).
    pub cron_job_psp: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            docker_registry: "appscode".to_owned(),
            image: "stash".to_owned(),
            image_tag: env!("CARGO_PKG_VERSION").to_owned(),
            image_pull_secrets: Vec::new(),
            pushgateway_url: DEFAULT_PUSHGATEWAY_URL.to_owned(),
            use_kubeapiserver_fqdn_for_aks: true,
            log_level: Some(3),
            cron_job_psp: Vec::new(),
        }
    }
}

impl Settings {
    /// The executor image, `<registry>/<image>:<tag>` as Stash's `ToContainerImage` writes it.
    #[must_use]
    pub fn image_ref(&self) -> String {
        format!("{}/{}:{}", self.docker_registry, self.image, self.image_tag)
    }

    /// The logger flags appended to every executor's arguments.
    #[must_use]
    pub fn logger_flags(&self) -> Vec<String> {
        self.log_level
            .map(|level| format!("--v={level}"))
            .into_iter()
            .collect()
    }

    /// The Pushgateway URL of an operator reachable through Service `service` in `namespace` (§13.1).
    #[must_use]
    pub fn pushgateway_url_for_service(service: &str, namespace: &str) -> String {
        format!("http://{service}.{namespace}.svc:{PUSHGATEWAY_PORT}")
    }

    /// The common tail of the `run-backup` and `restore` arguments (§8.4, §10).
    pub(crate) fn executor_flags(&self) -> Vec<String> {
        let mut flags = vec![
            "--metrics-enabled=true".to_owned(),
            format!("--pushgateway-url={}", self.pushgateway_url),
            format!(
                "--use-kubeapiserver-fqdn-for-aks={}",
                self.use_kubeapiserver_fqdn_for_aks
            ),
        ];
        flags.extend(self.logger_flags());
        flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_image_is_appscode_stash_at_the_operator_version() {
        assert_eq!(
            Settings::default().image_ref(),
            format!("appscode/stash:{}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn pushgateway_url_for_a_service_uses_the_cluster_dns_name_and_port_56789() {
        assert_eq!(
            Settings::pushgateway_url_for_service("stash", "kube-system"),
            "http://stash.kube-system.svc:56789"
        );
    }

    #[test]
    fn logger_flags_are_empty_without_a_log_level() {
        let settings = Settings {
            log_level: None,
            ..Settings::default()
        };
        assert!(settings.logger_flags().is_empty());
    }
}

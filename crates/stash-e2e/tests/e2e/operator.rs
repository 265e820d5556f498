//! The operator started in-process by a test: one per test namespace, watching only that namespace.

use std::time::Duration;

use kube::Client;
use stash_operator::{CancellationToken, LeaderElection, OperatorConfig};
use stash_testenv::servers;
use tokio::task::JoinHandle;

/// An operator running in the test's runtime.
pub struct Operator {
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), stash_operator::RunError>>,
    metrics_port: u16,
}

impl Operator {
    /// Watches `namespace` only, elects its leader on a Lease there and serves `/metrics` on a free
    /// loopback port; the image is one the pod runner does not execute, for tests that look at what
    /// is injected or play the agent themselves. `configure` changes the rest.
    pub fn start(
        client: Client,
        namespace: &str,
        configure: impl FnOnce(&mut OperatorConfig),
    ) -> Self {
        let metrics_port = servers::free_port();
        let mut config = OperatorConfig {
            docker_registry: "e2e.invalid".to_owned(),
            image: "stash-placeholder".to_owned(),
            image_tag: "test".to_owned(),
            metrics_address: ([127, 0, 0, 1], metrics_port).into(),
            watch_namespace: Some(namespace.to_owned()),
            leader_election: Some(LeaderElection::new(namespace, "e2e-operator")),
            ..OperatorConfig::default()
        };
        configure(&mut config);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(stash_operator::run_with_client(
            client,
            config,
            shutdown.clone(),
        ));
        Self {
            shutdown,
            task,
            metrics_port,
        }
    }

    /// An operator whose executors are the real `stash` binary (the pod runner runs image
    /// `stash-rs/stash:test` as `target/debug/stash`), pushing to `pushgateway_url`, without leader
    /// election: for tests that back up and restore for real.
    pub fn start_running_stash(client: Client, namespace: &str, pushgateway_url: String) -> Self {
        Self::start(client, namespace, |c| {
            "stash-rs".clone_into(&mut c.docker_registry);
            "stash".clone_into(&mut c.image);
            c.pushgateway_url = pushgateway_url;
            c.leader_election = None;
        })
    }

    /// GET from the operator's metrics server, off the runtime thread the server runs on.
    pub async fn get(&self, path: &str) -> servers::Response {
        let url = format!("http://127.0.0.1:{}{path}", self.metrics_port);
        tokio::task::spawn_blocking(move || servers::get(&url))
            .await
            .unwrap()
            .expect("GET from the operator's metrics server")
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the operator did not stop within 30 s of its shutdown token: a controller or the lease task hung")
            .expect("the operator task panicked")
            .expect("the operator returned an error");
    }
}

//! `stash operator` as the chart starts it (`stash run` there): the real binary against the real
//! control plane reconciles Stash's BackupConfiguration example (here without its Repository, so
//! the status names what is missing) and stops cleanly on SIGTERM.

// Kind names (BackupConfiguration, CronJob) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube::api::{Api, PostParams};
use stash_api::v1beta1::BackupConfiguration;
use stash_testenv::{TestEnv, paths, servers, wait_for};

use crate::TIMEOUT;

const EXAMPLE: &str = include_str!(
    "../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
);

/// Kills the operator if a test fails before it stops it.
struct OperatorProcess(Child);

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stash_run_reports_the_missing_repository_and_exits_zero_on_sigterm() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let metrics_port = servers::free_port();
    let child =
        Command::new(paths::stash_bin().expect("target/debug/stash is built by scripts/test"))
            .args([
                "run",
                "--watch-namespace",
                ns.name(),
                "--leader-elect=false",
            ])
            .args(["--metrics-address", &format!("127.0.0.1:{metrics_port}")])
            .env("KUBECONFIG", env.kubeconfig_path())
            .stdin(Stdio::null())
            .spawn()
            .expect("start stash run");
    let mut operator = OperatorProcess(child);

    let mut bc: BackupConfiguration = serde_yaml::from_str(EXAMPLE).expect("the example parses");
    bc.metadata.namespace = Some(ns.name().to_owned());
    let configs: Api<BackupConfiguration> = Api::namespaced(env.client(), ns.name());
    configs
        .create(&PostParams::default(), &bc)
        .await
        .expect("create the BackupConfiguration");

    wait_for(
        "the operator binary to report the missing Repository in the status",
        TIMEOUT,
        || async {
            let bc = configs
                .get("deployment-backup")
                .await
                .map_err(|err| err.to_string())?;
            let status = serde_json::to_string(&bc.status).unwrap_or_default();
            if status.contains("gcs-repo") {
                Ok(())
            } else {
                Err(format!("status so far: {status}"))
            }
        },
    )
    .await;

    let pid =
        nix::unistd::Pid::from_raw(i32::try_from(operator.0.id()).expect("a pid fits in i32"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
    let status = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(status) = operator.0.try_wait().expect("wait for the operator") {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect(
        "stash run did not exit within 30 s of SIGTERM: a controller ignored the shutdown token",
    );
    assert_eq!(
        status.code(),
        Some(0),
        "a SIGTERM'd operator shuts down cleanly"
    );
}

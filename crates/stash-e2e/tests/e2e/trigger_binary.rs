//! `stash create-backupsession` as the trigger `CronJob` runs it: the real binary, its flags as
//! §9.1 writes them, against the real API server.

use std::process::Command;

use kube::api::{Api, ListParams, PostParams};
use stash_api::v1beta1::{BackupConfiguration, BackupSession};
use stash_testenv::{TestEnv, paths};

const EXAMPLE: &str = include_str!(
    "../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trigger_command_creates_a_backupsession_of_its_invoker_and_names_a_missing_one() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let mut bc: BackupConfiguration = serde_yaml::from_str(EXAMPLE).expect("the example parses");
    bc.metadata.namespace = Some(ns.name().to_owned());
    Api::<BackupConfiguration>::namespaced(env.client(), ns.name())
        .create(&PostParams::default(), &bc)
        .await
        .expect("create the BackupConfiguration");

    let trigger = |name: &str| {
        Command::new(paths::stash_bin().expect("target/debug/stash is built by scripts/test"))
            .args(["create-backupsession", "--invoker-kind=BackupConfiguration"])
            .arg(format!("--invoker-name={name}"))
            .env("KUBECONFIG", env.kubeconfig_path())
            .env("MY_POD_NAMESPACE", ns.name())
            .output()
            .expect("run stash create-backupsession")
    };
    let out = tokio::task::block_in_place(|| trigger("deployment-backup"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sessions = Api::<BackupSession>::namespaced(env.client(), ns.name())
        .list(&ListParams::default())
        .await
        .expect("list BackupSessions");
    assert_eq!(sessions.items.len(), 1, "one BackupSession per tick");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let name = sessions.items[0].metadata.name.clone().unwrap_or_default();
    assert!(
        stdout.contains(&name),
        "the command names the session it created: {stdout}"
    );

    let missing = tokio::task::block_in_place(|| trigger("no-such-config"));
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("no-such-config"),
        "the error names the missing invoker: {stderr}"
    );
}

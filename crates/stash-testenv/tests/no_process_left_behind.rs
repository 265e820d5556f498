//! The control plane never outlives the process that started it.
//!
//! Runs the real `stash-testenv-cluster` binary (the one `scripts/cluster up`
//! starts), waits until it is ready, then ends it two ways: SIGTERM (orderly
//! stop) and SIGKILL (no destructor, no signal handler: only
//! `PR_SET_PDEATHSIG` can clean up). Either way every recorded child
//! (etcd, kube-apiserver, kube-controller-manager) must be gone.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn alive(pid: u32) -> bool {
    // A zombie still has /proc/<pid>; its state is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

fn start_cluster(dir: &Path) -> (Child, Vec<(u32, String)>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stash-testenv-cluster"))
        .arg("--dir")
        .arg(dir)
        .stderr(std::fs::File::create(dir.join("cluster.log")).unwrap())
        .spawn()
        .expect("start stash-testenv-cluster");
    let start = Instant::now();
    while !dir.join("env").exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "stash-testenv-cluster exited ({status}):\n{}",
                std::fs::read_to_string(dir.join("cluster.log")).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_mins(3),
            "stash-testenv-cluster not ready after 180 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let env = std::fs::read_to_string(dir.join("env")).unwrap();
    let lines: Vec<&str> = env.lines().collect();
    assert!(
        lines.len() == 2
            && lines[0].starts_with("export KUBECONFIG=/")
            && lines[0].ends_with("/kubeconfig")
            && lines[1].starts_with("export STASH_PUSHGATEWAY_URL=http://127.0.0.1:"),
        "env file: {env:?}"
    );
    let pids: Vec<(u32, String)> = std::fs::read_to_string(dir.join("pids"))
        .unwrap()
        .lines()
        .map(|l| {
            let (pid, name) = l.split_once(' ').unwrap();
            (pid.parse().unwrap(), name.to_owned())
        })
        .collect();
    let names: Vec<&str> = pids.iter().map(|(_, n)| n.as_str()).collect();
    for component in ["etcd", "kube-apiserver", "kube-controller-manager"] {
        assert!(
            names.contains(&component),
            "{component} not among the recorded children {names:?}"
        );
    }
    assert!(
        pids.iter().all(|(pid, _)| alive(*pid)),
        "a child died early: {pids:?}"
    );
    (child, pids)
}

fn assert_all_gone(pids: &[(u32, String)], how: &str) {
    let start = Instant::now();
    while pids.iter().any(|(pid, _)| alive(*pid)) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "after {how}, still running: {:?}",
            pids.iter()
                .filter(|(pid, _)| alive(*pid))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigterm_and_sigkill_of_the_cluster_process_leave_no_control_plane_process_behind() {
    let tmp = tempfile::tempdir().unwrap();

    let (mut child, pids) = start_cluster(tmp.path());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id().try_into().unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "orderly stop failed ({status}):\n{}",
        std::fs::read_to_string(tmp.path().join("cluster.log")).unwrap()
    );
    assert_all_gone(&pids, "SIGTERM");
    assert!(
        !tmp.path().join("env").exists(),
        "the env file is removed on stop"
    );

    let (mut child, pids) = start_cluster(tmp.path());
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_all_gone(&pids, "SIGKILL");
}

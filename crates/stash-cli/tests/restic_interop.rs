//! Interoperability with Debian's `restic`: it reads what stash writes and stash reads what it
//! writes, byte for byte, for repository format v2 (compressed) and v1.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{Scratch, json, ok, restored, tree};

#[test]
fn restic_lists_checks_and_restores_what_stash_wrote() {
    let s = Scratch::new();
    let (repo, source) = (s.path("repo"), s.path("source"));
    tree::full(&source, false);
    ok(s.stash().arg("init").arg("-r").arg(&repo));
    let backup = json(&ok(s
        .stash()
        .arg("-r")
        .arg(&repo)
        .args(["backup", "--json", "--host", "host-0", "--tag", "stash"])
        .arg(&source)));

    let listed = json(&ok(s
        .restic()
        .arg("-r")
        .arg(&repo)
        .args(["snapshots", "--json"])));
    assert_eq!(listed[0]["id"], backup["snapshot_id"]);
    assert_eq!(listed[0]["hostname"], "host-0");
    assert_eq!(listed[0]["tags"][0], "stash");
    ok(s.restic()
        .arg("-r")
        .arg(&repo)
        .args(["check", "--read-data"]));

    let target = s.path("by-restic");
    ok(s.restic()
        .arg("-r")
        .arg(&repo)
        .args(["restore", "latest", "--target"])
        .arg(&target));
    tree::assert_same(&source, &restored(&target, &source));
}

fn restic_writes_and_stash_restores(version: &str) {
    let s = Scratch::new();
    let (repo, source) = (s.path("repo"), s.path("source"));
    tree::full(&source, false);
    ok(s.restic()
        .arg("init")
        .arg("-r")
        .arg(&repo)
        .args(["--repository-version", version]));
    ok(s.restic()
        .arg("-r")
        .arg(&repo)
        .args(["backup", "--host", "restic-host"])
        .arg(&source));
    tree::write(&source.join("added-later.txt"), b"second snapshot");
    tree::set_mtimes(&source, 1_600_000_000);
    ok(s.restic()
        .arg("-r")
        .arg(&repo)
        .args(["backup", "--host", "restic-host"])
        .arg(&source));

    let snapshots = json(&ok(s
        .stash()
        .arg("-r")
        .arg(&repo)
        .args(["snapshots", "--json"])));
    assert_eq!(snapshots.as_array().unwrap().len(), 2);
    assert_eq!(snapshots[1]["hostname"], "restic-host");
    let check = ok(s
        .stash()
        .arg("-r")
        .arg(&repo)
        .args(["check", "--read-data"]));
    assert!(check.contains("no errors"), "{check}");

    let target = s.path("by-stash");
    ok(s.stash()
        .arg("-r")
        .arg(&repo)
        .args(["restore", "latest", "--target"])
        .arg(&target));
    tree::assert_same(&source, &restored(&target, &source));

    // stash adds to restic's repository and restic still reads all of it.
    let next = json(&ok(s
        .stash()
        .arg("-r")
        .arg(&repo)
        .args(["backup", "--json", "--host", "restic-host"])
        .arg(&source)));
    assert_eq!(
        next["parent"], snapshots[1]["id"],
        "stash continues restic's snapshot chain"
    );
    assert_eq!(next["files_new"], 0);
    ok(s.restic()
        .arg("-r")
        .arg(&repo)
        .args(["check", "--read-data"]));
    ok(s.stash()
        .arg("-r")
        .arg(&repo)
        .args(["forget", "--keep-last", "1", "--prune"]));
    ok(s.restic()
        .arg("-r")
        .arg(&repo)
        .args(["check", "--read-data"]));
    let left = json(&ok(s
        .restic()
        .arg("-r")
        .arg(&repo)
        .args(["snapshots", "--json"])));
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["id"], next["snapshot_id"]);
}

#[test]
fn stash_reads_and_extends_a_restic_v2_compressed_repository() {
    restic_writes_and_stash_restores("2");
}

#[test]
fn stash_reads_and_extends_a_restic_v1_repository() {
    restic_writes_and_stash_restores("1");
}

#[test]
fn stash_creates_only_v2_repositories_and_says_how_to_get_a_v1_one() {
    let s = Scratch::new();
    let out = support::run(
        s.stash()
            .arg("init")
            .arg("-r")
            .arg(s.path("repo"))
            .args(["--repository-version", "1"]),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("restic init --repository-version 1"),
        "{stderr}"
    );
    assert!(
        !s.path("repo").join("config").exists(),
        "nothing was written"
    );
}

#[test]
fn restic_decodes_the_lock_a_killed_stash_left_and_removes_it_as_stale() {
    let s = Scratch::new();
    let (repo, source) = (s.path("repo"), s.path("source"));
    for i in 0..24 {
        tree::write(
            &source.join(format!("f{i}")),
            &tree::pseudo_random(i, 4 * 1024 * 1024),
        );
    }
    ok(s.stash().arg("init").arg("-r").arg(&repo));
    let mut child = s
        .stash()
        .arg("-r")
        .arg(&repo)
        .arg("backup")
        .arg(&source)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_mins(1);
    while std::fs::read_dir(repo.join("locks")).map_or(0, std::iter::Iterator::count) == 0 {
        assert!(Instant::now() < deadline, "stash took no lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let listed = ok(s
        .restic()
        .arg("-r")
        .arg(&repo)
        .args(["list", "locks", "--no-lock"]));
    assert_eq!(listed.lines().count(), 1, "{listed}");
    let lock_id = listed.trim().to_string();
    let shown = json(&ok(s.restic().arg("-r").arg(&repo).args([
        "cat",
        "lock",
        &lock_id,
        "--no-lock",
    ])));
    assert_eq!(shown["exclusive"], false);
    assert_eq!(shown["pid"], child.id());
    ok(s.restic().arg("-r").arg(&repo).arg("unlock"));
    assert_eq!(
        std::fs::read_dir(repo.join("locks")).unwrap().count(),
        0,
        "restic removed stash's stale lock"
    );
}

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

/// Backs `source` up with stash, then has restic read every byte back (`check --read-data`)
/// and restore it; the restored tree must equal the source. Returns the backup's JSON.
fn restic_checks_and_restores_a_stash_backup_of(
    s: &Scratch,
    source: &std::path::Path,
) -> serde_json::Value {
    let repo = s.path("repo");
    ok(s.stash().arg("init").arg("-r").arg(&repo));
    let backup = json(&ok(s
        .stash()
        .arg("-r")
        .arg(&repo)
        .args(["backup", "--json"])
        .arg(source)));
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
    tree::assert_same(source, &restored(&target, source));
    backup
}

#[test]
fn restic_checks_and_restores_what_stash_wrote_of_many_small_files() {
    let s = Scratch::new();
    let source = s.path("source");
    // The shape of bench dataset (b), scaled down: 100 B - 4 KiB, two thirds compressible,
    // in a tree 3 levels deep; the last 100 files repeat the first 100 (deduplicated blobs).
    for i in 0..5_000u64 {
        let seed = i % 4_900;
        let len = 100 + usize::try_from(seed * 7919 % 3997).unwrap();
        let mut data = tree::pseudo_random(seed, len);
        if seed % 3 != 0 {
            for b in &mut data {
                *b = b"etaoin shrdlu\n"[usize::from(*b) % 14];
            }
        }
        tree::write(
            &source.join(format!("n{}/n{}/n{}/t{i:05}", i % 6, i / 6 % 6, i / 36 % 6)),
            &data,
        );
    }
    tree::set_mtimes(&source, 1_700_000_000);
    let backup = restic_checks_and_restores_a_stash_backup_of(&s, &source);
    assert_eq!(backup["files_new"], 5_000);
    assert!(backup["unreadable"].as_array().unwrap().is_empty());
}

#[test]
fn restic_checks_and_restores_what_stash_wrote_of_100_000_empty_files() {
    let s = Scratch::new();
    let source = s.path("source");
    for d in 0..100 {
        let dir = source.join(format!("d{d:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..1_000 {
            std::fs::File::create(dir.join(format!("e{f:03}"))).unwrap();
        }
    }
    let backup = restic_checks_and_restores_a_stash_backup_of(&s, &source);
    assert_eq!(backup["files_new"], 100_000);
    assert!(
        backup["data_added_packed"].as_u64().unwrap() < 8 * 1024 * 1024,
        "empty files add tree blobs only: {backup}"
    );
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

//! Backup and restore round trips through the built `stash` binary, as a user would run them.

mod support;

use std::fs;
use std::path::Path;

use support::{Scratch, json, ok, restored, tree};

fn backup_json(s: &Scratch, repo: &Path, source: &Path, extra: &[&str]) -> serde_json::Value {
    json(&ok(s
        .stash()
        .arg("-r")
        .arg(repo)
        .args(["backup", "--json"])
        .args(extra)
        .arg(source)))
}

#[test]
fn a_tree_restores_byte_for_byte_with_modes_mtimes_symlinks_and_holes() {
    let s = Scratch::new();
    let (repo, source, target) = (s.path("repo"), s.path("source"), s.path("target"));
    tree::full(&source, true);
    ok(s.stash().arg("init").arg("-r").arg(&repo));

    let summary = backup_json(&s, &repo, &source, &[]);
    assert_eq!(summary["message_type"], "summary");
    assert!(summary["unreadable"].as_array().unwrap().is_empty());

    ok(s.stash()
        .arg("-r")
        .arg(&repo)
        .args(["restore", "latest", "--target"])
        .arg(&target));
    tree::assert_same(&source, &restored(&target, &source));

    let sparse = restored(&target, &source).join("sparse.img");
    assert_eq!(fs::metadata(&sparse).unwrap().len(), 64 * 1024 * 1024);
    assert!(
        tree::allocated_bytes(&sparse) < 4 * 1024 * 1024,
        "the 64 MiB sparse file was written out in full ({} bytes allocated)",
        tree::allocated_bytes(&sparse)
    );
}

#[test]
fn an_unchanged_second_backup_adds_no_data_and_reports_every_file_unmodified() {
    let s = Scratch::new();
    let (repo, source) = (s.path("repo"), s.path("source"));
    tree::full(&source, false);
    ok(s.stash().arg("init").arg("-r").arg(&repo));
    let first = backup_json(&s, &repo, &source, &[]);
    let second = backup_json(&s, &repo, &source, &[]);

    assert_eq!(second["files_new"], 0);
    assert_eq!(second["files_changed"], 0);
    assert_eq!(second["files_unmodified"], first["files_new"]);
    assert_eq!(
        second["data_added"], 0,
        "an unchanged tree must not add data: {second}"
    );
    assert_eq!(second["parent"], first["snapshot_id"]);
}

/// Replaces every file by a copy with the same content, size and mtime: new inode, new ctime,
/// as after a pod moves to another node or a volume is restored from a clone.
fn renew_inodes(root: &Path) {
    for entry in fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            renew_inodes(&path);
        } else if meta.is_file() {
            let copy = path.with_extension("stash-test-copy");
            fs::copy(&path, &copy).unwrap();
            let mtime = filetime::FileTime::from_last_modification_time(&meta);
            filetime::set_file_mtime(&copy, mtime).unwrap();
            fs::rename(&copy, &path).unwrap();
        }
    }
}

#[test]
fn with_ignore_inode_a_tree_whose_inodes_and_ctimes_changed_is_not_read_again() {
    let s = Scratch::new();
    let (repo, source) = (s.path("repo"), s.path("source"));
    tree::full(&source, false);
    ok(s.stash().arg("init").arg("-r").arg(&repo));
    let first = backup_json(&s, &repo, &source, &[]);

    renew_inodes(&source);
    let trusting = backup_json(&s, &repo, &source, &["--ignore-inode", "--ignore-ctime"]);
    assert_eq!(trusting["files_changed"], 0, "{trusting}");
    assert_eq!(trusting["files_unmodified"], first["files_new"]);

    renew_inodes(&source);
    let strict = backup_json(&s, &repo, &source, &[]);
    assert!(
        strict["files_changed"].as_u64().unwrap() > 0,
        "without --ignore-inode a new inode must count as a change (restic's default): {strict}"
    );
    assert!(
        strict["data_added"].as_u64().unwrap() < 64 * 1024,
        "re-read files deduplicate; only tree metadata is new: {strict}"
    );
}

#[test]
fn excludes_leave_matching_entries_out_of_the_snapshot() {
    let s = Scratch::new();
    let (repo, source, target) = (s.path("repo"), s.path("source"), s.path("target"));
    tree::write(&source.join("keep.txt"), b"keep");
    tree::write(&source.join("app.log"), b"log");
    tree::write(&source.join("nested/deeper/old.log"), b"log");
    tree::write(&source.join("cache/blob"), b"cache");
    ok(s.stash().arg("init").arg("-r").arg(&repo));
    backup_json(
        &s,
        &repo,
        &source,
        &[
            "--exclude",
            "*.log",
            "--exclude",
            &format!("{}/cache", source.display()),
        ],
    );
    ok(s.stash()
        .arg("-r")
        .arg(&repo)
        .args(["restore", "latest", "--target"])
        .arg(&target));
    let out = restored(&target, &source);
    assert!(out.join("keep.txt").exists());
    assert!(!out.join("app.log").exists());
    assert!(!out.join("nested/deeper/old.log").exists());
    assert!(!out.join("cache").exists());
}

#[test]
fn restore_include_and_exclude_select_what_is_written() {
    let s = Scratch::new();
    let (repo, source) = (s.path("repo"), s.path("source"));
    tree::write(&source.join("db/data.sql"), b"data");
    tree::write(&source.join("db/tmp.sql"), b"tmp");
    tree::write(&source.join("web/index.html"), b"<html>");
    ok(s.stash().arg("init").arg("-r").arg(&repo));
    backup_json(&s, &repo, &source, &[]);

    let only_db = s.path("only-db");
    ok(s.stash()
        .arg("-r")
        .arg(&repo)
        .args([
            "restore",
            "latest",
            "--include",
            "db",
            "--exclude",
            "tmp.sql",
            "--target",
        ])
        .arg(&only_db));
    let out = restored(&only_db, &source);
    assert_eq!(fs::read(out.join("db/data.sql")).unwrap(), b"data");
    assert!(!out.join("db/tmp.sql").exists());
    assert!(!out.join("web").exists());
}

#[test]
fn restore_into_a_non_empty_directory_keeps_files_it_did_not_write() {
    let s = Scratch::new();
    let (repo, source, target) = (s.path("repo"), s.path("source"), s.path("target"));
    tree::write(&source.join("a.txt"), b"from the snapshot");
    ok(s.stash().arg("init").arg("-r").arg(&repo));
    backup_json(&s, &repo, &source, &[]);

    let out = restored(&target, &source);
    tree::write(&out.join("a.txt"), b"older local content");
    tree::write(&out.join("user-notes.txt"), b"not in any snapshot");
    tree::write(&target.join("elsewhere/keep.me"), b"unrelated");
    ok(s.stash()
        .arg("-r")
        .arg(&repo)
        .args(["restore", "latest", "--target"])
        .arg(&target));

    assert_eq!(fs::read(out.join("a.txt")).unwrap(), b"from the snapshot");
    assert_eq!(
        fs::read(out.join("user-notes.txt")).unwrap(),
        b"not in any snapshot"
    );
    assert_eq!(
        fs::read(target.join("elsewhere/keep.me")).unwrap(),
        b"unrelated"
    );
}

#[test]
fn snapshots_filter_by_host_path_and_tag_and_restore_picks_the_latest_match() {
    let s = Scratch::new();
    let (repo, a, b) = (s.path("repo"), s.path("a"), s.path("b"));
    tree::write(&a.join("f"), b"a1");
    tree::write(&b.join("f"), b"b1");
    ok(s.stash().arg("init").arg("-r").arg(&repo));
    backup_json(&s, &repo, &a, &["--host", "host-0", "--tag", "daily"]);
    backup_json(&s, &repo, &b, &["--host", "host-1"]);
    tree::write(&a.join("f"), b"a2");
    backup_json(&s, &repo, &a, &["--host", "host-0"]);

    let all = json(&ok(s
        .stash()
        .arg("-r")
        .arg(&repo)
        .args(["snapshots", "--json"])));
    assert_eq!(all.as_array().unwrap().len(), 3);
    let host0 = json(&ok(s.stash().arg("-r").arg(&repo).args([
        "snapshots",
        "--json",
        "--host",
        "host-0",
    ])));
    assert_eq!(host0.as_array().unwrap().len(), 2);
    let tagged = json(&ok(s.stash().arg("-r").arg(&repo).args([
        "snapshots",
        "--json",
        "--tag",
        "daily",
    ])));
    assert_eq!(tagged.as_array().unwrap().len(), 1);
    assert_eq!(tagged[0]["short_id"].as_str().unwrap().len(), 8);
    let by_path = json(&ok(s
        .stash()
        .arg("-r")
        .arg(&repo)
        .args(["snapshots", "--json", "--path"])
        .arg(&b)));
    assert_eq!(by_path[0]["hostname"], "host-1");

    let target = s.path("target");
    ok(s.stash()
        .arg("-r")
        .arg(&repo)
        .args(["restore", "latest", "--host", "host-0", "--target"])
        .arg(&target));
    assert_eq!(fs::read(restored(&target, &a).join("f")).unwrap(), b"a2");

    let old = tagged[0]["short_id"].as_str().unwrap();
    let target = s.path("target-old");
    ok(s.stash()
        .arg("-r")
        .arg(&repo)
        .args(["restore", old, "--target"])
        .arg(&target));
    assert_eq!(fs::read(restored(&target, &a).join("f")).unwrap(), b"a1");
}

#[test]
fn stats_count_snapshots_and_stored_bytes() {
    let s = Scratch::new();
    let (repo, source) = (s.path("repo"), s.path("source"));
    tree::write(&source.join("f"), &tree::pseudo_random(3, 200_000));
    ok(s.stash().arg("init").arg("-r").arg(&repo));
    backup_json(&s, &repo, &source, &[]);
    backup_json(&s, &repo, &source, &[]);
    let stats = json(&ok(s
        .stash()
        .arg("-r")
        .arg(&repo)
        .args(["stats", "--json"])));
    assert_eq!(stats["snapshot_count"], 2);
    let size = stats["total_size"].as_u64().unwrap();
    assert!(
        (200_000..260_000).contains(&size),
        "random data stores at about its size: {size}"
    );
}

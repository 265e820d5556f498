//! `stash repair index` and `stash repair snapshots` leave repositories that both tools read:
//! Debian's `restic` is the oracle.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Scratch, json, ok, restored, run, tree};

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).expect("read a repository directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            found.extend(files_in(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn a_repository_without_its_index_is_whole_again_after_repair_index() {
    let s = Scratch::new();
    let (repo, source) = (s.path("repo"), s.path("source"));
    tree::full(&source, false);
    ok(s.stash().arg("init").arg("-r").arg(&repo));
    ok(s.stash().arg("-r").arg(&repo).arg("backup").arg(&source));
    let index_files = files_in(&repo.join("index"));
    assert!(!index_files.is_empty(), "the backup wrote an index");
    for file in index_files {
        fs::remove_file(file).expect("delete an index file");
    }

    ok(s.stash().arg("-r").arg(&repo).args(["repair", "index"]));

    ok(s.stash().arg("-r").arg(&repo).arg("check"));
    ok(s.restic()
        .arg("-r")
        .arg(&repo)
        .args(["check", "--read-data"]));
    let target = s.path("restored");
    ok(s.stash()
        .arg("-r")
        .arg(&repo)
        .args(["restore", "latest", "--target"])
        .arg(&target));
    tree::assert_same(&source, &restored(&target, &source));
}

#[test]
fn a_snapshot_that_lost_a_data_pack_is_saved_without_it_by_repair_snapshots() {
    let s = Scratch::new();
    let (repo, source) = (s.path("repo"), s.path("source"));
    tree::write(&source.join("kept.txt"), b"kept in the first pack");
    ok(s.stash().arg("init").arg("-r").arg(&repo));
    ok(s.stash().arg("-r").arg(&repo).arg("backup").arg(&source));
    let packs_before = files_in(&repo.join("data"));
    tree::write(
        &source.join("lost.bin"),
        &tree::pseudo_random(7, 2 * 1024 * 1024),
    );
    ok(s.stash().arg("-r").arg(&repo).arg("backup").arg(&source));
    // The new data pack is the big one; the other new pack holds the trees.
    let lost_pack = files_in(&repo.join("data"))
        .into_iter()
        .filter(|p| !packs_before.contains(p))
        .max_by_key(|p| fs::metadata(p).expect("pack metadata").len())
        .expect("the second backup wrote packs");
    fs::remove_file(&lost_pack).expect("delete the data pack");
    // As restic's guide has it: first the index forgets the lost pack, then the snapshots.
    ok(s.stash().arg("-r").arg(&repo).args(["repair", "index"]));

    let report = json(&ok(s.stash().arg("-r").arg(&repo).args([
        "--json",
        "repair",
        "snapshots",
        "--forget",
    ])));
    let repaired = report["repaired"].as_array().expect("a repaired list");
    assert_eq!(repaired.len(), 1, "one damaged snapshot: {report}");
    assert_eq!(report["removed"].as_array().map(Vec::len), Some(1));

    let listed = json(&ok(s
        .restic()
        .arg("-r")
        .arg(&repo)
        .args(["snapshots", "--json"])));
    let ids: Vec<_> = listed
        .as_array()
        .expect("a snapshot list")
        .iter()
        .map(|snapshot| snapshot["id"].clone())
        .collect();
    assert!(
        ids.contains(&repaired[0]["id"]),
        "restic lists the repaired snapshot: {listed}"
    );
    ok(s.restic()
        .arg("-r")
        .arg(&repo)
        .args(["check", "--read-data"]));
    let target = s.path("restored");
    ok(s.restic()
        .arg("-r")
        .arg(&repo)
        .arg("restore")
        .arg(repaired[0]["id"].as_str().expect("an id"))
        .arg("--target")
        .arg(&target));
    let back = restored(&target, &source);
    assert_eq!(
        fs::read(back.join("kept.txt")).expect("kept.txt restored"),
        b"kept in the first pack"
    );
    assert!(
        back.join("lost.bin.repaired").exists(),
        "the file that lost its data is kept, renamed as restic names it"
    );
}

#[test]
fn repair_index_refuses_mixed_packs_and_names_the_restic_command() {
    let s = Scratch::new();
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/restic-fixtures/restic-repo-mixed.tar.gz"),
        )
        .arg("-C")
        .arg(s.dir.path())
        .output()
        .expect("run tar");
    assert!(out.status.success(), "unpack the fixture: {out:?}");
    let repo = s.path("repo");
    let out = run(s
        .stash()
        .env("RESTIC_PASSWORD", "geheim")
        .arg("-r")
        .arg(&repo)
        .args(["repair", "index"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("restic repair index"),
        "repair index must refuse, naming restic's: {out:?}"
    );
    ok(s.restic()
        .env("RESTIC_PASSWORD", "geheim")
        .arg("-r")
        .arg(&repo)
        .arg("check"));
}

//! stash's own archiver (first backups and `--force`) against `rustic_core`'s
//! (`STASH_ARCHIVER=rustic`): the same input gives the same snapshot tree, in the same
//! repository, and restic reads every byte of what it wrote.

mod support;

use support::{Scratch, json, ok, restored, tree};

fn tree_of(s: &Scratch, repo: &std::path::Path, snapshot: &str) -> String {
    let listed = json(&ok(s
        .stash()
        .arg("-r")
        .arg(repo)
        .args(["snapshots", "--json"])));
    listed
        .as_array()
        .unwrap()
        .iter()
        .find(|snap| snap["id"] == snapshot)
        .unwrap_or_else(|| panic!("snapshot {snapshot} is listed: {listed}"))["tree"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn the_own_archiver_writes_the_tree_rustic_core_writes_for_the_same_input() {
    let s = Scratch::new();
    let (repo, source) = (s.path("repo"), s.path("source"));
    // Nested dirs, links, empty files, modes, a 3 MiB random file (several chunks), a 1.8 MiB
    // text file and a 64 MiB sparse file (chunks of zeros, deduplicated).
    tree::full(&source, false);
    // A random file large enough for a second sealing thread (16 MiB and more).
    tree::write(
        &source.join("large/random.bin"),
        &tree::pseudo_random(77, 40 << 20),
    );
    for i in 0..300u64 {
        let len = 100 + usize::try_from(i * 7919 % 3997).unwrap();
        tree::write(
            &source.join(format!("small/n{}/f{i:03}", i % 7)),
            &tree::pseudo_random(i % 290, len),
        );
    }
    ok(s.stash().arg("init").arg("-r").arg(&repo));

    let by_rustic = json(&ok(s
        .stash()
        .env("STASH_ARCHIVER", "rustic")
        .arg("-r")
        .arg(&repo)
        .args(["backup", "--json"])
        .arg(&source)));
    // `--force`: no parent, so the own archiver reads everything again.
    let by_own = json(&ok(s
        .stash()
        .arg("-r")
        .arg(&repo)
        .args(["backup", "--json", "--force"])
        .arg(&source)));
    assert_eq!(by_own["files_new"], by_rustic["files_new"], "{by_own}");
    assert_eq!(by_own["dirs_new"], by_rustic["dirs_new"], "{by_own}");
    assert_eq!(
        by_own["total_bytes_processed"], by_rustic["total_bytes_processed"],
        "{by_own}"
    );
    assert_eq!(
        by_own["data_added"], 0,
        "every blob was already in the repository: {by_own}"
    );
    let rustic_tree = tree_of(&s, &repo, by_rustic["snapshot_id"].as_str().unwrap());
    let own_tree = tree_of(&s, &repo, by_own["snapshot_id"].as_str().unwrap());
    assert_eq!(own_tree, rustic_tree);

    // And the other way round, each into a fresh repository: the own archiver stores every
    // blob, rustic_core's backup with it as parent finds everything unchanged.
    let fresh = s.path("fresh");
    ok(s.stash().arg("init").arg("-r").arg(&fresh));
    let first = json(&ok(s
        .stash()
        .arg("-r")
        .arg(&fresh)
        .args(["backup", "--json"])
        .arg(&source)));
    let again = json(&ok(s
        .stash()
        .arg("-r")
        .arg(&fresh)
        .args(["backup", "--json"])
        .arg(&source)));
    assert_eq!(again["parent"], first["snapshot_id"], "{again}");
    assert_eq!(again["files_unmodified"], first["files_new"], "{again}");
    assert_eq!(again["data_added"], 0, "{again}");
    ok(s.restic()
        .arg("-r")
        .arg(&fresh)
        .args(["check", "--read-data"]));
    let target = s.path("by-restic");
    ok(s.restic()
        .arg("-r")
        .arg(&fresh)
        .args(["restore", "latest", "--target"])
        .arg(&target));
    tree::assert_same(&source, &restored(&target, &source));
}

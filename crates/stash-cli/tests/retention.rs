//! Retention (`forget`) follows restic's rules, which Stash's `retentionPolicy` maps onto:
//! the newest snapshot of each hour/day/week/month/year bucket, counted per host and path set.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use support::{Scratch, json, ok, tree};

const TIMES: [(&str, &str, &str); 8] = [
    ("s1", "2025-01-01T10:00:00Z", ""),
    ("s2", "2025-01-01T12:00:00Z", ""),
    ("s3", "2025-01-02T09:00:00Z", ""),
    ("s4", "2025-01-02T18:00:00Z", "keep"),
    ("s5", "2025-01-09T10:00:00Z", ""),
    ("s6", "2025-02-01T10:00:00Z", ""),
    ("s7", "2026-03-01T10:00:00Z", ""),
    ("s8", "2026-03-01T10:30:00Z", ""),
];

struct History {
    s: Scratch,
    repo: std::path::PathBuf,
    names: BTreeMap<String, String>,
}

fn history() -> History {
    let s = Scratch::new();
    let (repo, source) = (s.path("repo"), s.path("source"));
    tree::write(&source.join("f"), b"data");
    ok(s.stash().arg("init").arg("-r").arg(&repo));
    let mut names = BTreeMap::new();
    for (name, time, tag) in TIMES {
        let mut cmd = s.stash();
        cmd.arg("-r")
            .arg(&repo)
            .args(["backup", "--json", "--host", "host-0", "--time", time]);
        if !tag.is_empty() {
            cmd.args(["--tag", tag]);
        }
        let out = json(&ok(cmd.arg(&source)));
        names.insert(
            out["snapshot_id"].as_str().unwrap().to_string(),
            name.to_string(),
        );
    }
    History { s, repo, names }
}

impl History {
    fn kept(&self, args: &[&str]) -> BTreeSet<String> {
        let out = json(&ok(self
            .s
            .stash()
            .arg("-r")
            .arg(&self.repo)
            .args(["forget", "--json", "--dry-run"])
            .args(args)));
        out["forget"]["keep"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                self.names
                    .get(s["id"].as_str().unwrap())
                    .cloned()
                    .unwrap_or_else(|| "other".into())
            })
            .collect()
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(ToString::to_string).collect()
}

#[test]
fn each_keep_rule_keeps_the_newest_snapshot_of_its_buckets() {
    let h = history();
    let table: [(&[&str], &[&str]); 9] = [
        (&["--keep-last", "3"], &["s8", "s7", "s6"]),
        (&["--keep-hourly", "2"], &["s8", "s6"]),
        (&["--keep-daily", "2"], &["s8", "s6"]),
        (&["--keep-daily", "4"], &["s8", "s6", "s5", "s4"]),
        (&["--keep-weekly", "3"], &["s8", "s6", "s5"]),
        (&["--keep-monthly", "3"], &["s8", "s6", "s5"]),
        // Fewer yearly buckets than asked for: the oldest snapshot is kept as well, as restic
        // does since 0.15 (older restic, e.g. Stash's 0.13, would drop it).
        (&["--keep-yearly", "5"], &["s8", "s6", "s1"]),
        (&["--keep-tag", "keep"], &["s4"]),
        (&["--keep-last", "1", "--keep-monthly", "2"], &["s8", "s6"]),
    ];
    for (args, expected) in table {
        assert_eq!(h.kept(args), set(expected), "forget {}", args.join(" "));
    }
}

#[test]
fn rules_count_per_host_and_path_set_like_stash_without_host() {
    let h = history();
    let other = h.s.path("other-source");
    tree::write(&other.join("g"), b"other");
    ok(h.s
        .stash()
        .arg("-r")
        .arg(&h.repo)
        .args([
            "backup",
            "--host",
            "host-1",
            "--time",
            "2025-01-05T00:00:00Z",
        ])
        .arg(&other));
    assert_eq!(h.kept(&["--keep-last", "1"]), set(&["s8", "other"]));
    assert_eq!(
        h.kept(&["--keep-last", "1", "--host", "host-1"]),
        set(&["other"]),
        "a filter narrows what is considered"
    );
}

#[test]
fn forget_removes_prune_reclaims_and_the_repository_stays_consistent() {
    let h = history();
    let dry = h.kept(&["--keep-last", "2"]);
    assert_eq!(dry.len(), 2);
    let listed = json(&ok(h
        .s
        .stash()
        .arg("-r")
        .arg(&h.repo)
        .args(["snapshots", "--json"])));
    assert_eq!(
        listed.as_array().unwrap().len(),
        TIMES.len(),
        "--dry-run removed nothing"
    );

    ok(h.s
        .stash()
        .arg("-r")
        .arg(&h.repo)
        .args(["forget", "--keep-last", "2", "--prune"]));
    let listed = json(&ok(h
        .s
        .stash()
        .arg("-r")
        .arg(&h.repo)
        .args(["snapshots", "--json"])));
    let left: BTreeSet<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| h.names[s["id"].as_str().unwrap()].clone())
        .collect();
    assert_eq!(left, set(&["s8", "s7"]));
    let check = ok(h
        .s
        .stash()
        .arg("-r")
        .arg(&h.repo)
        .args(["check", "--read-data"]));
    assert!(check.contains("no errors"), "{check}");
}

#[test]
fn prune_removes_the_data_only_forgotten_snapshots_used() {
    let s = Scratch::new();
    let (repo, source) = (s.path("repo"), s.path("source"));
    ok(s.stash().arg("init").arg("-r").arg(&repo));
    tree::write(&source.join("f"), &tree::pseudo_random(1, 4 * 1024 * 1024));
    ok(s.stash().arg("-r").arg(&repo).arg("backup").arg(&source));
    tree::write(&source.join("f"), &tree::pseudo_random(2, 4 * 1024 * 1024));
    ok(s.stash().arg("-r").arg(&repo).arg("backup").arg(&source));
    let size = |s: &Scratch, repo: &Path| {
        json(&ok(s.stash().arg("-r").arg(repo).args(["stats", "--json"])))["total_size"]
            .as_u64()
            .unwrap()
    };
    let before = size(&s, &repo);
    ok(s.stash()
        .arg("-r")
        .arg(&repo)
        .args(["forget", "--keep-last", "1", "--prune"]));
    let after = size(&s, &repo);
    assert!(
        after < before * 6 / 10,
        "prune reclaimed the first version's data: {before} -> {after}"
    );
    ok(s.restic()
        .arg("-r")
        .arg(&repo)
        .args(["check", "--read-data"]));
}

#[test]
fn forget_without_a_keep_rule_is_refused_with_the_rules_to_choose_from() {
    let h = history();
    let out = support::run(h.s.stash().arg("-r").arg(&h.repo).arg("forget"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("keepLast") && stderr.contains("keepDaily"),
        "{stderr}"
    );
}

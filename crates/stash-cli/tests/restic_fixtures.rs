//! The compatibility corpus: every restic repository of `../shared/restic-fixtures/fixtures.tsv`
//! (written by restic and rustic over the years, none by this project) is read the way Debian's
//! restic 0.14 reads it. Healthy ones list the same snapshots, pass `check --read-data` and
//! restore (latest and every snapshot) to exactly what `restic restore` gives; damaged ones make
//! `check --read-data` fail naming the damage, without a panic or a hang; legacy ones are read or
//! refused with a message naming the format and the converting command.
//!
//! Each class is one test that runs all its fixtures and reports every mismatch at once, so one
//! run says which fixtures pass.

mod support;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{Scratch, is_root, json};

/// Where the corpus lives, next to the project (never copied into it).
fn corpus_dir() -> PathBuf {
    std::env::var_os("STASH_RESTIC_FIXTURES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/restic-fixtures"),
        PathBuf::from,
    )
}

struct Fixture {
    archive: String,
    class: String,
    password: String,
}

fn fixtures(class: &str) -> Vec<Fixture> {
    let list = corpus_dir().join("fixtures.tsv");
    let text = fs::read_to_string(&list).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); the corpus is ../shared/restic-fixtures next to the project, or set STASH_RESTIC_FIXTURES",
            list.display()
        )
    });
    let all: Vec<Fixture> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let mut cols = line.split('\t');
            let mut next = || cols.next().expect("4 columns in fixtures.tsv").to_string();
            Fixture {
                archive: next(),
                class: next(),
                password: next(),
            }
        })
        .collect();
    assert!(
        all.iter()
            .all(|f| ["healthy", "damaged", "legacy"].contains(&f.class.as_str())),
        "fixtures.tsv has a class this test does not know"
    );
    all.into_iter().filter(|f| f.class == class).collect()
}

/// One fixture unpacked into a scratch directory, with both tools pointed at it.
struct Unpacked {
    scratch: Scratch,
    name: String,
    password: String,
}

impl Unpacked {
    fn new(fixture: &Fixture) -> Self {
        let scratch = Scratch::new();
        let out = Command::new("tar")
            .arg("-xzf")
            .arg(corpus_dir().join(&fixture.archive))
            .arg("-C")
            .arg(scratch.dir.path())
            .output()
            .expect("run tar");
        assert!(out.status.success(), "tar failed: {out:?}");
        Self {
            scratch,
            name: fixture.archive.trim_end_matches(".tar.gz").to_string(),
            password: fixture.password.clone(),
        }
    }

    fn repo(&self) -> PathBuf {
        self.scratch.path("repo")
    }

    fn stash(&self, args: &[&str]) -> Command {
        let mut cmd = self.scratch.stash();
        cmd.env("RESTIC_PASSWORD", &self.password)
            .arg("-r")
            .arg(self.repo())
            .args(args);
        cmd
    }

    fn restic(&self, args: &[&str]) -> Command {
        let mut cmd =
            stash_testenv::restic::command_with_password(self.scratch.dir.path(), &self.password);
        cmd.arg("-r").arg(self.repo()).args(args);
        cmd
    }
}

/// Runs `cmd` with a deadline: a hang is a failure, never a stuck test.
fn run_for(cmd: &mut Command, limit: Duration) -> Result<Output, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let started = Instant::now();
    loop {
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            return child.wait_with_output().map_err(|e| e.to_string());
        }
        if started.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            return Err(format!("{cmd:?} still ran after {limit:?}: a hang"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const LIMIT: Duration = Duration::from_secs(90);

fn describe_output(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` and returns stdout when it exits 0.
fn succeeds(cmd: &mut Command) -> Result<String, String> {
    let out = run_for(cmd, LIMIT)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{cmd:?} failed: {}", describe_output(&out)))
    }
}

fn panicked(out: &Output) -> bool {
    let stderr = String::from_utf8_lossy(&out.stderr);
    out.status.code() == Some(101) || stderr.contains("panicked at")
}

/// The snapshot fields both tools must agree on; times compared as instants.
fn snapshot_keys(listed: &serde_json::Value) -> Vec<String> {
    let mut keys: Vec<String> = listed
        .as_array()
        .expect("a JSON array of snapshots")
        .iter()
        .map(|s| {
            let time: jiff::Timestamp = s["time"]
                .as_str()
                .expect("time")
                .parse()
                .expect("an RFC 3339 time");
            let sorted = |v: &serde_json::Value| {
                let mut items: Vec<String> = v
                    .as_array()
                    .map(|a| a.iter().map(ToString::to_string).collect())
                    .unwrap_or_default();
                items.sort();
                items.join(",")
            };
            format!(
                "id={} tree={} time={} paths={} host={} tags={} parent={}",
                s["id"],
                s["tree"],
                time.as_nanosecond(),
                sorted(&s["paths"]),
                s["hostname"],
                sorted(&s["tags"]),
                s.get("parent").unwrap_or(&serde_json::Value::Null)
            )
        })
        .collect();
    keys.sort();
    keys
}

/// Everything restic restores of one entry.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    kind: &'static str,
    mode: u32,
    owner: Option<(u32, u32)>,
    mtime: (i64, i64),
    /// File contents, symlink target bytes, or the device number.
    content: Vec<u8>,
    /// Other paths of the restore that are the same inode (hardlinks).
    links: Vec<String>,
    /// Extended attributes, sorted by name.
    xattrs: Vec<(String, Vec<u8>)>,
}

fn describe_tree(root: &Path) -> BTreeMap<String, Entry> {
    fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).expect("read a restored directory") {
            let path = entry.expect("directory entry").path();
            if fs::symlink_metadata(&path).expect("lstat").is_dir() {
                collect(&path, out);
            }
            out.push(path);
        }
    }
    let mut paths = Vec::new();
    if root.exists() {
        collect(root, &mut paths);
    }
    let rel = |p: &Path| {
        String::from_utf8_lossy(p.strip_prefix(root).unwrap().as_os_str().as_bytes()).into_owned()
    };
    let mut inodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for path in &paths {
        let meta = fs::symlink_metadata(path).unwrap();
        if meta.is_file() && meta.nlink() > 1 {
            inodes.entry(meta.ino()).or_default().push(rel(path));
        }
    }
    paths
        .iter()
        .map(|path| {
            let meta = fs::symlink_metadata(path).unwrap();
            let ft = meta.file_type();
            let (kind, content) = if ft.is_symlink() {
                (
                    "symlink",
                    fs::read_link(path).unwrap().as_os_str().as_bytes().to_vec(),
                )
            } else if ft.is_dir() {
                ("dir", Vec::new())
            } else if ft.is_file() {
                ("file", fs::read(path).unwrap())
            } else if ft.is_fifo() {
                ("fifo", Vec::new())
            } else if ft.is_char_device() || ft.is_block_device() {
                ("device", meta.rdev().to_le_bytes().to_vec())
            } else {
                ("other", Vec::new())
            };
            let name = rel(path);
            let mut links = inodes.get(&meta.ino()).cloned().unwrap_or_default();
            links.retain(|l| *l != name);
            let entry = Entry {
                kind,
                mode: if kind == "symlink" {
                    0
                } else {
                    meta.mode() & 0o7777
                },
                owner: is_root().then(|| (meta.uid(), meta.gid())),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                content,
                links,
                xattrs: xattrs_of(path),
            };
            (name, entry)
        })
        .collect()
}

fn xattrs_of(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut attrs: Vec<_> = xattr::list(path)
        .map(|names| {
            names
                .map(|name| {
                    let value = xattr::get(path, &name).ok().flatten().unwrap_or_default();
                    (name.to_string_lossy().into_owned(), value)
                })
                .collect()
        })
        .unwrap_or_default();
    attrs.sort();
    attrs
}

/// Differences between two restores, at most a few, as readable lines.
fn tree_differences(expected: &Path, actual: &Path) -> Vec<String> {
    let (e, a) = (describe_tree(expected), describe_tree(actual));
    let mut out = Vec::new();
    for path in e.keys().filter(|k| !a.contains_key(*k)) {
        out.push(format!("`{path}` is missing from stash's restore"));
    }
    for path in a.keys().filter(|k| !e.contains_key(*k)) {
        out.push(format!("`{path}` is restored by stash but not by restic"));
    }
    for (path, want) in &e {
        if let Some(got) = a.get(path)
            && got != want
        {
            let mut what = Vec::new();
            if got.kind != want.kind {
                what.push(format!("kind {} (restic: {})", got.kind, want.kind));
            }
            if got.mode != want.mode {
                what.push(format!("mode {:o} (restic: {:o})", got.mode, want.mode));
            }
            if got.owner != want.owner {
                what.push(format!("owner {:?} (restic: {:?})", got.owner, want.owner));
            }
            if got.mtime != want.mtime {
                what.push(format!("mtime {:?} (restic: {:?})", got.mtime, want.mtime));
            }
            if got.content != want.content {
                what.push(format!(
                    "content of {} bytes (restic: {}){}",
                    got.content.len(),
                    want.content.len(),
                    if got.kind == "symlink" {
                        format!(
                            " target {} (restic: {})",
                            OsStr::from_bytes(&got.content).display(),
                            OsStr::from_bytes(&want.content).display()
                        )
                    } else {
                        String::new()
                    }
                ));
            }
            if got.links != want.links {
                what.push(format!(
                    "hardlinked with {:?} (restic: {:?})",
                    got.links, want.links
                ));
            }
            if got.xattrs != want.xattrs {
                what.push(format!(
                    "extended attributes {:?} (restic: {:?})",
                    got.xattrs, want.xattrs
                ));
            }
            out.push(format!("`{path}`: {}", what.join(", ")));
        }
    }
    out.truncate(12);
    out
}

/// Snapshots, check and restores of a fixture both tools must read; the mismatches found.
fn read_like_restic(fx: &Unpacked) -> Vec<String> {
    let mut problems = Vec::new();
    let restic_listed = match succeeds(&mut fx.restic(&["snapshots", "--json"])) {
        Ok(out) => json(&out),
        Err(err) => return vec![format!("the oracle cannot list snapshots: {err}")],
    };
    match succeeds(&mut fx.stash(&["snapshots", "--json"])) {
        Ok(out) => {
            let (want, got) = (snapshot_keys(&restic_listed), snapshot_keys(&json(&out)));
            if want != got {
                problems.push(format!(
                    "snapshots differ:\n  restic: {want:#?}\n  stash: {got:#?}"
                ));
            }
        }
        Err(err) => problems.push(format!("stash snapshots: {err}")),
    }

    match run_for(&mut fx.stash(&["check", "--read-data"]), LIMIT) {
        Ok(out) if panicked(&out) => problems.push(format!(
            "stash check --read-data panicked: {}",
            describe_output(&out)
        )),
        Ok(out) if !out.status.success() => problems.push(format!(
            "stash check --read-data fails on a repository restic 0.14 passes: {}",
            describe_output(&out)
        )),
        Ok(out) if String::from_utf8_lossy(&out.stderr).contains("'rustic ") => {
            problems.push(format!(
                "stash check names a rustic command: {}",
                describe_output(&out)
            ));
        }
        Ok(_) => {}
        Err(err) => problems.push(err),
    }

    let ids: Vec<String> = restic_listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    if ids.is_empty() {
        // Nothing to restore: `latest` must fail, as restic's does.
        let target = fx.scratch.path("stash-latest");
        match run_for(
            fx.stash(&["restore", "latest", "--target"]).arg(&target),
            LIMIT,
        ) {
            Ok(out) if out.status.success() => problems.push(
                "stash restore latest succeeds on a repository without snapshots".to_string(),
            ),
            Ok(out) if panicked(&out) => {
                problems.push(format!("stash restore panicked: {}", describe_output(&out)));
            }
            Ok(_) => {}
            Err(err) => problems.push(err),
        }
    }
    for spec in ids
        .iter()
        .map(String::as_str)
        .chain((!ids.is_empty()).then_some("latest"))
    {
        let short = &spec[..spec.len().min(8)];
        let (want, got) = (
            fx.scratch.path(&format!("restic-{short}")),
            fx.scratch.path(&format!("stash-{short}")),
        );
        if let Err(err) = succeeds(fx.restic(&["restore", spec, "--target"]).arg(&want)) {
            problems.push(format!("the oracle cannot restore {spec}: {err}"));
            continue;
        }
        if let Err(err) = succeeds(fx.stash(&["restore", spec, "--target"]).arg(&got)) {
            problems.push(format!("stash restore {spec}: {err}"));
        }
        let differences = tree_differences(&want, &got);
        if !differences.is_empty() {
            problems.push(format!(
                "restore of {spec} differs from restic's:\n    {}",
                differences.join("\n    ")
            ));
        }
    }
    problems
}

#[track_caller]
fn assert_all_pass(class: &str, results: &[(String, Vec<String>)]) {
    let failed: Vec<_> = results.iter().filter(|(_, p)| !p.is_empty()).collect();
    let passed: Vec<_> = results
        .iter()
        .filter(|(_, p)| p.is_empty())
        .map(|(n, _)| n.as_str())
        .collect();
    let report: Vec<String> = failed
        .iter()
        .map(|(name, problems)| format!("{name}:\n  {}", problems.join("\n  ")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} {class} fixtures are not read as restic reads them (passing: {passed:?})\n\n{}",
        failed.len(),
        results.len(),
        report.join("\n\n")
    );
}

fn each_fixture(class: &str, test: impl Fn(&Unpacked) -> Vec<String> + Sync) {
    let list = fixtures(class);
    assert!(!list.is_empty(), "fixtures.tsv lists no {class} fixture");
    // Two at a time: the machine is small and each run is mostly waiting on key derivation.
    let results: Vec<(String, Vec<String>)> = std::thread::scope(|scope| {
        let chunks: Vec<_> = list.chunks(list.len().div_ceil(2)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let test = &test;
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|fixture| {
                            let fx = Unpacked::new(fixture);
                            (fx.name.clone(), test(&fx))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("fixture thread"))
            .collect()
    });
    assert_all_pass(class, &results);
}

#[test]
fn every_healthy_fixture_lists_checks_and_restores_exactly_as_restic_does() {
    each_fixture("healthy", read_like_restic);
}

/// What each damaged fixture's check must name (from restic's and `rustic_core`'s expectations).
fn expected_damage(name: &str) -> &'static [&'static str] {
    match name {
        "restic-repo-data-missing" => &["1959b7f2"],
        "restic-repo-index-missing" => &["c5897731"],
        "restic-repo-index-missing-blob" => &["f2ca1bb6"],
        "restic-repo-unused-data-missing" => &["b2a0e676", "d05c8106", "f6a0bdd2"],
        other => panic!("no expectation for the damaged fixture {other}; add one here"),
    }
}

#[test]
fn every_damaged_fixture_fails_check_naming_the_damage_without_a_panic() {
    each_fixture("damaged", |fx| {
        let out = match run_for(&mut fx.stash(&["check", "--read-data"]), LIMIT) {
            Ok(out) => out,
            Err(err) => return vec![err],
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut problems = Vec::new();
        if panicked(&out) {
            problems.push(format!("check panicked: {}", describe_output(&out)));
        }
        if out.status.success() {
            problems.push(format!("check passes: {}", describe_output(&out)));
        }
        for id in expected_damage(&fx.name) {
            if !stderr.contains(id) {
                problems.push(format!(
                    "check does not name {id}: {}",
                    describe_output(&out)
                ));
            }
        }
        if stderr.contains("'rustic ") {
            problems.push(format!(
                "check names a rustic command: {}",
                describe_output(&out)
            ));
        }
        problems
    });
}

#[test]
fn every_legacy_fixture_is_read_or_refused_naming_its_format_and_the_converting_command() {
    each_fixture("legacy", |fx| {
        let out = match run_for(&mut fx.stash(&["snapshots", "--json"]), LIMIT) {
            Ok(out) => out,
            Err(err) => return vec![err],
        };
        if out.status.success() {
            return read_like_restic(fx);
        }
        let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
        let mut problems = Vec::new();
        if panicked(&out) || stderr.contains("wrong password") || out.status.code() == Some(12) {
            problems.push(format!(
                "refused for the wrong reason: {}",
                describe_output(&out)
            ));
        }
        if !(stderr.contains("legacy") || stderr.contains("old format")) {
            problems.push(format!(
                "the refusal does not name the legacy format: {}",
                describe_output(&out)
            ));
        }
        if !(stderr.contains("restic migrate") || stderr.contains("older restic")) {
            problems.push(format!(
                "the refusal does not name the converting command: {}",
                describe_output(&out)
            ));
        }
        problems
    });
}

/// Runs a tool the round trip needs to build its source tree.
fn tool(program: &str, args: &[&std::ffi::OsStr]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
}

#[test]
fn a_chmod_000_file_hardlinks_xattrs_fifos_and_devices_restore_as_restic_restores_them() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    let (repo, source) = (s.path("repo"), s.path("source"));
    fs::create_dir_all(source.join("dir")).unwrap();
    fs::write(source.join("locked"), b"nobody may read this").unwrap();
    fs::set_permissions(source.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::write(source.join("dir/original"), b"one inode, three names").unwrap();
    fs::hard_link(source.join("dir/original"), source.join("dir/second")).unwrap();
    fs::hard_link(source.join("dir/original"), source.join("third")).unwrap();
    fs::write(source.join("attributed"), b"with xattrs").unwrap();
    xattr::set(source.join("attributed"), "user.stash", b"value").unwrap();
    tool("mkfifo", &[source.join("pipe").as_os_str()]);
    if is_root() {
        let null = source.join("null");
        tool(
            "mknod",
            &[null.as_os_str(), "c".as_ref(), "1".as_ref(), "3".as_ref()],
        );
        let binary = source.join("capable");
        fs::write(&binary, b"a binary that may open raw sockets").unwrap();
        tool("setcap", &["cap_net_raw+ep".as_ref(), binary.as_os_str()]);
    }

    let restic = |args: &[&str]| {
        let mut cmd = s.restic();
        cmd.arg("-r").arg(&repo).args(args);
        cmd
    };
    succeeds(&mut restic(&["init"])).unwrap();
    succeeds(restic(&["backup"]).arg(&source)).unwrap();
    let (want, got) = (s.path("by-restic"), s.path("by-stash"));
    succeeds(restic(&["restore", "latest", "--target"]).arg(&want)).unwrap();
    let out = succeeds(
        s.stash()
            .arg("-r")
            .arg(&repo)
            .args(["restore", "latest", "--target"])
            .arg(&got),
    );
    assert!(out.is_ok(), "{}", out.unwrap_err());
    let differences = tree_differences(&want, &got);
    assert!(
        differences.is_empty(),
        "stash's restore differs from restic's:\n{}",
        differences.join("\n")
    );
    let locked = got.join(source.strip_prefix("/").unwrap()).join("locked");
    assert_eq!(
        fs::symlink_metadata(&locked).unwrap().mode() & 0o7777,
        0,
        "a chmod 000 file stays locked"
    );
}

#[test]
fn prune_refuses_a_repository_with_mixed_packs_and_leaves_it_whole() {
    let fixture = fixtures("healthy")
        .into_iter()
        .find(|f| f.archive == "restic-repo-mixed.tar.gz")
        .expect("restic-repo-mixed in fixtures.tsv");
    let fx = Unpacked::new(&fixture);
    let out = run_for(&mut fx.stash(&["prune"]), LIMIT).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && !panicked(&out) && stderr.contains("restic prune"),
        "prune must refuse, naming the command that repacks mixed packs: {}",
        describe_output(&out)
    );
    succeeds(&mut fx.restic(&["check", "--read-data"])).unwrap();
    assert!(
        read_like_restic(&fx).is_empty(),
        "the repository is as before"
    );
}

//! Bad input and faults: each answers with restic's exit code, a message a person can act on,
//! and a repository that stays usable.

mod support;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{Scratch, exits_with, json, ok, restored, tree};

fn init(s: &Scratch) -> std::path::PathBuf {
    let repo = s.path("repo");
    ok(s.stash().arg("init").arg("-r").arg(&repo));
    repo
}

#[test]
fn a_wrong_password_exits_12_with_a_one_line_message() {
    let s = Scratch::new();
    let repo = init(&s);
    let stderr = exits_with(
        s.stash()
            .env("RESTIC_PASSWORD", "not the password")
            .arg("-r")
            .arg(&repo)
            .arg("snapshots"),
        12,
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("wrong password"), "{stderr}");
}

#[test]
fn a_missing_repository_exits_10_and_says_how_to_create_one() {
    let s = Scratch::new();
    let missing = s.path("no-such-repo");
    let stderr = exits_with(s.stash().arg("-r").arg(&missing).arg("snapshots"), 10);
    assert!(stderr.contains("stash init"), "{stderr}");
    let empty = s.path("empty-dir");
    fs::create_dir_all(&empty).unwrap();
    exits_with(s.stash().arg("-r").arg(&empty).arg("snapshots"), 10);
}

#[test]
fn a_missing_password_names_the_variables_to_set() {
    let s = Scratch::new();
    let repo = init(&s);
    let stderr = exits_with(
        s.stash()
            .env_remove("RESTIC_PASSWORD")
            .arg("-r")
            .arg(&repo)
            .arg("snapshots"),
        1,
    );
    assert!(
        stderr.contains("RESTIC_PASSWORD") && stderr.contains("--password-file"),
        "{stderr}"
    );
}

#[test]
fn init_refuses_to_overwrite_an_existing_repository() {
    let s = Scratch::new();
    let repo = init(&s);
    let stderr = exits_with(s.stash().arg("init").arg("-r").arg(&repo), 1);
    assert!(stderr.contains("already exists"), "{stderr}");
}

#[test]
fn an_invalid_repository_string_is_named_with_the_expected_shape() {
    let s = Scratch::new();
    let stderr = exits_with(
        s.stash().args(["-r", "s3:http://127.0.0.1:9", "snapshots"]),
        1,
    );
    assert!(
        stderr.contains("s3:http://host:9000/bucket/prefix"),
        "{stderr}"
    );
}

#[test]
fn unreadable_source_files_exit_3_and_are_named_while_the_rest_is_saved() {
    let s = Scratch::new();
    let (repo, source) = (s.path("repo"), s.path("source"));
    tree::write(&source.join("readable.txt"), b"fine");
    tree::write(&source.join("locked.txt"), b"secret");
    tree::write(&source.join("locked-dir/inside.txt"), b"secret");
    fs::set_permissions(source.join("locked.txt"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(source.join("locked-dir"), fs::Permissions::from_mode(0o000)).unwrap();

    // root reads everything; run stash as `nobody` so the permissions bite.
    if support::is_root() {
        fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    }
    let as_nobody = || {
        if !support::is_root() {
            return s.stash();
        }
        let mut cmd = std::process::Command::new(support::require_tool(
            "setpriv",
            "apt-get install -y util-linux",
        ));
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_stash"),
        ])
        .env("RESTIC_PASSWORD", support::PASSWORD)
        .env("RESTIC_CACHE_DIR", s.path("nobody-cache"));
        cmd
    };
    ok(as_nobody().arg("init").arg("-r").arg(&repo));

    let out = support::run(as_nobody().arg("-r").arg(&repo).arg("backup").arg(&source));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr:\n{stderr}");
    assert!(
        stderr.contains("locked.txt"),
        "the unreadable file is named: {stderr}"
    );
    assert!(
        stderr.contains("locked-dir"),
        "the unreadable directory is named: {stderr}"
    );
    assert!(stderr.contains("incomplete"), "{stderr}");

    fs::set_permissions(source.join("locked.txt"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(source.join("locked-dir"), fs::Permissions::from_mode(0o755)).unwrap();
    let target = s.path("target");
    ok(s.stash()
        .arg("-r")
        .arg(&repo)
        .args(["restore", "latest", "--target"])
        .arg(&target));
    assert_eq!(
        fs::read(restored(&target, &source).join("readable.txt")).unwrap(),
        b"fine"
    );
}

#[test]
fn a_backup_killed_midway_leaves_a_usable_repository_and_the_next_backup_reuses_its_uploads() {
    let s = Scratch::new();
    let (repo, source) = (s.path("repo"), s.path("source"));
    for i in 0..48 {
        tree::write(
            &source.join(format!("file-{i:02}.bin")),
            &tree::pseudo_random(100 + i, 4 * 1024 * 1024),
        );
    }
    init(&s);

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
    // Kill once a good part of the data is in packs.
    let deadline = Instant::now() + Duration::from_mins(2);
    loop {
        let packs = walk_count(&repo.join("data"));
        if packs >= 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "backup uploaded no packs in time"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "backup finished before it could be killed; grow the data set"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        walk_count(&repo.join("locks")) >= 1,
        "the killed backup left its lock behind"
    );
    assert!(
        json(&ok(s
            .stash()
            .arg("-r")
            .arg(&repo)
            .args(["snapshots", "--json"])))
        .as_array()
        .unwrap()
        .is_empty()
    );

    let next = json(&ok(s
        .stash()
        .arg("-r")
        .arg(&repo)
        .args(["backup", "--json"])
        .arg(&source)));
    let total = 48 * 4 * 1024 * 1024;
    let added = next["data_added"].as_u64().unwrap();
    assert!(
        added < total * 9 / 10,
        "the next backup re-uploaded {added} of {total} bytes instead of reusing the killed run's packs"
    );

    let check = ok(s
        .stash()
        .arg("-r")
        .arg(&repo)
        .args(["check", "--read-data"]));
    assert!(check.contains("no errors"), "{check}");
    assert_eq!(
        walk_count(&repo.join("locks")),
        0,
        "the dead process's stale lock is gone and ours released"
    );
    let target = s.path("target");
    ok(s.stash()
        .arg("-r")
        .arg(&repo)
        .args(["restore", "latest", "--target"])
        .arg(&target));
    tree::assert_same(&source, &restored(&target, &source));
}

fn walk_count(dir: &std::path::Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            if e.path().is_dir() {
                walk_count(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn a_corrupted_pack_is_named_by_check_read_data_which_exits_non_zero() {
    let s = Scratch::new();
    let (repo, source) = (init(&s), s.path("source"));
    tree::write(
        &source.join("data.bin"),
        &tree::pseudo_random(9, 2 * 1024 * 1024),
    );
    ok(s.stash().arg("-r").arg(&repo).arg("backup").arg(&source));
    ok(s.stash()
        .arg("-r")
        .arg(&repo)
        .args(["check", "--read-data"]));

    let pack = corrupt_largest_pack(&repo);

    let structure_only = support::run(s.stash().arg("-r").arg(&repo).arg("check"));
    assert!(
        structure_only.status.success(),
        "a flipped data byte does not break the structure"
    );
    let stderr = exits_with(
        s.stash()
            .arg("-r")
            .arg(&repo)
            .args(["check", "--read-data"]),
        1,
    );
    let pack_name = pack.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        stderr.contains(&pack_name[..8]),
        "check names the corrupted pack {pack_name}:\n{stderr}"
    );
}

/// Flips one byte in the middle of the largest pack (a data pack) and returns its path.
fn corrupt_largest_pack(repo: &std::path::Path) -> std::path::PathBuf {
    let pack = largest_file(&repo.join("data"));
    let mut bytes = fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    fs::write(&pack, &bytes).unwrap();
    pack
}

fn largest_file(dir: &std::path::Path) -> std::path::PathBuf {
    let mut best: Option<(u64, std::path::PathBuf)> = None;
    for sub in fs::read_dir(dir).unwrap() {
        for f in fs::read_dir(sub.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            let len = fs::metadata(&p).unwrap().len();
            if best.as_ref().is_none_or(|(l, _)| len > *l) {
                best = Some((len, p));
            }
        }
    }
    best.expect("a pack file").1
}

#[test]
fn an_exclusive_operation_fails_with_exit_11_while_another_process_holds_the_lock() {
    let s = Scratch::new();
    let (repo, source) = (init(&s), s.path("source"));
    tree::write(&source.join("f"), b"x");
    ok(s.stash().arg("-r").arg(&repo).arg("backup").arg(&source));
    let (mut restic, lock) = restic_holding_a_lock(&s, &repo);

    let stderr = exits_with(
        s.stash()
            .arg("-r")
            .arg(&repo)
            .args(["forget", "--keep-last", "1"]),
        11,
    );
    assert!(
        stderr.contains("locked") && stderr.contains("stash unlock"),
        "{stderr}"
    );
    // Shared operations go on next to restic's shared lock.
    ok(s.stash().arg("-r").arg(&repo).arg("backup").arg(&source));
    ok(s.stash().arg("-r").arg(&repo).arg("snapshots"));
    // `unlock` leaves a live process's lock alone; `--remove-all` removes it.
    let unlock = json(&ok(s
        .stash()
        .arg("-r")
        .arg(&repo)
        .args(["unlock", "--json"])));
    assert!(unlock["removed"].as_array().unwrap().is_empty(), "{unlock}");
    assert!(lock.exists());
    ok(s.stash()
        .arg("-r")
        .arg(&repo)
        .args(["unlock", "--remove-all"]));
    assert!(!lock.exists());
    ok(s.stash()
        .arg("-r")
        .arg(&repo)
        .args(["forget", "--keep-last", "1"]));
    restic.kill().unwrap();
    restic.wait().unwrap();
}

#[test]
fn retry_lock_waits_for_a_live_restic_lock_and_a_dead_one_blocks_nobody() {
    let s = Scratch::new();
    let (repo, source) = (init(&s), s.path("source"));
    tree::write(&source.join("f"), b"x");
    let (mut restic, _lock) = restic_holding_a_lock(&s, &repo);
    let started = Instant::now();
    exits_with(
        s.stash()
            .arg("-r")
            .arg(&repo)
            .args(["prune", "--retry-lock", "6s"]),
        11,
    );
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "--retry-lock waited before giving up"
    );
    restic.kill().unwrap();
    restic.wait().unwrap();
    // restic's dead lock is stale (same host, process gone): it blocks nobody.
    ok(s.stash().arg("-r").arg(&repo).args(["prune"]));
}

/// A real restic process holding a shared lock: `restic backup --stdin` waits for input.
/// The caller kills and waits for the returned child.
#[allow(clippy::zombie_processes)]
/// A restic backup from a stdin that never ends, past its own lock check: restic writes its lock, waits,
/// then looks for other locks and gives up (removing its lock) if it finds one, so a stash lock taken in
/// that window would make restic's vanish. `-v` prints "load index files" once restic holds the lock.
fn restic_holding_a_lock(
    s: &Scratch,
    repo: &std::path::Path,
) -> (std::process::Child, std::path::PathBuf) {
    let before = lock_files(repo);
    let mut restic = s
        .restic()
        .arg("-r")
        .arg(repo)
        .args([
            "backup",
            "-v",
            "--stdin",
            "--stdin-filename",
            "blocked",
            "--host",
            "other-pod",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut progress = BufReader::new(restic.stdout.take().unwrap()).lines();
    let locked = progress
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.starts_with("load index files"));
    // Go exits on a write to a closed stdout: keep reading until restic ends.
    std::thread::spawn(move || progress.for_each(drop));
    let new = lock_files(repo).into_iter().find(|l| !before.contains(l));
    match new {
        Some(lock) if locked => (restic, lock),
        _ => {
            let _ = restic.kill();
            let _ = restic.wait();
            panic!("restic did not take its lock (locked: {locked})");
        }
    }
}

fn lock_files(repo: &std::path::Path) -> Vec<std::path::PathBuf> {
    fs::read_dir(repo.join("locks"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn an_interrupted_backup_exits_130_and_removes_its_lock() {
    let s = Scratch::new();
    let (repo, source) = (init(&s), s.path("source"));
    for i in 0..48 {
        tree::write(
            &source.join(format!("f{i:02}")),
            &tree::pseudo_random(500 + i, 4 * 1024 * 1024),
        );
    }
    let mut child = s
        .stash()
        .arg("-r")
        .arg(&repo)
        .arg("backup")
        .arg(&source)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_mins(1);
    while lock_files(&repo).is_empty() {
        assert!(Instant::now() < deadline, "the backup took no lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    ok(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]));
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "restic's exit code for an interrupted run"
    );
    assert!(
        lock_files(&repo).is_empty(),
        "the interrupted run removed its lock"
    );
    ok(s.stash().arg("-r").arg(&repo).args(["check"]));
}

#[test]
fn check_reads_a_subset_of_packs_on_request() {
    let s = Scratch::new();
    let (repo, source) = (init(&s), s.path("source"));
    tree::write(&source.join("f"), &tree::pseudo_random(77, 1024 * 1024));
    ok(s.stash().arg("-r").arg(&repo).arg("backup").arg(&source));
    for subset in ["1/2", "50%", "100M"] {
        let out = ok(s
            .stash()
            .arg("-r")
            .arg(&repo)
            .args(["check", "--read-data-subset", subset]));
        assert!(out.contains("no errors"), "{subset}: {out}");
    }
    let stderr = exits_with(
        s.stash()
            .arg("-r")
            .arg(&repo)
            .args(["check", "--read-data-subset", "half"]),
        1,
    );
    assert!(stderr.contains("--read-data-subset"), "{stderr}");
}

#[test]
fn restore_from_a_corrupted_pack_names_the_damaged_file_restores_the_rest_and_exits_1() {
    let s = Scratch::new();
    let (repo, source) = (init(&s), s.path("source"));
    tree::write(
        &source.join("damaged.bin"),
        &tree::pseudo_random(11, 6 * 1024 * 1024),
    );
    ok(s.stash().arg("-r").arg(&repo).arg("backup").arg(&source));
    tree::write(
        &source.join("intact.txt"),
        b"written in a later snapshot, stored in another pack",
    );
    ok(s.stash().arg("-r").arg(&repo).arg("backup").arg(&source));

    corrupt_largest_pack(&repo);

    let target = s.path("target");
    let stderr = exits_with(
        s.stash()
            .arg("-r")
            .arg(&repo)
            .args(["restore", "latest", "--target"])
            .arg(&target),
        1,
    );
    assert!(
        stderr.contains("damaged.bin"),
        "the damaged file is named:\n{stderr}"
    );
    assert!(!stderr.contains("intact.txt"), "{stderr}");
    assert_eq!(
        fs::read(restored(&target, &source).join("intact.txt")).unwrap(),
        b"written in a later snapshot, stored in another pack"
    );
}

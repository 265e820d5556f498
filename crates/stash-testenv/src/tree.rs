//! Deterministic test trees and a strict tree comparison: content (SHA-256), type, mode
//! (including setuid and sticky bits), mtime to the nanosecond, symlink target, and owner and
//! group when running as root.
//!
//! ```no_run
//! use stash_testenv::tree;
//! # let (source, restored) = (std::path::Path::new("/a"), std::path::Path::new("/b"));
//! tree::full(source, false);              // nested dirs, symlinks, modes, unicode names, a sparse file
//! tree::write(&source.join("x/y.txt"), b"more"); // parents are created
//! tree::set_mtimes(source, 1_700_000_000); // distinct nanosecond mtimes again after a change
//! // ... back up and restore ...
//! tree::assert_same(source, restored);    // panics naming the first entry that differs
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use sha2::Digest;

/// Fast deterministic bytes (xorshift64*): incompressible, reproducible.
#[must_use]
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `data` to `path`, creating its parent directories; panics on error.
pub fn write(path: &Path, data: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn set_mtime(path: &Path, secs: i64, nanos: u32) {
    filetime::set_symlink_file_times(
        path,
        filetime::FileTime::from_unix_time(secs, nanos),
        filetime::FileTime::from_unix_time(secs, nanos),
    )
    .unwrap();
}

/// The tree of the round-trip test: nested dirs, symlinks (relative, absolute, dangling),
/// empty files and dirs, unicode names, modes, nanosecond mtimes, a sparse file and, with
/// `big`, a file over 100 MiB.
pub fn full(root: &Path, big: bool) {
    fs::create_dir_all(root).unwrap();
    write(&root.join("hello.txt"), b"hello, world\n");
    write(&root.join("empty-file"), b"");
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    write(&root.join("a/b/c/d/deep.txt"), b"deep\n");
    write(
        &root.join("a/b/random.bin"),
        &pseudo_random(1, 3 * 1024 * 1024 + 17),
    );
    write(
        &root.join("a/compressible.txt"),
        "stash-rs backs up Kubernetes volumes\n"
            .repeat(50_000)
            .as_bytes(),
    );
    write(
        &root.join("ünïcødé 文件 with spaces.txt"),
        "ünïcødé\n".as_bytes(),
    );
    write(&root.join("dir with spaces/Ελληνικά.md"), b"# title\n");
    std::os::unix::fs::symlink("hello.txt", root.join("link-relative")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("link-absolute")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", root.join("link-dangling")).unwrap();

    write(&root.join("modes/private"), b"secret\n");
    fs::set_permissions(
        root.join("modes/private"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    write(&root.join("modes/script.sh"), b"#!/bin/sh\necho hi\n");
    fs::set_permissions(
        root.join("modes/script.sh"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    write(&root.join("modes/setuid"), b"x");
    fs::set_permissions(
        root.join("modes/setuid"),
        fs::Permissions::from_mode(0o4750),
    )
    .unwrap();
    fs::create_dir_all(root.join("modes/sticky")).unwrap();
    fs::set_permissions(
        root.join("modes/sticky"),
        fs::Permissions::from_mode(0o1777),
    )
    .unwrap();
    if is_root() {
        std::os::unix::fs::lchown(root.join("modes/private"), Some(1234), Some(5678)).unwrap();
    }

    // 64 MiB apparent size, 8 KiB of data in two places: the rest is a hole.
    let mut sparse = fs::File::create(root.join("sparse.img")).unwrap();
    sparse.set_len(64 * 1024 * 1024).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, &[0xAB; 4096], 1024 * 1024).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, &[0xCD; 4096], 64 * 1024 * 1024 - 4096)
        .unwrap();
    sparse.flush().unwrap();

    if big {
        write(
            &root.join("big/over-100MiB.bin"),
            &pseudo_random(7, 101 * 1024 * 1024 + 3),
        );
    }
    set_mtimes(root, 1_700_000_000);
}

/// Gives every entry a distinct mtime with nanoseconds, deepest first so directory times stick.
pub fn set_mtimes(root: &Path, base: i64) {
    let mut paths = Vec::new();
    collect(root, &mut paths);
    paths.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, path) in paths.iter().enumerate() {
        set_mtime(path, base + i64::try_from(i).unwrap() * 61, 123_456_789);
    }
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            collect(&path, out);
        }
        out.push(path);
    }
}

/// What [`describe`] records of each entry (compared with `==`).
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    kind: &'static str,
    mode: u32,
    mtime: (i64, i64),
    owner: Option<(u32, u32)>,
    size: u64,
    content: String,
}

/// Snapshot of a tree, keyed by relative path. Directory mtimes are included.
#[must_use]
pub fn describe(root: &Path) -> BTreeMap<String, Entry> {
    let mut paths = Vec::new();
    collect(root, &mut paths);
    let root_owner = is_root();
    paths
        .into_iter()
        .map(|path| {
            let meta = fs::symlink_metadata(&path).unwrap();
            let (kind, content) = if meta.file_type().is_symlink() {
                (
                    "symlink",
                    fs::read_link(&path).unwrap().display().to_string(),
                )
            } else if meta.is_dir() {
                ("dir", String::new())
            } else {
                (
                    "file",
                    hex::encode(sha2::Sha256::digest(fs::read(&path).unwrap())),
                )
            };
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let entry = Entry {
                kind,
                // Symlink permission bits are meaningless on Linux.
                mode: if kind == "symlink" {
                    0
                } else {
                    meta.mode() & 0o7777
                },
                mtime: (meta.mtime(), meta.mtime_nsec()),
                owner: root_owner.then(|| (meta.uid(), meta.gid())),
                size: if kind == "dir" { 0 } else { meta.len() },
                content,
            };
            (rel, entry)
        })
        .collect()
}

/// Asserts that `actual` holds exactly what `expected` holds, entry by entry.
#[track_caller]
pub fn assert_same(expected: &Path, actual: &Path) {
    let (e, a) = (describe(expected), describe(actual));
    let missing: Vec<_> = e.keys().filter(|k| !a.contains_key(*k)).collect();
    let extra: Vec<_> = a.keys().filter(|k| !e.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing from restore: {missing:?}\nunexpected in restore: {extra:?}"
    );
    for (path, entry) in &e {
        assert_eq!(entry, &a[path], "entry `{path}` differs");
    }
}

/// Blocks actually allocated on disk (to tell a hole from written zeros).
#[must_use]
pub fn allocated_bytes(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks() * 512
}

/// Whether the test runs as root (then [`full`] gives a file another owner, and [`describe`]
/// records owners).
#[must_use]
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

//! Where the binaries are. A missing binary is an error that says how to build it, never a skip.

use std::path::{Path, PathBuf};

/// The pinned Kubernetes version, read from `tools/k8s/go.mod` at compile time.
#[must_use]
pub fn k8s_version() -> &'static str {
    static GO_MOD: &str = include_str!("../../../tools/k8s/go.mod");
    GO_MOD
        .lines()
        .map(|l| l.trim().trim_start_matches("require").trim())
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("k8s.io/kubernetes"))
                .then(|| words.next())
                .flatten()
        })
        .expect("tools/k8s/go.mod requires k8s.io/kubernetes")
}

/// The repository root (two levels above this crate).
#[must_use]
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// The names of the control-plane binaries built by `scripts/build-k8s`.
pub const K8S_BINARIES: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kubectl",
];

#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error(
        "{binary} not found in {dir} (from {source_of_dir}); build the test control plane with `scripts/build-k8s` \
         (Go >= 1.26 and the Go module proxy; about 6 min on 2 idle cores when cold, under a second when built), or point STASH_K8S_BIN at \
         the directory that holds etcd, kube-apiserver, kube-controller-manager and kubectl"
    )]
    K8sMissing {
        binary: &'static str,
        dir: PathBuf,
        source_of_dir: &'static str,
    },
    #[error(
        "the stash binary was not found at {path} (from {source_of_path}); build it with `cargo build -p stash-cli` \
         or set STASH_BIN to its path"
    )]
    StashMissing {
        path: PathBuf,
        source_of_path: &'static str,
    },
}

/// The directory with etcd, kube-apiserver, kube-controller-manager and kubectl:
/// `$STASH_K8S_BIN`, else `${STASH_K8S_CACHE:-$HOME/.cache/stash-rs/k8s}/<version>/bin`.
pub fn k8s_bin_dir() -> Result<PathBuf, BinaryError> {
    let (dir, source_of_dir) = if let Some(dir) = std::env::var_os("STASH_K8S_BIN") {
        (PathBuf::from(dir), "STASH_K8S_BIN")
    } else {
        let cache = std::env::var_os("STASH_K8S_CACHE").map_or_else(
            || {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                    .join(".cache/stash-rs/k8s")
            },
            PathBuf::from,
        );
        (
            cache.join(k8s_version()).join("bin"),
            "the default cache, ${STASH_K8S_CACHE:-$HOME/.cache/stash-rs/k8s}/<version>/bin",
        )
    };
    for binary in K8S_BINARIES {
        if !is_executable(&dir.join(binary)) {
            return Err(BinaryError::K8sMissing {
                binary,
                dir,
                source_of_dir,
            });
        }
    }
    Ok(dir)
}

/// The `stash` binary the pod runner executes: `$STASH_BIN`, else `stash` in the
/// cargo target directory of the running test (`target/debug/deps/<test>` → `target/debug/stash`),
/// else `<repo>/target/debug/stash`.
pub fn stash_bin() -> Result<PathBuf, BinaryError> {
    if let Some(path) = std::env::var_os("STASH_BIN") {
        let path = PathBuf::from(path);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(BinaryError::StashMissing {
                path,
                source_of_path: "STASH_BIN",
            })
        };
    }
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/deps/<test-binary> or target/<profile>/<binary>
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join("stash");
            if is_executable(&candidate) && candidate != exe {
                return Ok(candidate);
            }
        }
    }
    let path = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo_root().join("target"), PathBuf::from)
        .join("debug/stash");
    if is_executable(&path) {
        Ok(path)
    } else {
        Err(BinaryError::StashMissing {
            path,
            source_of_path: "the cargo target directory",
        })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

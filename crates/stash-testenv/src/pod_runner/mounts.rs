//! A container's filesystem view: a mount namespace of its own in which every volume is
//! bind-mounted at its `mountPath`, so the process reads `/source/data` as it would in a pod.
//!
//! The workspace forbids `unsafe`, which rules out a `pre_exec` hook (nix's `unshare` and
//! `mount` would need one to run between fork and exec). util-linux does the same job with
//! no unsafe code: the process is started as
//! `unshare --mount --propagation private -- bash -c <script> bash <stash> <args>…`, where
//! the script mounts, changes to the working directory and `exec`s the stash binary (the PID
//! stays the same through `setpriv`, `unshare`, `bash` and `stash`, so signals and exit codes
//! are the binary's own). Nothing leaks to the host's mount table (`--propagation private`).
//!
//! Sources are opened as file descriptors before the first mount and bound from
//! `/proc/self/fd/<n>` (with `mount -c`, which keeps `mount` from resolving the link back to
//! a path): binding an emptyDir at `/tmp` would otherwise hide every later source under the
//! runner's work directory when that lies in `/tmp`.
//!
//! A `mountPath` that does not exist is created with `mkdir -p` inside the namespace. The
//! directory is created on the underlying filesystem, so an empty directory (e.g.
//! `/source/data`) may be left on the host after the pod ends; that is harmless and what a
//! bind mount needs.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

/// One volume mount of a container: `source` (a host directory or file) at `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    /// The container path (`mountPath`).
    pub target: String,
    pub read_only: bool,
}

/// The runner's own `PATH` lookup of a tool the wrapper runs (util-linux, coreutils, bash:
/// installed by `scripts/setup`): the container's env may set a `PATH` of its own.
fn tool(name: &str) -> String {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .map_or_else(|| name.to_owned(), |p| p.display().to_string())
}

/// Fails when a mount is unusable: a relative or `..` mount path or a missing source. A mount
/// may cover the stash binary's directory (an emptyDir at `/tmp` with the checkout under `/tmp`):
/// [`wrap`] opens the binary before mounting and runs it from that descriptor.
pub fn check(mounts: &[BindMount]) -> Result<(), String> {
    for m in mounts {
        let target = Path::new(&m.target);
        if !target.is_absolute() || target.components().any(|c| c == Component::ParentDir) {
            return Err(format!(
                "mountPath {:?} must be an absolute path without '..'",
                m.target
            ));
        }
        if !m.source.exists() {
            return Err(format!(
                "the host side of mountPath {} ({}) does not exist",
                m.target,
                m.source.display()
            ));
        }
    }
    Ok(())
}

/// The program and arguments that run `program args` in a new mount namespace with `mounts`
/// in place and `workdir` as the working directory.
#[must_use]
pub fn wrap(
    mounts: &[BindMount],
    workdir: &str,
    program: &Path,
    args: &[String],
) -> (PathBuf, Vec<String>) {
    let mut out = vec![
        "--mount".to_owned(),
        "--propagation".to_owned(),
        "private".to_owned(),
        "--".to_owned(),
        tool("bash"),
        "-c".to_owned(),
        script(mounts, workdir, program),
        // `$0` of the script; the container's arguments follow as `$@`.
        "stash".to_owned(),
    ];
    out.extend(args.iter().cloned());
    (PathBuf::from(tool("unshare")), out)
}

/// Parents before children (`/tmp` before `/tmp/cache`), as container runtimes order mounts.
fn ordered(mounts: &[BindMount]) -> Vec<&BindMount> {
    let mut sorted: Vec<&BindMount> = mounts.iter().collect();
    sorted.sort_by_key(|m| Path::new(&m.target).components().count());
    sorted
}

fn script(mounts: &[BindMount], workdir: &str, program: &Path) -> String {
    // bash, not sh: dash only redirects file descriptors 0-9.
    let mounts = ordered(mounts);
    let (mkdir, mount) = (quote(&tool("mkdir")), quote(&tool("mount")));
    let fd = |i: usize| i + 3;
    // The program is opened first and run from its descriptor, so no mount can hide it.
    let program_fd = fd(mounts.len());
    let mut s = String::from("set -e\nexec");
    for (i, m) in mounts.iter().enumerate() {
        let _ = write!(s, " {}<{}", fd(i), quote(&m.source.display().to_string()));
    }
    let _ = writeln!(s, " {program_fd}<{}", quote(&program.display().to_string()));
    for (i, m) in mounts.iter().enumerate() {
        let target = quote(m.target.trim_end_matches('/'));
        if m.source.is_dir() {
            let _ = writeln!(s, "{mkdir} -p {target}");
        } else {
            let parent = Path::new(&m.target)
                .parent()
                .map_or_else(|| "/".to_owned(), |p| p.display().to_string());
            let _ = writeln!(s, "{mkdir} -p {}", quote(&parent));
            let _ = writeln!(s, "[ -e {target} ] || : > {target}");
        }
        let _ = writeln!(s, "{mount} -c --bind /proc/self/fd/{} {target}", fd(i));
        if m.read_only {
            let _ = writeln!(s, "{mount} -c -o remount,bind,ro {target}");
        }
    }
    for i in 0..mounts.len() {
        let _ = writeln!(s, "exec {}<&-", fd(i));
    }
    let _ = writeln!(s, "cd {}", quote(workdir));
    let _ = writeln!(s, "exec -a stash /proc/self/fd/{program_fd} \"$@\"");
    s
}

/// Single-quotes `s` for the shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(source: &str, target: &str) -> BindMount {
        BindMount {
            source: PathBuf::from(source),
            target: target.to_owned(),
            read_only: false,
        }
    }

    #[test]
    fn parents_are_mounted_before_their_children_and_sources_opened_before_any_mount() {
        let s = script(
            &[bind("/b", "/tmp/cache"), bind("/a", "/tmp")],
            "/",
            Path::new("/tmp/stash"),
        );
        let open = s.find("exec 3<'/a' 4<'/b' 5<'/tmp/stash'").expect(&s);
        let tmp = s.find(" --bind /proc/self/fd/3 '/tmp'\n").expect(&s);
        let cache = s.find(" --bind /proc/self/fd/4 '/tmp/cache'\n").expect(&s);
        assert!(open < tmp && tmp < cache, "{s}");
        assert!(
            s.ends_with("cd '/'\nexec -a stash /proc/self/fd/5 \"$@\"\n"),
            "{s}"
        );
    }

    #[test]
    fn quotes_survive_the_shell() {
        assert_eq!(quote("/it's"), r"'/it'\''s'");
    }

    #[test]
    fn a_relative_path_or_a_missing_source_is_refused() {
        let dir = std::env::temp_dir();
        let source = dir.display().to_string();
        assert!(check(&[bind(&source, "data")]).is_err());
        assert!(check(&[bind(&source, "/data/../work")]).is_err());
        assert!(check(&[bind(&source, "/workdir")]).is_ok());
        assert!(check(&[bind("/does/not/exist", "/data")]).is_err());
    }
}

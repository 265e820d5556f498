//! Putting entries on disk safely: never following a symlink out of the target, never deleting
//! a directory in the way, and restoring ownership, permissions and times as restic does.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustic_core::repofile::Metadata;

pub(super) fn ensure_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) => fs::create_dir_all(parent),
        None => Ok(()),
    }
}

pub(super) fn ensure_dir(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(meta) if meta.file_type().is_symlink() => {
            // Never follow a symlink out of the target; replace it with the directory.
            fs::remove_file(path)?;
            fs::create_dir(path)
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a file is in the way of a directory from the snapshot; move it away and restore again",
        )),
        Err(err) if err.kind() == io::ErrorKind::NotFound => fs::create_dir_all(path),
        Err(err) => Err(err),
    }
}

/// Makes room for a file or symlink; a directory in the way is an error, never deleted.
pub(super) fn clear_non_dir(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a directory is in the way of a file from the snapshot; move it away and restore again",
        )),
        Ok(meta) if meta.file_type().is_symlink() => fs::remove_file(path),
        Ok(_) | Err(_) => Ok(()),
    }
}

/// A FIFO or device node as restic creates them (`mkfifo`, `mknod`; devices need root).
pub(super) fn make_special(path: &Path, kind: Special) -> io::Result<()> {
    use rustix::fs::{CWD, FileType, Mode, mknodat};
    let (file_type, device) = match kind {
        Special::Fifo => (FileType::Fifo, 0),
        Special::BlockDevice(device) => (FileType::BlockDevice, device),
        Special::CharDevice(device) => (FileType::CharacterDevice, device),
    };
    mknodat(CWD, path, file_type, Mode::from_raw_mode(0o600), device).map_err(io::Error::from)
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Special {
    Fifo,
    BlockDevice(u64),
    CharDevice(u64),
}

/// Go's `os.FileMode` bits that restic stores, mapped to Unix permission bits.
pub(super) fn unix_permissions(go_mode: u32) -> u32 {
    const GO_MODE_SETUID: u32 = 1 << 23;
    const GO_MODE_SETGID: u32 = 1 << 22;
    const GO_MODE_STICKY: u32 = 1 << 20;
    let mut mode = go_mode & 0o777;
    if go_mode & GO_MODE_SETUID != 0 {
        mode |= 0o4000;
    }
    if go_mode & GO_MODE_SETGID != 0 {
        mode |= 0o2000;
    }
    if go_mode & GO_MODE_STICKY != 0 {
        mode |= 0o1000;
    }
    mode
}

/// The time restic sets for an absent `mtime`/`atime`: Go's zero time (year 1) converted to
/// nanoseconds since 1970, which overflows int64 and wraps to 1754-08-30T22:43:41.128654848Z.
fn go_zero_time() -> filetime::FileTime {
    const GO_ZERO_UNIX_SECONDS: i64 = -62_135_596_800;
    #[allow(clippy::cast_possible_truncation)]
    let wrapped = (i128::from(GO_ZERO_UNIX_SECONDS) * 1_000_000_000) as i64;
    filetime::FileTime::from_unix_time(
        wrapped.div_euclid(1_000_000_000),
        u32::try_from(wrapped.rem_euclid(1_000_000_000)).unwrap_or(0),
    )
}

pub(super) fn apply_metadata(path: &Path, meta: &Metadata, is_symlink: bool) -> io::Result<()> {
    if meta.uid.is_some() || meta.gid.is_some() {
        match std::os::unix::fs::lchown(path, meta.uid, meta.gid) {
            // Only root may give files away; as any other user keep our ownership, like restic.
            Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {}
            other => other?,
        }
    }
    for attr in &meta.extended_attributes {
        // After the owner (chown clears `security.capability`), before the mode (0 would stop us).
        xattr::set(path, &attr.name, attr.value.as_deref().unwrap_or_default()).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("cannot set the extended attribute {}: {err}", attr.name),
            )
        })?;
    }
    if !is_symlink {
        // restic omits a mode of 0 (a file someone `chmod 000`ed): absent means 0, never
        // the umask's default, which would open up a file that was locked.
        let mode = meta.mode.unwrap_or(0);
        fs::set_permissions(path, fs::Permissions::from_mode(unix_permissions(mode)))?;
    }
    let to_filetime = |t: rustic_core::jiff::Timestamp| {
        filetime::FileTime::from_unix_time(
            t.as_second(),
            u32::try_from(t.subsec_nanosecond()).unwrap_or(0),
        )
    };
    let mtime = meta.mtime.map_or_else(go_zero_time, to_filetime);
    let atime = meta.atime.map_or_else(go_zero_time, to_filetime);
    // By path without following or opening it (`utimensat` with `AT_SYMLINK_NOFOLLOW`):
    // opening a FIFO would block, and a file of mode 0 cannot be opened but by root.
    filetime::set_symlink_file_times(path, atime, mtime)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{go_zero_time, unix_permissions};

    #[test]
    fn an_absent_time_is_restored_as_restic_converts_gos_zero_time() {
        let t = go_zero_time();
        assert_eq!(
            (t.unix_seconds(), t.nanoseconds()),
            (-6_795_364_579, 128_654_848)
        );
    }

    #[test]
    fn go_file_modes_map_to_unix_permission_bits() {
        assert_eq!(unix_permissions(0o644), 0o644);
        assert_eq!(
            unix_permissions((1 << 31) | 0o755),
            0o755,
            "the directory bit is not a permission"
        );
        assert_eq!(unix_permissions((1 << 23) | 0o755), 0o4755);
        assert_eq!(unix_permissions((1 << 20) | 0o777), 0o1777);
    }
}

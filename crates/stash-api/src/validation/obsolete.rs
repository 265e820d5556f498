//! Fields that real, older Stash manifests carry but v1beta1 no longer has: reported as warnings
//! instead of "unknown field" errors. The API server prunes them, so each warning says what to do.

use super::Issue;
use super::schema::join;

/// The warning for an obsolete field, or `None` if `key` is simply unknown.
pub fn unknown_field(kind: &str, path: &str, key: &str) -> Option<Issue> {
    let field = join(path, key);
    let parent = path.rsplit('.').next().unwrap_or(path);
    let parent = parent.split('[').next().unwrap_or(parent);
    match (kind, parent, key) {
        ("BackupConfiguration" | "BackupBatch", "target", "directories") => Some(Issue::warning(
            &field,
            "`directories` is the pre-v0.9 name of `paths`; it is not part of v1beta1 and the API server drops it",
            format!("rename `{field}` to `{}`", join(path, "paths")),
        )),
        ("BackupSession", "status", "totalHosts" | "stats") => Some(Issue::warning(
            &field,
            "top-level `status.totalHosts`/`status.stats` is the v0.9.0-rc.0…rc.2 status shape; current Stash keeps them under `status.targets[]`",
            "remove `status` from the manifest: the operator writes it",
        )),
        _ => None,
    }
}

//! `kubectl stash snapshots <repository>`: the snapshots of a Repository, as `restic snapshots`
//! prints them (or its `--json`).

use kube::Client;
use stash_engine::{Control, SnapshotFilter, SnapshotInfo};

use crate::KubectlError;
use crate::repository::{self, RepositoryRef};

pub async fn list(
    client: &Client,
    repository: &RepositoryRef,
    control: &Control,
) -> Result<Vec<SnapshotInfo>, KubectlError> {
    let engine = repository::open(client, repository).await?;
    engine
        .snapshots(SnapshotFilter::default(), control)
        .await
        .map_err(KubectlError::engine("listing the snapshots", repository))
}

/// restic's table: one row per snapshot (further paths on lines of their own), a count below.
#[must_use]
pub fn table(snapshots: &[SnapshotInfo]) -> String {
    use std::fmt::Write as _;
    let rule = "-".repeat(80);
    let indent = " ".repeat(9 + 1 + 20 + 1 + 16 + 1 + 16 + 1);
    let mut out = format!(
        "{:<9} {:<20} {:<16} {:<16} Paths\n{rule}\n",
        "ID", "Time", "Host", "Tags"
    );
    for snapshot in snapshots {
        // Like restic: seconds precision, no zone suffix.
        let time = snapshot
            .time
            .get(..19)
            .unwrap_or(&snapshot.time)
            .replace('T', " ");
        let _ = writeln!(
            out,
            "{:<9} {:<20} {:<16} {:<16} {}",
            snapshot.short_id,
            time,
            snapshot.hostname,
            snapshot.tags.join(","),
            snapshot.paths.join(&format!("\n{indent}"))
        );
    }
    let _ = write!(out, "{rule}\n{} snapshots\n", snapshots.len());
    out
}

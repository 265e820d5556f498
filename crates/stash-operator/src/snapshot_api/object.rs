//! The `Snapshot` objects this API serves, built from a Repository and the engine's snapshot list:
//! Stash's `repositories.stash.appscode.com/v1alpha1` Snapshot (§14.1), its `SnapshotList`, and the
//! `meta.k8s.io/v1` Table that `kubectl get` asks for.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta, Time};
use kube::ResourceExt;
use serde::Serialize;
use serde_json::{Value, json};
use stash_api::v1alpha1::Repository;
use stash_engine::SnapshotInfo;

use super::names::snapshot_name;
use super::{API_VERSION, KIND, LIST_KIND};

/// Label holding the Repository name; `-l repository=<name>` lists one Repository's snapshots.
pub const REPOSITORY_LABEL: &str = "repository";
/// Label holding the host the snapshot was taken on.
pub const HOSTNAME_LABEL: &str = "hostname";

/// Stash's Snapshot: metadata and a status mirroring `restic snapshots --json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: ObjectMeta,
    pub status: SnapshotStatus,
}

/// Stash's `SnapshotStatus`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SnapshotStatus {
    pub tree: String,
    pub paths: Vec<String>,
    pub hostname: String,
    pub username: String,
    pub uid: u32,
    pub gid: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    pub repository: String,
}

/// Stash's `SnapshotList`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotList {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: ListMeta,
    pub items: Vec<Snapshot>,
}

impl SnapshotList {
    #[must_use]
    pub fn new(items: Vec<Snapshot>) -> Self {
        Self {
            api_version: API_VERSION,
            kind: LIST_KIND,
            metadata: ListMeta::default(),
            items,
        }
    }
}

/// The Snapshot of `snapshot` in `repository`: named `<repo>-<short id>`, uid the full id, created at
/// the snapshot time, labelled with the Repository's labels plus `repository` and `hostname`.
#[must_use]
pub fn snapshot(repository: &Repository, snapshot: &SnapshotInfo) -> Snapshot {
    let repository_name = repository.name_any();
    let mut labels: BTreeMap<String, String> = repository.labels().clone();
    labels.insert(REPOSITORY_LABEL.to_owned(), repository_name.clone());
    labels.insert(HOSTNAME_LABEL.to_owned(), snapshot.hostname.clone());
    Snapshot {
        api_version: API_VERSION,
        kind: KIND,
        metadata: ObjectMeta {
            name: Some(snapshot_name(&repository_name, &snapshot.id)),
            namespace: repository.namespace(),
            uid: Some(snapshot.id.clone()),
            creation_timestamp: snapshot.time.parse().ok().map(Time),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        status: SnapshotStatus {
            tree: snapshot.tree.clone(),
            paths: snapshot.paths.clone(),
            hostname: snapshot.hostname.clone(),
            username: snapshot.username.clone(),
            uid: snapshot.uid,
            gid: snapshot.gid,
            tags: snapshot.tags.clone(),
            repository: repository_name,
        },
    }
}

/// What a Table row carries besides its cells (`?includeObject=`; kubectl's default is Metadata).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    /// The `includeObject` query value; anything else is the default, Metadata.
    #[must_use]
    pub fn from_query(value: Option<&str>) -> Self {
        match value {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

/// The `meta.k8s.io/v1` Table of `snapshots`: Name, Id, Repository, Hostname, Created (and the
/// paths and tags at `-o wide`).
#[must_use]
pub fn table(snapshots: &[Snapshot], include: IncludeObject) -> Value {
    let column = |name: &str, type_: &str, format: &str, priority: u8, description: &str| {
        json!({"name": name, "type": type_, "format": format, "priority": priority,
               "description": description})
    };
    let rows: Vec<Value> = snapshots
        .iter()
        .map(|s| {
            let created = s
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(Value::Null, |t| {
                    serde_json::to_value(t).unwrap_or(Value::Null)
                });
            let mut row = json!({"cells": [
                s.metadata.name,
                s.metadata.uid.as_deref().map(|id| id.get(..8).unwrap_or(id)),
                s.status.repository,
                s.status.hostname,
                created,
                s.status.paths.join(","),
                s.status.tags.join(","),
            ]});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row["object"] = json!({"kind": "PartialObjectMetadata",
                                           "apiVersion": "meta.k8s.io/v1",
                                           "metadata": s.metadata});
                }
                IncludeObject::Object => {
                    row["object"] = serde_json::to_value(s).unwrap_or(Value::Null);
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": ""},
        "columnDefinitions": [
            column("Name", "string", "name", 0, "Name of the Snapshot: <repository>-<short id>"),
            column("Id", "string", "", 0, "restic's short snapshot id"),
            column("Repository", "string", "", 0, "The Repository holding the snapshot"),
            column("Hostname", "string", "", 0, "The host the snapshot was taken on"),
            column("Created", "date", "", 0, "When the snapshot was taken"),
            column("Paths", "string", "", 1, "The paths in the snapshot"),
            column("Tags", "string", "", 1, "The snapshot's tags"),
        ],
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    fn repository() -> Repository {
        serde_json::from_value(json!({
            "apiVersion": "stash.appscode.com/v1alpha1", "kind": "Repository",
            "metadata": {"name": "local-repo", "namespace": "demo", "labels": {"team": "a"}},
            "spec": {"backend": {"local": {"mountPath": "/repo"}, "storageSecretName": "s"}}
        }))
        .unwrap()
    }

    fn info() -> SnapshotInfo {
        SnapshotInfo {
            time: "2026-12-02T00:13:31.123456789+01:00".to_owned(),
            parent: None,
            tree: "tree0".to_owned(),
            paths: vec!["/source/data".to_owned(), "/etc".to_owned()],
            hostname: "app-0".to_owned(),
            username: "root".to_owned(),
            uid: 0,
            gid: 0,
            tags: vec!["daily".to_owned()],
            id: "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9".to_owned(),
            short_id: "0a1b2c3d".to_owned(),
        }
    }

    #[test]
    fn a_snapshot_object_has_stash_s_name_uid_time_labels_and_status() {
        let object = serde_json::to_value(snapshot(&repository(), &info())).unwrap();
        assert_eq!(
            object,
            json!({
                "apiVersion": "repositories.stash.appscode.com/v1alpha1",
                "kind": "Snapshot",
                "metadata": {
                    "name": "local-repo-0a1b2c3d",
                    "namespace": "demo",
                    "uid": "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
                    "creationTimestamp": "2026-12-01T23:13:31Z",
                    "labels": {"team": "a", "repository": "local-repo", "hostname": "app-0"}
                },
                "status": {
                    "tree": "tree0", "paths": ["/source/data", "/etc"], "hostname": "app-0",
                    "username": "root", "uid": 0, "gid": 0, "tags": ["daily"],
                    "repository": "local-repo"
                }
            })
        );
    }

    #[test]
    fn a_table_row_shows_name_short_id_repository_hostname_and_time_with_the_metadata() {
        let table = table(&[snapshot(&repository(), &info())], IncludeObject::Metadata);
        let names: Vec<&str> = table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "Name",
                "Id",
                "Repository",
                "Hostname",
                "Created",
                "Paths",
                "Tags"
            ]
        );
        assert_eq!(
            table["rows"][0]["cells"],
            json!([
                "local-repo-0a1b2c3d",
                "0a1b2c3d",
                "local-repo",
                "app-0",
                "2026-12-01T23:13:31Z",
                "/source/data,/etc",
                "daily"
            ])
        );
        assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(table["rows"][0]["object"]["metadata"]["namespace"], "demo");
    }

    #[test]
    fn include_object_none_leaves_the_rows_bare() {
        let table = table(
            &[snapshot(&repository(), &info())],
            IncludeObject::from_query(Some("None")),
        );
        assert!(table["rows"][0].get("object").is_none());
    }
}

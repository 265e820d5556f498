//! The discovery documents of the aggregated API: `/apis` (APIGroupList), `/apis/<group>` (APIGroup)
//! and `/apis/<group>/<version>` (APIResourceList), served as legacy discovery JSON; the aggregator
//! falls back to them when a server does not answer aggregated discovery.

use serde_json::{Value, json};

use super::{API_VERSION, GROUP, KIND, RESOURCE, SINGULAR, VERBS, VERSION};

/// `/apis/<group>`.
#[must_use]
pub fn api_group() -> Value {
    let version = json!({"groupVersion": API_VERSION, "version": VERSION});
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": GROUP,
        "versions": [version],
        "preferredVersion": version,
    })
}

/// `/apis`.
#[must_use]
pub fn api_group_list() -> Value {
    let mut group = api_group();
    if let Some(object) = group.as_object_mut() {
        object.remove("kind");
        object.remove("apiVersion");
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]})
}

/// `/apis/<group>/<version>`.
#[must_use]
pub fn api_resource_list() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": API_VERSION,
        "resources": [{
            "name": RESOURCE,
            "singularName": SINGULAR,
            "namespaced": true,
            "kind": KIND,
            "verbs": VERBS,
        }],
    })
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    #[test]
    fn the_group_list_names_the_one_version_as_preferred() {
        let list = api_group_list();
        assert_eq!(list["kind"], "APIGroupList");
        assert_eq!(list["groups"][0]["name"], "repositories.stash.appscode.com");
        assert_eq!(
            list["groups"][0]["preferredVersion"]["groupVersion"],
            "repositories.stash.appscode.com/v1alpha1"
        );
        assert!(list["groups"][0].get("kind").is_none());
    }

    #[test]
    fn the_resource_list_serves_namespaced_snapshots_with_get_list_delete_only() {
        assert_eq!(
            api_resource_list(),
            json!({
                "kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": "repositories.stash.appscode.com/v1alpha1",
                "resources": [{"name": "snapshots", "singularName": "snapshot", "namespaced": true,
                               "kind": "Snapshot", "verbs": ["delete", "get", "list"]}]
            })
        );
    }
}

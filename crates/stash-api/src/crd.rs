//! The CustomResourceDefinitions of every Stash kind, generated from the types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;
use std::sync::OnceLock;

use crate::v1alpha1::Repository;
use crate::v1beta1::{
    BackupBatch, BackupBlueprint, BackupConfiguration, BackupSession, Function, RestoreBatch,
    RestoreSession, Task,
};

/// Every CRD, sorted by name (`<plural>.stash.appscode.com`).
#[must_use]
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        Repository::crd(),
        BackupConfiguration::crd(),
        BackupSession::crd(),
        RestoreSession::crd(),
        BackupBatch::crd(),
        RestoreBatch::crd(),
        BackupBlueprint::crd(),
        Function::crd(),
        Task::crd(),
    ];
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                tidy(schema);
            }
        }
    }
    crds.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    crds
}

/// schemars lists `null` among the `enum` values of an optional enum; the field is already `nullable`,
/// so drop it to keep the enums exactly Stash's values.
fn tidy(schema: &mut JSONSchemaProps) {
    if let Some(values) = schema.enum_.as_mut() {
        values.retain(|v| !v.0.is_null());
    }
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        tidy(child);
    }
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(s)) => tidy(s),
        Some(JSONSchemaPropsOrArray::Schemas(list)) => list.iter_mut().for_each(tidy),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(s)) = schema.additional_properties.as_mut() {
        tidy(s);
    }
    for list in [&mut schema.all_of, &mut schema.any_of, &mut schema.one_of]
        .into_iter()
        .flatten()
    {
        list.iter_mut().for_each(tidy);
    }
}

/// The file name a CRD is committed under in `deploy/crds/`, e.g. `stash.appscode.com_backupconfigurations.yaml`.
#[must_use]
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// A CRD as the YAML document committed in `deploy/crds/`.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(crd)
}

/// The CRD serving `group`/`kind`, if it is one of Stash's (generated once per process).
#[must_use]
pub fn find(group: &str, kind: &str) -> Option<&'static CustomResourceDefinition> {
    static CRDS: OnceLock<Vec<CustomResourceDefinition>> = OnceLock::new();
    CRDS.get_or_init(all)
        .iter()
        .find(|c| c.spec.group == group && c.spec.names.kind == kind)
}

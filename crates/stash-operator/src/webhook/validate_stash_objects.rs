//! The validating webhook for the Stash kinds (§15): CREATE and UPDATE go through the same offline
//! validation as `stash validate` (stash-api), so a refusal names the field and the fix exactly as the CLI
//! does; on UPDATE a RestoreSession's spec may not change. Warnings (deprecated shapes such as a
//! RestoreSession's top-level `spec.rules`) come back as admission warnings on an allowed response.

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use serde_json::Value;
use stash_api::validation::{Diagnostic, Severity, validate_value};

/// The "file" the diagnostics of an admission request are labelled with.
pub const ADMISSION_SOURCE: &str = "admission request";

/// Whether the request is about a Stash kind (`stash.appscode.com` or `repositories.stash.appscode.com`).
#[must_use]
pub fn is_stash_request(request: &AdmissionRequest<DynamicObject>) -> bool {
    request.kind.group == "stash.appscode.com"
        || request.kind.group == "repositories.stash.appscode.com"
}

/// The admission decision for one Stash object: refused with every error (field, message, fix) in the
/// status message, allowed with the warnings otherwise.
#[must_use]
pub fn validate_stash_object(request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    if !matches!(request.operation, Operation::Create | Operation::Update)
        || !is_stash_request(request)
    {
        return response;
    }
    // Status updates go through the status subresource; the spec rules do not apply to them.
    if request
        .sub_resource
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        return response;
    }
    let Some(object) = request.object.as_ref() else {
        return response;
    };
    let value = match object_value(object, request) {
        Ok(value) => value,
        Err(err) => {
            return response.deny(format!("cannot read the {}: {err}", request.kind.kind));
        }
    };
    let document = validate_value(ADMISSION_SOURCE, 1, &value);
    let (errors, warnings): (Vec<&Diagnostic>, Vec<&Diagnostic>) = document
        .diagnostics
        .iter()
        .partition(|d| d.severity == Severity::Error);
    let mut refusals: Vec<String> = errors.iter().map(|d| describe(d)).collect();
    if request.operation == Operation::Update
        && request.kind.kind == "RestoreSession"
        && let Some(old) = request.old_object.as_ref()
        && let Ok(old) = object_value(old, request)
        && old.get("spec") != value.get("spec")
    {
        refusals.push(format!(
            "spec: the spec of RestoreSession {} is immutable; fix: delete the RestoreSession and create a new one with the changed spec",
            name(request)
        ));
    }
    let mut response = if refusals.is_empty() {
        response
    } else {
        response.deny(format!(
            "{} {} is invalid:\n{}",
            request.kind.kind,
            name(request),
            refusals.join("\n")
        ))
    };
    if !warnings.is_empty() {
        response.warnings = Some(warnings.iter().map(|d| describe(d)).collect());
    }
    response
}

fn name(request: &AdmissionRequest<DynamicObject>) -> String {
    match request.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", request.name),
        _ => request.name.clone(),
    }
}

/// `field: message; fix: fix`, as `stash validate` prints it after the document label.
fn describe(d: &Diagnostic) -> String {
    if d.field.is_empty() {
        format!("{}; fix: {}", d.message, d.fix)
    } else {
        format!("{}: {}; fix: {}", d.field, d.message, d.fix)
    }
}

/// The object as a manifest: apiVersion and kind filled in from the request when absent, and without the
/// fields the API server adds (`status`, server-set metadata) that no manifest carries.
fn object_value(
    object: &DynamicObject,
    request: &AdmissionRequest<DynamicObject>,
) -> Result<Value, serde_json::Error> {
    let mut value = serde_json::to_value(object)?;
    if let Some(map) = value.as_object_mut() {
        let kind = &request.kind;
        let api_version = if kind.group.is_empty() {
            kind.version.clone()
        } else {
            format!("{}/{}", kind.group, kind.version)
        };
        map.entry("apiVersion")
            .or_insert_with(|| Value::String(api_version));
        map.entry("kind")
            .or_insert_with(|| Value::String(kind.kind.clone()));
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for key in [
                "managedFields",
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
            ] {
                meta.remove(key);
            }
        }
    }
    Ok(value)
}

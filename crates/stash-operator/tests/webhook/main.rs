//! The admission webhooks: the pure decisions from YAML, and the HTTPS server end to end on loopback.

// Kind names (BackupConfiguration, RestoreSession, ...) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

mod mutate;
mod server;
#[allow(dead_code)]
#[path = "../build/support.rs"]
mod support;
mod validate;

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview};
use serde_json::{Value, json};

/// An AdmissionReview body as the API server sends it.
#[must_use]
pub fn review_body(
    api_version: &str,
    operation: &str,
    (group, version, kind, resource): (&str, &str, &str, &str),
    object: &Value,
    old_object: Option<&Value>,
) -> Value {
    let namespace = object.pointer("/metadata/namespace").cloned();
    json!({
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "name": object.pointer("/metadata/name").cloned().unwrap_or(Value::Null),
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "admin", "groups": ["system:masters"]},
            "object": object,
            "oldObject": old_object,
            "dryRun": false,
        }
    })
}

/// The request of a review body.
#[must_use]
pub fn request(body: &Value) -> AdmissionRequest<DynamicObject> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_value(body.clone()).expect("an AdmissionReview");
    review.try_into().expect("the review has a request")
}

pub const DEPLOYMENT: (&str, &str, &str, &str) = ("apps", "v1", "Deployment", "deployments");

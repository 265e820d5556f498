//! `mutate_workload`: the patch, applied to the incoming workload, gives what the controller injects.

use std::sync::Arc;

use pretty_assertions::assert_eq;
use serde_json::Value;
use stash_api::v1beta1::BackupConfiguration;
use stash_operator::build::init_container::inject_init_container_into_workload;
use stash_operator::build::sidecar::inject_sidecar_into_workload;
use stash_operator::webhook::{NamespaceInvokers, mutate_workload};
use stash_operator::{BackupInvoker, RestoreInvoker, Workload};

use crate::support::{backup_configuration, repository, restore_session, settings, workload};
use crate::{DEPLOYMENT, request, review_body};

fn backup_invokers(bcs: Vec<BackupConfiguration>) -> NamespaceInvokers {
    NamespaceInvokers {
        backup_configurations: bcs.into_iter().map(Arc::new).collect(),
        restore_sessions: Vec::new(),
        repositories: vec![Arc::new(repository("gcs"))],
    }
}

/// The decision on a CREATE of `object`: (the patched object if patched, the warnings).
fn admit(object: &Value, invokers: &NamespaceInvokers) -> (Option<Value>, Vec<String>) {
    let body = review_body("admission.k8s.io/v1", "CREATE", DEPLOYMENT, object, None);
    let response = mutate_workload(&request(&body), invokers, &settings());
    assert!(response.allowed, "the workload webhook never refuses");
    let patched = response.patch.as_ref().map(|bytes| {
        let patch: json_patch::Patch = serde_json::from_slice(bytes).expect("a JSON patch");
        let mut patched = object.clone();
        json_patch::patch(&mut patched, &patch).expect("the patch applies to the incoming object");
        patched
    });
    (patched, response.warnings.unwrap_or_default())
}

fn controller_injected(bc: &BackupConfiguration, fixture: &str) -> Value {
    let mut w = workload(fixture);
    let target = BackupInvoker::Configuration(bc).target_for(&w).unwrap();
    inject_sidecar_into_workload(&mut w, &target, &repository("gcs"), &settings()).unwrap();
    w.to_value()
}

#[test]
fn the_patch_injects_the_sidecar_the_controller_injects_and_a_second_pass_patches_nothing() {
    let bc = backup_configuration("deployment");
    let invokers = backup_invokers(vec![bc.clone()]);
    let object = workload("deployment").to_value();
    let (patched, warnings) = admit(&object, &invokers);
    assert_eq!(warnings, Vec::<String>::new());
    let patched = patched.expect("a patch");
    assert_eq!(patched, controller_injected(&bc, "deployment"));

    let (again, warnings) = admit(&patched, &invokers);
    assert_eq!(again, None, "an injected workload gets no patch");
    assert!(warnings.is_empty());
}

#[test]
fn a_workload_read_back_with_api_server_defaults_gets_no_patch() {
    let bc = backup_configuration("deployment");
    let mut injected = controller_injected(&bc, "deployment");
    let containers = injected
        .pointer_mut("/spec/template/spec/containers")
        .and_then(Value::as_array_mut)
        .unwrap();
    for c in containers {
        c["terminationMessagePath"] = "/dev/termination-log".into();
        c["imagePullPolicy"] = "IfNotPresent".into();
    }
    let (patched, _) = admit(&injected, &backup_invokers(vec![bc]));
    assert_eq!(patched, None);
}

#[test]
fn a_workload_no_invoker_targets_passes_unchanged() {
    let object = workload("statefulset").to_value();
    let body = review_body(
        "admission.k8s.io/v1",
        "CREATE",
        ("apps", "v1", "StatefulSet", "statefulsets"),
        &object,
        None,
    );
    let invokers = backup_invokers(vec![backup_configuration("deployment")]);
    let response = mutate_workload(&request(&body), &invokers, &settings());
    assert!(response.allowed);
    assert_eq!(response.patch, None);
    assert_eq!(response.warnings, None);
}

#[test]
fn a_missing_repository_admits_the_workload_unchanged_with_a_warning() {
    let invokers = NamespaceInvokers {
        backup_configurations: vec![Arc::new(backup_configuration("deployment"))],
        ..NamespaceInvokers::default()
    };
    let (patched, warnings) = admit(&workload("deployment").to_value(), &invokers);
    assert_eq!(patched, None);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("Repository"), "{warnings:?}");
}

#[test]
fn of_two_backup_configurations_the_newer_injects() {
    let created = |name: &str, at: &str| {
        let mut bc = backup_configuration("deployment");
        bc.metadata.name = Some(name.to_owned());
        bc.metadata.uid = Some(format!("uid-{name}"));
        bc.metadata.creation_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at.parse().unwrap()),
        );
        bc
    };
    let older = created("older", "2024-01-01T00:00:00Z");
    let newer = created("newer", "2024-06-01T00:00:00Z");
    let (patched, _) = admit(
        &workload("deployment").to_value(),
        &backup_invokers(vec![newer.clone(), older]),
    );
    assert_eq!(patched.unwrap(), controller_injected(&newer, "deployment"));
}

#[test]
fn a_restore_session_gets_its_init_container_first_as_the_controller_injects_it() {
    let rs = restore_session("deployment");
    let invokers = NamespaceInvokers {
        restore_sessions: vec![Arc::new(rs.clone())],
        repositories: vec![Arc::new(repository("gcs"))],
        ..NamespaceInvokers::default()
    };
    let object = workload("deployment-recovered").to_value();
    let (patched, warnings) = admit(&object, &invokers);
    assert!(warnings.is_empty(), "{warnings:?}");
    let patched = patched.expect("a patch");

    let mut expected = workload("deployment-recovered");
    let target = RestoreInvoker::Session(&rs).target_for(&expected).unwrap();
    inject_init_container_into_workload(&mut expected, &target, &repository("gcs"), &settings())
        .unwrap();
    assert_eq!(patched, expected.to_value());
    let first = patched
        .pointer("/spec/template/spec/initContainers/0/name")
        .and_then(Value::as_str);
    assert_eq!(first, Some("stash-init"));

    let (again, _) = admit(&patched, &invokers);
    assert_eq!(again, None);
}

#[test]
fn a_v1beta1_review_is_answered_in_v1beta1() {
    let body = review_body(
        "admission.k8s.io/v1beta1",
        "CREATE",
        DEPLOYMENT,
        &workload("deployment").to_value(),
        None,
    );
    let invokers = backup_invokers(vec![backup_configuration("deployment")]);
    let response = mutate_workload(&request(&body), &invokers, &settings());
    let review = serde_json::to_value(response.into_review()).unwrap();
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(
        review["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    assert_eq!(review["response"]["patchType"], "JSONPatch");
}

#[test]
fn a_workload_without_namespace_in_the_object_is_matched_by_the_request_namespace() {
    let bc = backup_configuration("deployment");
    let mut object = workload("deployment").to_value();
    let namespace = object["metadata"]["namespace"].clone();
    object["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    let mut body = review_body("admission.k8s.io/v1", "CREATE", DEPLOYMENT, &object, None);
    body["request"]["namespace"] = namespace;
    let response = mutate_workload(&request(&body), &backup_invokers(vec![bc]), &settings());
    assert!(response.patch.is_some());
    let w = Workload::from_value(object).unwrap();
    assert_eq!(w.namespace(), None);
}

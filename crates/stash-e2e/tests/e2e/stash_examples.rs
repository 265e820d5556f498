//! Every manifest of shared/stash-examples is accepted by the real API server
//! with the CRDs of deploy/crds: server-side dry-run, strict field validation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use stash_testenv::TestEnv;

/// Belongs to the aggregated API (`repositories.stash.appscode.com`) of a later issue, not to a CRD.
const AGGREGATED: &[&str] = &["snapshot-aggregated-api.yaml"];

fn examples_dir() -> PathBuf {
    // <repo>/crates/stash-e2e → <repo>/../shared/stash-examples
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/stash-examples");
    assert!(
        dir.is_dir(),
        "the Stash example manifests are missing at {}; they ship in shared/ beside the repository",
        dir.display()
    );
    dir
}

#[tokio::test]
async fn every_stash_example_manifest_is_accepted_by_server_side_dry_run_with_strict_validation() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();

    // (group, kind) → (plural, namespaced), from the CRDs the environment installed.
    let crds = stash_testenv::crds::load(&stash_testenv::crds::dir())
        .expect("the CRDs the environment installed");
    let resources: BTreeMap<(String, String), (String, bool)> = crds
        .iter()
        .map(|(_, c)| {
            (
                (c.spec.group.clone(), c.spec.names.kind.clone()),
                (c.spec.names.plural.clone(), c.spec.scope == "Namespaced"),
            )
        })
        .collect();

    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut checked = 0;
    let mut failures = Vec::new();
    for path in &files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if AGGREGATED.contains(&file.as_str()) {
            continue;
        }
        let mut obj: serde_json::Value =
            serde_yaml::from_str(&std::fs::read_to_string(path).unwrap())
                .unwrap_or_else(|e| panic!("{file} is not YAML: {e}"));
        let api_version = obj["apiVersion"].as_str().expect("apiVersion").to_owned();
        let kind = obj["kind"].as_str().expect("kind").to_owned();
        let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
        let Some((plural, namespaced)) = resources.get(&(group.to_owned(), kind.clone())) else {
            failures.push(format!(
                "{file}: no CRD in deploy/crds for {kind} in group {group}"
            ));
            continue;
        };
        let gvk = GroupVersionKind::gvk(group, version, &kind);
        let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
        // The examples live in namespace `demo`; the test's own namespace stands in for it.
        let api: Api<DynamicObject> = if *namespaced {
            obj["metadata"]["namespace"] = ns.name().into();
            Api::namespaced_with(client.clone(), &ns, &ar)
        } else {
            Api::all_with(client.clone(), &ar)
        };
        match dry_run_create(&client, &api, &obj).await {
            Ok(created) => {
                assert_eq!(
                    created.types.as_ref().map(|t| t.kind.as_str()),
                    Some(kind.as_str())
                );
                checked += 1;
            }
            Err(e) => failures.push(format!("{file} ({kind}): {e}")),
        }
        // The same object with a field the schema does not have must be refused, or the check proves nothing.
        if checked == 1 {
            let mut bad = obj.clone();
            bad["spec"]["stashTestenvNoSuchField"] = 1.into();
            let err = dry_run_create(&client, &api, &bad)
                .await
                .expect_err("strict field validation refuses unknown fields");
            assert!(
                err.to_string().contains("unknown field"),
                "{file} with an unknown field: {err}"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} examples rejected:\n{}",
        failures.len(),
        files.len() - AGGREGATED.len(),
        failures.join("\n")
    );
    assert_eq!(
        checked,
        files.len() - AGGREGATED.len(),
        "every example was checked"
    );
    assert!(
        checked >= 25,
        "expected the 28 Stash examples, found {checked}"
    );
}

/// `POST ?dryRun=All&fieldValidation=Strict` (kube's `PostParams` has no field validation).
async fn dry_run_create(
    client: &kube::Client,
    api: &Api<DynamicObject>,
    obj: &serde_json::Value,
) -> Result<DynamicObject, kube::Error> {
    let url = format!("{}?dryRun=All&fieldValidation=Strict", api.resource_url());
    let req = http::Request::post(url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(obj).unwrap())
        .unwrap();
    client.request::<DynamicObject>(req).await
}

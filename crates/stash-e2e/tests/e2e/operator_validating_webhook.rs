//! The operator's validating webhook on the real control plane, fed the invalid table of `stash validate`
//! (`stash-api/tests/support/invalid_manifests.rs`, shared with stash-api's own test): every manifest is
//! sent as `kubectl create --dry-run=server` sends it, and each one the API server lets through to
//! admission is refused by the webhook with the table's field, message and fix in the API server's
//! error. The rest are named below with the reason they never reach the webhook.

// Kind names (BackupConfiguration, ValidatingWebhookConfiguration) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

#[path = "../../../stash-api/tests/support/invalid_manifests.rs"]
mod invalid_manifests;

use std::collections::HashMap;
use std::path::PathBuf;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use kube::discovery::{ApiCapabilities, Scope};
use kube::{Client, core::Request};
use serde_json::{Value, json};
use stash_operator::OperatorConfig;
use stash_testenv::certs::Ca;
use stash_testenv::{TestEnv, servers, wait_for};

use crate::TIMEOUT;
use crate::operator::Operator;

/// Rows the API server refuses itself, naming the same field in its own words but without our fix: the
/// CRD's schema and object-meta validation run before the validating webhooks are called (Stash's
/// webhooks never see these either).
const REFUSED_BEFORE_ADMISSION: &[&str] = &[
    // Required by the CRD's schema.
    "local without mountPath",
    "s3 without bucket",
    "missing retentionPolicy",
    "retentionPolicy without prune",
    "function without image",
    // Types, enums and formats of the CRD's schema.
    "prune as a string",
    "lowercase driver",
    "bad hook policy",
    "int32 overflow",
    "param value not a string",
    // An unknown field under `fieldValidation=Strict`, kubectl's default (without it the API server
    // drops the field silently).
    "misspelled field",
    // Object-meta validation.
    "missing name",
    "bad name",
];

/// Rows that cannot be sent as the kind they name: kubectl refuses them itself (not YAML, no
/// `apiVersion`, or "no matches for kind" in a version the API server does not serve).
const NOT_SENDABLE: &[&str] = &[
    "YAML syntax",
    "no apiVersion",
    "legacy Restic kind",
    "Repository in v1beta1",
];

/// The label every object of this test carries, so the webhook (cluster-scoped kinds included) only
/// ever sees this test's objects.
const SELECTOR_LABEL: &str = "stash-e2e/validating-webhook";

/// A serving certificate for `127.0.0.1`, written to files the operator reads, and the port it serves
/// the webhooks on.
pub struct WebhookServing {
    ca: Ca,
    port: u16,
    cert: PathBuf,
    key: PathBuf,
    _dir: tempfile::TempDir,
}

impl WebhookServing {
    pub fn generate() -> Self {
        let ca = Ca::new("stash-e2e-webhook-ca").expect("a test CA");
        let serving = ca
            .serving("stash-webhook", &[])
            .expect("a serving certificate");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert, &serving.cert_pem).expect("write tls.crt");
        std::fs::write(&key, &serving.key_pem).expect("write tls.key");
        Self {
            ca,
            port: servers::free_port(),
            cert,
            key,
            _dir: dir,
        }
    }

    /// Turns the webhook server on in `config`, serving this certificate on this port.
    pub fn configure(&self, config: &mut OperatorConfig, mutating: bool, validating: bool) {
        config.enable_mutating_webhook = mutating;
        config.enable_validating_webhook = validating;
        config.secure_port = self.port;
        config.tls_cert_file = Some(self.cert.clone());
        config.tls_private_key_file = Some(self.key.clone());
    }

    /// `clientConfig` for `path` on this server, trusting the test CA.
    pub fn client_config(&self, path: &str) -> Value {
        json!({
            "url": format!("https://127.0.0.1:{}{path}", self.port),
            "caBundle": k8s_openapi::ByteString(self.ca.cert_pem().into_bytes()),
        })
    }
}

/// Every Stash kind, CREATE and UPDATE, only objects carrying this test's label; `failurePolicy: Fail`
/// as Stash's chart has it for its validators.
fn validating_webhook(
    name: &str,
    ns: &str,
    serving: &WebhookServing,
) -> ValidatingWebhookConfiguration {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "webhooks": [{
            "name": "validators.admission.stash.appscode.com",
            "clientConfig": serving.client_config("/validate-stash"),
            "rules": [{"apiGroups": ["stash.appscode.com"], "apiVersions": ["*"],
                       "operations": ["CREATE", "UPDATE"], "resources": ["*"], "scope": "*"}],
            "objectSelector": {"matchLabels": {SELECTOR_LABEL: ns}},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1", "v1beta1"],
            "timeoutSeconds": 10,
        }]
    }))
    .expect("a valid ValidatingWebhookConfiguration")
}

/// What became of one manifest.
enum Outcome {
    /// Never sent: the reason kubectl would give.
    NotSent(String),
    /// The API server refused it without asking the webhook.
    RefusedByApiServer(String),
    /// The webhook refused it; the API server's error message.
    RefusedByWebhook(String),
    Admitted,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::NotSent(why) => write!(f, "not sent: {why}"),
            Outcome::RefusedByApiServer(said) => {
                write!(f, "refused by the API server before admission: {said}")
            }
            Outcome::RefusedByWebhook(said) => write!(f, "refused by the webhook: {said}"),
            Outcome::Admitted => write!(f, "admitted"),
        }
    }
}

/// Sends documents as `kubectl create --dry-run=server --validate=strict` does.
struct Sender {
    client: Client,
    namespace: String,
    kinds: HashMap<GroupVersionKind, Option<(ApiResource, ApiCapabilities)>>,
}

impl Sender {
    async fn send(&mut self, yaml: &str) -> Outcome {
        let mut object: Value = match serde_yaml::from_str(yaml) {
            Ok(object) => object,
            Err(err) => return Outcome::NotSent(format!("not YAML: {err}")),
        };
        let (Some(api_version), Some(kind)) = (
            object["apiVersion"].as_str().map(str::to_owned),
            object["kind"].as_str().map(str::to_owned),
        ) else {
            return Outcome::NotSent("no apiVersion or kind".to_owned());
        };
        let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
        let gvk = GroupVersionKind::gvk(group, version, &kind);
        if !self.kinds.contains_key(&gvk) {
            let found = kube::discovery::pinned_kind(&self.client, &gvk).await.ok();
            self.kinds.insert(gvk.clone(), found);
        }
        let Some((resource, capabilities)) = &self.kinds[&gvk] else {
            return Outcome::NotSent(format!("the API server serves no {kind} in {api_version}"));
        };
        let metadata = object["metadata"]
            .as_object_mut()
            .expect("every row has metadata");
        metadata.insert("labels".to_owned(), json!({SELECTOR_LABEL: self.namespace}));
        let api: Api<DynamicObject> = if capabilities.scope == Scope::Namespaced {
            metadata.insert("namespace".to_owned(), json!(self.namespace));
            Api::namespaced_with(self.client.clone(), &self.namespace, resource)
        } else {
            metadata.remove("namespace");
            Api::all_with(self.client.clone(), resource)
        };
        let dry_run = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        let mut request = Request::new(api.resource_url())
            .create(&dry_run, serde_json::to_vec(&object).expect("JSON"))
            .expect("a create request");
        *request.uri_mut() = format!("{}&fieldValidation=Strict", request.uri())
            .parse()
            .expect("a URI");
        match self.client.request::<DynamicObject>(request).await {
            Ok(_) => Outcome::Admitted,
            Err(kube::Error::Api(status)) if status.message.contains("denied the request") => {
                Outcome::RefusedByWebhook(status.message)
            }
            Err(kube::Error::Api(status)) => Outcome::RefusedByApiServer(status.message),
            Err(err) => panic!("send a {kind}: {err}"),
        }
    }
}

/// Whether one line of the webhook's refusal is `field: …message…; fix: …fix…`.
fn names_field_message_and_fix(refusal: &str, field: &str, message: &str, fix: &str) -> bool {
    refusal.lines().any(|line| {
        let rest = if field.is_empty() {
            Some(line)
        } else {
            line.strip_prefix(&format!("{field}: "))
        };
        rest.is_some_and(|rest| {
            rest.split_once("; fix: ")
                .is_some_and(|(said, fixed)| said.contains(message) && fixed.contains(fix))
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_manifest_of_the_validate_table_that_reaches_admission_is_refused_with_its_field_and_fix()
 {
    let env = TestEnv::shared().await;
    let namespace = env.namespace().await;
    let ns = namespace.name().to_owned();
    let client = env.client();
    let serving = WebhookServing::generate();
    let operator = Operator::start(client.clone(), &ns, |c| {
        serving.configure(c, false, true);
    });
    let name = format!("stash-e2e-{ns}");
    let webhooks = Api::<ValidatingWebhookConfiguration>::all(client.clone());
    webhooks
        .create(
            &PostParams::default(),
            &validating_webhook(&name, &ns, &serving),
        )
        .await
        .expect("create the ValidatingWebhookConfiguration");

    let mut sender = Sender {
        client: client.clone(),
        namespace: ns.clone(),
        kinds: HashMap::new(),
    };
    let cases = invalid_manifests::cases();
    // The API server picks the configuration up asynchronously and the server may still be starting.
    let (_, probe, ..) = cases
        .iter()
        .find(|(case, ..)| *case == "bad cron")
        .expect("the table has the bad cron row");
    wait_for(
        "the webhook to answer for the test's objects",
        TIMEOUT,
        || async {
            match sender_probe(&client, &ns, probe).await {
                Outcome::RefusedByWebhook(_) => Ok(()),
                other => Err(other.to_string()),
            }
        },
    )
    .await;

    let mut failures = Vec::new();
    for (case, yaml, field, message, fix) in &cases {
        let outcome = sender.send(yaml).await;
        match outcome {
            Outcome::NotSent(_) if NOT_SENDABLE.contains(case) => {}
            Outcome::RefusedByApiServer(said) if REFUSED_BEFORE_ADMISSION.contains(case) => {
                if !said.contains(field) {
                    failures.push(format!(
                        "{case}: the API server's refusal does not name `{field}`: {said}"
                    ));
                }
            }
            Outcome::RefusedByWebhook(refusal)
                if !NOT_SENDABLE.contains(case) && !REFUSED_BEFORE_ADMISSION.contains(case) =>
            {
                if !names_field_message_and_fix(&refusal, field, message, fix) {
                    failures.push(format!(
                        "{case}: want `{field}: …{message}…; fix: …{fix}…`, the API server said:\n{refusal}"
                    ));
                }
            }
            other => failures.push(format!("{case}: {other}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // And the webhook is not refusing everything: Stash's example is admitted.
    let example: Value = serde_yaml::from_str(include_str!(
        "../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
    ))
    .expect("the example parses");
    let outcome = sender
        .send(&serde_json::to_string(&example).expect("JSON"))
        .await;
    assert!(matches!(outcome, Outcome::Admitted), "{outcome}");

    webhooks
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete the ValidatingWebhookConfiguration");
    operator.stop().await;
}

async fn sender_probe(client: &Client, ns: &str, yaml: &str) -> Outcome {
    Sender {
        client: client.clone(),
        namespace: ns.to_owned(),
        kinds: HashMap::new(),
    }
    .send(yaml)
    .await
}

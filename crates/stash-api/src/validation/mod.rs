//! Offline validation of Stash manifests, shared by `stash validate` and the admission webhook.
//!
//! Each YAML/JSON document goes through: parse → kind lookup → schema check against our generated CRD
//! (types, required fields, enums, unknown fields) → typed deserialization → semantic checks (cron
//! schedules, retention rules, target kinds, backends, restore rules, ...) → migration of deprecated
//! shapes (RestoreSession `spec.rules`). Every diagnostic names the file, the document, the field path and
//! the fix. Pure functions only: no client, no I/O.

pub mod cron;
pub mod duration;
mod obsolete;
pub mod schema;
mod semantic;

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::labels::{GROUP, REPOSITORIES_GROUP};
use crate::v1alpha1::{Repository, Snapshot};
use crate::v1beta1::{
    BackupBatch, BackupBlueprint, BackupConfiguration, BackupSession, Function, RestoreBatch,
    RestoreSession, Task,
};

/// How bad a diagnostic is: errors make a manifest invalid, warnings do not.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One finding about one document.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The file name as given by the caller.
    pub file: String,
    /// 1-based index of the YAML document inside the file (0 for a problem with the file itself).
    pub document: usize,
    /// `kind` of the document, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `namespace/name` (or `name`) of the document, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Field path inside the document, e.g. `spec.target.paths[0]` (`""` for the whole document).
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity, self.file)?;
        if self.document > 0 {
            write!(f, " (document {}", self.document)?;
            if let Some(kind) = &self.kind {
                write!(f, ", {kind}")?;
                if let Some(name) = &self.name {
                    write!(f, " {name}")?;
                }
            }
            f.write_str(")")?;
        }
        f.write_str(": ")?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}; fix: {}", self.message, self.fix)
    }
}

/// A finding before it is tied to a file and document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    pub severity: Severity,
    pub field: String,
    pub message: String,
    pub fix: String,
}

impl Issue {
    pub fn error(field: &str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Error,
            field: field.to_owned(),
            message: message.into(),
            fix: fix.into(),
        }
    }

    pub fn warning(field: &str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Warning,
            field: field.to_owned(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// A parsed Stash object.
#[derive(Clone, Debug, PartialEq)]
pub enum StashObject {
    Repository(Box<Repository>),
    BackupConfiguration(Box<BackupConfiguration>),
    BackupSession(Box<BackupSession>),
    RestoreSession(Box<RestoreSession>),
    BackupBatch(Box<BackupBatch>),
    RestoreBatch(Box<RestoreBatch>),
    BackupBlueprint(Box<BackupBlueprint>),
    Function(Box<Function>),
    Task(Box<Task>),
    Snapshot(Box<Snapshot>),
}

impl StashObject {
    /// The object as JSON, exactly as the types serialize it.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        match self {
            StashObject::Repository(o) => serde_json::to_value(o),
            StashObject::BackupConfiguration(o) => serde_json::to_value(o),
            StashObject::BackupSession(o) => serde_json::to_value(o),
            StashObject::RestoreSession(o) => serde_json::to_value(o),
            StashObject::BackupBatch(o) => serde_json::to_value(o),
            StashObject::RestoreBatch(o) => serde_json::to_value(o),
            StashObject::BackupBlueprint(o) => serde_json::to_value(o),
            StashObject::Function(o) => serde_json::to_value(o),
            StashObject::Task(o) => serde_json::to_value(o),
            StashObject::Snapshot(o) => serde_json::to_value(o),
        }
    }
}

/// Whether a document was checked.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A Stash document: checked; valid unless it has error diagnostics.
    Checked,
    /// Not a Stash kind (e.g. a Deployment next to the BackupConfiguration): not checked.
    Skipped,
    /// An empty document (`---` with nothing after it).
    Empty,
}

/// The result for one YAML document.
#[derive(Clone, Debug)]
pub struct Document {
    /// 1-based index inside the file.
    pub index: usize,
    pub api_version: Option<String>,
    pub kind: Option<String>,
    /// `namespace/name` or `name`.
    pub name: Option<String>,
    pub outcome: Outcome,
    pub diagnostics: Vec<Diagnostic>,
    /// The parsed object, unless parsing failed or the document was skipped.
    pub object: Option<StashObject>,
    /// For a RestoreSession using the deprecated top-level `spec.rules`: the object after moving them
    /// into `spec.target.rules`, as Stash's mutating webhook does.
    pub migrated: Option<Box<RestoreSession>>,
}

impl Document {
    #[must_use]
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

/// The result for one file.
#[derive(Clone, Debug)]
pub struct Validation {
    pub file: String,
    pub documents: Vec<Document>,
}

impl Validation {
    /// Every diagnostic of every document, in order.
    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.documents.iter().flat_map(|d| d.diagnostics.iter())
    }

    #[must_use]
    pub fn has_errors(&self) -> bool {
        self.documents.iter().any(Document::has_errors)
    }

    #[must_use]
    pub fn error_count(&self) -> usize {
        self.diagnostics()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    #[must_use]
    pub fn warning_count(&self) -> usize {
        self.diagnostics()
            .filter(|d| d.severity == Severity::Warning)
            .count()
    }
}

/// Validates every document of a YAML (or JSON) text. `file` is only used to label diagnostics.
#[must_use]
pub fn validate_manifests(file: &str, text: &str) -> Validation {
    let mut documents = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        match Value::deserialize(de) {
            Ok(value) => documents.push(validate_value(file, index, &value)),
            Err(e) => {
                let mut doc = blank(index);
                let at = e
                    .location()
                    .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
                    .unwrap_or_default();
                doc.diagnostics.push(diag(
                    file,
                    &doc,
                    Issue::error(
                        "",
                        format!("cannot parse the document{at}: {e}"),
                        "fix the YAML syntax",
                    ),
                ));
                doc.outcome = Outcome::Checked;
                documents.push(doc);
                // The YAML stream cannot be resumed after a syntax error.
                break;
            }
        }
    }
    Validation {
        file: file.to_owned(),
        documents,
    }
}

fn blank(index: usize) -> Document {
    Document {
        index,
        api_version: None,
        kind: None,
        name: None,
        outcome: Outcome::Empty,
        diagnostics: Vec::new(),
        object: None,
        migrated: None,
    }
}

fn diag(file: &str, doc: &Document, issue: Issue) -> Diagnostic {
    Diagnostic {
        severity: issue.severity,
        file: file.to_owned(),
        document: doc.index,
        kind: doc.kind.clone(),
        name: doc.name.clone(),
        field: issue.field,
        message: issue.message,
        fix: issue.fix,
    }
}

/// Validates one already-parsed document (also the entry point for the admission webhook).
#[must_use]
pub fn validate_value(file: &str, index: usize, value: &Value) -> Document {
    let mut doc = blank(index);
    if value.is_null() {
        return doc;
    }
    doc.outcome = Outcome::Checked;
    let mut issues = Vec::new();
    let Some(obj) = value.as_object() else {
        issues.push(Issue::error(
            "",
            "the document is not a Kubernetes object (a mapping)",
            "give it apiVersion, kind, metadata and spec",
        ));
        doc.diagnostics = issues.into_iter().map(|i| diag(file, &doc, i)).collect();
        return doc;
    };
    doc.api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(str::to_owned);
    doc.kind = obj.get("kind").and_then(Value::as_str).map(str::to_owned);
    doc.name = display_name(obj.get("metadata"));
    let (Some(api_version), Some(kind)) = (doc.api_version.clone(), doc.kind.clone()) else {
        for field in ["apiVersion", "kind"] {
            if !obj.get(field).is_some_and(Value::is_string) {
                issues.push(Issue::error(
                    field,
                    format!("`{field}` is missing or not a string"),
                    "set apiVersion and kind, e.g. `apiVersion: stash.appscode.com/v1beta1` and `kind: BackupConfiguration`",
                ));
            }
        }
        doc.diagnostics = issues.into_iter().map(|i| diag(file, &doc, i)).collect();
        return doc;
    };
    let (group, version) = api_version
        .rsplit_once('/')
        .unwrap_or(("", api_version.as_str()));
    let object = match (group, version, kind.as_str()) {
        (GROUP, "v1alpha1", "Repository") => {
            typed(value, &kind, &mut issues, StashObject::Repository)
        }
        (GROUP, "v1beta1", "BackupConfiguration") => {
            typed(value, &kind, &mut issues, StashObject::BackupConfiguration)
        }
        (GROUP, "v1beta1", "BackupSession") => {
            typed(value, &kind, &mut issues, StashObject::BackupSession)
        }
        (GROUP, "v1beta1", "RestoreSession") => {
            typed(value, &kind, &mut issues, StashObject::RestoreSession)
        }
        (GROUP, "v1beta1", "BackupBatch") => {
            typed(value, &kind, &mut issues, StashObject::BackupBatch)
        }
        (GROUP, "v1beta1", "RestoreBatch") => {
            typed(value, &kind, &mut issues, StashObject::RestoreBatch)
        }
        (GROUP, "v1beta1", "BackupBlueprint") => {
            typed(value, &kind, &mut issues, StashObject::BackupBlueprint)
        }
        (GROUP, "v1beta1", "Function") => typed(value, &kind, &mut issues, StashObject::Function),
        (GROUP, "v1beta1", "Task") => typed(value, &kind, &mut issues, StashObject::Task),
        (REPOSITORIES_GROUP, "v1alpha1", "Snapshot") => snapshot(value, &mut issues),
        (GROUP | REPOSITORIES_GROUP, _, _) => {
            issues.push(unknown_kind(group, version, &kind));
            None
        }
        _ => {
            doc.outcome = Outcome::Skipped;
            None
        }
    };
    if let Some(object) = &object {
        semantic::check(object, &mut issues);
        if let StashObject::RestoreSession(rs) = object
            && rs.spec.rules.is_some()
        {
            let mut migrated = rs.clone();
            migrated.migrate_deprecated_rules();
            doc.migrated = Some(migrated);
        }
    }
    doc.object = object;
    doc.diagnostics = issues.into_iter().map(|i| diag(file, &doc, i)).collect();
    doc
}

fn display_name(meta: Option<&Value>) -> Option<String> {
    let meta = meta?.as_object()?;
    let name = meta
        .get("name")
        .or_else(|| meta.get("generateName"))
        .and_then(Value::as_str)?;
    Some(match meta.get("namespace").and_then(Value::as_str) {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    })
}

fn unknown_kind(group: &str, version: &str, kind: &str) -> Issue {
    let (message, fix) = match kind {
        "Restic" | "Recovery" => (
            format!("`{kind}` ({group}/{version}) was removed in Stash v0.18"),
            if kind == "Restic" {
                "rewrite it as a Repository plus a BackupConfiguration (stash.appscode.com/v1beta1)".to_owned()
            } else {
                "rewrite it as a RestoreSession (stash.appscode.com/v1beta1)".to_owned()
            },
        ),
        "Repository" => (
            format!("Repository is not served as {group}/{version}"),
            "use `apiVersion: stash.appscode.com/v1alpha1`".to_owned(),
        ),
        "BackupConfiguration" | "BackupSession" | "RestoreSession" | "BackupBatch" | "RestoreBatch"
        | "BackupBlueprint" | "Function" | "Task" => (
            format!("{kind} is not served as {group}/{version}"),
            "use `apiVersion: stash.appscode.com/v1beta1`".to_owned(),
        ),
        "Snapshot" => (
            format!("Snapshot is not served as {group}/{version}"),
            "use `apiVersion: repositories.stash.appscode.com/v1alpha1`".to_owned(),
        ),
        _ => (
            format!("unknown Stash kind `{kind}` in {group}/{version}"),
            "use one of Repository (v1alpha1), BackupConfiguration, BackupSession, RestoreSession, BackupBatch, RestoreBatch, BackupBlueprint, Function, Task (v1beta1)".to_owned(),
        ),
    };
    Issue::error("kind", message, fix)
}

/// Schema check against our CRD, metadata check, then typed deserialization.
fn typed<T: DeserializeOwned>(
    value: &Value,
    kind: &str,
    issues: &mut Vec<Issue>,
    wrap: impl FnOnce(Box<T>) -> StashObject,
) -> Option<StashObject> {
    let crd = crate::crd::find(GROUP, kind).expect("every served kind has a CRD");
    let namespaced = crd.spec.scope == "Namespaced";
    let root = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("CRDs have schemas");
    let before = issues.len();
    let hook = |path: &str, key: &str| obsolete::unknown_field(kind, path, key);
    // The CRD schema covers spec and status; apiVersion, kind and metadata are the API server's.
    let mut body = value.clone();
    if let Some(obj) = body.as_object_mut() {
        obj.retain(|k, _| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata"));
    }
    schema::check(&body, root, "", &hook, issues);
    check_metadata(value.get("metadata"), namespaced, issues);
    if issues[before..]
        .iter()
        .any(|i| i.severity == Severity::Error)
    {
        return None;
    }
    match serde_path_to_error::deserialize::<_, T>(value.clone()) {
        Ok(obj) => Some(wrap(Box::new(obj))),
        Err(e) => {
            let path = e.path().to_string();
            issues.push(Issue::error(
                if path == "." { "" } else { &path },
                e.inner().to_string(),
                "correct the value's type to match the field",
            ));
            None
        }
    }
}

fn snapshot(value: &Value, issues: &mut Vec<Issue>) -> Option<StashObject> {
    check_metadata(value.get("metadata"), true, issues);
    issues.push(Issue::warning(
        "",
        "Snapshot is served read-only by the stash operator's aggregated API (repositories.stash.appscode.com); it is not a CRD and cannot be applied",
        "use it to read snapshots (`kubectl get snapshots`), not to create them",
    ));
    match serde_path_to_error::deserialize::<_, Snapshot>(value.clone()) {
        Ok(s) => Some(StashObject::Snapshot(Box::new(s))),
        Err(e) => {
            issues.push(Issue::error(
                &e.path().to_string(),
                e.inner().to_string(),
                "correct the value's type",
            ));
            None
        }
    }
}

const METADATA_FIELDS: [&str; 15] = [
    "name",
    "generateName",
    "namespace",
    "labels",
    "annotations",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "finalizers",
    "ownerReferences",
    "managedFields",
    "selfLink",
];

fn check_metadata(meta: Option<&Value>, namespaced: bool, issues: &mut Vec<Issue>) {
    let Some(meta) = meta else {
        issues.push(Issue::error(
            "metadata",
            "`metadata` is missing",
            "add `metadata:` with at least `name:`",
        ));
        return;
    };
    let Some(obj) = meta.as_object() else {
        issues.push(Issue::error(
            "metadata",
            "`metadata` is not an object",
            "make `metadata` a mapping with `name:`",
        ));
        return;
    };
    for key in obj.keys() {
        if !METADATA_FIELDS.contains(&key.as_str()) {
            issues.push(Issue::error(
                &format!("metadata.{key}"),
                format!("unknown field `{key}`"),
                "remove it; metadata holds name, namespace, labels, annotations, ...",
            ));
        }
    }
    if let Err(e) = serde_path_to_error::deserialize::<_, ObjectMeta>(meta.clone()) {
        issues.push(Issue::error(
            &format!("metadata.{}", e.path()),
            e.inner().to_string(),
            "correct the value's type",
        ));
        return;
    }
    match obj.get("name").and_then(Value::as_str) {
        Some(name) => {
            if let Some(why) = dns_subdomain_error(name) {
                issues.push(Issue::error(
                    "metadata.name",
                    format!("`{name}` is not a valid object name: {why}"),
                    "use lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit, at most 253 characters",
                ));
            }
        }
        None if obj.get("generateName").is_some_and(Value::is_string) => {}
        None => issues.push(Issue::error(
            "metadata.name",
            "`metadata.name` is missing",
            "set `metadata.name` (or `metadata.generateName`)",
        )),
    }
    if !namespaced && obj.contains_key("namespace") {
        issues.push(Issue::warning(
            "metadata.namespace",
            "this kind is cluster-scoped; the namespace is ignored",
            "remove `metadata.namespace`",
        ));
    }
    for map in ["labels", "annotations"] {
        if let Some(m) = obj.get(map).and_then(Value::as_object) {
            for (k, v) in m {
                if !v.is_string() {
                    issues.push(Issue::error(
                        &format!("metadata.{map}.{k}"),
                        format!("{map} values must be strings, got {v}"),
                        "quote the value",
                    ));
                }
            }
        }
    }
}

fn dns_subdomain_error(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("it is empty");
    }
    if name.len() > 253 {
        return Some("it is longer than 253 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        return Some("it may only contain lowercase letters, digits, `-` and `.`");
    }
    for label in name.split('.') {
        let (Some(first), Some(last)) = (label.chars().next(), label.chars().last()) else {
            return Some("it has an empty `.`-separated part");
        };
        if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
            return Some("each `.`-separated part must start and end with a letter or digit");
        }
    }
    None
}

/// Parses and validates, returning the objects only if there is no error (for callers that just want
/// the typed objects).
pub fn parse_valid(file: &str, text: &str) -> Result<Vec<StashObject>, Vec<Diagnostic>> {
    let v = validate_manifests(file, text);
    if v.has_errors() {
        return Err(v
            .diagnostics()
            .filter(|d| d.severity == Severity::Error)
            .cloned()
            .collect());
    }
    Ok(v.documents.into_iter().filter_map(|d| d.object).collect())
}

//! `stash create-backupsession --invoker-kind=<Kind> --invoker-name=<name>`: what the trigger CronJob
//! runs on every tick (spec §9.1). Reads the invoker and creates its BackupSession the way Stash does
//! (§5.2): name `<invoker-name>-<unix-seconds>`, the invoker's labels plus Stash's, the invoker as
//! controlling owner (so sessions are garbage-collected with it), `spec.invoker` and
//! `spec.retryLeft = retryConfig.maxRetry`.
//!
//! Pipeline: [`read_invoker`] (client) → [`build_backup_session`] (pure) → create (client).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, PostParams};
use stash_api::common::RetryConfig;
use stash_api::labels::{
    COMPONENT_BACKUP, FIELD_MANAGER_AGENT, GROUP, LABEL_COMPONENT, LABEL_INVOKER_NAME,
    LABEL_INVOKER_TYPE, LABEL_MANAGED_BY, LABEL_TARGET_KIND, LABEL_TARGET_NAME,
    LABEL_TARGET_NAMESPACE, MANAGED_BY,
};
use stash_api::v1beta1::{
    BackupBatch, BackupConfiguration, BackupInvokerRef, BackupSession, BackupSessionSpec,
};
use tracing::{Span, field, info, instrument, warn};

/// API version of the invoker kinds.
const STASH_V1BETA1: &str = "stash.appscode.com/v1beta1";

/// Longest object name Stash produces for a BackupSession (a DNS-1123 label).
pub const MAX_NAME_LENGTH: usize = 63;

/// How many names (one per second) [`run`] tries before giving up on a name collision.
pub const MAX_NAME_ATTEMPTS: u32 = 5;

/// The kinds whose trigger creates BackupSessions (`--invoker-kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvokerKind {
    BackupConfiguration,
    BackupBatch,
}

impl InvokerKind {
    /// Every kind, in `--invoker-kind` order.
    pub const ALL: [Self; 2] = [Self::BackupConfiguration, Self::BackupBatch];

    /// The kind as Stash writes it (labels, `spec.invoker.kind`, `--invoker-kind`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BackupConfiguration => "BackupConfiguration",
            Self::BackupBatch => "BackupBatch",
        }
    }
}

impl fmt::Display for InvokerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `--invoker-kind` is neither `BackupConfiguration` nor `BackupBatch`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown invoker kind `{0}`; use BackupConfiguration or BackupBatch")]
pub struct UnknownInvokerKind(pub String);

impl FromStr for InvokerKind {
    type Err = UnknownInvokerKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownInvokerKind(s.to_owned()))
    }
}

/// The arguments of `create-backupsession` (the namespace is the pod's, see [`crate::namespace_from_env`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateBackupSession {
    pub invoker_kind: InvokerKind,
    pub invoker_name: String,
    pub namespace: String,
}

/// The BackupSession [`run`] created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSessionRef {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for BackupSessionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A backup invoker as read from the API server.
#[derive(Clone, Debug, PartialEq)]
pub enum Invoker {
    Configuration(Box<BackupConfiguration>),
    Batch(Box<BackupBatch>),
}

impl Invoker {
    #[must_use]
    pub fn kind(&self) -> InvokerKind {
        match self {
            Self::Configuration(_) => InvokerKind::BackupConfiguration,
            Self::Batch(_) => InvokerKind::BackupBatch,
        }
    }

    #[must_use]
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Self::Configuration(bc) => &bc.metadata,
            Self::Batch(bb) => &bb.metadata,
        }
    }

    #[must_use]
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    #[must_use]
    pub fn namespace(&self) -> &str {
        self.metadata().namespace.as_deref().unwrap_or_default()
    }

    #[must_use]
    pub fn retry_config(&self) -> Option<&RetryConfig> {
        match self {
            Self::Configuration(bc) => bc.spec.retry_config.as_ref(),
            Self::Batch(bb) => bb.spec.retry_config.as_ref(),
        }
    }
}

/// Why `create-backupsession` failed. Every message names the object and the fix.
#[derive(Debug, thiserror::Error)]
pub enum CreateBackupSessionError {
    #[error(
        "{kind} {namespace}/{name} not found; create it, or fix --invoker-kind/--invoker-name \
         (and the pod's namespace) of the trigger CronJob"
    )]
    InvokerNotFound {
        kind: InvokerKind,
        namespace: String,
        name: String,
    },
    #[error(
        "failed to read {kind} {namespace}/{name}; check the API server is reachable and the \
         trigger's service account may get {kind}s"
    )]
    ReadInvoker {
        kind: InvokerKind,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(
        "{kind} {namespace}/{name} has no metadata.uid, so a BackupSession cannot be owned by it; \
         read it from the API server"
    )]
    InvokerWithoutUid {
        kind: InvokerKind,
        namespace: String,
        name: String,
    },
    #[error(
        "failed to create BackupSession {namespace}/{name} for {kind} {invoker}; check the trigger's \
         service account may create BackupSessions"
    )]
    CreateBackupSession {
        kind: InvokerKind,
        invoker: String,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(
        "failed to create a BackupSession for {kind} {namespace}/{invoker}: {attempts} names in a row \
         were taken (last {last_name}); delete the stale BackupSessions or trigger less often"
    )]
    NamesTaken {
        kind: InvokerKind,
        invoker: String,
        namespace: String,
        attempts: u32,
        last_name: String,
    },
}

impl CreateBackupSessionError {
    /// Whether running the same command again may succeed without anyone changing anything: the API
    /// server was unreachable, overloaded or timed out, or every name was taken. A missing invoker, a
    /// refused permission or an invalid object stays so until someone fixes it.
    #[must_use]
    pub fn retryable(&self) -> bool {
        match self {
            Self::InvokerNotFound { .. } | Self::InvokerWithoutUid { .. } => false,
            Self::NamesTaken { .. } => true,
            Self::ReadInvoker { source, .. } | Self::CreateBackupSession { source, .. } => {
                match source.as_ref() {
                    kube::Error::Api(status) => status.code == 429 || status.code >= 500,
                    _ => true,
                }
            }
        }
    }
}

/// `<invoker-name>-<unix-seconds>`, the invoker name cut so the whole fits [`MAX_NAME_LENGTH`]
/// (kmodules' `meta.NameWithSuffix`, which Stash uses).
#[must_use]
pub fn backup_session_name(invoker_name: &str, unix_seconds: i64) -> String {
    let suffix = unix_seconds.to_string();
    let room = MAX_NAME_LENGTH.saturating_sub(suffix.len() + 1);
    // Kubernetes names are ASCII; `floor_char_boundary`-like cut keeps this total for any input.
    let mut cut = room.min(invoker_name.len());
    while !invoker_name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{suffix}", &invoker_name[..cut])
        .trim_matches('-')
        .to_owned()
}

/// The BackupSession for one tick of `invoker` at `unix_seconds` (§5.2); no client involved.
pub fn build_backup_session(
    invoker: &Invoker,
    unix_seconds: i64,
) -> Result<BackupSession, CreateBackupSessionError> {
    let kind = invoker.kind();
    let meta = invoker.metadata();
    let name = invoker.name();
    let namespace = invoker.namespace();
    let uid = meta
        .uid
        .clone()
        .ok_or_else(|| CreateBackupSessionError::InvokerWithoutUid {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })?;

    let mut labels: BTreeMap<String, String> = meta.labels.clone().unwrap_or_default();
    labels.insert(LABEL_COMPONENT.to_owned(), COMPONENT_BACKUP.to_owned());
    labels.insert(LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned());
    labels.insert(LABEL_INVOKER_TYPE.to_owned(), kind.as_str().to_owned());
    labels.insert(LABEL_INVOKER_NAME.to_owned(), name.to_owned());
    if let Invoker::Configuration(bc) = invoker
        && let Some(target) = bc.spec.target.as_ref().map(|t| &t.reference)
    {
        labels.insert(LABEL_TARGET_KIND.to_owned(), target.kind.clone());
        labels.insert(LABEL_TARGET_NAME.to_owned(), target.name.clone());
        let target_namespace = target
            .namespace
            .as_deref()
            .filter(|ns| !ns.is_empty())
            .unwrap_or(namespace);
        labels.insert(
            LABEL_TARGET_NAMESPACE.to_owned(),
            target_namespace.to_owned(),
        );
    }

    Ok(BackupSession {
        metadata: ObjectMeta {
            name: Some(backup_session_name(name, unix_seconds)),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            owner_references: Some(vec![OwnerReference {
                api_version: STASH_V1BETA1.to_owned(),
                kind: kind.as_str().to_owned(),
                name: name.to_owned(),
                uid,
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: BackupSessionSpec {
            invoker: Some(BackupInvokerRef {
                api_group: Some(GROUP.to_owned()),
                kind: kind.as_str().to_owned(),
                name: name.to_owned(),
            }),
            retry_left: invoker.retry_config().and_then(|rc| rc.max_retry),
            backup_configuration: None,
        },
        status: None,
    })
}

/// Read the invoker `args` names.
pub async fn read_invoker(
    client: kube::Client,
    args: &CreateBackupSession,
) -> Result<Invoker, CreateBackupSessionError> {
    let read_error = |source: kube::Error| match source {
        kube::Error::Api(status) if status.code == 404 => {
            CreateBackupSessionError::InvokerNotFound {
                kind: args.invoker_kind,
                namespace: args.namespace.clone(),
                name: args.invoker_name.clone(),
            }
        }
        source => CreateBackupSessionError::ReadInvoker {
            kind: args.invoker_kind,
            namespace: args.namespace.clone(),
            name: args.invoker_name.clone(),
            source: Box::new(source),
        },
    };
    match args.invoker_kind {
        InvokerKind::BackupConfiguration => {
            Api::<BackupConfiguration>::namespaced(client, &args.namespace)
                .get(&args.invoker_name)
                .await
                .map(|bc| Invoker::Configuration(Box::new(bc)))
                .map_err(read_error)
        }
        InvokerKind::BackupBatch => Api::<BackupBatch>::namespaced(client, &args.namespace)
            .get(&args.invoker_name)
            .await
            .map(|bb| Invoker::Batch(Box::new(bb)))
            .map_err(read_error),
    }
}

/// Create the BackupSession of one trigger tick: read the invoker, build the session, create it with
/// field manager `stash.appscode.com/agent`. When the name is taken (two ticks in one second) the next
/// second's name is tried, up to [`MAX_NAME_ATTEMPTS`] names.
#[instrument(skip_all, fields(
    kind = "BackupSession",
    namespace = %args.namespace,
    invoker = %format_args!("{}/{}", args.invoker_kind, args.invoker_name),
    name = field::Empty,
))]
pub async fn run(
    client: kube::Client,
    args: &CreateBackupSession,
) -> Result<BackupSessionRef, CreateBackupSessionError> {
    let invoker = read_invoker(client.clone(), args).await?;
    let api: Api<BackupSession> = Api::namespaced(client, &args.namespace);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER_AGENT.to_owned()),
        ..PostParams::default()
    };

    let mut unix_seconds = jiff::Timestamp::now().as_second();
    let mut last_name = String::new();
    for attempt in 1..=MAX_NAME_ATTEMPTS {
        if attempt > 1 {
            unix_seconds += 1;
            sleep_until_second(unix_seconds).await;
        }
        let session = build_backup_session(&invoker, unix_seconds)?;
        let name = session.metadata.name.clone().unwrap_or_default();
        match api.create(&params, &session).await {
            Ok(_) => {
                Span::current().record("name", name.as_str());
                info!(retry_left = ?session.spec.retry_left, "BackupSession created");
                return Ok(BackupSessionRef {
                    namespace: args.namespace.clone(),
                    name,
                });
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                warn!(attempt, taken = %name, "BackupSession name taken; trying the next second's name");
                last_name = name;
            }
            Err(source) => {
                return Err(CreateBackupSessionError::CreateBackupSession {
                    kind: args.invoker_kind,
                    invoker: args.invoker_name.clone(),
                    namespace: args.namespace.clone(),
                    name,
                    source: Box::new(source),
                });
            }
        }
    }
    Err(CreateBackupSessionError::NamesTaken {
        kind: args.invoker_kind,
        invoker: args.invoker_name.clone(),
        namespace: args.namespace.clone(),
        attempts: MAX_NAME_ATTEMPTS,
        last_name,
    })
}

/// Sleep until the wall clock reaches `unix_seconds`, so a session's name never lies about when it
/// was created.
async fn sleep_until_second(unix_seconds: i64) {
    let now = jiff::Timestamp::now();
    let target = i128::from(unix_seconds) * 1_000_000_000;
    let wait_nanos = target - now.as_nanosecond();
    if let Ok(nanos) = u64::try_from(wait_nanos)
        && nanos > 0
    {
        tokio::time::sleep(Duration::from_nanos(nanos)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    const EXAMPLE: &str = include_str!(
        "../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
    );

    fn example_invoker() -> BackupConfiguration {
        let mut bc: BackupConfiguration = serde_yaml::from_str(EXAMPLE).unwrap();
        bc.metadata.uid = Some("0b0e5a8c-7f1d-4d2a-9a55-3c1f6f0e2a11".to_owned());
        bc
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_session_of_stashs_deployment_example_is_named_labelled_and_owned_as_stash_does() {
        let invoker = Invoker::Configuration(Box::new(example_invoker()));
        let session = build_backup_session(&invoker, 1_764_000_000).unwrap();

        assert_eq!(
            session.metadata.name.as_deref(),
            Some("deployment-backup-1764000000")
        );
        assert_eq!(session.metadata.namespace.as_deref(), Some("demo"));
        assert_eq!(
            session.metadata.labels.unwrap(),
            labels(&[
                ("app.kubernetes.io/component", "stash-backup"),
                ("app.kubernetes.io/managed-by", "stash.appscode.com"),
                ("stash.appscode.com/invoker-type", "BackupConfiguration"),
                ("stash.appscode.com/invoker-name", "deployment-backup"),
                ("stash.appscode.com/target-kind", "Deployment"),
                ("stash.appscode.com/target-name", "stash-demo"),
                ("stash.appscode.com/target-namespace", "demo"),
            ])
        );
        assert_eq!(
            session.metadata.owner_references.unwrap(),
            vec![OwnerReference {
                api_version: "stash.appscode.com/v1beta1".to_owned(),
                kind: "BackupConfiguration".to_owned(),
                name: "deployment-backup".to_owned(),
                uid: "0b0e5a8c-7f1d-4d2a-9a55-3c1f6f0e2a11".to_owned(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]
        );
        assert_eq!(
            serde_json::to_value(&session.spec).unwrap(),
            serde_json::json!({"invoker": {"apiGroup": "stash.appscode.com", "kind": "BackupConfiguration",
                                           "name": "deployment-backup"}})
        );
    }

    #[test]
    fn retry_left_is_the_invokers_max_retry_and_its_labels_are_kept_under_stashs() {
        let mut bc = example_invoker();
        bc.spec.retry_config = Some(RetryConfig {
            max_retry: Some(3),
            delay: Some("10m".to_owned()),
        });
        bc.metadata.labels = Some(labels(&[
            ("app", "demo"),
            // Stash's own label wins over an invoker label of the same key.
            ("stash.appscode.com/invoker-name", "not-me"),
        ]));
        let session =
            build_backup_session(&Invoker::Configuration(Box::new(bc)), 1_764_000_000).unwrap();
        assert_eq!(session.spec.retry_left, Some(3));
        let labels = session.metadata.labels.unwrap();
        assert_eq!(labels["app"], "demo");
        assert_eq!(labels[LABEL_INVOKER_NAME], "deployment-backup");
    }

    #[test]
    fn a_target_in_another_namespace_is_labelled_with_that_namespace() {
        let mut bc = example_invoker();
        bc.spec.target.as_mut().unwrap().reference.namespace = Some("apps".to_owned());
        let session = build_backup_session(&Invoker::Configuration(Box::new(bc)), 1).unwrap();
        assert_eq!(
            session.metadata.labels.unwrap()[LABEL_TARGET_NAMESPACE],
            "apps"
        );
    }

    #[test]
    fn a_backup_batch_session_has_invoker_labels_but_no_target_labels() {
        let batch: BackupBatch = serde_json::from_value(serde_json::json!({
            "apiVersion": "stash.appscode.com/v1beta1", "kind": "BackupBatch",
            "metadata": {"name": "batch", "namespace": "demo", "uid": "u-1"},
            "spec": {"retentionPolicy": {"name": "keep-last-5", "keepLast": 5, "prune": true}}
        }))
        .unwrap();
        let session = build_backup_session(&Invoker::Batch(Box::new(batch)), 7).unwrap();
        assert_eq!(session.metadata.name.as_deref(), Some("batch-7"));
        let labels = session.metadata.labels.unwrap();
        assert_eq!(labels[LABEL_INVOKER_TYPE], "BackupBatch");
        assert!(!labels.contains_key(LABEL_TARGET_KIND), "{labels:?}");
        assert_eq!(
            session.metadata.owner_references.unwrap()[0].kind,
            "BackupBatch"
        );
    }

    #[test]
    fn a_long_invoker_name_is_cut_so_the_session_name_fits_63_characters() {
        let long = "a".repeat(80);
        let name = backup_session_name(&long, 1_764_000_000);
        assert_eq!(name.len(), 63);
        assert_eq!(name, format!("{}-1764000000", "a".repeat(52)));
        assert_eq!(
            backup_session_name("deployment-backup", 1_764_000_000),
            "deployment-backup-1764000000"
        );
    }

    #[test]
    fn an_invoker_not_read_from_the_api_server_is_refused_with_its_name() {
        let mut bc = example_invoker();
        bc.metadata.uid = None;
        let err = build_backup_session(&Invoker::Configuration(Box::new(bc)), 1).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("BackupConfiguration demo/deployment-backup has no metadata.uid"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_invoker_is_not_retryable_and_taken_names_are() {
        let missing = CreateBackupSessionError::InvokerNotFound {
            kind: InvokerKind::BackupConfiguration,
            namespace: "demo".to_owned(),
            name: "gone".to_owned(),
        };
        assert!(!missing.retryable());
        let taken = CreateBackupSessionError::NamesTaken {
            kind: InvokerKind::BackupConfiguration,
            invoker: "deployment-backup".to_owned(),
            namespace: "demo".to_owned(),
            attempts: MAX_NAME_ATTEMPTS,
            last_name: "deployment-backup-5".to_owned(),
        };
        assert!(taken.retryable());
    }

    #[test]
    fn invoker_kind_parses_stashs_flag_values_and_names_the_choices_otherwise() {
        assert_eq!(
            "BackupBatch".parse::<InvokerKind>(),
            Ok(InvokerKind::BackupBatch)
        );
        assert_eq!(
            "RestoreSession"
                .parse::<InvokerKind>()
                .unwrap_err()
                .to_string(),
            "unknown invoker kind `RestoreSession`; use BackupConfiguration or BackupBatch"
        );
    }
}

//! Conditions the BackupConfiguration and RestoreSession controllers both set.

use stash_api::condition::{Condition, ConditionStatus, ConditionType, reason};
use stash_api::v1alpha1::Repository;

use super::backup_configuration::dereference::storage_secret_name;

/// A condition without transition time: the status stage adds it when the status changes.
#[must_use]
pub fn condition(type_: ConditionType, ok: bool, why: &str, message: String) -> Condition {
    Condition {
        type_,
        status: if ok {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        },
        observed_generation: None,
        last_transition_time: None,
        reason: Some(why.to_owned()),
        message: Some(message),
    }
}

/// `RepositoryFound` and `BackendSecretFound` of an invoker naming Repository `key` (namespace, name),
/// from the problems its validation found and the Repository it read.
#[must_use]
pub fn repository_conditions(
    key: Option<(String, String)>,
    repository_problem: Option<String>,
    secret_problem: Option<String>,
    repository: Option<&Repository>,
) -> Vec<Condition> {
    let mut out = Vec::new();
    let Some((namespace, name)) = key else {
        return out;
    };
    out.push(match repository_problem {
        Some(p) => condition(
            ConditionType::RepositoryFound,
            false,
            reason::REPOSITORY_NOT_AVAILABLE,
            p,
        ),
        None => condition(
            ConditionType::RepositoryFound,
            true,
            reason::REPOSITORY_AVAILABLE,
            format!("Repository {namespace}/{name} exists."),
        ),
    });
    if let Some(p) = secret_problem {
        out.push(condition(
            ConditionType::BackendSecretFound,
            false,
            reason::BACKEND_SECRET_NOT_AVAILABLE,
            p,
        ));
    } else if let Some(secret) = repository.and_then(storage_secret_name) {
        out.push(condition(
            ConditionType::BackendSecretFound,
            true,
            reason::BACKEND_SECRET_AVAILABLE,
            format!("Secret {namespace}/{secret} exists and holds RESTIC_PASSWORD."),
        ));
    }
    out
}

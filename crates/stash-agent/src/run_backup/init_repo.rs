//! The pre-backup action `InitializeBackendRepository` (protocol step 4, §8.6 step 5): one host
//! creates the restic repository if it does not exist and records the outcome in the session
//! condition `BackendRepositoryInitialized`; the other hosts wait for that condition.

use stash_api::condition::{ConditionStatus, ConditionType, reason};
use stash_api::v1beta1::BackupSessionStatus;
use stash_engine::{Control, Engine, EngineError, InitOptions};

use super::backup::error_chain;
use super::status;

pub const INITIALIZE_BACKEND_REPOSITORY: &str = "InitializeBackendRepository";

/// Where the session stands on the repository's initialisation, for this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitState {
    /// Initialised (or no target asked for it): back up.
    Ready,
    /// This host's target carries the action and nobody did it yet: do it.
    ToDo,
    /// Another target's host does it: wait for the condition.
    Waiting,
    /// It failed; the message says why.
    Failed(String),
}

/// The state for a host whose target lists `own_actions` as `preBackupActions`.
#[must_use]
pub fn state(status: &BackupSessionStatus, own_actions: Option<&[String]>) -> InitState {
    match status::condition(status, ConditionType::BackendRepositoryInitialized) {
        Some(c) if c.status == ConditionStatus::True => InitState::Ready,
        Some(c) => InitState::Failed(c.message.clone().unwrap_or_default()),
        None => {
            let lists = |actions: Option<&[String]>| {
                actions.is_some_and(|a| a.iter().any(|a| a == INITIALIZE_BACKEND_REPOSITORY))
            };
            if lists(own_actions) {
                InitState::ToDo
            } else if status
                .targets
                .iter()
                .flatten()
                .any(|t| lists(t.pre_backup_actions.as_deref()))
            {
                InitState::Waiting
            } else {
                InitState::Ready
            }
        }
    }
}

/// Creates the repository unless it exists.
pub async fn ensure(engine: &Engine, control: &Control) -> Result<(), String> {
    match engine.init(&InitOptions::default(), control).await {
        Ok(id) => {
            tracing::info!(repository = %engine.location(), id, "initialised the repository");
            Ok(())
        }
        Err(EngineError::RepositoryExists { .. }) => Ok(()),
        Err(err) => Err(format!(
            "failed to initialise the repository: {}",
            error_chain(&err)
        )),
    }
}

/// The condition recording the outcome of [`ensure`] (or of connecting to the repository).
#[must_use]
pub fn condition(outcome: Result<(), &str>) -> stash_api::condition::Condition {
    match outcome {
        Ok(()) => status::new_condition(
            ConditionType::BackendRepositoryInitialized,
            Ok("the backend repository exists"),
            reason::BACKEND_REPOSITORY_FOUND,
        ),
        Err(message) => status::new_condition(
            ConditionType::BackendRepositoryInitialized,
            Err(message),
            reason::FAILED_TO_INITIALIZE_BACKEND_REPOSITORY,
        ),
    }
}

#[cfg(test)]
mod tests {
    use stash_api::v1beta1::BackupTargetStatus;

    use super::*;

    fn with_targets(first_actions: bool) -> BackupSessionStatus {
        BackupSessionStatus {
            targets: Some(vec![BackupTargetStatus {
                pre_backup_actions: first_actions
                    .then(|| vec![INITIALIZE_BACKEND_REPOSITORY.to_owned()]),
                ..BackupTargetStatus::default()
            }]),
            ..BackupSessionStatus::default()
        }
    }

    #[test]
    fn the_host_of_the_target_listing_the_action_initialises_and_the_others_wait() {
        let status = with_targets(true);
        let own = [INITIALIZE_BACKEND_REPOSITORY.to_owned()];
        assert_eq!(state(&status, Some(&own)), InitState::ToDo);
        assert_eq!(state(&status, None), InitState::Waiting);
        assert_eq!(state(&with_targets(false), None), InitState::Ready);
    }

    #[test]
    fn a_recorded_outcome_is_final_for_every_host() {
        let mut status = with_targets(true);
        status::set_condition(&mut status.conditions, condition(Err("no RESTIC_PASSWORD")));
        assert_eq!(
            state(&status, None),
            InitState::Failed("no RESTIC_PASSWORD".to_owned())
        );
        status::set_condition(&mut status.conditions, condition(Ok(())));
        assert_eq!(state(&status, None), InitState::Ready);
    }
}

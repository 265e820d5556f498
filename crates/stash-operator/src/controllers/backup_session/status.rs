//! Stage 5: the session status. Agents write the same status (their `stats[]` entries and the
//! post-backup conditions), so every write is a read-modify-write of the whole status guarded by the
//! resourceVersion, retried on 409 Conflict after re-reading (protocol), and the operator's change is a
//! function applied to the freshest status. Also: conditions upserted by type, and the Events.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use stash_api::condition::{Condition, ConditionType};
use stash_api::labels;
use stash_api::v1beta1::{BackupSession, BackupSessionStatus};

use crate::context::Context;

/// How often a write is retried after a 409 Conflict (several hosts write the same session).
const CONFLICT_RETRIES: u32 = 10;

/// Writing the status failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("failed to read BackupSession {namespace}/{name} before writing its status")]
    Read {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to write the status of BackupSession {namespace}/{name}")]
    Write {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "failed to write the status of BackupSession {namespace}/{name}: {CONFLICT_RETRIES} conflicts in a row with other writers"
    )]
    Conflicts { namespace: String, name: String },
}

/// A condition set at `now`; [`set_condition`] keeps the older `lastTransitionTime` when the status did
/// not change.
#[must_use]
pub fn condition(
    type_: ConditionType,
    ok: bool,
    reason: &str,
    message: String,
    now: Timestamp,
) -> Condition {
    Condition {
        last_transition_time: Some(Time(now)),
        ..crate::controllers::conditions::condition(type_, ok, reason, message)
    }
}

/// Upserts `new` by type; `lastTransitionTime` changes only when the status does.
pub fn set_condition(conditions: &mut Option<Vec<Condition>>, mut new: Condition) {
    let list = conditions.get_or_insert_with(Vec::new);
    match list.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.take();
            }
            *old = new;
        }
        None => list.push(new),
    }
}

/// Applies `change` to the freshest status of `session` and writes it through the status subresource,
/// unless it changed nothing. Returns the session as written (or as read, when unchanged) and whether
/// it was written.
pub async fn update(
    ctx: &Context,
    session: &BackupSession,
    mut change: impl FnMut(&BackupSession, &mut BackupSessionStatus),
) -> Result<(BackupSession, bool), StatusError> {
    let namespace = session.namespace().unwrap_or_default();
    let name = session.name_any();
    let api = Api::<BackupSession>::namespaced(ctx.client.clone(), &namespace);
    let params = PostParams {
        field_manager: Some(labels::FIELD_MANAGER_OPERATOR.to_owned()),
        ..PostParams::default()
    };
    for _ in 0..CONFLICT_RETRIES {
        let mut current = api.get(&name).await.map_err(|source| StatusError::Read {
            namespace: namespace.clone(),
            name: name.clone(),
            source,
        })?;
        let mut status = current.status.clone().unwrap_or_default();
        change(&current, &mut status);
        if current.status.as_ref() == Some(&status) {
            return Ok((current, false));
        }
        current.status = Some(status);
        match api.replace_status(&name, &params, &current).await {
            Ok(written) => return Ok((written, true)),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(source) => {
                return Err(StatusError::Write {
                    namespace,
                    name,
                    source,
                });
            }
        }
    }
    Err(StatusError::Conflicts { namespace, name })
}

/// Records an Event on the session; a failure to record is logged, never fatal.
pub async fn publish(
    ctx: &Context,
    session: &BackupSession,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let published = ctx
        .recorder
        .publish(
            &Event {
                type_,
                reason: reason.to_owned(),
                note: Some(note),
                action: "Backup".to_owned(),
                secondary: None,
            },
            &session.object_ref(&()),
        )
        .await;
    if let Err(err) = published {
        tracing::warn!(
            error = &err as &dyn std::error::Error,
            "failed to record an Event"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upserted_condition_keeps_its_transition_time_unless_its_status_changes() {
        let t1: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let t2: Timestamp = "2026-12-01T11:00:00Z".parse().unwrap();
        let mut conditions = None;
        set_condition(
            &mut conditions,
            condition(ConditionType::MetricsPushed, true, "A", "first".into(), t1),
        );
        set_condition(
            &mut conditions,
            condition(ConditionType::MetricsPushed, true, "B", "second".into(), t2),
        );
        let list = conditions.clone().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].last_transition_time, Some(Time(t1)));
        assert_eq!(list[0].message.as_deref(), Some("second"));
        set_condition(
            &mut conditions,
            condition(ConditionType::MetricsPushed, false, "C", "third".into(), t2),
        );
        assert_eq!(conditions.unwrap()[0].last_transition_time, Some(Time(t2)));
    }
}

//! §9.4: which BackupSessions of an invoker to delete once one completes. Pure, as Stash does it: the
//! sessions newest first (the completing one included), those at positions beyond `backupHistoryLimit`
//! that are final go, except the newest Succeeded/Failed one while the limit is above 0.

use jiff::Timestamp;
use stash_api::phase::BackupSessionPhase;

/// Stash's default `backupHistoryLimit`.
pub const DEFAULT_HISTORY_LIMIT: i32 = 1;

/// What history cleanup needs of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PastSession {
    pub name: String,
    pub created: Option<Timestamp>,
    pub phase: Option<BackupSessionPhase>,
}

/// The names to delete among `sessions` (one invoker's, any order) under `limit` (`None`: the default).
#[must_use]
pub fn to_delete(mut sessions: Vec<PastSession>, limit: Option<i32>) -> Vec<String> {
    let limit = limit.unwrap_or(DEFAULT_HISTORY_LIMIT).max(0);
    // Newest first; sessions of the same second by name, which ends in the creation second too.
    sessions.sort_by(|a, b| (b.created, &b.name).cmp(&(a.created, &a.name)));
    let last_completed = sessions
        .iter()
        .find(|s| {
            matches!(
                s.phase,
                Some(BackupSessionPhase::Succeeded | BackupSessionPhase::Failed)
            )
        })
        .map(|s| s.name.clone());
    sessions
        .into_iter()
        .skip(usize::try_from(limit).unwrap_or(0))
        .filter(|s| s.phase.is_some_and(BackupSessionPhase::is_final))
        .filter(|s| !(limit > 0 && last_completed.as_ref() == Some(&s.name)))
        .map(|s| s.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use BackupSessionPhase::{Failed, Running, Skipped, Succeeded};

    fn session(name: &str, second: i64, phase: Option<BackupSessionPhase>) -> PastSession {
        PastSession {
            name: name.to_owned(),
            created: Some(Timestamp::from_second(second).unwrap()),
            phase,
        }
    }

    #[test]
    fn with_the_default_limit_the_completing_session_and_the_newest_completed_one_are_kept() {
        let sessions = vec![
            session("b-1", 1, Some(Succeeded)),
            session("b-3", 3, Some(Running)),
            session("b-2", 2, Some(Failed)),
        ];
        assert_eq!(to_delete(sessions, None), ["b-1"]);
    }

    #[test]
    fn sessions_within_the_limit_stay_and_older_final_ones_go_including_skipped() {
        let sessions = vec![
            session("b-5", 5, Some(Running)),
            session("b-4", 4, Some(Succeeded)),
            session("b-3", 3, Some(Skipped)),
            session("b-2", 2, Some(Failed)),
            session("b-1", 1, Some(Succeeded)),
        ];
        assert_eq!(to_delete(sessions, Some(3)), ["b-2", "b-1"]);
    }

    #[test]
    fn a_limit_of_zero_keeps_no_completed_session() {
        let sessions = vec![
            session("b-2", 2, Some(Running)),
            session("b-1", 1, Some(Succeeded)),
        ];
        assert_eq!(to_delete(sessions, Some(0)), ["b-1"]);
    }

    #[test]
    fn sessions_that_are_not_final_are_never_deleted() {
        let sessions = vec![
            session("b-3", 3, Some(Running)),
            session("b-2", 2, None),
            session("b-1", 1, Some(Running)),
        ];
        assert!(to_delete(sessions, Some(1)).is_empty());
    }

    #[test]
    fn sessions_of_the_same_second_are_ordered_by_name() {
        let sessions = vec![
            session("b-10", 10, Some(Succeeded)),
            session("b-11", 10, Some(Running)),
            session("b-09", 10, Some(Succeeded)),
        ];
        assert_eq!(to_delete(sessions, Some(1)), ["b-09"]);
    }
}

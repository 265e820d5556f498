//! Checks the schema cannot express: cron schedules, retention rules, target kinds, backends, restore
//! rules, hooks, durations, deprecated shapes. Pure functions over the typed objects.
//!
//! Split by the part of a manifest checked: `backend` (Repository storage), `invoker` (schedule,
//! retention, timeouts, tempDir, hooks), `target` (what is backed up or restored into) and `session`
//! (BackupSession, RestoreSession, RestoreBatch, restore rules). Findings come out in the order the checks
//! run, and users read (and tests compare) them in that order, so moving a check moves its finding.

mod backend;
mod invoker;
mod session;
mod target;

use crate::common::{Driver, EmptyDirSettings};
use crate::v1beta1::{Function, Task};
use crate::validation::{Issue, StashObject};

pub fn check(object: &StashObject, out: &mut Vec<Issue>) {
    match object {
        StashObject::Repository(r) => backend::repository(&r.spec, out),
        StashObject::BackupConfiguration(bc) => invoker::backup_configuration(&bc.spec, out),
        StashObject::BackupBatch(bb) => invoker::backup_batch(&bb.spec, out),
        StashObject::BackupBlueprint(bp) => invoker::backup_blueprint(&bp.spec, out),
        StashObject::BackupSession(bs) => session::backup_session(bs, out),
        StashObject::RestoreSession(rs) => session::restore_session(&rs.spec, out),
        StashObject::RestoreBatch(rb) => session::restore_batch(&rb.spec, out),
        StashObject::Function(f) => function(f, out),
        StashObject::Task(t) => task(t, out),
        StashObject::Snapshot(_) => {}
    }
}

fn function(f: &Function, out: &mut Vec<Issue>) {
    if f.spec.image.trim().is_empty() {
        out.push(Issue::error(
            "spec.image",
            "the Function has no image",
            "set `spec.image`, e.g. `appscode/stash:v0.24.0`",
        ));
    }
}

fn task(t: &Task, out: &mut Vec<Issue>) {
    let steps = t.spec.steps.as_deref().unwrap_or_default();
    if steps.is_empty() {
        out.push(Issue::error(
            "spec.steps",
            "a Task needs at least one step",
            "add `spec.steps[].name` naming a Function",
        ));
    }
    for (i, step) in steps.iter().enumerate() {
        if step.name.trim().is_empty() {
            out.push(Issue::error(
                &format!("spec.steps[{i}].name"),
                "the step has no Function name",
                "set it to the name of a Function",
            ));
        }
    }
}

/// A member of a BackupBatch or RestoreBatch: the two kinds check their members the same way and differ
/// only in the target and hook types.
trait BatchMember {
    /// Checks the member's target; `false` when it has none.
    fn check_target(&self, driver: Driver, path: &str, out: &mut Vec<Issue>) -> bool;
    fn temp_dir(&self) -> Option<&EmptyDirSettings>;
    fn check_hooks(&self, path: &str, out: &mut Vec<Issue>);
}

fn batch_members<M: BatchMember>(
    kind: &str,
    members: Option<&[M]>,
    driver: Driver,
    out: &mut Vec<Issue>,
) {
    let members = members.unwrap_or_default();
    if members.is_empty() {
        out.push(Issue::error(
            "spec.members",
            format!("a {kind} needs at least one member"),
            "add `spec.members[].target`",
        ));
    }
    for (i, m) in members.iter().enumerate() {
        let p = format!("spec.members[{i}]");
        let target = format!("{p}.target");
        if !m.check_target(driver, &target, out) {
            out.push(Issue::error(
                &target,
                "the member has no target",
                "set `target.ref` of the member",
            ));
        }
        invoker::temp_dir(m.temp_dir(), &format!("{p}.tempDir"), out);
        m.check_hooks(&format!("{p}.hooks"), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::{BackupHooks, Handler, RestoreHooks};
    use crate::v1beta1::{BackupConfigurationTemplateSpec, RestoreTargetSpec};

    fn run<M: BatchMember>(kind: &str, members: &[M]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        batch_members(kind, Some(members), Driver::Restic, &mut out);
        out.into_iter().map(|i| (i.field, i.message)).collect()
    }

    #[test]
    fn both_batch_kinds_check_their_members_alike() {
        let disk = || {
            Some(EmptyDirSettings {
                medium: Some("Disk".to_owned()),
                ..EmptyDirSettings::default()
            })
        };
        let backup = BackupConfigurationTemplateSpec {
            temp_dir: disk(),
            hooks: Some(BackupHooks {
                pre_backup: Some(Handler::default()),
                ..BackupHooks::default()
            }),
            ..BackupConfigurationTemplateSpec::default()
        };
        let restore = RestoreTargetSpec {
            temp_dir: disk(),
            hooks: Some(RestoreHooks {
                pre_restore: Some(Handler::default()),
                ..RestoreHooks::default()
            }),
            ..RestoreTargetSpec::default()
        };
        let expect = |hook: &str| {
            [
                ("spec.members[0].target", "the member has no target"),
                (
                    "spec.members[0].tempDir.medium",
                    "unsupported emptyDir medium `Disk`",
                ),
                (hook, "the hook has no action"),
            ]
            .map(|(f, m)| (f.to_owned(), m.to_owned()))
            .to_vec()
        };
        assert_eq!(
            run("BackupBatch", &[backup]),
            expect("spec.members[0].hooks.preBackup")
        );
        assert_eq!(
            run("RestoreBatch", &[restore]),
            expect("spec.members[0].hooks.preRestore")
        );
        assert_eq!(
            run::<RestoreTargetSpec>("RestoreBatch", &[]),
            [(
                "spec.members".to_owned(),
                "a RestoreBatch needs at least one member".to_owned()
            )]
        );
    }
}

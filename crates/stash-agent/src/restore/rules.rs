//! Which data a host restores (§2.4, §10): the rule that applies to it, turned into the snapshots
//! to restore into `/` and the include/exclude patterns.

use stash_api::common::Rule;
use stash_engine::{RestoreRequest, SnapshotFilter};

/// Restores write each snapshot path at its original absolute location (§10).
pub const RESTORE_TARGET: &str = "/";

/// One `restic restore` of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotChoice {
    /// An explicit snapshot id (or prefix), or `latest` of the whole repository: host and path do
    /// not narrow it.
    Named(String),
    /// The latest snapshot of `host` that contains `path` (`restore latest --path … --host …`).
    LatestWithPath { host: String, path: String },
    /// The latest snapshot of `host` (a rule naming neither snapshots nor paths).
    Latest { host: String },
}

impl SnapshotChoice {
    /// The snapshot as the status and the log name it.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Named(id) => format!("snapshot {id}"),
            Self::LatestWithPath { host, path } => {
                format!("the latest snapshot of host {host} with path {path}")
            }
            Self::Latest { host } => format!("the latest snapshot of host {host}"),
        }
    }
}

/// What a host restores; no snapshots when no rule applies to it (it is still reported).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestorePlan {
    pub snapshots: Vec<SnapshotChoice>,
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
    /// `false` only with `--no-sparse`-like args; restic restores sparse files as holes by choice.
    pub sparse: bool,
}

impl RestorePlan {
    /// The engine request of one planned snapshot, into [`RESTORE_TARGET`].
    #[must_use]
    pub fn request(&self, choice: &SnapshotChoice) -> RestoreRequest {
        let (snapshot, filter) = match choice {
            SnapshotChoice::Named(id) => (id.clone(), SnapshotFilter::default()),
            SnapshotChoice::LatestWithPath { host, path } => (
                "latest".to_owned(),
                SnapshotFilter {
                    hosts: vec![host.clone()],
                    paths: vec![path.clone()],
                    tags: Vec::new(),
                },
            ),
            SnapshotChoice::Latest { host } => (
                "latest".to_owned(),
                SnapshotFilter {
                    hosts: vec![host.clone()],
                    ..SnapshotFilter::default()
                },
            ),
        };
        let mut request = RestoreRequest::new(snapshot, RESTORE_TARGET);
        request.filter = filter;
        request.includes.clone_from(&self.includes);
        request.excludes.clone_from(&self.excludes);
        request.sparse = self.sparse;
        request
    }
}

/// A rule or `target.args` the agent cannot carry out; each message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error(
        "rules[{index}] sets both snapshots and paths; keep one of them (they are mutually exclusive)"
    )]
    SnapshotsAndPaths { index: usize },
    #[error(
        "target.args `{arg}` is not supported by stash-rs's restore; use --include, --exclude or --sparse there, or the rule's include/exclude"
    )]
    UnsupportedArg { arg: String },
    #[error("target.args `{flag}` needs a value")]
    MissingValue { flag: String },
}

/// The rule that applies to `host`: the first whose `targetHosts` names it, else the first with
/// empty `targetHosts`, else none. Returned with its index for error messages.
#[must_use]
pub fn select_rule<'a>(rules: &'a [Rule], host: &str) -> Option<(usize, &'a Rule)> {
    let mut for_every_host = None;
    for (index, rule) in rules.iter().enumerate() {
        if rule.target_hosts().is_empty() {
            for_every_host.get_or_insert((index, rule));
        } else if rule.target_hosts().iter().any(|h| h == host) {
            return Some((index, rule));
        }
    }
    for_every_host
}

/// The plan of `host` under `rules` (already the effective `spec.target.rules` or `spec.rules`)
/// and the extra `restic restore` arguments of `target.args`.
pub fn plan(rules: &[Rule], host: &str, args: &[String]) -> Result<RestorePlan, RuleError> {
    let mut plan = RestorePlan {
        sparse: true,
        ..RestorePlan::default()
    };
    apply_args(&mut plan, args)?;
    let Some((index, rule)) = select_rule(rules, host) else {
        return Ok(plan);
    };
    let snapshots = rule.snapshots.as_deref().unwrap_or_default();
    let paths = rule.paths.as_deref().unwrap_or_default();
    if !snapshots.is_empty() && !paths.is_empty() {
        return Err(RuleError::SnapshotsAndPaths { index });
    }
    let source_host = rule
        .source_host
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .unwrap_or(host)
        .to_owned();
    plan.snapshots = if !snapshots.is_empty() {
        snapshots
            .iter()
            .map(|id| SnapshotChoice::Named(id.trim().to_owned()))
            .collect()
    } else if !paths.is_empty() {
        paths
            .iter()
            .map(|path| SnapshotChoice::LatestWithPath {
                host: source_host.clone(),
                path: path.clone(),
            })
            .collect()
    } else {
        vec![SnapshotChoice::Latest { host: source_host }]
    };
    plan.includes.extend(rule.include.iter().flatten().cloned());
    plan.excludes.extend(rule.exclude.iter().flatten().cloned());
    Ok(plan)
}

/// `target.args`: the `restic restore` flags the engine has (`--include`/`-i`, `--exclude`/`-e`,
/// with `=` or a separate value, `--sparse`); anything else is refused rather than ignored.
fn apply_args(plan: &mut RestorePlan, args: &[String]) -> Result<(), RuleError> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let list = match flag {
            "--include" | "-i" => &mut plan.includes,
            "--exclude" | "-e" => &mut plan.excludes,
            "--sparse" if inline.is_none() => {
                plan.sparse = true;
                continue;
            }
            _ => {
                return Err(RuleError::UnsupportedArg { arg: arg.clone() });
            }
        };
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .cloned()
                .ok_or_else(|| RuleError::MissingValue {
                    flag: flag.to_owned(),
                })?,
        };
        list.push(value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> Rule {
        serde_yaml::from_str(yaml).expect("a rule")
    }

    #[test]
    fn a_rule_naming_the_host_wins_over_an_earlier_rule_for_every_host() {
        let rules = [
            rule("{paths: [/all]}"),
            rule("{targetHosts: [host-1], paths: [/one]}"),
        ];
        assert_eq!(select_rule(&rules, "host-1").map(|(i, _)| i), Some(1));
        assert_eq!(select_rule(&rules, "host-0").map(|(i, _)| i), Some(0));
    }

    #[test]
    fn a_host_no_rule_applies_to_restores_nothing() {
        let rules = [rule("{targetHosts: [host-1], paths: [/one]}")];
        let plan = plan(&rules, "host-0", &[]).unwrap();
        assert!(plan.snapshots.is_empty());
        assert!(
            super::plan(&[], "host-0", &[])
                .unwrap()
                .snapshots
                .is_empty()
        );
    }

    #[test]
    fn paths_restore_the_latest_snapshot_of_the_host_itself_by_default() {
        let rules = [rule(
            "{paths: [/source/data, /source/config], include: ['*.db']}",
        )];
        let plan = plan(&rules, "host-2", &[]).unwrap();
        assert_eq!(
            plan.snapshots,
            [
                SnapshotChoice::LatestWithPath {
                    host: "host-2".into(),
                    path: "/source/data".into()
                },
                SnapshotChoice::LatestWithPath {
                    host: "host-2".into(),
                    path: "/source/config".into()
                },
            ]
        );
        let request = plan.request(&plan.snapshots[0]);
        assert_eq!(request.snapshot, "latest");
        assert_eq!(request.filter.hosts, ["host-2"]);
        assert_eq!(request.filter.paths, ["/source/data"]);
        assert_eq!(request.includes, ["*.db"]);
        assert_eq!(request.target, std::path::Path::new("/"));
    }

    #[test]
    fn source_host_restores_another_host_s_data() {
        let rules = [rule("{sourceHost: host-0, paths: [/source/data]}")];
        let plan = plan(&rules, "host-3", &[]).unwrap();
        assert_eq!(
            plan.snapshots,
            [SnapshotChoice::LatestWithPath {
                host: "host-0".into(),
                path: "/source/data".into()
            }]
        );
    }

    #[test]
    fn snapshots_including_latest_ignore_host_and_path() {
        let rules = [rule("{sourceHost: host-0, snapshots: [latest, 4bc21d6f]}")];
        let plan = plan(&rules, "host-1", &[]).unwrap();
        assert_eq!(
            plan.snapshots,
            [
                SnapshotChoice::Named("latest".into()),
                SnapshotChoice::Named("4bc21d6f".into())
            ]
        );
        let request = plan.request(&plan.snapshots[0]);
        assert!(request.filter.hosts.is_empty() && request.filter.paths.is_empty());
    }

    #[test]
    fn a_rule_with_neither_snapshots_nor_paths_restores_the_latest_snapshot_of_the_source_host() {
        let plan = plan(&[rule("{}")], "host-0", &[]).unwrap();
        assert_eq!(
            plan.snapshots,
            [SnapshotChoice::Latest {
                host: "host-0".into()
            }]
        );
    }

    #[test]
    fn snapshots_and_paths_together_are_refused_naming_the_rule() {
        let rules = [rule("{targetHosts: [h], snapshots: [latest], paths: [/a]}")];
        assert_eq!(
            plan(&rules, "h", &[]),
            Err(RuleError::SnapshotsAndPaths { index: 0 })
        );
    }

    #[test]
    fn target_args_add_include_and_exclude_patterns_and_refuse_other_flags() {
        let args: Vec<String> = ["--include=/a", "-e", "*.tmp", "--sparse"]
            .map(String::from)
            .to_vec();
        let plan = plan(
            &[rule("{paths: [/a], exclude: ['*.log']}")],
            "host-0",
            &args,
        )
        .unwrap();
        assert_eq!(plan.includes, ["/a"]);
        assert_eq!(plan.excludes, ["*.tmp", "*.log"]);
        let err = super::plan(&[], "host-0", &["--verify".to_owned()]).unwrap_err();
        assert!(err.to_string().contains("--verify"), "{err}");
        assert_eq!(
            super::plan(&[], "host-0", &["--exclude".to_owned()]),
            Err(RuleError::MissingValue {
                flag: "--exclude".into()
            })
        );
    }
}

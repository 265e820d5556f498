//! The Grafana dashboard shipped in `deploy/grafana/stash-dashboard.json` queries only gauges
//! stash-rs pushes, with labels those gauges carry: every metric name and label matcher in its
//! panel and variable queries is checked against the samples this crate's builders produce for a
//! successful backup, repository check and restore (the case in which every gauge is pushed).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use stash_api::v1beta1::{HostBackupStats, HostRestoreStats};
use stash_metrics::repository::RepositoryLabels;
use stash_metrics::{Metric, SessionLabels, TargetLabels, backup, repository, restore};

const DASHBOARD: &str = include_str!("../../../deploy/grafana/stash-dashboard.json");

/// Labels Prometheus adds when it scrapes the Pushgateway (the push's grouping key), not stash.
const SCRAPE_LABELS: [&str; 2] = ["job", "instance"];

fn session_labels(invoker_kind: &str) -> SessionLabels {
    SessionLabels {
        invoker_kind: invoker_kind.into(),
        invoker_name: "app-backup".into(),
        namespace: "demo".into(),
        driver: "Restic".into(),
        repository: Some("s3-repo".into()),
    }
}

fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("a valid status entry")
}

/// Every sample stash-rs pushes, by metric name, for a successful backup, check and restore.
fn pushed() -> BTreeMap<String, BTreeSet<String>> {
    let target = TargetLabels {
        kind: "Deployment".into(),
        group: "apps".into(),
        name: "app".into(),
    };
    let backup_session = session_labels("BackupConfiguration");
    let restore_session = session_labels("RestoreSession");
    let backup_host: HostBackupStats = from_json(serde_json::json!({
        "hostname": "host-0", "phase": "Succeeded", "duration": "12s",
        "snapshots": [{"name": "a1b2c3d4", "path": "/data", "totalSize": "1.000 MiB",
                       "uploaded": "10.000 KiB", "processingTime": "0:02",
                       "fileStats": {"totalFiles": 3, "newFiles": 1, "modifiedFiles": 1,
                                     "unmodifiedFiles": 1}}]
    }));
    let restore_host: HostRestoreStats = from_json(serde_json::json!({
        "hostname": "host-0", "phase": "Succeeded", "duration": "3s"
    }));
    let repository_labels = RepositoryLabels {
        name: "s3-repo".into(),
        namespace: "demo".into(),
        backend: "s3".into(),
        bucket: Some("backups".into()),
        prefix: Some("app".into()),
    };
    let now = SystemTime::now();
    let samples: Vec<Metric> = [
        backup::session(&backup_session, true, Duration::from_secs(40), 1, now),
        backup::target(&backup_session, &target, true, 1, now),
        backup::host(&backup_session, &target, &backup_host),
        repository::metrics(&repository_labels, Some(true), 1 << 20, 4, 1),
        restore::session(&restore_session, true, Duration::from_secs(5), 1),
        restore::target(&restore_session, &target, true, 1),
        restore::host(&restore_session, &target, &restore_host),
    ]
    .concat();
    let mut by_name: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for sample in samples {
        by_name
            .entry(sample.name)
            .or_default()
            .extend(sample.labels.into_iter().map(|(key, _)| key));
    }
    by_name
}

/// Every Prometheus query of the dashboard: panel targets' `expr` and query variables' `query`.
fn queries(dashboard: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            found.push(
                target["expr"]
                    .as_str()
                    .expect("every target has an expr")
                    .to_owned(),
            );
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
    {
        if variable["type"] == "query" {
            let query = &variable["query"];
            let text = query["query"].as_str().or_else(|| query.as_str());
            found.push(text.expect("a variable's query").to_owned());
        }
    }
    found
}

/// The metric names in a query with the label names matched in the braces right after each.
fn selectors(query: &str) -> Vec<(String, Vec<String>)> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut found = Vec::new();
    let mut rest = query;
    while let Some(start) = rest.find("stash_") {
        let preceded_by_ident = rest[..start].chars().next_back().is_some_and(is_ident);
        let tail = &rest[start..];
        let end = tail.find(|c| !is_ident(c)).unwrap_or(tail.len());
        let (name, after) = tail.split_at(end);
        rest = after;
        if preceded_by_ident {
            continue;
        }
        let mut labels = Vec::new();
        if let Some(inner) = after.strip_prefix('{') {
            let close = inner.find('}').expect("a closed label matcher");
            for matcher in inner[..close].split(',').filter(|m| !m.trim().is_empty()) {
                let key = matcher
                    .split(['=', '!'])
                    .next()
                    .expect("a label name")
                    .trim();
                labels.push(key.to_owned());
            }
        }
        found.push((name.to_owned(), labels));
    }
    found
}

#[test]
fn every_metric_and_label_the_dashboard_queries_is_one_stash_rs_pushes() {
    let dashboard: serde_json::Value =
        serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let pushed = pushed();
    let mut checked = BTreeSet::new();
    for query in queries(&dashboard) {
        let selectors = selectors(&query);
        assert!(
            !selectors.is_empty(),
            "query names no stash metric: {query}"
        );
        for (name, labels) in selectors {
            let carried = pushed.get(&name).unwrap_or_else(|| {
                panic!(
                    "the dashboard queries `{name}`, which stash-rs does not push (query: {query}); pushed: {:?}",
                    pushed.keys().collect::<Vec<_>>()
                )
            });
            for label in labels {
                assert!(
                    carried.contains(&label) || SCRAPE_LABELS.contains(&label.as_str()),
                    "the dashboard matches label `{label}` of `{name}`, which carries only {carried:?} (query: {query})"
                );
            }
            checked.insert(name);
        }
    }
    // The panels the dashboard promises: session outcome and duration, host duration,
    // repository size and snapshot count, restore outcome.
    for needed in [
        backup::SESSION_SUCCESS,
        backup::SESSION_DURATION_SECONDS,
        backup::HOST_BACKUP_DURATION_SECONDS,
        repository::SIZE_BYTES,
        repository::SNAPSHOT_COUNT,
        restore::SESSION_SUCCESS,
    ] {
        assert!(checked.contains(needed), "no panel shows {needed}");
    }
}

#[test]
fn the_dashboard_has_a_datasource_variable_and_namespace_and_invoker_filters() {
    let dashboard: serde_json::Value =
        serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let variables: BTreeMap<&str, &str> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["type"].as_str().unwrap()))
        .collect();
    assert_eq!(variables.get("datasource"), Some(&"datasource"));
    assert_eq!(variables.get("namespace"), Some(&"query"));
    assert_eq!(variables.get("invoker"), Some(&"query"));
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "panel {} uses the datasource variable",
                panel["title"]
            );
        }
    }
}

#[test]
fn selectors_are_read_from_function_calls_and_aggregations() {
    assert_eq!(
        selectors(
            r#"time() - max by (ns) (stash_a_b{namespace=~"$ns", invoker_name!="x"}) + foo_stash_c"#
        ),
        [(
            "stash_a_b".to_owned(),
            vec!["namespace".to_owned(), "invoker_name".to_owned()]
        )]
    );
    assert_eq!(
        selectors("label_values(stash_x, namespace)"),
        [("stash_x".to_owned(), vec![])]
    );
}

//! The `labelSelector` and `fieldSelector` of a list, as the API server reads them: equality-based
//! label requirements (`k=v`, `k==v`, `k!=v`, `k`, `!k`) and the `metadata.name` /
//! `metadata.namespace` fields (kubectl's `delete --wait` lists by `metadata.name`).

use std::collections::BTreeMap;

use super::object::{REPOSITORY_LABEL, Snapshot};

/// A selector this server cannot read; the message names the query parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error(
        "unsupported labelSelector requirement `{0}`; use key=value, key!=value, key or !key (set-based `in`/`notin` are not served)"
    )]
    Label(String),
    #[error(
        "unsupported fieldSelector `{0}`; only metadata.name and metadata.namespace with = or != are served"
    )]
    Field(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

/// What a list request selects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    labels: Vec<Requirement>,
    fields: Vec<(String, bool, String)>,
}

impl Selector {
    /// Reads the `labelSelector` and `fieldSelector` query values.
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self, SelectorError> {
        let mut selector = Self::default();
        for part in terms(labels) {
            let requirement = if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, value)) =
                part.split_once("==").or_else(|| part.split_once('='))
            {
                Requirement::Equals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some(key) = part.strip_prefix('!') {
                Requirement::Absent(key.trim().to_owned())
            } else if part.contains(' ') || part.contains('(') {
                return Err(SelectorError::Label(part.to_owned()));
            } else {
                Requirement::Exists(part.to_owned())
            };
            selector.labels.push(requirement);
        }
        for part in terms(fields) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(SelectorError::Field(part.to_owned()));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(SelectorError::Field(part.to_owned()));
            }
            selector
                .fields
                .push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(selector)
    }

    /// The one Repository the selector limits the list to (`repository=<name>`), so the others
    /// need not be opened.
    #[must_use]
    pub fn repository(&self) -> Option<&str> {
        self.labels.iter().find_map(|r| match r {
            Requirement::Equals(key, value) if key == REPOSITORY_LABEL => Some(value.as_str()),
            _ => None,
        })
    }

    #[must_use]
    pub fn matches(&self, snapshot: &Snapshot) -> bool {
        let empty = BTreeMap::new();
        let labels = snapshot.metadata.labels.as_ref().unwrap_or(&empty);
        let labels_match = self.labels.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::Absent(k) => !labels.contains_key(k),
        });
        let fields_match = self.fields.iter().all(|(field, equal, value)| {
            let actual = if field == "metadata.name" {
                snapshot.metadata.name.as_deref()
            } else {
                snapshot.metadata.namespace.as_deref()
            };
            (actual == Some(value.as_str())) == *equal
        });
        labels_match && fields_match
    }
}

fn terms(query: Option<&str>) -> impl Iterator<Item = &str> {
    query
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::super::object::SnapshotStatus;
    use super::*;

    fn snapshot(name: &str, repository: &str, host: &str) -> Snapshot {
        Snapshot {
            api_version: super::super::API_VERSION,
            kind: super::super::KIND,
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some("demo".to_owned()),
                labels: Some(BTreeMap::from([
                    (REPOSITORY_LABEL.to_owned(), repository.to_owned()),
                    ("hostname".to_owned(), host.to_owned()),
                ])),
                ..ObjectMeta::default()
            },
            status: SnapshotStatus {
                tree: String::new(),
                paths: vec![],
                hostname: host.to_owned(),
                username: String::new(),
                uid: 0,
                gid: 0,
                tags: vec![],
                repository: repository.to_owned(),
            },
        }
    }

    #[test]
    fn repository_equal_to_a_name_limits_the_list_to_that_repository() {
        let selector = Selector::parse(Some("repository=gcs-repo,hostname!=x"), None).unwrap();
        assert_eq!(selector.repository(), Some("gcs-repo"));
        assert!(selector.matches(&snapshot("gcs-repo-0a1b2c3d", "gcs-repo", "app")));
        assert!(!selector.matches(&snapshot("gcs-repo-0a1b2c3d", "gcs-repo", "x")));
        assert!(!selector.matches(&snapshot("other-0a1b2c3d", "other", "app")));
        assert_eq!(
            Selector::parse(Some("repository==gcs-repo"), None)
                .unwrap()
                .repository(),
            Some("gcs-repo")
        );
    }

    #[test]
    fn kubectl_delete_wait_selects_by_metadata_name() {
        let selector = Selector::parse(None, Some("metadata.name=r-0a1b2c3d")).unwrap();
        assert!(selector.matches(&snapshot("r-0a1b2c3d", "r", "h")));
        assert!(!selector.matches(&snapshot("r-11111111", "r", "h")));
    }

    #[test]
    fn existence_requirements_and_an_empty_selector_work() {
        let s = snapshot("r-0a1b2c3d", "r", "h");
        assert!(Selector::parse(None, None).unwrap().matches(&s));
        assert!(Selector::parse(Some("hostname"), None).unwrap().matches(&s));
        assert!(
            !Selector::parse(Some("!hostname"), None)
                .unwrap()
                .matches(&s)
        );
    }

    #[test]
    fn set_based_labels_and_other_fields_are_refused_with_the_supported_forms() {
        assert!(matches!(
            Selector::parse(Some("repository in (a,b)"), None),
            Err(SelectorError::Label(_))
        ));
        assert!(matches!(
            Selector::parse(None, Some("status.hostname=x")),
            Err(SelectorError::Field(_))
        ));
    }
}

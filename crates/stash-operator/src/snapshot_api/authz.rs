//! Whether the user may do what they ask: a SubjectAccessReview to the API server, as every
//! delegating aggregated API server asks (the operator holds `system:auth-delegator`).

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};

use super::authn::User;
use super::{GROUP, RESOURCE, VERSION};

/// A request on snapshots: the verb, and the namespace and name it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub verb: &'static str,
    /// `None`: all namespaces.
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// The SubjectAccessReview asking whether `user` may make `request`.
#[must_use]
pub fn review(user: &User, request: &Request) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            groups: Some(user.groups.clone()),
            extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
            resource_attributes: Some(ResourceAttributes {
                group: Some(GROUP.to_owned()),
                version: Some(VERSION.to_owned()),
                resource: Some(RESOURCE.to_owned()),
                verb: Some(request.verb.to_owned()),
                namespace: request.namespace.clone(),
                name: request.name.clone(),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    }
}

/// `Ok(None)` when allowed, `Ok(Some(reason))` when denied.
pub async fn check(
    client: &Client,
    user: &User,
    request: &Request,
) -> Result<Option<String>, kube::Error> {
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review(user, request))
        .await?;
    let status = answer.status.unwrap_or_default();
    if status.allowed {
        Ok(None)
    } else {
        Ok(Some(status.reason.unwrap_or_default()))
    }
}

/// The API server's wording of a refusal, e.g. `snapshots.repositories.stash.appscode.com is
/// forbidden: User "bob" cannot list resource "snapshots" in API group "..." in the namespace "demo"`.
#[must_use]
pub fn forbidden_message(user: &User, request: &Request, reason: &str) -> String {
    let object = request.name.as_ref().map_or_else(
        || format!("{RESOURCE}.{GROUP}"),
        |name| format!("{RESOURCE}.{GROUP} \"{name}\""),
    );
    let scope = request.namespace.as_ref().map_or_else(
        || " at the cluster scope".to_owned(),
        |ns| format!(" in the namespace \"{ns}\""),
    );
    let reason = if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    };
    format!(
        "{object} is forbidden: User \"{}\" cannot {} resource \"{RESOURCE}\" in API group \"{GROUP}\"{scope}{reason}",
        user.name, request.verb
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn bob() -> User {
        User {
            name: "system:serviceaccount:demo:bob".to_owned(),
            groups: vec!["system:serviceaccounts".to_owned()],
            extra: BTreeMap::new(),
        }
    }

    #[test]
    fn the_review_asks_about_snapshots_of_the_stash_repositories_group_in_the_namespace() {
        let request = Request {
            verb: "delete",
            namespace: Some("demo".to_owned()),
            name: Some("repo-0a1b2c3d".to_owned()),
        };
        let review = review(&bob(), &request);
        let attributes = review.spec.resource_attributes.unwrap();
        assert_eq!(
            attributes.group.as_deref(),
            Some("repositories.stash.appscode.com")
        );
        assert_eq!(attributes.resource.as_deref(), Some("snapshots"));
        assert_eq!(attributes.verb.as_deref(), Some("delete"));
        assert_eq!(attributes.namespace.as_deref(), Some("demo"));
        assert_eq!(attributes.name.as_deref(), Some("repo-0a1b2c3d"));
        assert_eq!(
            review.spec.user.as_deref(),
            Some("system:serviceaccount:demo:bob")
        );
    }

    #[test]
    fn a_refusal_reads_like_the_api_server_s() {
        let request = Request {
            verb: "list",
            namespace: Some("demo".to_owned()),
            name: None,
        };
        assert_eq!(
            forbidden_message(&bob(), &request, ""),
            "snapshots.repositories.stash.appscode.com is forbidden: User \"system:serviceaccount:demo:bob\" cannot list resource \"snapshots\" in API group \"repositories.stash.appscode.com\" in the namespace \"demo\""
        );
    }
}

//! The mutating webhook's own caches of BackupConfigurations, RestoreSessions and Repositories, so an
//! admission costs no API round trip.
//!
//! The webhook keeps its own watches rather than sharing the controllers' stores: it serves on every
//! replica, while the controllers (and their stores) run only on the leader and restart with each
//! leadership. The watches are cluster-wide, like the per-request lists they replace: a workload in any
//! namespace may be admitted, and its invokers may name a Repository in another namespace.

use std::future::Future;

use futures::{FutureExt, StreamExt};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::{BackupConfiguration, RestoreSession};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::mutate_workload::{NamespaceInvokers, repository_key};
use crate::invoker::{BackupInvoker, RestoreInvoker};

/// Reflector stores of the kinds the mutating webhook decides with.
#[derive(Clone)]
pub struct InvokerCache {
    backup_configurations: Store<BackupConfiguration>,
    restore_sessions: Store<RestoreSession>,
    repositories: Store<Repository>,
}

impl InvokerCache {
    /// The stores, and the task of the watches that fill them. The task stops when `shutdown` is
    /// cancelled (dropping the watches and their connections); await it so the process ends with it.
    #[must_use]
    pub fn start(client: &Client, shutdown: CancellationToken) -> (Self, JoinHandle<()>) {
        let (backup_configurations, bc_watch) = cluster_reflector::<BackupConfiguration>(client);
        let (restore_sessions, rs_watch) = cluster_reflector::<RestoreSession>(client);
        let (repositories, repository_watch) = cluster_reflector::<Repository>(client);
        let watches = tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = bc_watch => {}
                () = rs_watch => {}
                () = repository_watch => {}
            }
            debug!("the mutating webhook's watches stopped");
        });
        let cache = Self {
            backup_configurations,
            restore_sessions,
            repositories,
        };
        (cache, watches)
    }

    /// Whether every store holds its initial list; before that an empty store means "not yet known",
    /// not "none".
    #[must_use]
    pub fn is_ready(&self) -> bool {
        ready_now(&self.backup_configurations)
            && ready_now(&self.restore_sessions)
            && ready_now(&self.repositories)
    }

    /// The invokers of `namespace` and the Repositories they name, wherever those live.
    #[must_use]
    pub fn invokers(&self, namespace: &str) -> NamespaceInvokers {
        let backup_configurations = self
            .backup_configurations
            .state_filter(|bc| in_namespace(bc, namespace));
        let restore_sessions = self
            .restore_sessions
            .state_filter(|rs| in_namespace(rs, namespace));
        let mut wanted: Vec<(String, String)> = backup_configurations
            .iter()
            .filter_map(|bc| {
                let invoker = BackupInvoker::Configuration(bc);
                Some(repository_key(invoker.repository()?, invoker.namespace()))
            })
            .chain(restore_sessions.iter().filter_map(|rs| {
                let invoker = RestoreInvoker::Session(rs);
                Some(repository_key(invoker.repository()?, invoker.namespace()))
            }))
            .collect();
        wanted.sort();
        wanted.dedup();
        let repositories = self.repositories.state_filter(|repository| {
            in_namespace(repository, namespace)
                || wanted.iter().any(|(ns, name)| {
                    in_namespace(repository, ns) && repository.name_any() == *name
                })
        });
        NamespaceInvokers {
            backup_configurations,
            restore_sessions,
            repositories,
        }
    }
}

fn in_namespace(obj: &impl Resource, namespace: &str) -> bool {
    obj.meta().namespace.as_deref() == Some(namespace)
}

fn ready_now<K>(store: &Store<K>) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
}

fn cluster_reflector<K>(client: &Client) -> (Store<K>, impl Future<Output = ()> + use<K>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let watch = reflector::reflector(
        writer,
        watcher(
            Api::<K>::all(client.clone()),
            watcher::Config::default().any_semantic(),
        ),
    )
    .default_backoff()
    .for_each(|event| {
        if let Err(err) = event {
            debug!(kind = %K::kind(&()), error = %err, "the webhook's watch failed; retrying");
        }
        futures::future::ready(())
    });
    (store, watch)
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    use super::*;

    const BACKUP_CONFIGURATION: &str = include_str!(
        "../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
    );
    const RESTORE_SESSION: &str = include_str!(
        "../../../stash-api/tests/fixtures/stash-examples/restoresession-deployment.yaml"
    );
    const REPOSITORY: &str =
        include_str!("../../../stash-api/tests/fixtures/stash-examples/repository-gcs.yaml");

    fn object<K: DeserializeOwned + Resource>(yaml: &str, namespace: &str, name: &str) -> K {
        let mut obj: K = serde_yaml::from_str(yaml).unwrap();
        obj.meta_mut().namespace = Some(namespace.to_owned());
        obj.meta_mut().name = Some(name.to_owned());
        obj
    }

    fn listed<K>(writer: &mut Writer<K>, objects: Vec<K>)
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        writer.apply_watcher_event(&Event::Init);
        for obj in objects {
            writer.apply_watcher_event(&Event::InitApply(obj));
        }
        writer.apply_watcher_event(&Event::InitDone);
    }

    struct Writers {
        backup_configurations: Writer<BackupConfiguration>,
        restore_sessions: Writer<RestoreSession>,
        repositories: Writer<Repository>,
    }

    fn empty_cache() -> (InvokerCache, Writers) {
        let (backup_configurations, bc_writer) = reflector::store();
        let (restore_sessions, rs_writer) = reflector::store();
        let (repositories, repository_writer) = reflector::store();
        let cache = InvokerCache {
            backup_configurations,
            restore_sessions,
            repositories,
        };
        let writers = Writers {
            backup_configurations: bc_writer,
            restore_sessions: rs_writer,
            repositories: repository_writer,
        };
        (cache, writers)
    }

    #[test]
    fn the_cache_is_not_ready_until_every_kind_has_its_initial_list() {
        let (cache, mut writers) = empty_cache();
        assert!(!cache.is_ready());
        listed(&mut writers.backup_configurations, Vec::new());
        listed(&mut writers.restore_sessions, Vec::new());
        assert!(!cache.is_ready(), "the Repositories are not listed yet");
        listed(&mut writers.repositories, Vec::new());
        assert!(cache.is_ready());
    }

    #[test]
    fn a_namespace_gets_its_own_invokers_and_the_repositories_they_name_elsewhere() {
        let (cache, mut writers) = empty_cache();
        let mut bc: BackupConfiguration = object(BACKUP_CONFIGURATION, "demo", "backup");
        bc.spec.repository.as_mut().unwrap().namespace = Some("shared".to_owned());
        listed(
            &mut writers.backup_configurations,
            vec![bc, object(BACKUP_CONFIGURATION, "other", "backup")],
        );
        listed(
            &mut writers.restore_sessions,
            vec![object(RESTORE_SESSION, "demo", "restore")],
        );
        listed(
            &mut writers.repositories,
            vec![
                object(REPOSITORY, "demo", "local-repo"),
                object(REPOSITORY, "shared", "gcs-repo"),
                object(REPOSITORY, "shared", "unnamed-repo"),
                object(REPOSITORY, "other", "gcs-repo"),
            ],
        );

        let invokers = cache.invokers("demo");

        assert_eq!(invokers.backup_configurations.len(), 1);
        assert_eq!(invokers.restore_sessions.len(), 1);
        let mut repositories: Vec<String> = invokers
            .repositories
            .iter()
            .map(|r| format!("{}/{}", r.namespace().unwrap(), r.name_any()))
            .collect();
        repositories.sort();
        assert_eq!(repositories, ["demo/local-repo", "shared/gcs-repo"]);
    }
}

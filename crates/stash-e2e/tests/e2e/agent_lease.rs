//! The Lease the agent's pods take turns on (§8.6 step 2, §10): of two candidates that ask at the
//! same moment exactly one holds it, and the other gets it as soon as the first lets go.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use stash_agent::lease::{self, HeldLease};
use stash_testenv::TestEnv;
use tokio_util::sync::CancellationToken;

use crate::TIMEOUT;

/// Far less than the 15 s a held Lease lasts, far more than two candidates need to both "win".
const LOSER_STAYS_WAITING: Duration = Duration::from_secs(4);

async fn holder(client: &kube::Client, ns: &str, name: &str) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .expect("read the Lease")
        .spec
        .and_then(|spec| spec.holder_identity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_pods_asking_for_the_lease_at_once_one_holds_it_and_the_other_follows_on_release() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let name = "lock-deployment-stash-demo-restore";
    let cancel = CancellationToken::new();
    let candidate = |identity: &'static str| {
        let (client, ns, cancel) = (client.clone(), ns.name().to_owned(), cancel.clone());
        tokio::spawn(async move {
            let held = lease::acquire(&client, &ns, name, identity, &cancel)
                .await
                .expect("take part in the election")
                .expect("not cancelled");
            (identity, held)
        })
    };
    let mut first = candidate("stash-demo-6d4c8b9f7-x2x9q");
    let mut second = candidate("stash-demo-6d4c8b9f7-p8k4z");

    let (winner, held, mut loser): (_, HeldLease, _) = tokio::time::timeout(TIMEOUT, async {
        tokio::select! {
            won = &mut first => { let (id, held) = won.expect("candidate task"); (id, held, second) }
            won = &mut second => { let (id, held) = won.expect("candidate task"); (id, held, first) }
        }
    })
    .await
    .expect("one candidate gets the free Lease");
    assert_eq!(
        holder(&client, ns.name(), name).await.as_deref(),
        Some(winner)
    );
    assert!(
        tokio::time::timeout(LOSER_STAYS_WAITING, &mut loser)
            .await
            .is_err(),
        "the other candidate must not hold the Lease while {winner} does"
    );
    assert!(held.is_held());

    held.release().await;
    let (follower, next) = tokio::time::timeout(TIMEOUT, loser)
        .await
        .expect("the other candidate takes the released Lease")
        .expect("candidate task");
    assert_ne!(follower, winner);
    assert_eq!(
        holder(&client, ns.name(), name).await.as_deref(),
        Some(follower)
    );
    next.release().await;
}

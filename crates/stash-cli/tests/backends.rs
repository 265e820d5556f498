//! One conformance suite, run against every backend that can run here: a local directory, S3
//! (a real moto server on loopback) and restic's REST protocol (a real `rustic-server` on
//! loopback, with basic auth). Each run ends with Debian's restic reading the same repository.

mod support;

use std::path::Path;
use std::process::Command;

use support::rest_server::{self, RestServer};
use support::{Scratch, exits_with, json, ok, restored, s3, tree};

struct Backend {
    repo: String,
    env: Vec<(&'static str, String)>,
}

impl Backend {
    fn apply<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.arg("-r").arg(&self.repo)
    }
}

/// What every backend must do, end to end.
fn conformance(s: &Scratch, backend: &Backend) {
    let source = s.path("source");
    tree::full(&source, false);

    ok(backend.apply(&mut s.stash()).arg("init"));
    exits_with(backend.apply(&mut s.stash()).arg("init"), 1);
    let first = json(&ok(backend
        .apply(&mut s.stash())
        .args(["backup", "--json", "--host", "host-0"])
        .arg(&source)));
    let second = json(&ok(backend
        .apply(&mut s.stash())
        .args(["backup", "--json", "--host", "host-0"])
        .arg(&source)));
    assert_eq!(second["data_added"], 0, "{second}");
    assert_eq!(second["parent"], first["snapshot_id"]);

    let listed = json(&ok(backend
        .apply(&mut s.stash())
        .args(["snapshots", "--json"])));
    assert_eq!(listed.as_array().unwrap().len(), 2);

    let target = s.path("target");
    ok(backend
        .apply(&mut s.stash())
        .args(["restore", "latest", "--target"])
        .arg(&target));
    tree::assert_same(&source, &restored(&target, &source));

    // Locks are taken and released on this backend too: nothing is left, nothing stale to remove.
    let unlock = json(&ok(backend
        .apply(&mut s.stash())
        .args(["unlock", "--json"])));
    assert!(unlock["removed"].as_array().unwrap().is_empty(), "{unlock}");

    ok(backend
        .apply(&mut s.stash())
        .args(["forget", "--keep-last", "1", "--prune"]));
    let check = ok(backend.apply(&mut s.stash()).args(["check", "--read-data"]));
    assert!(check.contains("no errors"), "{check}");
    let stats = json(&ok(backend.apply(&mut s.stash()).args(["stats", "--json"])));
    assert_eq!(stats["snapshot_count"], 1);

    exits_with(
        backend
            .apply(&mut s.stash())
            .env("RESTIC_PASSWORD", "wrong")
            .arg("snapshots"),
        12,
    );

    // Debian's restic reads the same repository through its own backend code.
    let by_restic = json(&ok(backend
        .apply(&mut s.restic())
        .args(["snapshots", "--json"])));
    assert_eq!(by_restic[0]["id"], second["snapshot_id"]);
    ok(backend
        .apply(&mut s.restic())
        .args(["check", "--read-data"]));
}

#[test]
fn local_backend_passes_the_conformance_suite() {
    let s = Scratch::new();
    let repo = format!("local:{}", s.path("repo").display());
    conformance(
        &s,
        &Backend {
            repo,
            env: Vec::new(),
        },
    );
}

fn s3_backend(bucket: &str) -> Backend {
    let server = s3::shared();
    server.create_bucket(bucket);
    Backend {
        repo: format!("s3:http://127.0.0.1:{}/{bucket}/stash/demo", server.port()),
        env: vec![
            ("AWS_ACCESS_KEY_ID", "stash-test".into()),
            ("AWS_SECRET_ACCESS_KEY", "stash-test-secret".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ],
    }
}

#[test]
fn s3_backend_passes_the_conformance_suite() {
    let s = Scratch::new();
    conformance(&s, &s3_backend("conformance"));
}

#[test]
fn an_s3_repository_in_a_missing_bucket_is_reported_with_what_to_do() {
    let s = Scratch::new();
    let server = s3::shared();
    let backend = Backend {
        repo: format!("s3:http://127.0.0.1:{}/no-such-bucket/x", server.port()),
        env: vec![
            ("AWS_ACCESS_KEY_ID", "a".into()),
            ("AWS_SECRET_ACCESS_KEY", "b".into()),
        ],
    };
    let stderr = exits_with(backend.apply(&mut s.stash()).arg("init"), 1);
    assert!(stderr.contains("bucket does not exist"), "{stderr}");
    let stderr = exits_with(backend.apply(&mut s.stash()).arg("snapshots"), 10);
    assert!(stderr.contains("no repository found"), "{stderr}");
}

#[test]
fn restic_and_stash_share_one_s3_repository() {
    let s = Scratch::new();
    let backend = s3_backend("shared");
    let source = s.path("source");
    tree::write(&source.join("from-restic.txt"), b"restic wrote this");
    ok(backend.apply(&mut s.restic()).arg("init"));
    ok(backend.apply(&mut s.restic()).arg("backup").arg(&source));
    let target = s.path("target");
    ok(backend
        .apply(&mut s.stash())
        .args(["restore", "latest", "--target"])
        .arg(&target));
    assert_eq!(
        std::fs::read(restored(&target, &source).join("from-restic.txt")).unwrap(),
        b"restic wrote this"
    );
    ok(backend.apply(&mut s.stash()).arg("backup").arg(&source));
    let listed = json(&ok(backend
        .apply(&mut s.restic())
        .args(["snapshots", "--json"])));
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(Path::new(&target).exists());
}

#[test]
fn rest_backend_passes_the_conformance_suite() {
    let s = Scratch::new();
    let server = RestServer::start(
        &rest_server::Options::default()
            .repo("conformance")
            .basic_auth("stash", "rest-secret"),
    );
    conformance(
        &s,
        &Backend {
            repo: server.url("conformance"),
            env: Vec::new(),
        },
    );
    // The repository really is on the server: its files are in the server's data directory.
    assert!(server.repo_dir("conformance").join("config").is_file());
    server.assert_running();
}

#[test]
fn restic_and_stash_share_one_rest_repository() {
    let s = Scratch::new();
    let server = RestServer::start(&rest_server::Options::default().repo("shared"));
    let backend = Backend {
        repo: server.url("shared"),
        env: Vec::new(),
    };
    let source = s.path("source");
    tree::write(&source.join("from-restic.txt"), b"restic wrote this");
    ok(backend.apply(&mut s.restic()).arg("init"));
    ok(backend.apply(&mut s.restic()).arg("backup").arg(&source));
    let target = s.path("target");
    ok(backend
        .apply(&mut s.stash())
        .args(["restore", "latest", "--target"])
        .arg(&target));
    assert_eq!(
        std::fs::read(restored(&target, &source).join("from-restic.txt")).unwrap(),
        b"restic wrote this"
    );
    ok(backend.apply(&mut s.stash()).arg("backup").arg(&source));
    let listed = json(&ok(backend
        .apply(&mut s.restic())
        .args(["snapshots", "--json"])));
    assert_eq!(listed.as_array().unwrap().len(), 2);
    server.assert_running();
}

#[test]
fn rest_credentials_can_come_from_the_environment_and_wrong_ones_are_refused() {
    let s = Scratch::new();
    let server = RestServer::start(
        &rest_server::Options::default()
            .repo("private")
            .basic_auth("stash", "rest-secret"),
    );
    let bare = format!("rest:http://127.0.0.1:{}/private/", server.port());
    // The keys of a Stash repository Secret for a REST backend, passed as environment.
    let with_env = |cmd: &mut Command| {
        cmd.env("REST_SERVER_USERNAME", "stash")
            .env("REST_SERVER_PASSWORD", "rest-secret")
            .arg("-r")
            .arg(&bare);
    };
    let mut init = s.stash();
    with_env(&mut init);
    ok(init.arg("init"));
    let mut snapshots = s.stash();
    with_env(&mut snapshots);
    let listed = json(&ok(snapshots.args(["snapshots", "--json"])));
    assert!(listed.as_array().unwrap().is_empty(), "{listed}");

    // Refused like a missing repository (restic's exit code 10), without echoing the password.
    let wrong = format!(
        "rest:http://stash:not-the-password@127.0.0.1:{}/private/",
        server.port()
    );
    let stderr = exits_with(s.stash().arg("-r").arg(&wrong).arg("snapshots"), 10);
    assert!(stderr.contains("credentials"), "{stderr}");
    assert!(!stderr.contains("not-the-password"), "{stderr}");
    server.assert_running();
}

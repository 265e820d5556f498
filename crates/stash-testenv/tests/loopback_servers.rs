//! The loopback servers and tree helpers of stash-testenv, each checked against a real client:
//! the pushgateway with a push, the REST server with raw HTTP and with Debian's restic, the S3
//! server with a bucket, and the tree comparison with a change it must notice.

use std::path::Path;
use std::time::{Duration, Instant};

use stash_testenv::pushgateway::Pushgateway;
use stash_testenv::rest_server::{Options, RestServer};
use stash_testenv::{restic, s3, servers, tree};

fn gone(pid: u32) -> bool {
    // A zombie is gone too: it is reaped by whoever waits for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat) if stat.split_whitespace().nth(2) == Some("Z") => return true,
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    false
}

#[test]
fn a_push_to_the_pushgateway_shows_up_in_its_metrics() {
    let gateway = Pushgateway::start();
    assert!(gateway.url().starts_with("http://127.0.0.1:"));
    assert!(
        gateway
            .samples("stash_test_backup_duration_seconds")
            .is_empty()
    );

    // As a client pushes: PUT /metrics/job/<job>/<label>/<value> with the text format.
    let body = "# TYPE stash_test_backup_duration_seconds gauge\n\
                stash_test_backup_duration_seconds{repository=\"demo\"} 12.5\n";
    let response = servers::request(
        "PUT",
        &format!("{}/metrics/job/stash-backup/instance/node-1", gateway.url()),
        &[("Content-Type", "text/plain; version=0.0.4")],
        body.as_bytes(),
    )
    .unwrap();
    assert!(
        response.is_success(),
        "{} {}",
        response.status,
        response.text()
    );

    let samples = gateway.samples("stash_test_backup_duration_seconds");
    assert_eq!(samples.len(), 1, "{}", gateway.metrics_text());
    for part in [
        "job=\"stash-backup\"",
        "instance=\"node-1\"",
        "repository=\"demo\"",
        "} 12.5",
    ] {
        assert!(samples[0].contains(part), "{part} missing from {samples:?}");
    }

    // The helper pushes the same way; a second job is a second group.
    gateway.push("other", "stash_test_other 1\n");
    assert_eq!(gateway.samples("stash_test_other").len(), 1);

    let pid = gateway.process().pid();
    drop(gateway);
    assert!(gone(pid), "the pushgateway (pid {pid}) outlived its handle");
}

#[test]
fn the_rest_server_speaks_restic_s_protocol_without_auth() {
    let server = RestServer::start(&Options::default().repo("open"));
    let url = server.url("open");
    assert_eq!(
        url,
        format!(
            "rest:http://anonymous:anonymous@127.0.0.1:{}/open/",
            server.port()
        )
    );

    // Create the repository layout as restic does, then store and read back a config file.
    let create = servers::request(
        "POST",
        &format!("{}?create=true", server.http_url("open")),
        &[],
        &[],
    )
    .unwrap();
    assert!(create.is_success(), "{} {}", create.status, create.text());
    let put = servers::request(
        "POST",
        &format!("{}config", server.http_url("open")),
        &[],
        b"not really a config",
    )
    .unwrap();
    assert!(put.is_success(), "{} {}", put.status, put.text());
    let get = servers::get(&format!("{}config", server.http_url("open"))).unwrap();
    assert_eq!(get.body, b"not really a config");
    assert_eq!(
        std::fs::read(server.repo_dir("open").join("config")).unwrap(),
        b"not really a config"
    );
    // A listing (what crashes rustic-server 0.4.4 without an Authorization header).
    let keys = servers::request(
        "GET",
        &format!("{}keys/", server.http_url("open")),
        &[("Accept", "application/vnd.x.restic.rest.v2")],
        &[],
    )
    .unwrap();
    assert_eq!((keys.status, keys.text().as_str()), (200, "[]"));
    server.assert_running();

    let pid = server.process().pid();
    let data = server.data_dir();
    drop(server);
    assert!(gone(pid), "rustic-server (pid {pid}) outlived its handle");
    assert!(!data.exists(), "{} was left behind", data.display());
}

#[test]
fn the_rest_server_with_basic_auth_serves_restic_and_refuses_strangers() {
    let server = RestServer::start(
        &Options::default()
            .repo("locked")
            .basic_auth("stash", "pw123"),
    );
    assert_eq!(
        server.url("locked"),
        format!(
            "rest:http://stash:pw123@127.0.0.1:{}/locked/",
            server.port()
        )
    );

    // rustic-server answers 403 where restic's rest-server says 401.
    let anonymous = servers::get(&format!("{}/locked/config", server.base_url())).unwrap();
    assert!(
        matches!(anonymous.status, 401 | 403),
        "{} {}",
        anonymous.status,
        anonymous.text()
    );
    let wrong = servers::get(&format!(
        "http://stash:wrong@127.0.0.1:{}/locked/config",
        server.port()
    ))
    .unwrap();
    assert!(
        matches!(wrong.status, 401 | 403),
        "{} {}",
        wrong.status,
        wrong.text()
    );

    let scratch = tempfile::tempdir().unwrap();
    let source = scratch.path().join("source");
    tree::write(&source.join("a.txt"), b"over REST");
    let restic = |args: &[&str]| {
        let out = restic::command(scratch.path())
            .arg("-r")
            .arg(server.url("locked"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "restic {args:?} failed:\n{}{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(server.log_path()).unwrap_or_default()
        );
        String::from_utf8(out.stdout).unwrap()
    };
    restic(&["init"]);
    restic(&["backup", source.to_str().unwrap()]);
    // forget --prune deletes files: the repository is not append-only.
    restic(&["backup", source.to_str().unwrap()]);
    restic(&["forget", "--keep-last", "1", "--prune"]);
    let snapshots = restic(&["snapshots", "--json"]);
    assert_eq!(snapshots.matches("\"id\"").count(), 1, "{snapshots}");
    restic(&["check", "--read-data"]);
    assert!(server.repo_dir("locked").join("config").is_file());
    server.assert_running();
}

#[test]
#[should_panic(expected = "was not declared")]
fn an_undeclared_rest_repository_is_a_clear_panic() {
    let server = RestServer::start(&Options::default().repo("one"));
    let _ = server.url("two");
}

#[test]
fn the_shared_s3_server_creates_buckets_and_stores_objects() {
    let server = s3::shared();
    assert!(
        std::ptr::eq(server, s3::shared()),
        "one server per test binary"
    );
    server.create_bucket("testenv");
    server.create_bucket("testenv"); // again: no error
    assert_eq!(
        server.repository("testenv", "/stash/demo"),
        format!("s3:http://127.0.0.1:{}/testenv/stash/demo", server.port())
    );
    let put = servers::request(
        "PUT",
        &format!("{}/testenv/dir/object.txt", server.endpoint()),
        &[],
        b"in the bucket",
    )
    .unwrap();
    assert!(put.is_success(), "{} {}", put.status, put.text());
    // (Reading it back needs a signed request: moto refuses anonymous object reads.)
    assert_eq!(server.list_objects("testenv"), vec!["dir/object.txt"]);
}

#[test]
fn restic_runs_with_the_test_password_and_its_own_cache() {
    let scratch = tempfile::tempdir().unwrap();
    let repo = scratch.path().join("repo");
    let out = restic::command(scratch.path())
        .arg("-r")
        .arg(&repo)
        .arg("init")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wrong = restic::command_with_password(scratch.path(), "not it")
        .arg("-r")
        .arg(&repo)
        .arg("snapshots")
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(!restic::version().is_empty());
}

#[test]
#[should_panic(expected = "is not installed but this test needs it: run `scripts/setup`")]
fn a_missing_tool_is_a_panic_with_the_install_command() {
    let _ = restic::require_tool("stash-testenv-no-such-tool", "apt-get install -y nothing");
}

fn copy_tree(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn tree_comparison_sees_content_mode_mtime_and_symlink_changes() {
    let scratch = tempfile::tempdir().unwrap();
    let original = scratch.path().join("original");
    tree::full(&original, false);
    let copy = scratch.path().join("copy");
    copy_tree(&original, &copy);
    tree::assert_same(&original, &copy);

    let differs = |change: &dyn Fn(&Path)| {
        let changed = scratch.path().join("changed");
        let _ = std::fs::remove_dir_all(&changed);
        copy_tree(&original, &changed);
        change(&changed);
        std::panic::catch_unwind(|| tree::assert_same(&original, &changed)).is_err()
    };
    assert!(differs(&|t| tree::write(
        &t.join("hello.txt"),
        b"hello, World\n"
    )));
    assert!(differs(&|t| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            t.join("modes/private"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }));
    assert!(differs(&|t| {
        let f = std::fs::File::options()
            .write(true)
            .open(t.join("hello.txt"))
            .unwrap();
        f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .unwrap();
    }));
    assert!(differs(&|t| {
        std::fs::remove_file(t.join("link-relative")).unwrap();
        std::os::unix::fs::symlink("empty-file", t.join("link-relative")).unwrap();
    }));
    assert!(differs(
        &|t| std::fs::remove_dir(t.join("empty-dir")).unwrap()
    ));

    let sparse = original.join("sparse.img");
    assert_eq!(std::fs::metadata(&sparse).unwrap().len(), 64 * 1024 * 1024);
    assert!(tree::allocated_bytes(&sparse) < 4 * 1024 * 1024);
    assert_eq!(tree::pseudo_random(3, 100), tree::pseudo_random(3, 100));
    assert_ne!(tree::pseudo_random(3, 100), tree::pseudo_random(4, 100));
}

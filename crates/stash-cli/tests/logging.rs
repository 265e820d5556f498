//! Logging as an operator reads it: `-v` turns the engine's and rustic's events on, `--log-format
//! json` makes one JSON object per line for a pod's log collector, and no secret ever appears.

mod support;

use support::{Scratch, ok, run, s3, tree};

const PASSWORD: &str = "pw-that-must-never-be-logged-7f3a";

fn stderr_of(cmd: &mut std::process::Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_trace_level_run_against_s3_never_logs_the_password_or_the_secret_key() {
    let s = Scratch::new();
    let server = s3::shared();
    server.create_bucket("logging");
    let repo = server.repository("logging", "secrets");
    let source = s.path("source");
    tree::full(&source, false);
    let secret_key = s3::env()
        .into_iter()
        .find(|(k, _)| *k == "AWS_SECRET_ACCESS_KEY")
        .expect("moto's secret key")
        .1;

    let mut logged = String::new();
    for args in [
        vec!["init"],
        vec!["backup", source.to_str().unwrap()],
        vec!["snapshots"],
        vec!["check"],
    ] {
        logged += &stderr_of(
            s.stash()
                .envs(s3::env())
                .env("RESTIC_PASSWORD", PASSWORD)
                .args(["-vvv", "-r", &repo])
                .args(&args),
        );
    }
    assert!(
        logged.lines().count() > 20,
        "trace logging is on:\n{logged}"
    );
    assert!(
        logged.contains("TRACE") || logged.contains("DEBUG"),
        "debug and trace events are shown:\n{logged}"
    );
    assert!(
        !logged.contains(PASSWORD),
        "the repository password leaked into the log"
    );
    assert!(
        !logged.contains(&secret_key),
        "the S3 secret key leaked into the log"
    );
}

#[test]
fn json_log_lines_are_one_object_each_with_level_and_message() {
    let s = Scratch::new();
    let repo = s.path("repo");
    ok(s.stash().arg("-r").arg(&repo).arg("init"));
    let logged = stderr_of(
        s.stash()
            .args(["-vv", "--log-format", "json", "-r"])
            .arg(&repo)
            .arg("snapshots"),
    );
    let lines: Vec<_> = logged.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "-vv logs something");
    for line in lines {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(event.get("level").is_some(), "a level: {line}");
        assert!(event.get("timestamp").is_some(), "a timestamp: {line}");
    }
}

#[test]
fn without_v_only_warnings_and_errors_are_logged() {
    let s = Scratch::new();
    let repo = s.path("repo");
    ok(s.stash().arg("-r").arg(&repo).arg("init"));
    let logged = stderr_of(s.stash().arg("-r").arg(&repo).arg("snapshots"));
    assert!(
        !logged.contains("INFO") && !logged.contains("DEBUG"),
        "quiet by default:\n{logged}"
    );
}

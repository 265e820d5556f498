//! Real servers on loopback, started once per test binary: an S3 server (moto) and restic's
//! REST server. Each runs under a small shell that kills it when our stdin pipe closes, i.e.
//! when the test process exits for any reason, so no server outlives its tests.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::require_tool;

pub struct Server {
    pub port: u16,
    _child: Mutex<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_until_listening(
    name: &str,
    program: &std::path::Path,
    args: &[String],
    log: &std::path::Path,
) -> Server {
    for _attempt in 0..3 {
        let port = free_port();
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{port}", &port.to_string()))
            .collect();
        let log_file = std::fs::File::create(log).unwrap();
        // `read` returns when the test process (holder of the pipe's write end) is gone.
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#""$@" & pid=$!; read _; kill $pid; wait $pid"#)
            .arg("sh")
            .arg(program)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {name}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Server {
                    port,
                    _child: Mutex::new(child),
                };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut child = child;
        let _ = child.kill();
    }
    panic!("{name} did not start listening; see {}", log.display());
}

fn log_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("stash-test-servers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A moto S3 server (`pip install 'moto[server]'`).
pub fn s3() -> &'static Server {
    static S3: OnceLock<Server> = OnceLock::new();
    S3.get_or_init(|| {
        let moto = require_tool("moto_server", "pip install 'moto[server]'");
        spawn_until_listening(
            "moto_server",
            &moto,
            &[
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                "{port}".into(),
            ],
            &log_dir().join("moto.log"),
        )
    })
}

/// Creates a bucket on the S3 server (moto accepts unsigned requests).
pub fn create_bucket(server: &Server, bucket: &str) {
    let response = reqwest::blocking::Client::new()
        .put(format!("http://127.0.0.1:{}/{bucket}", server.port))
        .send()
        .expect("create bucket");
    assert!(
        response.status().is_success(),
        "creating bucket {bucket} failed: {}",
        response.status()
    );
}

/// restic's rest-server (`go install github.com/restic/rest-server/cmd/rest-server@v0.13.0`).
pub fn rest() -> &'static Server {
    static REST: OnceLock<Server> = OnceLock::new();
    REST.get_or_init(|| {
        let binary = require_tool(
            "rest-server",
            "GOBIN=/usr/local/bin go install github.com/restic/rest-server/cmd/rest-server@v0.13.0",
        );
        let data = log_dir().join("rest-data");
        std::fs::create_dir_all(&data).unwrap();
        spawn_until_listening(
            "rest-server",
            &binary,
            &[
                "--path".into(),
                data.display().to_string(),
                "--listen".into(),
                "127.0.0.1:{port}".into(),
                "--no-auth".into(),
            ],
            &log_dir().join("rest-server.log"),
        )
    })
}

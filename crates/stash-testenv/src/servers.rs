//! What the loopback test servers ([`crate::s3`], [`crate::rest_server`], [`crate::pushgateway`])
//! share: a run directory each, a free port on 127.0.0.1, starting a process until it answers,
//! and a small blocking HTTP/1.1 client for talking to them.
//!
//! Servers are started through [`crate::process::Proc`], so they never outlive the test
//! process, and are stopped when their handle drops. The HTTP client only ever dials loopback
//! addresses: it refuses any other host.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::process::{Proc, Spec};

/// How long a server may take to answer after it was started (`STASH_TESTENV_START_TIMEOUT`
/// seconds, default 90: two busy cores can make a Python server slow to start).
#[must_use]
pub fn start_timeout() -> Duration {
    Duration::from_secs(
        std::env::var("STASH_TESTENV_START_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(90),
    )
}

/// A fresh directory `run-<pid>-<name>-XXXXXX` under `$STASH_TESTENV_DIR` (default
/// `$TMPDIR/stash-testenv`) for one server's data and log; removed when dropped. Directories
/// left by test processes that are gone are removed first.
pub fn run_dir(name: &str) -> tempfile::TempDir {
    let root = std::env::var_os("STASH_TESTENV_DIR")
        .map_or_else(|| std::env::temp_dir().join("stash-testenv"), PathBuf::from);
    std::fs::create_dir_all(&root)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", root.display()));
    remove_stale(&root);
    tempfile::Builder::new()
        .prefix(&format!("run-{}-{name}-", std::process::id()))
        .tempdir_in(&root)
        .unwrap_or_else(|e| panic!("cannot create a run directory in {}: {e}", root.display()))
}

fn remove_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("run-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
#[must_use]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0 for a free port")
}

/// How to start one server: `{port}` in `args` is replaced by the port chosen.
pub(crate) struct Launch<'a> {
    pub name: &'a str,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// `Some`: start with exactly this environment (plus nothing inherited).
    pub env: Option<Vec<(String, String)>>,
    pub log: PathBuf,
    /// An HTTP path that must answer 2xx before the server counts as up; `None`: a TCP
    /// connection is enough.
    pub ready_path: Option<&'a str>,
}

/// Starts the server on a free port and waits until it answers; retries on another port if
/// it exits first (the port may have been taken in between). Panics with the log otherwise.
pub(crate) fn launch(launch: &Launch<'_>) -> (Proc, u16) {
    let timeout = start_timeout();
    let mut last_exit = String::new();
    for _attempt in 0..3 {
        let port = free_port();
        let args: Vec<String> = launch
            .args
            .iter()
            .map(|a| a.replace("{port}", &port.to_string()))
            .collect();
        let mut spec = Spec::new(launch.name, &launch.program, &launch.log).args(args);
        if let Some(env) = &launch.env {
            spec.clear_env = true;
            spec.env.clone_from(env);
        }
        let proc = Proc::spawn(spec).unwrap_or_else(|e| {
            panic!(
                "failed to start {}: {}",
                launch.name,
                crate::error_chain(&e)
            )
        });
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = proc.try_wait() {
                last_exit = format!(
                    "{} exited with {status} before it answered on port {port}; last lines of {}:\n{}",
                    launch.name,
                    launch.log.display(),
                    proc.log_tail(30)
                );
                break;
            }
            if answers(port, launch.ready_path) {
                return (proc, port);
            }
            assert!(
                Instant::now() <= deadline,
                "{} did not answer on 127.0.0.1:{port} within {timeout:?}; last lines of {}:\n{}",
                launch.name,
                launch.log.display(),
                proc.log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("{last_exit}");
}

fn answers(port: u16, ready_path: Option<&str>) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
        return false;
    }
    match ready_path {
        None => true,
        Some(path) => get(&format!("http://127.0.0.1:{port}{path}")).is_ok_and(|r| r.is_success()),
    }
}

/// The log file and the proc's tail, for assertion messages.
pub(crate) fn describe(proc: &Proc) -> String {
    format!(
        "{} (pid {}), last lines of {}:\n{}",
        proc.name(),
        proc.pid(),
        proc.log_path().display(),
        proc.log_tail(20)
    )
}

/// A response of [`request`].
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    #[must_use]
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text (lossy UTF-8).
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header named `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET url`; see [`request`].
pub fn get(url: &str) -> std::io::Result<Response> {
    request("GET", url, &[], &[])
}

/// One blocking HTTP/1.1 request (`Connection: close`) to a loopback server.
///
/// `url` is `http://[user:password@]HOST:PORT/path`, where HOST must be `127.0.0.1`,
/// `localhost` or `[::1]`: anything else is refused with `InvalidInput`. Userinfo becomes a
/// basic `Authorization` header. Chunked and `Content-Length` bodies are read; a 30 s
/// timeout applies to each read and write. Safe to call from async code (it does not need or
/// start a runtime), though it blocks the thread.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_owned());
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid("only http:// URLs are supported"))?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = host_port
        .rsplit_once(':')
        .ok_or_else(|| invalid("the URL needs an explicit port"))?;
    let port: u16 = port.parse().map_err(|_| invalid("bad port in URL"))?;
    let ip: std::net::IpAddr = match host {
        "127.0.0.1" | "localhost" => [127, 0, 0, 1].into(),
        "[::1]" => std::net::Ipv6Addr::LOCALHOST.into(),
        other => {
            return Err(invalid(&format!(
                "refusing to dial {other}: test servers are on loopback only"
            )));
        }
    };
    let timeout = Duration::from_secs(30);
    let mut stream = TcpStream::connect_timeout(&SocketAddr::new(ip, port), timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;

    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(userinfo) = userinfo {
        let _ = write!(
            head,
            "Authorization: Basic {}\r\n",
            base64(userinfo.as_bytes())
        );
    }
    for (k, v) in headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;

    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw, method == "HEAD")
}

fn parse_response(raw: &[u8], head_only: bool) -> std::io::Result<Response> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of HTTP headers in the response"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("non-UTF-8 HTTP headers"))?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no HTTP status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if head_only {
        Vec::new()
    } else if chunked {
        let mut out = Vec::new();
        loop {
            let line_end = body
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("truncated chunk size"))?;
            let size_text =
                std::str::from_utf8(&body[..line_end]).map_err(|_| bad("chunk size"))?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("bad chunk size"))?;
            body = &body[line_end + 2..];
            if size == 0 {
                break;
            }
            if body.len() < size {
                return Err(bad("truncated chunk"));
            }
            out.extend_from_slice(&body[..size]);
            body = body.get(size + 2..).unwrap_or_default();
        }
        out
    } else if let Some(len) = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.get(..len)
            .ok_or_else(|| bad("truncated body"))?
            .to_vec()
    } else {
        body.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn chunked_and_sized_bodies_are_decoded() {
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n";
        let r = parse_response(chunked, false).unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
        let sized = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nX-A: b\r\n\r\nabcdef";
        let r = parse_response(sized, false).unwrap();
        assert_eq!((r.status, r.text().as_str()), (404, "abc"));
        assert_eq!(r.header("x-a"), Some("b"));
    }

    #[test]
    fn only_loopback_is_dialled() {
        let err = get("http://192.0.2.1:80/").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        let err = get("https://127.0.0.1:1/").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    }
}

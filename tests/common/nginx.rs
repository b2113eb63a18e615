//! Debian's real nginx (`/usr/sbin/nginx`, from `scripts/setup`) running the repository's
//! `nginx/nginx.conf` on loopback, for tests that go through the production front end.
//!
//! ```ignore
//! let layout = common::daemon::Layout::new();
//! let daemon = common::daemon::Daemon::start(&layout.config(""));
//! // nginx serves <hls_root> and sends the rest (API, playlists liveup makes) to the daemon:
//! let nginx = common::nginx::Nginx::start(&layout.hls, &daemon.url);
//! let playlist = format!("{}/hls/{job}/index.m3u8", nginx.url);
//! ```
//!
//! Each instance has its own prefix folder (config, logs, pid file, temp folders) and a free
//! port; nothing under `/etc/nginx` or `/var` is used, and a system nginx (if apt started one)
//! is left alone. The instance is stopped by the pid in its pid file when dropped, so also when
//! a test fails. `LIVEUP_TEST_NGINX` names another nginx binary.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::daemon::Reply;

/// The three placeholders of `nginx/nginx.conf`.
pub const LISTEN: &str = "__LISTEN__";
pub const HLS_ROOT: &str = "__HLS_ROOT__";
pub const UPSTREAM: &str = "__LIVEUP_UPSTREAM__";

pub fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

pub fn binary() -> PathBuf {
    std::env::var_os("LIVEUP_TEST_NGINX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"))
}

/// The stock `mime.types` that `include mime.types` reads (Debian's and the nginx image's).
pub fn stock_mime_types() -> PathBuf {
    PathBuf::from("/etc/nginx/mime.types")
}

/// `nginx/nginx.conf` with its placeholders replaced; panics if one is missing from the file
/// or any `__NAME__` token is left.
pub fn render(template: &str, listen: &str, hls_root: &Path, upstream: &str) -> String {
    let root = hls_root.to_str().expect("a UTF-8 path");
    assert!(
        !root.ends_with('/') && !root.contains(char::is_whitespace) && !root.contains(';'),
        "hls_root {root:?} must have no trailing slash, space or ';'"
    );
    for token in [LISTEN, HLS_ROOT, UPSTREAM] {
        assert!(template.contains(token), "nginx.conf lacks {token}");
    }
    let text = template
        .replace(LISTEN, listen)
        .replace(HLS_ROOT, root)
        .replace(UPSTREAM, upstream);
    let left: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter(|line| line.contains("__"))
        .collect();
    assert!(left.is_empty(), "placeholders left: {left:?}");
    text
}

/// A running nginx.
pub struct Nginx {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub port: u16,
    pub prefix: tempfile::TempDir,
    pub config: PathBuf,
    child: Child,
}

impl Nginx {
    /// Serves `hls_root` with `nginx/nginx.conf`; `upstream` is where `liveup serve` listens,
    /// `http://127.0.0.1:PORT` or `127.0.0.1:PORT` (a port where nothing listens is fine: what
    /// would go to liveup is then a 502).
    pub fn start(hls_root: &Path, upstream: &str) -> Nginx {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/');
        let template = std::fs::read_to_string(repo_file("nginx/nginx.conf")).unwrap();
        Nginx::start_config(|listen| render(&template, listen, hls_root, upstream))
    }

    /// Runs the configuration `config(listen)` makes for the address it is to listen on; it
    /// must answer `GET /health` with 200 once up.
    pub fn start_config(config: impl Fn(&str) -> String) -> Nginx {
        let mut last_error = String::new();
        // The free port is found by binding and releasing it, so another process may take it
        // in between: then try again.
        for _ in 0..5 {
            match Nginx::try_start(&config) {
                Ok(nginx) => return nginx,
                Err(error) => last_error = error,
            }
        }
        panic!("nginx did not start: {last_error}");
    }

    fn try_start(make_config: &impl Fn(&str) -> String) -> Result<Nginx, String> {
        let binary = binary();
        assert!(
            binary.is_file(),
            "{} is missing: scripts/setup installs nginx",
            binary.display()
        );
        let prefix = tempfile::tempdir().unwrap();
        for dir in ["conf", "logs", "temp"] {
            std::fs::create_dir_all(prefix.path().join(dir)).unwrap();
        }
        std::fs::copy(stock_mime_types(), prefix.path().join("conf/mime.types")).unwrap();
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let config = prefix.path().join("conf/nginx.conf");
        std::fs::write(&config, make_config(&listen)).unwrap();

        let error_log = prefix.path().join("logs/error.log");
        // As root, nginx's workers would otherwise switch to an unprivileged user that cannot
        // read a private temporary folder; without root the directive is ignored, so leave it.
        let globals = if running_as_root() {
            "daemon off; user root;"
        } else {
            "daemon off;"
        };
        let child = Command::new(&binary)
            .arg("-p")
            .arg(prefix.path())
            .arg("-c")
            .arg(&config)
            .arg("-e")
            .arg(&error_log)
            .args(["-g", globals])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let mut nginx = Nginx {
            url: format!("http://{listen}"),
            port,
            config,
            prefix,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                return Err(format!("exited with {status}: {}", nginx.error_log()));
            }
            // Listening (the master) is not yet serving (the workers): ask for /health.
            if nginx.pid_file().is_file()
                && TcpStream::connect(("127.0.0.1", port)).is_ok()
                && nginx.get("/health").status == 200
            {
                return Ok(nginx);
            }
            if Instant::now() > deadline {
                return Err(format!("not listening after 10 s: {}", nginx.error_log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid_file(&self) -> PathBuf {
        self.prefix.path().join("logs/nginx.pid")
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.prefix.path().join("logs/error.log")).unwrap_or_default()
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.prefix.path().join("logs/access.log")).unwrap_or_default()
    }

    /// The master's pid: from the pid file, else the child's (the same with `daemon off`).
    pub fn pid(&self) -> u32 {
        std::fs::read_to_string(self.pid_file())
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or_else(|| self.child.id())
    }

    /// One request over its own connection, the path sent exactly as given (no normalisation).
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        raw_request(&format!("127.0.0.1:{}", self.port), method, path, headers)
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[])
    }

    /// Fast shutdown (SIGTERM to the master, which stops its workers), then SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// HTTP/1.1 over a fresh connection with `Connection: close`; the body is read to the end (or
/// not at all for HEAD). Responses must not be chunked (nginx sends a length for files and for
/// its own answers).
pub fn raw_request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: no header end in {raw:?}"));
    let text = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: bad status line in {text:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    assert!(
        !headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding")
                && v.eq_ignore_ascii_case("chunked")),
        "{method} {path}: chunked answers are not decoded here"
    );
    let bytes = raw[end + 4..].to_vec();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
    }
}

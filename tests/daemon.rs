//! `liveup serve` as Jellyfin and operators use it, on loopback, with real ffmpeg and the real
//! model; only Jellyfin itself is a stub.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::daemon::{processes_mentioning, request, Daemon, JellyfinStub, Layout};
use common::{facts, Clip};
use liveup::hls::MediaPlaylist;

/// The Jellyfin item the stub knows, as its API writes ids.
const ITEM: &str = "0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5";

fn clip(layout: &Layout, name: &str, seconds: f64) -> std::path::PathBuf {
    Clip {
        seconds,
        ..Clip::default()
    }
    .make(&layout.media.join(name))
}

#[test]
fn every_webhook_form_reaches_one_job_that_streams_and_completes() {
    let layout = Layout::new();
    let film = clip(&layout, "Big Film (2020).mkv", 2.0);
    let jellyfin = JellyfinStub::start(vec![(ITEM.into(), film.clone(), "Movie")], "secret-key");
    let config = layout.config(&format!(
        "jellyfin_url = \"{}\"\njellyfin_api_key = \"secret-key\"",
        jellyfin.url
    ));
    let daemon = Daemon::start(&config);

    let seed = format!(r#"{{"Item":{{"Path":{:?},"Name":"Big Film"}}}}"#, film);
    let first = daemon.post("/upscale-trigger", seed.as_bytes());
    assert_eq!(first.status, 200, "{}", first.body);
    let first = first.json();
    assert!(
        ["started", "queued"].contains(&first["status"].as_str().unwrap()),
        "{first}"
    );
    assert_eq!(first["streaming"], true);
    assert!(first["estimated_delay_seconds"].as_f64().unwrap() >= 0.0);
    let id = first["job_id"].as_str().unwrap().to_string();
    assert_eq!(
        first["hls_url"],
        format!("{}/hls/{id}/stream.m3u8", daemon.url),
        "hls_url is built from public_url"
    );

    let plain = daemon.trigger_path(&film);
    // What the Webhook plugin sends from a template with `"Name": "{{Name}}"` (double-stash)
    // for a title with quotes: its hyphenated `{{ItemId}}`, and `\&quot;` for each quote.
    let plugin = daemon.post(
        "/upscale-trigger",
        br#"{"NotificationType":"PlaybackStart","ItemId":"0c1d2e3f-4a5b-46c7-d8e9-f0a1b2c3d4e5","Name":"Big \&quot;Film\&quot;","ItemType":"Movie","NotificationUsername":"anna"}"#,
    );
    assert_eq!(plugin.status, 200, "{}", plugin.body);
    assert_eq!(plain["job_id"], id.as_str());
    assert_eq!(plugin.json()["job_id"], id.as_str());
    let asked = jellyfin.requests.lock().unwrap().join("\n");
    assert!(
        asked.contains(
            "GET /Items?ids=0c1d2e3f-4a5b-46c7-d8e9-f0a1b2c3d4e5&fields=Path,MediaSources"
        ),
        "{asked}"
    );
    assert!(
        asked.contains("MediaBrowser Token=\"secret-key\""),
        "{asked}"
    );

    let job = daemon.wait_complete(&id);
    assert_eq!(job["segments"], 2);
    assert_eq!(job["progress"], 1.0);
    let status = daemon.get("/hls-status/Big%20Film%20(2020).mkv");
    assert_eq!(status.status, 200, "{}", status.body);
    let status = status.json();
    assert_eq!(status["status"], "complete");
    assert_eq!(status["complete"], true);
    assert_eq!(status["segments"], 2);
    assert!(
        (status["duration_seconds"].as_f64().unwrap() - 2.0).abs() < 0.1,
        "{status}"
    );

    let playlist = daemon.get(&format!("/hls/{id}/stream.m3u8"));
    assert_eq!(playlist.status, 200);
    assert_eq!(
        playlist.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(playlist.header("cache-control"), Some("no-cache"));
    assert_eq!(playlist.header("access-control-allow-origin"), Some("*"));
    let parsed = MediaPlaylist::parse(&playlist.body).unwrap();
    assert!(parsed.ended);
    let segment = daemon.get(&format!("/hls/{id}/{}", parsed.segments[0].uri));
    assert_eq!(segment.status, 200);
    assert_eq!(segment.header("content-type"), Some("video/mp2t"));
    assert_eq!(
        segment.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(daemon.get(&format!("/hls/{id}/job.json")).status, 404);
    assert_eq!(daemon.get("/hls/../../etc/passwd").status, 404);

    let output = layout.output.join("Big Film (2020).upscaled.mp4");
    assert_eq!(job["output"], output.to_str().unwrap());
    let out = facts(&output);
    assert_eq!((out.width, out.frames), (192, 20));
    assert!((out.video_seconds - 2.0).abs() <= 0.1);
    assert!(out.has_audio);
    // An MP4 with its index first: a player starts it without reading to the end.
    let boxes = top_level_boxes(&std::fs::read(&output).unwrap());
    let at = |kind: &str| boxes.iter().position(|b| b == kind);
    assert!(at("moov").unwrap() < at("mdat").unwrap(), "{boxes:?}");

    let health = daemon.get("/health").json();
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["device"], "CPU");
    assert_eq!(health["onnxruntime_version"], "1.31.1");
    assert!(
        health["ffmpeg_version"].as_str().unwrap().starts_with('5')
            || health["ffmpeg_version"].as_str().unwrap().starts_with('6')
            || health["ffmpeg_version"].as_str().unwrap().starts_with('7')
    );
    assert_eq!(health["streaming_enabled"], true);
    // What `liveup doctor` says, taken at start.
    let checks = health["checks"].as_array().unwrap();
    let check = |name: &str| checks.iter().find(|c| c["name"] == name).unwrap().clone();
    assert_eq!(check("device")["ok"], true);
    assert_eq!(check("ffmpeg")["ok"], true);
    assert!(check("NVIDIA driver")["detail"].is_string());

    let metrics = daemon.get("/metrics");
    assert!(metrics
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.body;
    assert!(text.contains("liveup_jobs{state=\"complete\"} 1"), "{text}");
    assert!(text.contains("liveup_frames_total 20"), "{text}");
    assert!(text.contains("liveup_segments_total 2"), "{text}");
    assert!(
        text.contains("liveup_device_jobs_running{device=\"cpu\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("liveup_http_requests_total{route=\"/upscale-trigger\",code=\"200\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("route=\"/hls/{job}/{file}\",code=\"404\""),
        "{text}"
    );
}

#[test]
fn events_and_items_that_are_not_for_upscaling_are_acknowledged_and_ignored() {
    let layout = Layout::new();
    let daemon = Daemon::start(&layout.config(""));
    for body in [
        &br#"{"NotificationType":"PlaybackStop","ItemId":"0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5","ItemType":"Movie"}"#[..],
        br#"{"NotificationType":"PlaybackStart","ItemId":"0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5","ItemType":"Audio"}"#,
    ] {
        let reply = daemon.post("/upscale-trigger", body);
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.json()["status"], "ignored");
    }
    assert_eq!(
        daemon.get("/api/jobs").json()["jobs"],
        serde_json::json!([])
    );
}

#[test]
fn bad_requests_get_clear_errors() {
    let layout = Layout::new();
    let film = clip(&layout, "film.mkv", 1.0);
    let outside = layout.dir.path().join("private");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.mkv"), b"not for you").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.mkv"), layout.media.join("link.mkv")).unwrap();
    let daemon = Daemon::start(&layout.config(""));

    let error = |body: &[u8]| {
        let reply = daemon.post("/upscale-trigger", body);
        (reply.status, reply.json())
    };
    let (status, body) = error(b"{not json");
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("JSON"), "{body}");
    let (status, body) = error(br#"{"Item":{"Name":"no path"}}"#);
    assert_eq!(status, 400, "{body}");
    // The size is refused from Content-Length alone, before the body: sending the body too
    // would race the server closing the connection.
    let oversized = {
        use std::io::{Read, Write};
        let address = daemon.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(
            stream,
            "POST /upscale-trigger HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\n\r\n",
            65 * 1024
        )
        .unwrap();
        let mut answer = [0u8; 12];
        stream.read_exact(&mut answer).unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    };
    assert_eq!(oversized, "HTTP/1.1 413");
    let path = |p: &Path| serde_json::json!({ "path": p }).to_string().into_bytes();
    assert_eq!(error(&path(&layout.media.join("missing.mkv"))).0, 404);
    assert_eq!(
        error(&path(&layout.media.join("../private/secret.mkv"))).0,
        403
    );
    assert_eq!(error(&path(&layout.media.join("link.mkv"))).0, 403);
    assert_eq!(error(&path(Path::new("/etc/passwd"))).0, 403);
    assert_eq!(error(br#"{"path":"film.mkv"}"#).0, 400);
    let (status, body) =
        error(br#"{"NotificationType":"PlaybackStart","ItemId":"0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5","ItemType":"Movie"}"#);
    assert_eq!(status, 501, "no Jellyfin configured: {body}");
    assert_eq!(body["error"], "jellyfin_not_configured");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("jellyfin_url") && message.contains("jellyfin_api_key"));
    assert_eq!(daemon.get("/api/jobs/nope").status, 404);
    assert_eq!(
        daemon.get("/hls-status/unknown.mkv").json()["status"],
        "not_found"
    );
    assert!(film.exists());
}

#[test]
fn beyond_loopback_the_control_endpoints_need_the_token() {
    let layout = Layout::new();
    let config = layout.config("");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("127.0.0.1:0", "0.0.0.0:0");
    std::fs::write(&config, text + "token = \"s3cret\"\n").unwrap();
    let daemon = Daemon::start(&config);
    let port = daemon.url.rsplit(':').next().unwrap().to_string();
    let base = format!("http://127.0.0.1:{port}");
    let body =
        br#"{"NotificationType":"PlaybackStop","ItemId":"0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5"}"#;
    let post =
        |url: String, headers: &[(&str, &str)]| request("POST", &url, headers, Some(body)).status;
    assert_eq!(post(format!("{base}/upscale-trigger"), &[]), 401);
    assert_eq!(
        post(
            format!("{base}/upscale-trigger"),
            &[("X-Liveup-Token", "wrong")]
        ),
        401
    );
    assert_eq!(
        post(
            format!("{base}/upscale-trigger"),
            &[("X-Liveup-Token", "s3cret")]
        ),
        200
    );
    assert_eq!(
        post(format!("{base}/upscale-trigger?token=s3cret"), &[]),
        200
    );
    assert_eq!(
        request("GET", &format!("{base}/api/jobs"), &[], None).status,
        401
    );
    assert_eq!(
        request("GET", &format!("{base}/health"), &[], None).status,
        200
    );

    let without_token = layout.config("");
    let text = std::fs::read_to_string(&without_token)
        .unwrap()
        .replace("127.0.0.1:0", "0.0.0.0:0");
    std::fs::write(&without_token, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_liveup"))
        .args(["serve", "--config"])
        .arg(&without_token)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("set `token`"));
}

#[test]
fn fifty_simultaneous_triggers_make_one_job() {
    let layout = Layout::new();
    let film = clip(&layout, "popular.mkv", 1.0);
    let daemon = Daemon::start(&layout.config(""));
    let body = serde_json::json!({ "path": film }).to_string();
    let url = format!("{}/upscale-trigger", daemon.url);
    let ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..50)
            .map(|_| {
                let (url, body) = (url.clone(), body.clone());
                scope.spawn(move || {
                    let reply = request("POST", &url, &[], Some(body.as_bytes()));
                    assert_eq!(reply.status, 200, "{}", reply.body);
                    reply.json()["job_id"].as_str().unwrap().to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(ids.iter().all(|id| id == &ids[0]));
    assert_eq!(
        daemon.get("/api/jobs").json()["jobs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    daemon.wait_complete(&ids[0]);
}

#[test]
fn playback_jobs_jump_the_queue_and_cancel_stops_a_job() {
    let layout = Layout::new();
    let first = clip(&layout, "first.mkv", 3.0);
    let library = clip(&layout, "library.mkv", 1.0);
    let playback = clip(&layout, "playback.mkv", 1.0);
    let jellyfin = JellyfinStub::start(
        vec![(
            "11aa22bb33cc44dd55ee66ff77889900".into(),
            library.clone(),
            "Episode",
        )],
        "k",
    );
    let config = layout.config(&format!(
        "max_jobs = 1\njellyfin_url = \"{}\"\njellyfin_api_key = \"k\"",
        jellyfin.url
    ));
    let daemon = Daemon::start(&config);
    let running = daemon.trigger_path(&first)["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let added = daemon.post(
        "/upscale-trigger",
        br#"{"NotificationType":"ItemAdded","ItemId":"11aa22bb33cc44dd55ee66ff77889900","ItemType":"Episode"}"#,
    );
    assert_eq!(added.status, 200, "{}", added.body);
    let library_id = added.json()["job_id"].as_str().unwrap().to_string();
    let playback_id = daemon.trigger_path(&playback)["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        daemon.get(&format!("/api/jobs/{library_id}")).json()["state"],
        "queued"
    );
    assert_eq!(
        daemon.get(&format!("/api/jobs/{library_id}")).json()["priority"],
        "library"
    );

    let cancelled = request(
        "DELETE",
        &format!("{}/api/jobs/{running}", daemon.url),
        &[],
        None,
    );
    assert_eq!(cancelled.status, 200);
    let job = daemon.wait_job(&running, Duration::from_secs(60), |j| {
        j["state"] == "cancelled"
    });
    assert!(!Path::new(job["output"].as_str().unwrap()).exists());
    assert!(
        processes_mentioning(first.to_str().unwrap()).is_empty(),
        "ffmpeg children reaped"
    );

    // The playback job, asked for after the library one, runs first.
    let playback_job = daemon.wait_job(&playback_id, Duration::from_secs(60), |j| {
        j["state"] != "queued"
    });
    assert_eq!(playback_job["state"], "running");
    assert_eq!(
        daemon.get(&format!("/api/jobs/{library_id}")).json()["state"],
        "queued"
    );
    daemon.wait_complete(&playback_id);
    daemon.wait_complete(&library_id);
}

#[test]
fn a_daemon_killed_mid_job_resumes_from_its_last_segment_after_a_restart() {
    let layout = Layout::new();
    let film = clip(&layout, "long film.mkv", 6.0);
    let config = layout.config("");
    let mut daemon = Daemon::start(&config);
    let id = daemon.trigger_path(&film)["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    daemon.wait_job(&id, Duration::from_secs(120), |j| {
        j["segments"].as_u64() >= Some(2)
    });
    daemon.kill9();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        processes_mentioning(film.to_str().unwrap()).is_empty(),
        "no ffmpeg outlives the daemon"
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.hls.join(&id).join("job.json")).unwrap())
            .unwrap();
    assert_eq!(saved["state"], "running");
    let before = liveup::job_dir::JobDir::at(layout.hls.join(&id))
        .segments_on_disk()
        .len();
    assert!((2..6).contains(&before), "{before}");

    let daemon = Daemon::start(&config);
    let job = daemon.wait_complete(&id);
    assert_eq!(job["resumes"], 1);
    assert!(
        daemon.log().contains("picked up 1 unfinished job"),
        "{}",
        daemon.log()
    );
    let playlist =
        MediaPlaylist::parse(&daemon.get(&format!("/hls/{id}/stream.m3u8")).body).unwrap();
    let names: Vec<String> = playlist.segments.iter().map(|s| s.uri.clone()).collect();
    let expected: Vec<String> = (0..6).map(liveup::job_dir::segment_name).collect();
    assert_eq!(names, expected, "no segment lost or made twice");
    let output = Path::new(job["output"].as_str().unwrap());
    let out = facts(output);
    assert_eq!(out.frames, 60);
    assert!((out.video_seconds - 6.0).abs() <= 0.1, "{out:?}");
    let mut times = common::video_frame_times(output);
    times.sort_by(f64::total_cmp);
    for pair in times.windows(2) {
        assert!(
            (pair[1] - pair[0] - 0.1).abs() < 0.002,
            "timestamps jump: {pair:?}"
        );
    }
}

#[test]
fn sigterm_stops_every_ffmpeg_and_keeps_the_job_for_the_next_start() {
    let layout = Layout::new();
    let film = clip(&layout, "film; $(touch pwned) 'quoted'.mkv", 4.0);
    let config = layout.config("");
    let mut daemon = Daemon::start(&config);
    let id = daemon.trigger_path(&film)["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    daemon.wait_job(&id, Duration::from_secs(120), |j| {
        j["segments"].as_u64() >= Some(1)
    });
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}\n{}", daemon.log());
    assert!(processes_mentioning(layout.media.to_str().unwrap()).is_empty());
    assert!(!layout.media.join("pwned").exists() && !Path::new("pwned").exists());
    let daemon = Daemon::start(&config);
    let job = daemon.wait_complete(&id);
    let output = Path::new(job["output"].as_str().unwrap());
    assert_eq!(facts(output).frames, 40);
}

#[test]
fn a_film_dropped_into_a_watched_folder_is_queued_once_it_stops_growing() {
    let layout = Layout::new();
    let incoming = layout.media.join("incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    let config = layout.config(&format!("watch_dirs = [{:?}]", incoming));
    let daemon = Daemon::start(&config);
    let staged = clip(&layout, "staged.mkv", 1.0);
    std::fs::write(incoming.join("notes.txt"), b"not a film").unwrap();
    std::fs::copy(&staged, incoming.join("New Film.mkv.part")).unwrap();
    std::fs::rename(
        incoming.join("New Film.mkv.part"),
        incoming.join("New Film.mkv"),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let job = loop {
        let jobs = daemon.get("/api/jobs").json()["jobs"]
            .as_array()
            .unwrap()
            .clone();
        if let Some(job) = jobs.into_iter().find(|j| j["name"] == "New Film") {
            break job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(job["priority"], "library");
    daemon.wait_complete(job["id"].as_str().unwrap());
    assert_eq!(
        daemon.get("/api/jobs").json()["jobs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn bad_configuration_stops_start_up_naming_the_key() {
    let layout = Layout::new();
    let config = layout.config("segmnet_time = 4");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_liveup"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("segmnet_time"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_liveup"))
        .args(["serve", "--config"])
        .arg(layout.config(""))
        .env("LIVEUP_MAX_JOBS", "zero")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("LIVEUP_MAX_JOBS"));
}

/// Jellyfin in another container sees the library as `/jellyfin-media`: its API's paths and the
/// paths in webhook bodies are mapped to liveup's folder by `path_map`.
#[test]
fn jellyfins_paths_are_mapped_to_liveups_folders() {
    let layout = Layout::new();
    let film = clip(&layout, "Mapped (2021).mkv", 1.0);
    let seen_by_jellyfin = Path::new("/jellyfin-media/Mapped (2021).mkv");
    let jellyfin = JellyfinStub::start(
        vec![(ITEM.into(), seen_by_jellyfin.to_path_buf(), "Movie")],
        "k",
    );
    let config = layout.config(&format!(
        "jellyfin_url = \"{}\"\njellyfin_api_key = \"k\"\npath_map = [\"/jellyfin-media:{}\"]",
        jellyfin.url,
        layout.media.display()
    ));
    let daemon = Daemon::start(&config);

    let by_item = daemon.post(
        "/upscale-trigger",
        format!(r#"{{"NotificationType":"PlaybackStart","ItemId":"{ITEM}","ItemType":"Movie"}}"#)
            .as_bytes(),
    );
    assert_eq!(by_item.status, 200, "{}", by_item.body);
    let id = by_item.json()["job_id"].as_str().unwrap().to_string();
    let by_path = daemon.trigger_path(seen_by_jellyfin);
    assert_eq!(by_path["job_id"], id.as_str(), "the same film, one job");
    let job = daemon.wait_complete(&id);
    assert_eq!(job["source"], film.to_str().unwrap());

    // A path under no mapped folder stays as it is: outside the media roots.
    let unmapped = daemon.post(
        "/upscale-trigger",
        br#"{"path":"/elsewhere/Mapped (2021).mkv"}"#,
    );
    assert_eq!(unmapped.status, 403, "{}", unmapped.body);
}

/// The kinds of an MP4 file's top-level boxes, in order.
fn top_level_boxes(bytes: &[u8]) -> Vec<String> {
    let mut kinds = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        kinds.push(String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned());
        let size = match size {
            1 => u64::from_be_bytes(bytes[at + 8..at + 16].try_into().unwrap()) as usize,
            0 => bytes.len() - at,
            size => size,
        };
        at += size.max(8);
    }
    kinds
}

/// A job says whether a viewer starting now would catch up with the upscaler, once its first
/// frames have measured the rate, and when the whole film should be ready: the AI model on this
/// CPU makes a few frames a second of a 320×180 film at 24 fps (not live), Lanczos makes hundreds
/// of a 96×54 one (live).
#[test]
fn a_job_says_whether_a_viewer_starting_now_would_catch_up() {
    let layout = Layout::new();
    let film = Clip {
        width: 320,
        height: 180,
        rate: 24,
        seconds: 60.0,
        ..Clip::default()
    }
    .make(&layout.media.join("film.mkv"));
    let daemon = Daemon::start(&layout.config(""));
    let id = daemon.trigger_path(&film)["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let job = daemon.wait_job(&id, Duration::from_secs(120), |j| !j["live"].is_null());
    let rate = job["rate"].as_f64().unwrap();
    assert_eq!(job["live"], false, "{job}");
    assert!(rate > 0.0 && rate < 1.0, "{job}");
    let now = liveup::jobs::now_seconds();
    let ready_at = job["ready_at"].as_u64().expect("ready_at while running");
    assert!(ready_at > now + 60, "60 s of film at {rate:.3}x: {job}");
    let cancelled = request(
        "DELETE",
        &format!("{}/api/jobs/{id}", daemon.url),
        &[],
        None,
    );
    assert_eq!(cancelled.status, 200);
    let done = daemon.wait_job(&id, Duration::from_secs(60), |j| j["state"] == "cancelled");
    assert!(done["live"].is_null(), "{done}");
    drop(daemon);

    let layout = Layout::new();
    let small = Clip {
        rate: 24,
        seconds: 60.0,
        ..Clip::default()
    }
    .make(&layout.media.join("small.mkv"));
    let lanczos = Daemon::start(&layout.config("model = \"lanczos\""));
    let id = lanczos.trigger_path(&small)["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let job = lanczos.wait_job(&id, Duration::from_secs(120), |j| !j["live"].is_null());
    assert_eq!(job["live"], true, "{job}");
    let job = lanczos.wait_complete(&id);
    assert_eq!(job["live"], true, "{job}");
}

#[test]
fn a_job_that_cannot_keep_up_streams_from_a_stand_in_that_writes_no_final_file() {
    let layout = Layout::new();
    let film = Clip {
        width: 320,
        height: 180,
        rate: 24,
        seconds: 15.0,
        ..Clip::default()
    }
    .make(&layout.media.join("film.mkv"));
    let daemon = Daemon::start(&layout.config("live_fallback_model = \"lanczos\""));
    let id = daemon.trigger_path(&film)["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let job = daemon.wait_job(&id, Duration::from_secs(120), |j| {
        j["stand_in"].is_object() || j["state"] != "running" && j["state"] != "queued"
    });
    assert_eq!(
        job["live"], false,
        "the AI model on 320x180 is slower than the film: {job}"
    );
    let stand_in = &job["stand_in"];
    assert_eq!(stand_in["model"], "lanczos", "{job}");
    let stand_in_id = stand_in["job_id"].as_str().unwrap().to_string();
    assert_ne!(stand_in_id, id);
    assert!(
        stand_in["hls_url"].as_str().unwrap().contains(&stand_in_id),
        "{job}"
    );

    let quick = daemon.wait_complete(&stand_in_id);
    assert_eq!(quick["model"], "lanczos");
    assert_eq!(quick["stand_in_for"], id.as_str());
    assert_eq!(
        quick["output_ready"], false,
        "a stand-in has no final file: {quick}"
    );
    let playlist = request(
        "GET",
        &format!("{}/hls/{stand_in_id}/index.m3u8", daemon.url),
        &[],
        None,
    );
    assert_eq!(playlist.status, 200);
    assert!(
        playlist.body.contains("#EXT-X-ENDLIST"),
        "{}",
        playlist.body
    );
    // 15 s of film at under 1x: the film's own job is still running, its final file not there,
    // and nothing stands under that name.
    let output = PathBuf::from(job["output"].as_str().unwrap());
    let film_job = request("GET", &format!("{}/api/jobs/{id}", daemon.url), &[], None).json();
    assert_eq!(film_job["state"], "running", "{film_job}");
    assert_eq!(film_job["model"], job["model"]);
    assert!(!output.exists() && !output.with_extension("mp4.partial").exists());
    // Exactly two jobs: the stand-in was started once, however many segments landed after.
    let jobs = request("GET", &format!("{}/api/jobs", daemon.url), &[], None).json();
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 2, "{jobs}");
    let cancelled = request(
        "DELETE",
        &format!("{}/api/jobs/{id}", daemon.url),
        &[],
        None,
    );
    assert_eq!(cancelled.status, 200);
}

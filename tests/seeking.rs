//! Seeking ahead of the upscaler, throttling and viewer sessions, against the real daemon.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::daemon::{request, Daemon, Layout};
use common::{facts, Clip};
use liveup::hls::MediaPlaylist;

fn film(layout: &Layout, name: &str, seconds: f64) -> std::path::PathBuf {
    Clip {
        seconds,
        ..Clip::default()
    }
    .make(&layout.media.join(name))
}

/// GET a segment the way hls.js does: a 503 is retried after its Retry-After.
fn get_segment(daemon: &Daemon, path: &str) -> common::daemon::Reply {
    let started = Instant::now();
    loop {
        let reply = daemon.get(path);
        if reply.status != 503 || started.elapsed() > Duration::from_secs(120) {
            return reply;
        }
        assert_eq!(reply.header("retry-after"), Some("2"));
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn cpu_seconds(pid: u32) -> f64 {
    let mut total = 0.0;
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
            + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        total += ticks / 100.0;
    }
    total
}

#[test]
fn a_far_seek_restarts_the_encoder_there_and_every_segment_is_made_once() {
    let layout = Layout::new();
    let source = film(&layout, "long.mkv", 16.0);
    let daemon = Daemon::start(&layout.config("jit_restart_seconds = 4"));
    let id = daemon.trigger_path(&source)["job_id"]
        .as_str()
        .unwrap()
        .to_string();

    let index = daemon.get(&format!("/hls/{id}/index.m3u8"));
    assert_eq!(index.status, 200);
    assert_eq!(
        index.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    assert_eq!(index.header("access-control-allow-origin"), Some("*"));
    let vod = MediaPlaylist::parse(&index.body).unwrap();
    assert_eq!(vod.playlist_type.as_deref(), Some("VOD"));
    assert!(
        vod.ended,
        "the whole film is listed from the first request on"
    );
    assert_eq!(vod.segments.len(), 16);
    assert_eq!(vod.target_duration, 1);

    let asked = Instant::now();
    let far = get_segment(
        &daemon,
        &format!("/hls/{id}/segment_00012.ts?session=seeker"),
    );
    let served_after = asked.elapsed();
    assert_eq!(far.status, 200, "{}", far.body);
    assert_eq!(far.header("content-type"), Some("video/mp2t"));
    println!(
        "far seek: segment 12 served {:.2} s after it was asked for",
        served_after.as_secs_f64()
    );

    let job = daemon.wait_complete(&id);
    let metrics = daemon.get("/metrics").body;
    assert!(
        !metrics.contains("liveup_restarts_total 0"),
        "a restart happened: {metrics}"
    );
    let dir = layout.hls.join(&id);
    let made = liveup::job_dir::JobDir::at(&dir).segments_on_disk();
    assert_eq!(made.range(..16).count(), 16);
    let first_after_jump = common::video_frame_times(&dir.join("segment_00012.ts"));
    let last_before_jump = common::video_frame_times(&dir.join("segment_00011.ts"));
    assert!(
        (first_after_jump[0] - 12.0).abs() < 0.002,
        "{first_after_jump:?}"
    );
    assert!(
        (last_before_jump.last().unwrap() - 11.9).abs() < 0.002,
        "{last_before_jump:?}"
    );

    let output = Path::new(job["output"].as_str().unwrap());
    let out = facts(output);
    assert_eq!(out.frames, 160, "no frame made twice or lost");
    let mut times = common::video_frame_times(output);
    times.sort_by(f64::total_cmp);
    assert!(times.windows(2).all(|p| (p[1] - p[0] - 0.1).abs() < 0.002));
    let errors = common::decode_errors(output);
    assert!(errors.is_empty(), "the seams decode cleanly: {errors}");
    for index in [11, 12] {
        let segment = dir.join(liveup::job_dir::segment_name(index));
        let start = |kind| {
            common::packets(&segment, kind)
                .iter()
                .map(|p| p.pts)
                .fold(f64::INFINITY, f64::min)
        };
        let (video, audio) = (start("v"), start("a"));
        assert!(
            (video - audio).abs() <= 0.1,
            "segment {index}: video at {video}, audio at {audio}"
        );
    }
}

#[test]
fn ffmpeg_can_seek_far_into_the_index_playlist_while_it_is_being_made() {
    let layout = Layout::new();
    let source = film(&layout, "seekable.mkv", 12.0);
    let daemon = Daemon::start(&layout.config("jit_restart_seconds = 3"));
    let id = daemon.trigger_path(&source)["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-ss", "9", "-i"])
        .arg(format!("{}/hls/{id}/index.m3u8", daemon.url))
        .args(["-t", "2", "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "ffmpeg read 9 s..11 s after {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let sessions = daemon.get("/api/sessions").json();
    assert!(sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["job_id"] == id.as_str()));
}

#[test]
fn a_segment_that_cannot_arrive_in_time_gets_503_with_retry_after_never_404() {
    let layout = Layout::new();
    let busy = film(&layout, "busy.mkv", 8.0);
    let waiting = film(&layout, "waiting.mkv", 3.0);
    let daemon = Daemon::start(&layout.config("max_jobs = 1\nsegment_wait_seconds = 1"));
    daemon.trigger_path(&busy);
    let id = daemon.trigger_path(&waiting)["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let asked = Instant::now();
    let reply = daemon.get(&format!("/hls/{id}/segment_00001.ts"));
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.header("retry-after"), Some("2"));
    assert!(
        asked.elapsed() >= Duration::from_millis(900),
        "it waited first"
    );
    assert_eq!(
        daemon.get(&format!("/hls/{id}/segment_00099.ts")).status,
        404,
        "beyond the film"
    );
}

#[test]
fn a_job_far_ahead_of_its_viewer_pauses_and_resumes_at_the_next_request() {
    let layout = Layout::new();
    let source = film(&layout, "throttled.mkv", 30.0);
    let daemon = Daemon::start(&layout.config("throttle_ahead_seconds = 2"));
    let warm = daemon.post(
        "/api/warmup?session=tv",
        serde_json::json!({ "path": source }).to_string().as_bytes(),
    );
    assert_eq!(warm.status, 200, "{}", warm.body);
    let warm = warm.json();
    let id = warm["job_id"].as_str().unwrap().to_string();
    assert!(warm["session_id"].as_str().unwrap().starts_with('s'));
    let first = get_segment(&daemon, &format!("/hls/{id}/segment_00000.ts?session=tv"));
    assert_eq!(first.status, 200);

    daemon.wait_job(&id, Duration::from_secs(60), |j| j["throttled"] == true);
    // Let the frames already in flight drain, then measure.
    std::thread::sleep(Duration::from_millis(1500));
    let job = daemon.get(&format!("/api/jobs/{id}")).json();
    let paused_at = job["segments"].as_u64().unwrap();
    assert!(paused_at <= 6, "paused a little past 2 s ahead: {job}");
    let cpu_before = cpu_seconds(daemon.pid());
    std::thread::sleep(Duration::from_secs(2));
    let cpu_used = cpu_seconds(daemon.pid()) - cpu_before;
    println!("while throttled the daemon used {cpu_used:.3} s of CPU in 2 s");
    assert!(cpu_used < 0.25, "{cpu_used}");
    assert_eq!(
        daemon.get(&format!("/api/jobs/{id}")).json()["segments"],
        paused_at
    );

    let asked = Instant::now();
    std::thread::scope(|scope| {
        let later = scope.spawn(|| {
            get_segment(&daemon, &format!("/hls/{id}/segment_00003.ts?session=tv")).status
        });
        daemon.wait_job(&id, Duration::from_secs(1), |j| j["throttled"] == false);
        let resumed_after = asked.elapsed();
        daemon.wait_job(&id, Duration::from_secs(30), |j| {
            j["segments"].as_u64() > Some(paused_at)
        });
        println!(
            "resumed {:.3} s after the request; a new segment {:.2} s after it",
            resumed_after.as_secs_f64(),
            asked.elapsed().as_secs_f64()
        );
        assert_eq!(later.join().unwrap(), 200);
    });
    let sessions = daemon.get("/api/sessions").json();
    assert_eq!(
        sessions["sessions"].as_array().unwrap().len(),
        1,
        "{sessions}"
    );
    let tv = &sessions["sessions"][0];
    assert_eq!(tv["viewer"], "tv");
    assert_eq!(tv["furthest_segment"], 3);
    let metrics = daemon.get("/metrics").body;
    assert!(metrics.contains("liveup_sessions 1"), "{metrics}");
    assert!(
        !metrics.contains("liveup_throttled_seconds_total 0.000"),
        "{metrics}"
    );
}

#[test]
fn a_playback_job_whose_last_viewer_left_stops_and_keeps_its_segments() {
    let layout = Layout::new();
    let source = film(&layout, "abandoned.mkv", 30.0);
    let daemon = Daemon::start(&layout.config("session_timeout_seconds = 1"));
    let warm = daemon.post(
        "/api/warmup",
        serde_json::json!({ "path": source }).to_string().as_bytes(),
    );
    let id = warm.json()["job_id"].as_str().unwrap().to_string();
    let job = daemon.wait_job(&id, Duration::from_secs(60), |j| j["state"] == "stopped");
    let kept = liveup::job_dir::JobDir::at(layout.hls.join(&id)).segments_on_disk();
    assert_eq!(kept.len() as u64, job["segments"].as_u64().unwrap());
    assert!(daemon.get("/api/sessions").json()["sessions"]
        .as_array()
        .unwrap()
        .is_empty());
    let again = daemon.trigger_path(&source);
    assert_eq!(again["job_id"], id.as_str());
    daemon.wait_job(&id, Duration::from_secs(10), |j| j["state"] == "running");
    let _ = request(
        "DELETE",
        &format!("{}/api/jobs/{id}", daemon.url),
        &[],
        None,
    );
}

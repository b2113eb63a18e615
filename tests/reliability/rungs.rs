//! Rungs that cannot be made (their disk is full): each segment is tried again three times with
//! back-off, then the rung is marked `error` with the reason, nothing broken is left under a
//! rung's name, and the master playlist keeps offering what exists (the upscaled MPEG-TS rung,
//! when even its CMAF repackaging failed), which keeps playing.

use std::time::{Duration, Instant};

use crate::common::daemon::{Daemon, Layout};
use crate::common::Clip;
use crate::{job_id, Tmpfs};

#[test]
fn a_rung_that_cannot_be_made_leaves_the_closest_one_playing() {
    let Some(disk) = Tmpfs::mount(4 * 1024) else {
        return;
    };
    let mut layout = Layout::new();
    let source = Clip {
        seconds: 3.0,
        ..Clip::default()
    }
    .make(&layout.media.join("Cramped.mkv"));
    layout.hls = disk.path.join("hls");
    let config = layout
        .config("model = \"lanczos\"\nmin_free_space_mb = 0\n[profiles]\none = [\"54p:100\"]");
    let daemon = Daemon::start(&config);
    let id = job_id(&daemon.trigger_path(&source));
    daemon.wait_complete(&id);
    let _filler = disk.fill_leaving(16 * 1024);

    let master = daemon.get(&format!("/hls/{id}/master.m3u8?profile=one"));
    assert_eq!(master.status, 200, "{}", master.body);
    let deadline = Instant::now() + Duration::from_secs(60);
    // The CMAF ladder: the upscaled rung repackaged (108p), then the 54p rung.
    let rungs = loop {
        let job = daemon.get(&format!("/api/jobs/{id}")).json();
        let rungs = job["variants"].as_array().cloned().unwrap_or_default();
        if rungs.len() == 2 && rungs.iter().all(|r| r["state"] == "error") {
            break rungs;
        }
        assert!(Instant::now() < deadline, "{job}\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    for (rung, name) in rungs.iter().zip(["108p", "54p"]) {
        let error = rung["error"].as_str().unwrap();
        let damaged = format!(".{name}.m4s came out damaged");
        assert!(error.contains(&damaged), "{error}");
    }
    let metrics = daemon.get("/metrics").body;
    assert!(
        metrics.contains("liveup_variant_retries_total 6\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("liveup_variant_failures_total 2\n"),
        "{metrics}"
    );

    // Nothing half-made is left: no staging file, and every rung segment that got its name
    // plays whole after its init segment.
    let job_dir = layout.hls.join(&id);
    let names: Vec<String> = std::fs::read_dir(&job_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".partial")), "{names:?}");
    for name in names.iter().filter(|n| n.ends_with(".m4s")) {
        let track = name.split('.').nth(1).unwrap();
        let init = std::fs::read(job_dir.join(format!("init.{track}.mp4"))).unwrap();
        let media = std::fs::read(job_dir.join(name)).unwrap();
        let joined = disk_free_copy(&layout, name, &[init, media].concat());
        let errors = crate::common::decode_errors(&joined);
        assert!(errors.is_empty(), "{name}: {errors}");
    }
    // The upscaled rung still plays: the master offers it alone, its segments are served, and
    // the failed rung's segments are a plain 404 (hls.js moves to another rung on it).
    let master = daemon.get(&format!("/hls/{id}/master.m3u8?profile=one"));
    assert_eq!(master.status, 200);
    let uris: Vec<&str> = master
        .body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect();
    assert_eq!(uris, ["index.m3u8"], "{}", master.body);
    for index in 0..3 {
        let segment = daemon.get(&format!("/hls/{id}/segment_{index:05}.ts"));
        assert_eq!(segment.status, 200);
    }
    assert_eq!(
        daemon
            .get(&format!("/hls/{id}/segment_00000.54p.ts"))
            .status,
        404
    );
}

/// Writes `bytes` where there is room (the test's own folder, not the full disk).
fn disk_free_copy(layout: &Layout, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = layout.dir.path().join(format!("{name}.mp4"));
    std::fs::write(&path, bytes).unwrap();
    path
}

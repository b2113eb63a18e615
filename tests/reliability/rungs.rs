//! A lower rung that cannot be made (its disk is full): each segment is tried again three times
//! with back-off, then the rung is marked `error` with the reason, nothing broken is left under a
//! rung's name, and the master playlist keeps offering the closest rung, which keeps playing.

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
    let rung = loop {
        let job = daemon.get(&format!("/api/jobs/{id}")).json();
        let rung = job["variants"][0].clone();
        if rung["state"] == "error" {
            break rung;
        }
        assert!(Instant::now() < deadline, "{job}\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    let error = rung["error"].as_str().unwrap();
    assert!(
        error.contains("segment_00000.54p.ts came out damaged"),
        "{error}"
    );
    let metrics = daemon.get("/metrics").body;
    assert!(
        metrics.contains("liveup_variant_retries_total 3\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("liveup_variant_failures_total 1\n"),
        "{metrics}"
    );

    // Nothing of the rung is left, under its name or a staging one.
    let job_dir = layout.hls.join(&id);
    let rung_files: Vec<String> = std::fs::read_dir(&job_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n.contains(".54p."))
        .collect();
    assert!(rung_files.is_empty(), "{rung_files:?}");
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

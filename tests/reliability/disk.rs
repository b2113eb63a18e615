//! A disk that fills up under a job: nothing broken is kept or served, a filling disk holds
//! work instead of failing it, and the job finishes whole once space returns.

use std::path::PathBuf;
use std::time::Duration;

use crate::common::daemon::{Daemon, Layout};
use crate::common::{facts, Clip};
use crate::{assert_final_decodes, assert_segments_whole, job_id, settled, Tmpfs};

/// A film whose upscaled segments weigh about 100 KiB each, so a few MiB fill up mid-job.
fn film(layout: &Layout, name: &str) -> PathBuf {
    Clip {
        width: 320,
        height: 180,
        rate: 10,
        seconds: 12.0,
        ..Clip::default()
    }
    .make(&layout.media.join(name))
}

fn assert_whole_film(job: &serde_json::Value) {
    assert_final_decodes(job);
    let out = facts(std::path::Path::new(job["output"].as_str().unwrap()));
    assert_eq!(out.frames, 120, "{out:?}");
    assert!(out.has_audio);
}

#[test]
fn a_disk_that_fills_mid_job_fails_it_cleanly_and_a_retry_after_freeing_space_completes_it() {
    let Some(disk) = Tmpfs::mount(6 * 1024) else {
        return;
    };
    let mut layout = Layout::new();
    let source = film(&layout, "filling.mkv");
    layout.hls = disk.path.join("hls");
    let hls = layout.hls.clone();
    let config = layout.config("model = \"lanczos\"\nmin_free_space_mb = 0");
    let daemon = Daemon::start(&config);
    let filler = disk.fill_leaving(350 * 1024);

    let id = job_id(&daemon.trigger_path(&source));
    let job = daemon.wait_job(&id, Duration::from_secs(120), settled);
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("full disk") || error.contains("No space left"),
        "{error}"
    );
    let job_dir = hls.join(&id);
    assert_segments_whole(&job_dir);
    let made = job["segments"].as_u64().unwrap();
    assert!((1..12).contains(&made), "{job}");
    assert!(!std::path::Path::new(job["output"].as_str().unwrap()).exists());
    // What the server answers is what is whole: every segment it lists plays.
    for index in liveup::job_dir::JobDir::at(&job_dir).segments_on_disk() {
        let name = liveup::job_dir::segment_name(index);
        let reply = daemon.get(&format!("/hls/{id}/{name}"));
        assert!(
            reply.status == 200 || reply.status == 410,
            "{name}: {}",
            reply.status
        );
    }

    std::fs::remove_file(filler).unwrap();
    let id_again = job_id(&daemon.trigger_path(&source));
    assert_eq!(id_again, id);
    let job = daemon.wait_complete(&id);
    assert_segments_whole(&job_dir);
    assert_whole_film(&job);
}

#[test]
fn low_free_space_holds_jobs_without_failing_them_and_they_finish_once_space_returns() {
    let Some(disk) = Tmpfs::mount(8 * 1024) else {
        return;
    };
    let mut layout = Layout::new();
    let first = film(&layout, "first.mkv");
    let second = film(&layout, "second.mkv");
    layout.hls = disk.path.join("hls");
    let hls = layout.hls.clone();
    let config = layout.config("model = \"lanczos\"\nmin_free_space_mb = 2");
    let daemon = Daemon::start(&config);
    let filler = disk.fill_leaving(2 * 1024 * 1024 + 400 * 1024);

    let id = job_id(&daemon.trigger_path(&first));
    let held = daemon.wait_job(&id, Duration::from_secs(120), |j| {
        j["waiting_for_space"].is_string() || settled(j)
    });
    assert_eq!(held["state"], "queued", "{held}");
    assert!(held["segments"].as_u64() < Some(12), "{held}");
    let reason = held["waiting_for_space"].as_str().unwrap();
    assert!(reason.contains("min_free_space_mb"), "{reason}");
    let status = daemon.get("/hls-status/first.mkv").json();
    assert_eq!(status["status"], "waiting_for_space", "{status}");

    // No cascade: a second film waits too, and neither fails while space stays low.
    let other = job_id(&daemon.trigger_path(&second));
    std::thread::sleep(Duration::from_secs(2));
    for id in [&id, &other] {
        let job = daemon.get(&format!("/api/jobs/{id}")).json();
        assert_eq!(job["state"], "queued", "{job}");
        assert!(job["waiting_for_space"].is_string(), "{job}");
    }

    std::fs::remove_file(filler).unwrap();
    for id in [&id, &other] {
        let job = daemon.wait_complete(id);
        assert!(job["waiting_for_space"].is_null(), "{job}");
        assert_segments_whole(&hls.join(id));
        assert_whole_film(&job);
    }
}

#[test]
fn a_final_file_that_does_not_fit_waits_for_space_and_is_never_left_half_written() {
    let Some(disk) = Tmpfs::mount(256) else {
        return;
    };
    let mut layout = Layout::new();
    let source = film(&layout, "big.mkv");
    layout.output = disk.path.join("output");
    let output = layout.output.clone();
    let config = layout.config("model = \"lanczos\"\nmin_free_space_mb = 0");
    let daemon = Daemon::start(&config);

    let id = job_id(&daemon.trigger_path(&source));
    let held = daemon.wait_job(&id, Duration::from_secs(120), |j| {
        j["waiting_for_space"].is_string() || settled(j)
    });
    assert_eq!(held["state"], "queued", "{held}");
    assert_eq!(
        held["segments"], 12,
        "every segment made, only the final file waits"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&output)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    disk.resize(16 * 1024);
    let job = daemon.wait_complete(&id);
    assert_whole_film(&job);
}

//! Killed processes and damaged sources: each ends cleanly, with a clear error or a whole film,
//! never with something broken under a final name.

use std::path::Path;
use std::time::Duration;

use crate::common::daemon::{processes_mentioning, Daemon, Layout};
use crate::common::{facts, Clip};
use crate::seams::{assert_segments_in_sync, assert_strictly_increasing};
use crate::{assert_final_decodes, assert_segments_whole, job_id, settled};

fn lanczos_daemon(layout: &Layout) -> Daemon {
    Daemon::start(&layout.config("model = \"lanczos\""))
}

fn film(layout: &Layout, name: &str, seconds: f64) -> std::path::PathBuf {
    Clip {
        width: 320,
        height: 180,
        seconds,
        ..Clip::default()
    }
    .make(&layout.media.join(name))
}

/// The decode check, monotonic timestamps in both streams, and A/V sync in every segment.
fn assert_exact(job: &serde_json::Value, job_dir: &Path, frames: u64) {
    assert_final_decodes(job);
    let output = Path::new(job["output"].as_str().unwrap());
    assert_eq!(facts(output).frames, frames);
    assert_strictly_increasing(output, "v");
    assert_strictly_increasing(output, "a");
    let count = job["segment_count"].as_u64().unwrap() as u32;
    assert_segments_in_sync(job_dir, count, 0.1);
    assert_segments_whole(job_dir);
}

#[test]
fn an_encoder_killed_mid_run_fails_the_job_cleanly_and_a_retry_completes_it_exactly() {
    let layout = Layout::new();
    let source = film(&layout, "killed encoder.mkv", 12.0);
    let daemon = lanczos_daemon(&layout);
    let id = job_id(&daemon.trigger_path(&source));
    let job_dir = layout.hls.join(&id);
    daemon.wait_job(&id, Duration::from_secs(60), |j| {
        j["segments"].as_u64() >= Some(2)
    });
    // This job's encoder alone: it names the source (for its audio) and the tee muxer.
    let encoders: Vec<u32> = processes_mentioning(source.to_str().unwrap())
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.windows(5).any(|w| w == b"\0tee\0"))
        })
        .collect();
    assert!(!encoders.is_empty(), "the encoder runs");
    for pid in encoders {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    let failed = daemon.wait_job(&id, Duration::from_secs(60), settled);
    assert_eq!(failed["state"], "failed", "{failed}");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("encoder ffmpeg"), "{error}");
    assert_segments_whole(&job_dir);
    assert_final_decodes(&failed);
    assert!(!Path::new(failed["output"].as_str().unwrap()).exists());
    assert_eq!(job_id(&daemon.trigger_path(&source)), id);
    let job = daemon.wait_complete(&id);
    assert_exact(&job, &job_dir, 120);
}

#[test]
fn a_daemon_killed_with_sigkill_mid_segment_resumes_with_exact_seams() {
    let layout = Layout::new();
    let source = film(&layout, "sigkill.mkv", 12.0);
    let config = layout.config("model = \"lanczos\"");
    let mut daemon = Daemon::start(&config);
    let id = job_id(&daemon.trigger_path(&source));
    let job_dir = layout.hls.join(&id);
    daemon.wait_job(&id, Duration::from_secs(60), |j| {
        j["segments"].as_u64() >= Some(3)
    });
    daemon.kill9();
    let staging = job_dir.join(liveup::job_dir::STAGING);
    assert!(staging.is_dir(), "the run was cut off while writing");

    let daemon = Daemon::start(&config);
    let job = daemon.wait_complete(&id);
    assert_eq!(job["resumes"], 1);
    assert_exact(&job, &job_dir, 120);
}

#[test]
fn a_source_that_ends_early_fails_naming_both_lengths() {
    let layout = Layout::new();
    let whole = film(&layout, "whole.mkv", 20.0);
    let bytes = std::fs::read(&whole).unwrap();
    let truncated = layout.media.join("truncated.mkv");
    std::fs::write(&truncated, &bytes[..10 * 1024]).unwrap();
    let daemon = lanczos_daemon(&layout);
    let id = job_id(&daemon.trigger_path(&truncated));
    let job = daemon.wait_job(&id, Duration::from_secs(60), settled);
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("ends early") && error.contains("20.0 s"),
        "{error}"
    );
    assert!(
        job["progress"].as_f64() < Some(1.0),
        "a failed film is not reported whole: {job}"
    );
    assert!(!Path::new(job["output"].as_str().unwrap()).exists());
    assert_segments_whole(&layout.hls.join(&id));
}

#[test]
fn a_source_damaged_in_the_middle_ends_cleanly() {
    let layout = Layout::new();
    let whole = film(&layout, "intact.mkv", 6.0);
    let mut bytes = std::fs::read(&whole).unwrap();
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 4096] {
        *byte = 0x5a;
    }
    let damaged = layout.media.join("damaged.mkv");
    std::fs::write(&damaged, &bytes).unwrap();
    let daemon = lanczos_daemon(&layout);
    let id = job_id(&daemon.trigger_path(&damaged));
    let job = daemon.wait_job(&id, Duration::from_secs(60), settled);
    assert!(
        job["state"] == "complete" || job["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{job}"
    );
    assert_final_decodes(&job);
    assert_segments_whole(&layout.hls.join(&id));
}

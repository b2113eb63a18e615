//! The operator commands on real jobs: `monitor`, `cleanup` and `audit`, run as the binary on
//! clips ffmpeg makes here. Bench figures are checked for shape and sanity, never for speed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use common::daemon::{Daemon, Layout};
use common::{facts, Clip};
use serde_json::Value;

fn liveup(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_liveup"))
        .args(args)
        .output()
        .expect("liveup runs")
}

fn ok(args: &[&str]) -> String {
    let out = liveup(args);
    assert!(
        out.status.success(),
        "liveup {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(args: &[&str]) -> Value {
    let text = ok(args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A 3 s clip upscaled by `liveup upscale` (lanczos: fast) into `dir/hls` and `dir/film.ts`.
fn upscaled(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let clip = Clip {
        seconds: 3.0,
        ..Clip::default()
    }
    .make(&dir.join("clip.mp4"));
    let (hls, output) = (dir.join("hls"), dir.join("film.ts"));
    ok(&[
        "upscale",
        s(&clip),
        "--output",
        s(&output),
        "--hls-dir",
        s(&hls),
        "--model",
        "lanczos",
        "--segment-seconds",
        "1",
        "--quiet",
    ]);
    (clip, hls, output)
}

/// A daemon (lanczos, 1 s segments) that has upscaled one clip; returns it with the job JSON.
fn daemon_with_finished_job(layout: &Layout, extra: &str) -> (Daemon, Value, PathBuf) {
    let clip = Clip {
        seconds: 3.0,
        ..Clip::default()
    }
    .make(&layout.media.join("film.mp4"));
    let daemon = Daemon::start(&layout.config(&format!("model = \"lanczos\"\n{extra}")));
    let id = daemon.trigger_path(&clip)["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let job = daemon.wait_complete(&id);
    (daemon, job, clip)
}

#[test]
fn monitor_reads_an_upscale_folder_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (clip, hls, _) = upscaled(dir.path());
    let reading = json(&["monitor", s(&hls), "--once", "--json"]);
    for key in [
        "status",
        "segments",
        "duration_seconds",
        "progress",
        "rate",
        "eta_seconds",
    ] {
        assert!(reading.get(key).is_some(), "{key} missing: {reading}");
    }
    assert_eq!(reading["status"], "complete", "{reading}");
    assert_eq!(reading["segments"], 3, "{reading}");
    assert!((reading["duration_seconds"].as_f64().unwrap() - 3.0).abs() < 0.2);
    assert_eq!(reading["progress"], 1.0);

    let text = ok(&["monitor", s(&hls), "--once", "--input-file", s(&clip)]);
    assert!(
        !text.contains('\x1b'),
        "no ANSI codes when not a terminal: {text:?}"
    );
    assert!(text.contains("Segments:    3"), "{text}");
    assert!(
        text.contains("/ 3.0s"),
        "source length from ffprobe: {text}"
    );
    assert!(text.trim_end().ends_with("COMPLETE"), "{text}");
}

/// A running job's folder, with segments made one second apart: the rate, progress, ETA and
/// the throttled state come from the files.
#[test]
fn monitor_measures_a_growing_job_folder() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job");
    std::fs::create_dir_all(&job).unwrap();
    let record = |throttled: bool| {
        serde_json::json!({"id": "job", "state": "running", "segment_seconds": 2,
            "source_duration_seconds": 20.0, "throttled": throttled})
        .to_string()
    };
    std::fs::write(job.join("job.json"), record(false)).unwrap();
    let now = SystemTime::now();
    for i in 0..4u32 {
        let path = job.join(format!("segment_{i:05}.ts"));
        std::fs::write(&path, b"ts").unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(now - Duration::from_secs(u64::from(3 - i)))
            .unwrap();
    }
    let reading = json(&["monitor", s(&job), "--once", "--json"]);
    assert_eq!(reading["status"], "streaming", "{reading}");
    assert_eq!(reading["segments"], 4);
    assert_eq!(reading["duration_seconds"], 8.0);
    assert_eq!(reading["progress"], 0.4);
    let rate = reading["rate"].as_f64().unwrap();
    assert!(
        (rate - 2.0).abs() < 0.3,
        "3 segments of 2 s in 3 s: {reading}"
    );
    let eta = reading["eta_seconds"].as_f64().unwrap();
    assert!((eta - 12.0 / rate).abs() < 0.01, "{reading}");
    let text = ok(&["monitor", s(&job), "--once"]);
    assert!(
        text.contains("x (smooth)") && text.contains("STREAMING"),
        "{text}"
    );

    std::fs::write(job.join("job.json"), record(true)).unwrap();
    let text = ok(&["monitor", s(&job), "--once"]);
    assert!(text.trim_end().ends_with("THROTTLED"), "{text}");
}

#[test]
fn monitor_follows_a_daemon_job_through_the_api_and_its_folder() {
    let layout = Layout::new();
    let (daemon, job, _) = daemon_with_finished_job(&layout, "");
    let id = job["id"].as_str().unwrap();
    let config = s(&daemon.config);
    let api = json(&[
        "monitor",
        id,
        "--server",
        &daemon.url,
        "--once",
        "--json",
        "--config",
        config,
    ]);
    assert_eq!(api["status"], "complete", "{api}");
    assert_eq!(api["segments"], job["segments"], "{api} vs {job}");
    assert_eq!(api["duration_seconds"], job["duration_seconds"]);
    assert_eq!(api["progress"], 1.0);
    let folder = json(&["monitor", id, "--once", "--json", "--config", config]);
    assert_eq!(folder["status"], "complete", "{folder}");
    assert_eq!(folder["segments"], api["segments"]);
    assert_eq!(folder["job_id"], id);

    let missing = liveup(&["monitor", "no-such-job", "--once", "--config", config]);
    assert!(!missing.status.success());
    let error = String::from_utf8_lossy(&missing.stderr);
    assert!(
        error.contains("no-such-job is neither a folder nor a job"),
        "{error}"
    );
    assert_eq!(error.trim().lines().count(), 1, "{error}");
}

/// Copies the real job's folder to `name` with its job.json's fields changed.
fn variant(hls: &Path, from: &str, name: &str, change: impl Fn(&mut Value)) -> PathBuf {
    let target = hls.join(name);
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(hls.join(from)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
    }
    let path = target.join("job.json");
    let mut record: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    record["id"] = Value::from(name);
    change(&mut record);
    std::fs::write(&path, record.to_string()).unwrap();
    target
}

fn cleanup(config: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["cleanup", "--json", "--config", s(config)];
    args.extend_from_slice(extra);
    json(&args)
}

fn action<'a>(report: &'a Value, name: &str) -> &'a str {
    report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {report}"))["action"]
        .as_str()
        .unwrap()
}

#[test]
fn cleanup_removes_completed_and_abandoned_folders_and_never_the_rest() {
    let layout = Layout::new();
    let (mut daemon, job, _) = daemon_with_finished_job(&layout, "");
    daemon.terminate();
    let config = daemon.config.clone();
    let hls = layout.hls.canonicalize().unwrap();
    let id = job["id"].as_str().unwrap();
    let final_file = PathBuf::from(job["output"].as_str().unwrap());
    assert!(final_file.is_file());

    variant(&hls, id, "running-job", |r| r["state"] = "running".into());
    variant(&hls, id, "queued-job", |r| r["state"] = "queued".into());
    variant(&hls, id, "failed-job", |r| r["state"] = "failed".into());
    variant(&hls, id, "no-final-file", |r| {
        r["output"] = Value::from(s(&layout.output.join("gone.ts")))
    });
    // Live streams that stood in for a job whose model could not keep up: no final file of their
    // own, so one that is done may go; one still running stays.
    for (name, state) in [
        ("stand-in-done", "complete"),
        ("stand-in-running", "running"),
    ] {
        variant(&hls, id, name, |r| {
            r["state"] = state.into();
            r["stand_in_for"] = Value::from(id);
            r["output"] = Value::from(s(&layout.output.join("not-yet.mp4")));
        });
    }
    // A job whose final file lives inside its own folder: the folder holds a final file.
    let inside = variant(&hls, id, "final-inside", |_| {});
    let inner_final = inside.join("own.upscaled.ts");
    std::fs::copy(&final_file, &inner_final).unwrap();
    let mut record: Value =
        serde_json::from_slice(&std::fs::read(inside.join("job.json")).unwrap()).unwrap();
    record["output"] = Value::from(s(&inner_final));
    std::fs::write(inside.join("job.json"), record.to_string()).unwrap();
    // A link out of hls_root, to a folder with a file in it.
    let outside = layout.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("precious.ts"), b"keep me").unwrap();
    std::os::unix::fs::symlink(&outside, hls.join("link-out")).unwrap();

    // A dry run lists and totals, and deletes nothing.
    let dry = cleanup(&config, &["--dry-run", "--max-age", "0"]);
    assert_eq!(action(&dry, id), "would_remove", "{dry}");
    assert_eq!(action(&dry, "failed-job"), "would_remove");
    assert!(dry["freed_bytes"].as_u64().unwrap() > 0);
    let text = ok(&["cleanup", "--dry-run", "--config", s(&config)]);
    assert!(
        text.contains("would free") && text.contains("nothing deleted"),
        "{text}"
    );
    assert!(hls.join(id).is_dir() && hls.join("failed-job").is_dir());

    // --completed-only keeps abandoned folders however old.
    let completed = cleanup(&config, &["--completed-only", "--max-age", "0"]);
    assert_eq!(action(&completed, id), "removed", "{completed}");
    assert_eq!(action(&completed, "failed-job"), "kept");
    assert_eq!(
        action(&completed, "stand-in-done"),
        "removed",
        "{completed}"
    );
    assert!(!hls.join(id).exists());
    assert!(final_file.is_file(), "the final file stays");

    // Young abandoned folders stay under the default max-age; old enough, they go.
    let young = cleanup(&config, &[]);
    assert_eq!(action(&young, "failed-job"), "kept", "{young}");
    let report = cleanup(&config, &["--max-age", "0"]);
    assert_eq!(action(&report, "failed-job"), "removed", "{report}");
    assert!(!hls.join("failed-job").exists());

    for kept in [
        "running-job",
        "queued-job",
        "no-final-file",
        "stand-in-running",
        "link-out",
    ] {
        assert_eq!(action(&report, kept), "kept", "{kept}: {report}");
        assert!(hls.join(kept).exists(), "{kept}");
    }
    assert_eq!(action(&report, "final-inside"), "refused", "{report}");
    assert!(inner_final.is_file());
    assert_eq!(
        std::fs::read(outside.join("precious.ts")).unwrap(),
        b"keep me"
    );
    assert!(final_file.is_file());
}

#[test]
fn cleanup_refuses_output_root_inside_hls_root() {
    let layout = Layout::new();
    std::fs::create_dir_all(&layout.hls).unwrap();
    let output_root = layout.hls.join("finals");
    std::fs::create_dir_all(&output_root).unwrap();
    std::fs::write(output_root.join("film.upscaled.ts"), b"film").unwrap();
    let config = layout.config(&format!("output_root = {output_root:?}"));
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("output_root") || l.contains("finals"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&config, text).unwrap();
    let report = cleanup(&config, &["--max-age", "0"]);
    assert_eq!(action(&report, "finals"), "refused", "{report}");
    assert!(output_root.join("film.upscaled.ts").is_file());
}

#[test]
fn the_daemon_cleans_up_on_a_timer_and_keeps_the_final_file() {
    let layout = Layout::new();
    let (daemon, job, _) = daemon_with_finished_job(&layout, "cleanup_interval_seconds = 1");
    let folder = layout.hls.join(job["id"].as_str().unwrap());
    let final_file = PathBuf::from(job["output"].as_str().unwrap());
    let started = std::time::Instant::now();
    while folder.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never cleaned up: {}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(final_file.is_file());
    assert!(daemon.log().contains("cleanup:"), "{}", daemon.log());
}

#[test]
fn audit_times_a_finished_output_and_a_stalled_growing_one() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, output) = upscaled(dir.path());
    let audit = json(&["audit", "--output", s(&output), "--json"]);
    assert_eq!(
        audit["frames"].as_u64(),
        Some(facts(&output).frames),
        "{audit}"
    );
    assert_eq!(audit["frame_rate"], 10.0);
    assert_eq!(audit["growing"], false);
    assert!(audit["sampled_fps"].is_null(), "nothing to sample: {audit}");
    let verdict = audit["verdict"].as_str().unwrap();
    assert!(
        ["STABLE", "TOO SLOW", "UNKNOWN"].contains(&verdict),
        "{audit}"
    );
    if let Some(average) = audit["average_fps"].as_f64() {
        assert!(average > 0.0);
        let multiplier = audit["multiplier"].as_f64().unwrap();
        assert!((multiplier - average / 10.0).abs() < 1e-9);
        assert_eq!(verdict == "STABLE", multiplier >= 1.0);
    }

    // A .partial that does not grow while sampled: made at 0 fps, too slow to stream.
    let growing = dir.path().join("growing.ts");
    std::fs::copy(&output, dir.path().join("growing.ts.partial")).unwrap();
    let audit = json(&[
        "audit",
        "--output",
        s(&growing),
        "--sample-seconds",
        "1",
        "--json",
    ]);
    assert_eq!(audit["growing"], true, "{audit}");
    assert_eq!(audit["sampled_fps"], 0.0);
    assert_eq!(audit["verdict"], "TOO SLOW");
    let text = ok(&["audit", "--output", s(&growing), "--sample-seconds", "0.5"]);
    assert!(text.contains("TOO SLOW (still growing)"), "{text}");

    let none = liveup(&["audit", "--output", s(&dir.path().join("absent.ts"))]);
    assert!(!none.status.success());
}

#[test]
fn audit_bench_reports_every_model_and_size_within_a_tiny_budget() {
    let layout = Layout::new();
    let config = layout.config("model = \"realesr-animevideov3-x2\"");
    let report = json(&[
        "audit",
        "--bench",
        "--models",
        "realesr-animevideov3-x2,lanczos",
        "--resolutions",
        "72,360",
        "--budget-seconds",
        "4",
        "--runs",
        "1",
        "--clip-height",
        "36",
        "--json",
        "--config",
        s(&config),
    ]);
    let figures = report["models"].as_array().unwrap();
    assert_eq!(figures.len(), 4, "{report}");
    for figure in figures {
        let fps = figure["fps"].as_f64().unwrap_or_else(|| panic!("{figure}"));
        assert!(fps.is_finite() && fps > 0.0, "{figure}");
        assert!(figure["extrapolated"].is_boolean());
    }
    let x2 = |h: u64| {
        figures
            .iter()
            .find(|f| f["model"] == "realesr-animevideov3-x2" && f["height"] == h)
            .unwrap()["fps"]
            .as_f64()
            .unwrap()
    };
    assert!(x2(72) > x2(360), "more pixels, fewer frames: {report}");
    let pipeline = report["pipeline"].as_array().unwrap();
    assert_eq!(pipeline[0]["model"], "realesr-animevideov3-x2", "{report}");
    assert!(pipeline[0]["frames"].as_u64().unwrap() >= 4);
    assert!(pipeline.iter().any(|p| p["model"] == "lanczos"));
    assert_eq!(report["verdicts"].as_array().unwrap().len(), 4);
    for verdict in report["verdicts"].as_array().unwrap() {
        let m = verdict["multiplier"].as_f64().unwrap();
        assert_eq!(verdict["live"].as_bool().unwrap(), m >= 1.0, "{verdict}");
    }
    let advice = report["recommendations"].as_array().unwrap();
    assert_eq!(advice.len(), 2);
    assert!(advice
        .iter()
        .all(|a| a["text"].as_str().is_some_and(|t| !t.is_empty())));
}

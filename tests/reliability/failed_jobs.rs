//! A job that failed or was cancelled answers for its playlists and segments with its state
//! (410 and the error), so players stop instead of retrying, and no request restarts it.

use std::time::Duration;

use crate::common::daemon::{Daemon, Layout};
use crate::common::Clip;
use crate::{assert_final_decodes, job_id, settled};

fn assert_gone(daemon: &Daemon, id: &str, code: &str, message: &str) {
    for file in [
        "index.m3u8",
        "stream.m3u8",
        "segment_00000.ts",
        "segment_00003.ts",
    ] {
        let reply = daemon.get(&format!("/hls/{id}/{file}?session=viewer"));
        assert_eq!(reply.status, 410, "{file}: {}", reply.body);
        assert_eq!(
            reply.header("access-control-allow-origin"),
            Some("*"),
            "{file}"
        );
        assert_eq!(reply.header("cache-control"), Some("no-cache"), "{file}");
        let json = reply.json();
        assert_eq!(json["error"], code, "{file}: {json}");
        assert!(
            json["message"].as_str().unwrap().contains(message),
            "{file}: {json}"
        );
    }
}

#[test]
fn a_failed_job_answers_410_with_its_error_and_is_not_restarted_by_viewers() {
    let layout = Layout::new();
    let whole = Clip {
        seconds: 12.0,
        ..Clip::default()
    }
    .make(&layout.dir.path().join("whole.mkv"));
    let bytes = std::fs::read(&whole).unwrap();
    let source = layout.media.join("cut short.mkv");
    std::fs::write(&source, &bytes[..bytes.len() / 5]).unwrap();
    let daemon = Daemon::start(&layout.config("model = \"lanczos\""));
    let id = job_id(&daemon.trigger_path(&source));
    let job = daemon.wait_job(&id, Duration::from_secs(60), settled);
    assert_eq!(job["state"], "failed", "{job}");

    assert_gone(&daemon, &id, "job_failed", "ends early");
    std::thread::sleep(Duration::from_millis(500));
    let after = daemon.get(&format!("/api/jobs/{id}")).json();
    assert_eq!(
        after["state"], "failed",
        "requests did not restart it: {after}"
    );
    assert_eq!(after["updated_at"], job["updated_at"]);
    assert_eq!(
        daemon.get("/hls-status/cut%20short.mkv").json()["status"],
        "failed"
    );
    assert_final_decodes(&after);
}

#[test]
fn a_cancelled_job_answers_410_and_a_waiting_request_learns_it_at_once() {
    let layout = Layout::new();
    let source = Clip {
        seconds: 30.0,
        ..Clip::default()
    }
    .make(&layout.media.join("cancelled.mkv"));
    // The AI model on the CPU: slow enough that segment 20 is far off.
    let daemon =
        Daemon::start(&layout.config("segment_wait_seconds = 30\njit_restart_seconds = 600"));
    let id = job_id(&daemon.trigger_path(&source));
    let waiting = {
        let url = format!("{}/hls/{id}/segment_00020.ts", daemon.url);
        std::thread::spawn(move || {
            let asked = std::time::Instant::now();
            let reply = crate::common::daemon::request("GET", &url, &[], None);
            (reply.status, asked.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let reply = crate::common::daemon::request(
        "DELETE",
        &format!("{}/api/jobs/{id}", daemon.url),
        &[],
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let job = daemon.wait_job(&id, Duration::from_secs(30), |j| j["state"] == "cancelled");
    let (status, waited) = waiting.join().unwrap();
    assert_eq!(status, 410);
    assert!(
        waited < Duration::from_secs(20),
        "answered when the job ended: {waited:?}"
    );
    assert_gone(&daemon, &id, "job_cancelled", "cancelled");
    assert_final_decodes(&job);
}

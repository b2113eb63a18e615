//! Rendition ladders on the real daemon: a client asks for a profile, the rungs it lacks are made
//! once from the upscaled film (one generation however many ask), every rung's segments start at
//! the same instants on keyframes, ffmpeg reads the master playlist, and a daemon killed with -9
//! mid-generation finishes it after a restart without making anything twice.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::daemon::{Daemon, Layout};
use common::Clip;

/// The top rung is the lanczos ×2 of a 96×54 clip: 192×108. 216p is above it: the top plays it.
const PROFILES: &str = "model = \"lanczos\"\nsegment_format = \"ts\"\n[profiles]\n\
                        small = [\"72p:200\", \"54p:100\", \"216p:900\"]\n";

fn film(layout: &Layout, name: &str, seconds: f64) -> PathBuf {
    Clip {
        seconds,
        ..Clip::default()
    }
    .make(&layout.media.join(name))
}

/// Triggers a job for `source`; its id.
fn started(daemon: &Daemon, source: &Path) -> String {
    daemon.trigger_path(source)["job_id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn metric(daemon: &Daemon, name: &str) -> u64 {
    let text = daemon.get("/metrics").body;
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .parse()
        .unwrap()
}

fn variants(daemon: &Daemon, id: &str) -> Vec<serde_json::Value> {
    let job = daemon.get(&format!("/api/jobs/{id}")).json();
    job["variants"].as_array().cloned().unwrap_or_default()
}

fn wait_variants(daemon: &Daemon, id: &str, done: impl Fn(&[serde_json::Value]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = variants(daemon, id);
        if done(&now) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "variants stuck: {now:?}\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn all_complete(variants: &[serde_json::Value]) -> bool {
    !variants.is_empty() && variants.iter().all(|v| v["state"] == "complete")
}

/// (uri, attributes) of each variant of a master playlist, in order.
fn master_entries(text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter_map(|w| {
            let attributes = w[0].strip_prefix("#EXT-X-STREAM-INF:")?;
            Some((w[1].to_string(), attributes.to_string()))
        })
        .collect()
}

/// First video packet's pts and whether it is a keyframe, and the number of video packets.
fn video_start(path: &Path) -> (f64, bool, usize) {
    let mut command = Command::new("ffprobe");
    command
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["packet=pts_time,flags", "-of", "csv=p=0"])
        .arg(path);
    let text = String::from_utf8(common::run_ok(command)).unwrap();
    let packets: Vec<(f64, bool)> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (pts, flags) = l.split_once(',').unwrap();
            (pts.parse().unwrap(), flags.contains('K'))
        })
        .collect();
    let first = packets.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    (first, packets[0].1, packets.len())
}

fn modified(dir: &Path, suffix: &str) -> BTreeMap<String, SystemTime> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let time = e.metadata().ok()?.modified().ok()?;
            (name.ends_with(suffix) && !name.starts_with('.')).then_some((name, time))
        })
        .collect()
}

#[test]
fn a_profile_gets_its_missing_rungs_made_once_from_the_upscaled_film() {
    let layout = Layout::new();
    let source = film(&layout, "Ladder (2023).mkv", 5.0);
    let daemon = Daemon::start(&layout.config(PROFILES));
    let id = started(&daemon, &source);
    daemon.wait_complete(&id);
    assert!(
        variants(&daemon, &id).is_empty(),
        "no rung before one is asked for"
    );

    // Two clients ask for the profile at once: one generation.
    let master = format!("{}/hls/{id}/master.m3u8?profile=small", daemon.url);
    let askers: Vec<_> = (0..2)
        .map(|_| {
            let url = master.clone();
            std::thread::spawn(move || common::daemon::request("GET", &url, &[], None))
        })
        .collect();
    for asker in askers {
        let reply = asker.join().unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.header("content-type"),
            Some("application/vnd.apple.mpegurl")
        );
        let entries = master_entries(&reply.body);
        assert_eq!(entries[0].0, "index.m3u8", "the top rung plays at once");
    }
    wait_variants(&daemon, &id, all_complete);
    assert_eq!(metric(&daemon, "liveup_variant_generations_total"), 1);
    assert!(metric(&daemon, "liveup_variant_fallbacks_total") >= 1);
    let shown = variants(&daemon, &id);
    let names: Vec<&str> = shown.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["72p", "54p"],
        "216p is above the top rung: not made"
    );

    let reply = daemon.get(&format!("/hls/{id}/master.m3u8?profile=small"));
    let entries = master_entries(&reply.body);
    let uris: Vec<&str> = entries.iter().map(|(uri, _)| uri.as_str()).collect();
    assert_eq!(uris, ["index.m3u8", "index.72p.m3u8", "index.54p.m3u8"]);
    for ((_, attributes), resolution) in entries.iter().zip(["192x108", "128x72", "96x54"]) {
        assert!(
            attributes.contains(&format!("RESOLUTION={resolution}")),
            "{attributes}"
        );
        assert!(attributes.contains("CODECS=\"avc1.64"), "{attributes}");
        assert!(attributes.contains(",mp4a.40.2\""), "{attributes}");
        assert!(attributes.contains("FRAME-RATE=10.000"), "{attributes}");
        let bandwidth: u64 = attributes
            .split("BANDWIDTH=")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(bandwidth > 1000, "{attributes}");
    }
    let unknown = daemon.get(&format!("/hls/{id}/master.m3u8?profile=fridge"));
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    assert!(unknown.body.contains("small"), "{}", unknown.body);

    // Every rung's segment N starts at the same instant as the top one's, on a keyframe.
    let dir = layout.hls.join(&id);
    let top = modified(&dir, ".ts")
        .into_keys()
        .filter(|n| n.matches('.').count() == 1)
        .count();
    assert_eq!(top, 5);
    for rung in ["72p", "54p"] {
        for index in 0..top {
            let (top_pts, _, top_frames) = video_start(&dir.join(format!("segment_{index:05}.ts")));
            let (pts, keyframe, frames) =
                video_start(&dir.join(format!("segment_{index:05}.{rung}.ts")));
            assert!(
                (pts - top_pts).abs() < 1e-3,
                "{rung} #{index}: {pts} vs {top_pts}"
            );
            assert!(keyframe, "{rung} #{index} does not start on a keyframe");
            assert_eq!(frames, top_frames, "{rung} #{index}");
        }
        // A player reads the rung whole: timestamps keep increasing across its segments.
        let playlist = format!("{}/hls/{id}/index.{rung}.m3u8", daemon.url);
        let times = common::video_frame_times(Path::new(&playlist));
        assert_eq!(times.len(), 50, "{rung}");
        assert!(times.windows(2).all(|w| w[1] > w[0]), "{rung}: {times:?}");
        let live = daemon.get(&format!("/hls/{id}/stream.{rung}.m3u8"));
        assert!(live.body.ends_with("#EXT-X-ENDLIST\n"), "{}", live.body);
    }

    // ffprobe reads the master playlist: every rung is there.
    let mut command = Command::new("ffprobe");
    command
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=height",
            "-of",
            "csv=p=0",
        ])
        .arg(&master);
    let heights = String::from_utf8(common::run_ok(command)).unwrap();
    for height in ["108", "72", "54"] {
        assert!(
            heights.lines().any(|l| l.trim() == height),
            "{height}: {heights}"
        );
    }

    // Asked again: nothing is made again.
    let before = modified(&dir, ".ts");
    let again = daemon.get(&format!("/hls/{id}/master.m3u8?profile=small"));
    assert_eq!(master_entries(&again.body).len(), 3);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(modified(&dir, ".ts"), before);
    assert_eq!(metric(&daemon, "liveup_variant_generations_total"), 1);
    assert_eq!(metric(&daemon, "liveup_variant_segments_total"), 10);
}

#[test]
fn a_daemon_killed_mid_generation_finishes_it_after_a_restart() {
    let layout = Layout::new();
    let source = film(&layout, "Long Ladder (2022).mkv", 24.0);
    let config = layout.config(PROFILES);
    let mut daemon = Daemon::start(&config);
    let id = started(&daemon, &source);
    daemon.wait_complete(&id);
    let asked = daemon.get(&format!("/hls/{id}/master.m3u8?profile=small"));
    assert_eq!(asked.status, 200, "{}", asked.body);
    let dir = layout.hls.join(&id);
    let deadline = Instant::now() + Duration::from_secs(60);
    while modified(&dir, ".54p.ts").len() < 3 {
        assert!(Instant::now() < deadline, "no rung segment made");
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon.kill9();
    let made_before = modified(&dir, "p.ts");
    assert!(
        made_before.len() < 48,
        "the generation ended before the kill"
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("job.json")).unwrap()).unwrap();
    let lock = &record["variant_lock"];
    assert!(
        lock["holder"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{}", daemon.pid())),
        "{record}"
    );

    // Nobody asks again: the restarted daemon picks the generation up by itself.
    let daemon = Daemon::start(&config);
    wait_variants(&daemon, &id, all_complete);
    let made_after = modified(&dir, "p.ts");
    assert_eq!(made_after.len(), 48);
    for (name, time) in &made_before {
        assert_eq!(made_after.get(name), Some(time), "{name} was made again");
    }
    assert_eq!(metric(&daemon, "liveup_variant_generations_total"), 1);
    assert_eq!(
        metric(&daemon, "liveup_variant_segments_total"),
        48 - made_before.len() as u64
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("job.json")).unwrap()).unwrap();
    assert!(
        record["variant_lock"].is_null(),
        "the lock stayed: {record}"
    );
    for rung in ["72p", "54p"] {
        let playlist = format!("{}/hls/{id}/index.{rung}.m3u8", daemon.url);
        let times = common::video_frame_times(Path::new(&playlist));
        assert_eq!(times.len(), 240, "{rung}");
        assert!(times.windows(2).all(|w| w[1] > w[0]), "{rung}");
    }
}

/// The ladder as CMAF (the default): the upscaled rung repackaged and the lower rungs encoded as
/// fragmented MP4 video tracks, the sound once in a track of its own; HLS and DASH list the same
/// files, ffmpeg plays both, and every track's segment N starts where the upscaled one does.
#[test]
fn a_cmaf_ladder_plays_through_hls_and_dash_from_the_same_files() {
    let layout = Layout::new();
    let source = film(&layout, "Cmaf (2024).mkv", 5.0);
    let daemon = Daemon::start(
        &layout.config("model = \"lanczos\"\n[profiles]\nsmall = [\"72p:200\", \"54p:100\"]\n"),
    );
    let id = started(&daemon, &source);
    daemon.wait_complete(&id);
    let first = daemon.get(&format!("/hls/{id}/master.m3u8?profile=small"));
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(
        master_entries(&first.body)[0].0,
        "video.108p.m3u8",
        "{}",
        first.body
    );
    wait_variants(&daemon, &id, |v| v.len() == 3 && all_complete(v));
    let shown: Vec<(String, serde_json::Value)> = variants(&daemon, &id)
        .iter()
        .map(|v| (v["name"].as_str().unwrap().to_string(), v["kbps"].clone()))
        .collect();
    assert_eq!(
        shown,
        [
            ("108p".to_string(), serde_json::Value::Null),
            ("72p".to_string(), serde_json::json!(200)),
            ("54p".to_string(), serde_json::json!(100)),
        ],
        "the upscaled rung is repackaged, not encoded at a bitrate"
    );

    let master = daemon.get(&format!("/hls/{id}/master.m3u8?profile=small"));
    assert!(
        master.body.contains(
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"main\",DEFAULT=YES,AUTOSELECT=YES,URI=\"audio.m3u8\""
        ),
        "{}",
        master.body
    );
    let entries = master_entries(&master.body);
    let uris: Vec<&str> = entries.iter().map(|(uri, _)| uri.as_str()).collect();
    assert_eq!(
        uris,
        ["video.108p.m3u8", "video.72p.m3u8", "video.54p.m3u8"]
    );
    for (_, attributes) in &entries {
        assert!(attributes.contains("CODECS=\"avc1.64"), "{attributes}");
        assert!(attributes.contains(",mp4a.40.2\""), "{attributes}");
        assert!(attributes.ends_with(",AUDIO=\"audio\""), "{attributes}");
    }
    let track = daemon.get(&format!("/hls/{id}/video.72p.m3u8"));
    assert!(
        track.body.contains("#EXT-X-MAP:URI=\"init.72p.mp4\""),
        "{}",
        track.body
    );

    let mpd = daemon.get(&format!("/hls/{id}/stream.mpd?profile=small"));
    assert_eq!(mpd.status, 200, "{}", mpd.body);
    assert_eq!(mpd.header("content-type"), Some("application/dash+xml"));
    for representation in ["id=\"108p\"", "id=\"72p\"", "id=\"54p\"", "id=\"audio\""] {
        assert!(
            mpd.body.contains(representation),
            "{representation}: {}",
            mpd.body
        );
    }
    assert!(mpd
        .body
        .contains("media=\"segment_$Number%05d$.$RepresentationID$.m4s\""));

    // ffprobe reads both manifests: every rung and the sound.
    for manifest in ["master.m3u8?profile=small", "stream.mpd?profile=small"] {
        let mut command = Command::new("ffprobe");
        command
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_type,height",
                "-of",
                "csv=p=0",
            ])
            .arg(format!("{}/hls/{id}/{manifest}", daemon.url));
        let streams = String::from_utf8(common::run_ok(command)).unwrap();
        for want in ["video,108", "video,72", "video,54", "audio"] {
            assert!(
                streams
                    .lines()
                    .any(|l| l.trim().trim_end_matches(',') == want),
                "{manifest}: {want} in {streams}"
            );
        }
    }

    // Each track plays whole, its timestamps increasing, and starts each segment where the
    // upscaled MPEG-TS segment of the same moment starts.
    let dir = layout.hls.join(&id);
    for rung in ["108p", "72p", "54p"] {
        let playlist = format!("{}/hls/{id}/video.{rung}.m3u8", daemon.url);
        let times = common::video_frame_times(Path::new(&playlist));
        assert_eq!(times.len(), 50, "{rung}");
        assert!(times.windows(2).all(|w| w[1] > w[0]), "{rung}: {times:?}");
        let init = std::fs::read(dir.join(format!("init.{rung}.mp4"))).unwrap();
        for index in 0..5 {
            let media = std::fs::read(dir.join(format!("segment_{index:05}.{rung}.m4s"))).unwrap();
            let joined = dir.join(format!(".check-{rung}-{index}.mp4"));
            std::fs::write(&joined, [init.as_slice(), media.as_slice()].concat()).unwrap();
            let (pts, keyframe, frames) = video_start(&joined);
            std::fs::remove_file(&joined).unwrap();
            let (top_pts, _, top_frames) = video_start(&dir.join(format!("segment_{index:05}.ts")));
            assert!(
                (pts - top_pts).abs() < 1e-3,
                "{rung} #{index}: {pts} vs {top_pts}"
            );
            assert!(keyframe, "{rung} #{index}");
            assert_eq!(frames, top_frames, "{rung} #{index}");
        }
    }
    let mut command = Command::new("ffmpeg");
    command
        .args(["-v", "error", "-i"])
        .arg(format!("{}/hls/{id}/audio.m3u8", daemon.url))
        .args(["-f", "null", "-"]);
    let out = command.output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        daemon.get(&format!("/hls/{id}/index.72p.m3u8")).status,
        404,
        "MPEG-TS rungs are not made when the ladder is CMAF"
    );
}

/// A viewer on a lower rung seeks far ahead of the upscaler: the rung's segment there is asked
/// for, the upscaler restarts at that point (as for the upscaled rung), and the rung's segment is
/// made from the new upscaled one as soon as it lands, starting at its place in the film.
#[test]
fn a_far_seek_on_a_lower_rung_restarts_the_upscaler_there() {
    let layout = Layout::new();
    let source = film(&layout, "Seek Ladder (2021).mkv", 16.0);
    // The default model: slow enough here that the seek lands ahead of it.
    let daemon = Daemon::start(
        &layout.config("jit_restart_seconds = 4\n[profiles]\nsmall = [\"54p:100\"]\n"),
    );
    let id = started(&daemon, &source);
    // As a player does: the master playlist until it is there (503 while the job starts), and
    // only then a rung's segment.
    let asked = Instant::now();
    loop {
        let master = daemon.get(&format!("/hls/{id}/master.m3u8?profile=small"));
        assert!(
            master.status == 200 || master.status == 503,
            "{}",
            master.body
        );
        if master.status == 200 {
            break;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(60),
            "{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let path = format!("/hls/{id}/segment_00012.54p.m4s");
    let started = Instant::now();
    let reply = loop {
        let reply = daemon.get(&path);
        if reply.status != 503 {
            break reply;
        }
        assert_eq!(reply.header("retry-after"), Some("2"));
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        metric(&daemon, "liveup_restarts_total") >= 1,
        "the upscaler was not moved"
    );
    let job = daemon.get(&format!("/api/jobs/{id}")).json();
    assert_ne!(
        job["state"], "complete",
        "the seek did not land ahead of the upscaler"
    );
    let dir = layout.hls.join(&id);
    let init = std::fs::read(dir.join("init.54p.mp4")).unwrap();
    let joined = layout.dir.path().join("seek-check.mp4");
    std::fs::write(&joined, [init, reply.bytes.clone()].concat()).unwrap();
    let (pts, keyframe, frames) = video_start(&joined);
    assert!((pts - 12.0).abs() < 1e-3, "starts at {pts}");
    assert!(keyframe);
    assert_eq!(frames, 10);
}

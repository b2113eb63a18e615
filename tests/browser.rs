//! The browser script in a real browser: a real `liveup serve` upscales a real clip, a stub
//! answers the daemon's Jellyfin look-ups, and `plugin-js/tests/run.mjs` drives Debian's chromium
//! (headless, through playwright-core) on a page that imitates Jellyfin's player, from another
//! origin than liveup's. What each browser test asserts is written beside it in run.mjs; this
//! test checks they all ran and passed, that each left a screenshot, and that the status page's
//! before/after picture pairs the same moment of the film.
//!
//! Needs `scripts/setup` (chromium, node, `npm ci --prefix plugin-js`). Screenshots, the
//! browser's console and results.json land in `<target>/tmp/browser/`.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{request, Daemon, JellyfinStub, Layout};
use common::Clip;

/// Jellyfin item ids (32 hex digits, as Jellyfin writes them).
const LIVE: &str = "5e1f0c2a9b8d4e7f8a6b3c2d1e0f9a8b";
const FRESH: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
/// A film the model makes slower than it plays.
const SLOW: &str = "7c6b5a4938271605f4e3d2c1b0a99887";
const ORIGINAL: (u32, u32) = (96, 54);
/// The first daemon's model (lanczos: it keeps up with playback, as the switches tested there
/// need) doubles each side.
const UPSCALED: (u32, u32) = (192, 108);
const SLOW_ORIGINAL: (u32, u32) = (320, 180);
const NODE_LIMIT: Duration = Duration::from_secs(240);
const TESTS: [&str; 20] = [
    "auto_switch_keeps_position_and_keeps_playing",
    "prompt_accept_switches_and_keeps_pause",
    "prompt_decline_stays_on_the_original",
    "broken_stream_falls_back_to_the_original",
    "missing_segments_fall_back_after_start_timeout",
    "gives_up_after_max_retries_without_coverage",
    "a_job_failing_while_switched_restores_the_original_and_says_why",
    "a_failed_job_is_never_offered_and_the_viewer_is_told",
    "status_page_lists_jobs_plays_them_and_shows_before_after",
    "an_error_on_the_upscaled_stream_is_handled_by_liveup_alone",
    "jellyfin_changing_the_source_ends_liveups_session_for_good",
    "a_transcode_is_left_alone",
    "a_native_hls_transcode_is_left_alone",
    "seeking_from_jellyfins_osd_lands_on_the_films_time",
    "hls_js_switches_rungs_with_no_stall_and_no_jump",
    "dash_js_plays_the_cmaf_ladder",
    "the_films_end_reaches_jellyfin_once",
    "same_origin_under_a_path_of_jellyfins_site",
    "a_film_the_upscaler_cannot_keep_up_with_is_not_offered_and_the_ready_time_is_shown",
    "a_stand_in_made_with_the_fallback_model_plays_and_says_so",
];

fn film(layout: &Layout, name: &str, size: (u32, u32), seconds: f64, photo: bool) -> PathBuf {
    Clip {
        width: size.0,
        height: size.1,
        seconds,
        photo,
        // Clip puts its filter after the tone's input: the panned photo goes without sound.
        audio: !photo,
        extra: &[
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
        ],
        ..Clip::default()
    }
    .make(&layout.media.join(name))
}

fn prerequisites(plugin: &Path) -> PathBuf {
    let chromium =
        std::env::var_os("CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from);
    assert!(
        chromium.is_file(),
        "{} is missing: run scripts/setup (Debian's chromium)",
        chromium.display()
    );
    for package in [
        "playwright-core/package.json",
        "hls.js/dist/hls.min.js",
        "jellyfin-web-hls.js/dist/hls.min.js",
        "dashjs/dist/dash.all.min.js",
    ] {
        assert!(
            plugin.join("node_modules").join(package).is_file(),
            "plugin-js/node_modules/{package} is missing: run scripts/setup (npm ci --prefix plugin-js)"
        );
    }
    chromium
}

#[test]
fn the_browser_script_switches_jellyfins_player_to_the_upscaled_stream() {
    if std::env::var_os("LIVEUP_SKIP_BROWSER_TESTS").is_some() {
        assert!(
            std::env::var_os("NO_SKIPPED_TESTS").is_none(),
            "LIVEUP_SKIP_BROWSER_TESTS and NO_SKIPPED_TESTS are both set: scripts/test runs every test"
        );
        eprintln!("SKIPPED: browser tests, LIVEUP_SKIP_BROWSER_TESTS is set");
        return;
    }
    let plugin = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugin-js");
    let chromium = prerequisites(&plugin);

    let layout = Layout::new();
    let live = film(&layout, "Live Film (2024).mp4", ORIGINAL, 20.0, true);
    // Large enough that even lanczos takes a while: the give-up test must not see it covered.
    let fresh = film(&layout, "Fresh Film (2025).mp4", (640, 360), 30.0, false);
    // A second daemon, on the default AI model with lanczos as its live_fallback_model, for a film
    // that model cannot make as fast as it plays.
    let fallback_layout = Layout::new();
    let slow = film(
        &fallback_layout,
        "Slow Film (2023).mp4",
        SLOW_ORIGINAL,
        30.0,
        false,
    );
    let jellyfin = JellyfinStub::start(
        vec![
            (LIVE.into(), live.clone(), "Movie"),
            (FRESH.into(), fresh.clone(), "Movie"),
            (SLOW.into(), slow.clone(), "Movie"),
        ],
        "browser-key",
    );
    // A ladder below the upscaled picture, for the rung-switching test.
    let config = layout.config(&format!(
        "jellyfin_url = \"{}\"\njellyfin_api_key = \"browser-key\"\nmodel = \"lanczos\"\n\
         [profiles]\nsmall = [\"72p:40\", \"54p:20\"]",
        jellyfin.url
    ));
    let daemon = Daemon::start(&config);
    let fallback = Daemon::start(&fallback_layout.config(&format!(
        "jellyfin_url = \"{}\"\njellyfin_api_key = \"browser-key\"\n\
         live_fallback_model = \"lanczos\"",
        jellyfin.url
    )));

    // The viewer joins a film that is being upscaled: a few seconds are ready when the page opens,
    // and liveup has measured that the upscaler keeps ahead of a viewer.
    let job_id = daemon.trigger_path(&live)["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    daemon.wait_job(&job_id, Duration::from_secs(120), |job| {
        job["duration_seconds"].as_f64().unwrap_or(0.0) >= 4.0 && job["live"] == true
            || !job["state"]
                .as_str()
                .is_some_and(|s| s == "running" || s == "queued")
    });

    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let items = serde_json::json!({ LIVE: live, FRESH: fresh, SLOW: slow });
    let widths = serde_json::json!({
        "original": ORIGINAL.0,
        "upscaled": UPSCALED.0,
        "upscaledHeight": UPSCALED.1,
        "slowUpscaled": SLOW_ORIGINAL.0 * 2,
    });
    let started = Instant::now();
    let mut node = Command::new("node")
        .arg(plugin.join("tests/run.mjs"))
        .current_dir(&plugin)
        .env("LIVEUP_URL", &daemon.url)
        .env("LIVEUP_FALLBACK_URL", &fallback.url)
        .env("LIVEUP_ITEMS", items.to_string())
        .env("LIVEUP_ITEM_LIVE", LIVE)
        .env("LIVEUP_ITEM_FRESH", FRESH)
        .env("LIVEUP_ITEM_SLOW", SLOW)
        .env("LIVEUP_WIDTHS", widths.to_string())
        .env("LIVEUP_TEST_OUT", &out)
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (scripts/setup installs it)");
    let mut stdout = node.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let mut stderr = node.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status = loop {
        if let Some(status) = node.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > NODE_LIMIT {
            let _ = node.kill();
            let _ = node.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = format!("{}{}", reader.join().unwrap(), err_reader.join().unwrap());
    println!("{output}");
    println!(
        "browser tests took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    let status =
        status.unwrap_or_else(|| panic!("the browser tests ran past {NODE_LIMIT:?}\n{output}"));
    let daemon_log = daemon.log();
    let tail = &daemon_log[daemon_log.len().saturating_sub(3000)..];
    assert!(
        status.success(),
        "browser tests failed ({status}):\n{output}\ndaemon log (end):\n{tail}"
    );

    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    for name in TESTS {
        let result = results["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} did not run:\n{output}"));
        assert_eq!(result["ok"], true, "{name}: {result}");
        let screenshot = std::fs::read(result["screenshot"].as_str().unwrap()).unwrap();
        assert!(screenshot.starts_with(b"\x89PNG"), "{name}: no screenshot");
    }

    assert_preview_pairs_the_same_moment(&daemon, &job_id, &live);
}

/// The status page's picture: the source frame (left) and the upscaled frame (right) of the same
/// moment; the right half is closer to the source at that moment than a frame before or after.
fn assert_preview_pairs_the_same_moment(daemon: &Daemon, job_id: &str, source: &Path) {
    let reply = request(
        "GET",
        &format!("{}/api/jobs/{job_id}/preview.png", daemon.url),
        &[],
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("image/png"));
    let picture = image::load_from_memory(&reply.bytes).unwrap().to_rgb8();
    let (width, height) = UPSCALED;
    assert_eq!(picture.dimensions(), (width * 2 + 8, height));
    let left = image::imageops::crop_imm(&picture, 0, 0, width, height).to_image();
    let right = image::imageops::crop_imm(&picture, width + 8, 0, width, height).to_image();
    // Segments last 1 s here: the frame half a second into the first one.
    let at = |t: f64| {
        let mut command = Command::new("ffmpeg");
        command
            .args(["-v", "error", "-ss", &format!("{t:.3}"), "-i"])
            .arg(source)
            .args(["-frames:v", "1", "-vf"])
            .arg(format!("scale={width}:{height}:flags=bicubic,setsar=1"))
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]);
        image::RgbImage::from_raw(width, height, common::run_ok(command)).unwrap()
    };
    let same = at(0.5);
    assert!(
        psnr(&left, &same) > 50.0,
        "the left half is not the source frame"
    );
    let here = psnr(&right, &same);
    for other in [0.3, 0.7] {
        let there = psnr(&right, &at(other));
        assert!(
            here > there,
            "the upscaled frame matches the source at {other} s ({there:.2} dB) better than at 0.5 s ({here:.2} dB)"
        );
    }
    assert!(
        here > 20.0,
        "the upscaled frame is far from the source ({here:.2} dB)"
    );
}

fn psnr(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    let squared: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    let mse = squared / a.as_raw().len() as f64;
    if mse == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0 * 255.0 / mse).log10()
}

//! What browsers get from the daemon besides the API and the HLS files:
//! - `GET /`: the status page (every job, its state and progress, a player, a before/after
//!   picture);
//! - `GET /plugin/hls-streaming.js`: the script a Jellyfin admin injects into Jellyfin's web
//!   client (compiled in), and `GET /plugin/hls.js`, the hls.js it loads (the npm package that
//!   `scripts/setup` installs, found at run time: it is never committed nor fetched from a CDN);
//! - `GET /api/jobs/{id}/preview.png`: one frame of the source beside the same frame upscaled,
//!   made once with ffmpeg + `image` and kept in the job's folder;
//! - CORS for the control endpoints the script calls from Jellyfin's origin
//!   (`/upscale-trigger`, `/hls-status/…`, `/api/jobs/{id}`, `/api/warmup`): their preflight, and
//!   the same handlers as the plain routes for requests that carry an `Origin` header, every
//!   answer (errors included) with `Access-Control-Allow-Origin: *`. These filters must come
//!   before the plain routes, which would otherwise answer such requests without the header.

use std::convert::Infallible;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use warp::filters::BoxedFilter;
use warp::http::header::{self, HeaderValue};
use warp::http::{Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::errors::{self, json_error};
use super::{api, webhook, AppState};
use crate::jobs::{manager::segments_on_disk, JobView};
use crate::media::process::Process;
use crate::media::Tools;
use crate::pipeline::segment_name;

const SCRIPT: &str = include_str!("../../plugin-js/hls-streaming.js");
const STATUS_PAGE: &str = include_str!("status_page.html");
/// Where npm puts hls.js under the repository (`scripts/setup`: `npm ci --prefix plugin-js`).
const HLS_JS: &str = "plugin-js/node_modules/hls.js/dist/hls.min.js";
/// The before/after picture's name in the job's folder.
pub const PREVIEW_FILE: &str = "preview.png";
/// Dark band between the two halves of the picture.
const PREVIEW_GAP: u32 = 8;
/// One frame out of a local file takes well under a second; this only stops a stuck ffmpeg.
const FFMPEG_LIMIT: Duration = Duration::from_secs(30);

const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
const ALLOW_HEADERS: &str = "Content-Type, X-Liveup-Token, X-Playback-Session-Id";

pub fn routes(state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    let with_state = {
        let state = Arc::clone(&state);
        warp::any().map(move || Arc::clone(&state))
    };

    let page = warp::path::end().and(warp::get()).map(|| {
        let mut response = warp::reply::html(STATUS_PAGE).into_response();
        no_cache(&mut response);
        response
    });
    let script = warp::path!("plugin" / "hls-streaming.js")
        .and(warp::get())
        .map(|| {
            let mut response =
                warp::reply::with_header(SCRIPT, header::CONTENT_TYPE, "text/javascript")
                    .into_response();
            no_cache(&mut response);
            allow_any_origin(response)
        });
    let hls_js = warp::path!("plugin" / "hls.js")
        .and(warp::get())
        .then(serve_hls_js);
    let preview = warp::path!("api" / "jobs" / String / "preview.png")
        .and(warp::get())
        .and(denied(Arc::clone(&state)))
        .and(with_state.clone())
        .then(
            |id: String, denied: Option<Response>, state: Arc<AppState>| async move {
                match denied {
                    Some(response) => response,
                    None => preview_png(id, state).await,
                }
            },
        );

    page.or(script)
        .unify()
        .or(hls_js)
        .unify()
        .or(preview)
        .unify()
        .or(cross_origin(state))
        .unify()
        .boxed()
}

// ---- CORS for the browser script ----------------------------------------------------------------

/// The preflight, and the script's endpoints for requests with an `Origin` header.
fn cross_origin(state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    let with_state = {
        let state = Arc::clone(&state);
        warp::any().map(move || Arc::clone(&state))
    };
    // The method is checked with the path, not before it: a method filter alone would turn
    // every other route's 404 into this one's 405.
    let preflight = warp::method().and(warp::path::full()).and_then(
        |method: Method, path: warp::path::FullPath| async move {
            if method == Method::OPTIONS && is_cross_origin_path(path.as_str()) {
                Ok(preflight_response())
            } else {
                Err(warp::reject::not_found())
            }
        },
    );
    let trigger = warp::path!("upscale-trigger")
        .and(warp::post())
        .and(from_browser())
        .and(
            super::authorized(state.config.token.clone())
                .and(warp::body::content_length_limit(webhook::MAX_BODY_BYTES))
                .and(warp::body::bytes())
                .and(with_state.clone())
                .and_then(api::trigger)
                .recover(errors::recover)
                .unify()
                .map(allow_any_origin),
        );
    let warmup = warp::path!("api" / "warmup")
        .and(warp::post())
        .and(from_browser())
        .and(
            super::authorized(state.config.token.clone())
                .and(warp::body::content_length_limit(webhook::MAX_BODY_BYTES))
                .and(warp::body::bytes())
                .and(super::viewer())
                .and(with_state.clone())
                .and_then(api::warmup)
                .recover(errors::recover)
                .unify()
                .map(allow_any_origin),
        );
    let job = warp::path!("api" / "jobs" / String)
        .and(warp::get())
        .and(from_browser())
        .and(denied(Arc::clone(&state)))
        .and(with_state.clone())
        .then(
            |id: String, denied: Option<Response>, state: Arc<AppState>| async move {
                match denied {
                    Some(response) => allow_any_origin(response),
                    None => settle(api::get_job(id, state).await).await,
                }
            },
        );
    let status = warp::path!("hls-status" / String)
        .and(warp::get())
        .and(from_browser())
        .and(with_state)
        .then(|file: String, state: Arc<AppState>| async move {
            settle(api::hls_status(file, state).await).await
        });
    preflight
        .or(trigger)
        .unify()
        .or(warmup)
        .unify()
        .or(job)
        .unify()
        .or(status)
        .unify()
        .boxed()
}

/// The paths the browser script calls across origins.
fn is_cross_origin_path(path: &str) -> bool {
    let mut parts = path.trim_start_matches('/').split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("upscale-trigger"), None, ..) => true,
        (Some("hls-status"), Some(file), None, _) => !file.is_empty(),
        (Some("api"), Some("warmup"), None, _) => true,
        (Some("api"), Some("jobs"), Some(id), None) => !id.is_empty(),
        _ => false,
    }
}

/// Passes requests a browser sent from another page (they carry `Origin`).
fn from_browser() -> BoxedFilter<()> {
    warp::header::<String>("origin")
        .map(|_| ())
        .untuple_one()
        .boxed()
}

/// The token check of the control endpoints, as the refusal to send (`None`: allowed), so that
/// the refusal can carry CORS headers and the script can read it.
fn denied(state: Arc<AppState>) -> BoxedFilter<(Option<Response>,)> {
    super::authorized(state.config.token.clone())
        .map(|| None)
        .recover(|rejection: Rejection| async move {
            Ok::<_, Infallible>(Some(settle(Err(rejection)).await))
        })
        .unify()
        .boxed()
}

/// A handler's answer, its rejection turned into the usual JSON error, with CORS headers.
async fn settle(result: Result<Response, Rejection>) -> Response {
    let response = match result {
        Ok(response) => response,
        Err(rejection) => match errors::recover(rejection).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
    };
    allow_any_origin(response)
}

fn allow_any_origin(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

fn preflight_response() -> Response {
    let mut response =
        warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    allow_any_origin(response)
}

fn no_cache(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

// ---- hls.js -------------------------------------------------------------------------------------

/// Where hls.js may be: `LIVEUP_HLS_JS` (a file), else `plugin-js/node_modules/…` under the working
/// directory, the executable's ancestors (a `target/…/liveup` inside a checkout) and the source
/// tree.
pub fn hls_js_candidates() -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(file) = std::env::var_os("LIVEUP_HLS_JS") {
        candidates.push(PathBuf::from(file));
    }
    if let Ok(cwd) = std::env::current_dir() {
        candidates.push(cwd.join(HLS_JS));
    }
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).take(4).map(|a| a.join(HLS_JS)));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(HLS_JS));
    candidates
}

async fn serve_hls_js() -> Response {
    for candidate in hls_js_candidates() {
        if let Ok(bytes) = tokio::fs::read(&candidate).await {
            let mut response = Response::new(bytes.into());
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript"),
            );
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            return allow_any_origin(response);
        }
    }
    allow_any_origin(json_error(
        StatusCode::NOT_FOUND,
        "hls_js_not_installed",
        "hls.js is not installed: run scripts/setup (npm ci --prefix plugin-js), or point \
         LIVEUP_HLS_JS at hls.min.js",
    ))
}

// ---- the before/after picture -------------------------------------------------------------------

async fn preview_png(id: String, state: Arc<AppState>) -> Response {
    let Some(job) = state.manager.get(&id) else {
        return json_error(StatusCode::NOT_FOUND, "not_found", &format!("no job {id}"));
    };
    let dir = state.manager.job_dir(&id);
    let segment_seconds = state.config.segment_time;
    let made = tokio::task::spawn_blocking(move || {
        preview(&Tools::from_env(), &job, &dir, segment_seconds)
    })
    .await;
    match made {
        Ok(Ok(png)) => {
            let mut response = Response::new(png.into());
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
            no_cache(&mut response);
            response
        }
        Ok(Err(PreviewError::NotYet)) => {
            let mut response = json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_upscaled_frame_yet",
                "no segment of this job is ready yet",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            response
        }
        Ok(Err(PreviewError::Failed(message))) => {
            tracing::warn!(job = %id, "preview: {message}");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "preview", &message)
        }
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &e.to_string(),
        ),
    }
}

#[derive(Debug)]
pub enum PreviewError {
    /// Nothing upscaled on disk yet.
    NotYet,
    Failed(String),
}

/// The job's before/after picture as PNG: made once, then read from `<job dir>/preview.png`.
///
/// The upscaled frame comes from the job's first segment on disk (or its final file), half a
/// segment in; the original frame is the source's frame at the same film time, scaled to the
/// upscaled size with ffmpeg's default (bicubic) scaler, as a player would show it.
pub fn preview(
    tools: &Tools,
    job: &JobView,
    dir: &Path,
    segment_seconds: u32,
) -> Result<Vec<u8>, PreviewError> {
    let cached = dir.join(PREVIEW_FILE);
    if let Ok(png) = std::fs::read(&cached) {
        return Ok(png);
    }
    let seconds = f64::from(segment_seconds.max(1));
    let film_left = |start: f64| {
        job.source_duration_seconds
            .map_or(seconds, |d| (d - start).clamp(0.0, seconds))
    };
    let (upscaled, start) = match segments_on_disk(dir).into_iter().next() {
        Some(index) => (dir.join(segment_name(index)), f64::from(index) * seconds),
        None if job.output_ready => (job.output.clone(), 0.0),
        None => return Err(PreviewError::NotYet),
    };
    let offset = film_left(start) / 2.0;
    let after = decode_png(&run_ffmpeg(one_frame(tools, &upscaled, offset, None))?)?;
    let (width, height) = after.dimensions();
    let raw = run_ffmpeg(one_frame(
        tools,
        &job.source,
        start + offset,
        Some((width, height)),
    ))?;
    let before = image::RgbImage::from_raw(width, height, raw)
        .ok_or_else(|| PreviewError::Failed("ffmpeg gave a short source frame".to_string()))?;
    let png = side_by_side(&before, &after)?;
    let temp = dir.join(format!(".{PREVIEW_FILE}.{}.tmp", std::process::id()));
    if std::fs::write(&temp, &png).is_ok() && std::fs::rename(&temp, &cached).is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    Ok(png)
}

/// An ffmpeg that writes one frame `at` seconds into `input`: the source, scaled to `size`, as
/// raw RGB; or an upscaled file as PNG.
///
/// The source is seeked in the demuxer (fast, exact since ffmpeg decodes from the keyframe
/// before). liveup's MPEG-TS files are read from their start and the frames before `at` dropped:
/// ffmpeg 5.1's input seek in a one-second segment whose only keyframe is its first frame finds
/// nothing past 0.2 s. `at` is at most half a segment, so that reads little.
fn one_frame(tools: &Tools, input: &Path, at: f64, size: Option<(u32, u32)>) -> Command {
    let mut command = tools.ffmpeg_command();
    let at = format!("{at:.3}");
    match size {
        Some(_) => command.arg("-ss").arg(&at).arg("-i").arg(input),
        None => command.arg("-i").arg(input).arg("-ss").arg(&at),
    };
    command.args(["-map", "0:v:0", "-frames:v", "1", "-an", "-sn"]);
    match size {
        Some((width, height)) => command
            .arg("-vf")
            .arg(format!("scale={width}:{height}:flags=bicubic,setsar=1"))
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]),
        None => command.args(["-f", "image2pipe", "-c:v", "png", "-"]),
    };
    command
}

/// Runs a short ffmpeg and returns its stdout; kills it past [`FFMPEG_LIMIT`].
fn run_ffmpeg(command: Command) -> Result<Vec<u8>, PreviewError> {
    let failed = |e: &dyn std::fmt::Display| PreviewError::Failed(e.to_string());
    let mut spawned = Process::spawn("ffmpeg", command, false, true).map_err(|e| failed(&e))?;
    let process = Arc::clone(&spawned.process);
    let (finished, watch) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = watch.recv_timeout(FFMPEG_LIMIT) {
            process.kill();
        }
    });
    let mut out = Vec::new();
    if let Some(mut stdout) = spawned.stdout.take() {
        let _ = stdout.read_to_end(&mut out);
    }
    let waited = spawned.process.wait();
    drop(finished);
    let _ = watchdog.join();
    waited.map_err(|e| failed(&e))?;
    if out.is_empty() {
        return Err(PreviewError::Failed(
            "ffmpeg gave no frame at that time".to_string(),
        ));
    }
    Ok(out)
}

fn decode_png(bytes: &[u8]) -> Result<image::RgbImage, PreviewError> {
    image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .map(|picture| picture.to_rgb8())
        .map_err(|e| PreviewError::Failed(format!("ffmpeg's frame is not a PNG: {e}")))
}

/// `before` and `after` (the same size) side by side, as PNG.
pub fn side_by_side(
    before: &image::RgbImage,
    after: &image::RgbImage,
) -> Result<Vec<u8>, PreviewError> {
    let (width, height) = after.dimensions();
    let mut canvas =
        image::RgbImage::from_pixel(width * 2 + PREVIEW_GAP, height, image::Rgb([24, 24, 24]));
    image::imageops::replace(&mut canvas, before, 0, 0);
    image::imageops::replace(&mut canvas, after, i64::from(width + PREVIEW_GAP), 0);
    let mut png = Vec::new();
    canvas
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| PreviewError::Failed(e.to_string()))?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_scripts_endpoints_are_cross_origin() {
        for path in [
            "/upscale-trigger",
            "/hls-status/Film.mkv",
            "/api/jobs/abc123",
            "/api/warmup",
        ] {
            assert!(is_cross_origin_path(path), "{path}");
        }
        for path in [
            "/",
            "/api/jobs",
            "/api/jobs/abc/preview.png",
            "/api/sessions",
            "/metrics",
            "/hls-status/",
            "/upscale-trigger/x",
        ] {
            assert!(!is_cross_origin_path(path), "{path}");
        }
    }

    #[test]
    fn the_picture_puts_before_left_and_after_right() {
        let before = image::RgbImage::from_pixel(4, 2, image::Rgb([255, 0, 0]));
        let after = image::RgbImage::from_pixel(4, 2, image::Rgb([0, 0, 255]));
        let png = side_by_side(&before, &after).unwrap();
        let picture = decode_png(&png).unwrap();
        assert_eq!(picture.dimensions(), (4 * 2 + PREVIEW_GAP, 2));
        assert_eq!(picture.get_pixel(0, 0).0, [255, 0, 0]);
        assert_eq!(picture.get_pixel(4 + PREVIEW_GAP, 1).0, [0, 0, 255]);
        assert_eq!(picture.get_pixel(4, 0).0, [24, 24, 24]);
    }
}

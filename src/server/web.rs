//! What browsers get from the daemon besides the API and the HLS files:
//! - `GET /`: the status page (every job, its state and progress, a player, a before/after
//!   picture);
//! - `GET /plugin/hls-streaming.js`: the script a Jellyfin admin injects into Jellyfin's web
//!   client (compiled in), and `GET /plugin/hls.js`, the hls.js it loads (the npm package that
//!   `scripts/setup` installs, found at run time: it is never committed nor fetched from a CDN);
//! - `GET /api/jobs/{id}/preview.png`: the job's before/after picture ([`crate::jobs::preview`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::http::header::{self, HeaderValue};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::errors::json_error;
use super::AppState;
use crate::jobs::preview::{preview, PreviewError};
use crate::media::Tools;

const SCRIPT: &str = include_str!("../../plugin-js/hls-streaming.js");
const STATUS_PAGE: &str = include_str!("status_page.html");
/// Where npm puts hls.js under the repository (`scripts/setup`: `npm ci --prefix plugin-js`).
const HLS_JS: &str = "plugin-js/node_modules/hls.js/dist/hls.min.js";
/// The same hls.js as an ES module, which the browser script imports without touching window.Hls.
const HLS_MJS: &str = "plugin-js/node_modules/hls.js/dist/hls.min.mjs";
/// `GET /`: the status page.
pub fn status_page() -> BoxedFilter<(Response,)> {
    warp::path::end()
        .and(warp::get())
        .map(|| {
            let mut response = warp::reply::html(STATUS_PAGE).into_response();
            no_cache(&mut response);
            response
        })
        .boxed()
}

/// The browser script and hls.js. (The preview is routed with the API, behind its token:
/// [`preview_png`].)
pub fn plugin_files() -> BoxedFilter<(Response,)> {
    let script = warp::path!("plugin" / "hls-streaming.js")
        .and(warp::get())
        .map(|| {
            let mut response =
                warp::reply::with_header(SCRIPT, header::CONTENT_TYPE, "text/javascript")
                    .into_response();
            no_cache(&mut response);
            response
        });
    let hls_js = warp::path!("plugin" / "hls.js")
        .and(warp::get())
        .then(|| serve_hls_js(HLS_JS));
    let hls_mjs = warp::path!("plugin" / "hls.mjs")
        .and(warp::get())
        .then(|| serve_hls_js(HLS_MJS));
    script.or(hls_js).unify().or(hls_mjs).unify().boxed()
}

fn no_cache(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

// ---- hls.js -------------------------------------------------------------------------------------

/// Where `file` (hls.js's script or module, relative to the checkout) may be: given by
/// `LIVEUP_HLS_JS` (the script; the module beside it, `.mjs` for `.js`), else under the working
/// directory, the executable's ancestors (a `target/…/liveup` inside a checkout) and the source
/// tree.
pub fn hls_js_candidates(file: &str) -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(script) = std::env::var_os("LIVEUP_HLS_JS") {
        let script = PathBuf::from(script);
        candidates.push(match Path::new(file).extension() {
            Some(module) if module == "mjs" => script.with_extension("mjs"),
            _ => script,
        });
    }
    if let Ok(cwd) = std::env::current_dir() {
        candidates.push(cwd.join(file));
    }
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).take(4).map(|a| a.join(file)));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(file));
    candidates
}

async fn serve_hls_js(file: &'static str) -> Response {
    for candidate in hls_js_candidates(file) {
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
            return response;
        }
    }
    json_error(
        StatusCode::NOT_FOUND,
        "hls_js_not_installed",
        "hls.js is not installed: run scripts/setup (npm ci --prefix plugin-js), or point \
         LIVEUP_HLS_JS at hls.min.js",
    )
}

// ---- the before/after picture -------------------------------------------------------------------

pub async fn preview_png(id: String, state: Arc<AppState>) -> Response {
    let Some(job) = state.manager.get(&id) else {
        return json_error(StatusCode::NOT_FOUND, "not_found", &format!("no job {id}"));
    };
    let dir = state.manager.job_dir(&id);
    let first_made = state
        .manager
        .made(&id)
        .and_then(|made| made.first().copied());
    let segment_seconds = state.config.segment_seconds;
    let made = tokio::task::spawn_blocking(move || {
        preview(&Tools::from_env(), &job, &dir, first_made, segment_seconds)
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

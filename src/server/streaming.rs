//! What viewers of a daemon job get under `/hls/{job}/`: the playlists liveup writes from the
//! segments made (`index.m3u8`, the whole film up front; `stream.m3u8`, the growing one) and
//! segments that may not be made yet. Every request refreshes the viewer's session. A segment
//! not made yet is waited for (bounded; woken the moment it lands), then answered 503 with
//! Retry-After — never a 2xx without the segment (hls.js would play the body) and never a 404
//! (hls.js would not retry). A job that failed or was cancelled answers 410 with its error, for
//! good: hls.js (1.7) fails at once on a first playlist load that gets a 4xx, but with a single
//! rendition it retries a playlist reload twice and a VOD fragment six times with back-off
//! (about 30 s) before giving up, and skips a live fragment as a gap; the browser script stops it
//! on the first 410 instead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use warp::filters::BoxedFilter;
use warp::http::header::{self, HeaderValue};
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::hls_files::{self, FileKind};
use super::AppState;
use crate::hls::write;
use crate::job_dir::segment_index;
use crate::jobs::{JobState, SegmentState};

pub fn routes(state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    let with_state = warp::any().map(move || Arc::clone(&state));
    warp::path!("hls" / String / String)
        .and(warp::get().or(warp::head()).unify())
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(super::viewer())
        .and(with_state)
        .and_then(handle)
        .boxed()
}

async fn handle(
    job: String,
    file: String,
    method: Method,
    headers: HeaderMap,
    viewer: String,
    state: Arc<AppState>,
) -> Result<Response, Rejection> {
    let ours = file == "index.m3u8" || file == "stream.m3u8" || segment_index(&file).is_some();
    let Some(outcome) = state.manager.outcome(&job).filter(|_| ours) else {
        return Err(warp::reject::not_found());
    };
    if let Some(gone) = ended(outcome) {
        return Ok(gone);
    }
    let segment = segment_index(&file);
    let session = state.manager.viewer_request(&job, &viewer, segment);
    let mut reply = match segment {
        Some(index) => segment_reply(&state, &job, &file, index, &method, &headers).await,
        None => playlist_reply(&state, &job, &file, &method).await,
    };
    if let Some(session) = session.and_then(|s| HeaderValue::from_str(&s).ok()) {
        reply.headers_mut().insert("x-liveup-session", session);
    }
    Ok(reply)
}

async fn playlist_reply(state: &Arc<AppState>, job: &str, file: &str, method: &Method) -> Response {
    let timeline = match state.manager.known_timeline(job) {
        Some(known) => Some(known),
        // The first question about a job probes its source.
        None => {
            let manager = Arc::clone(&state.manager);
            let id = job.to_string();
            tokio::task::spawn_blocking(move || manager.timeline(&id).ok())
                .await
                .ok()
                .flatten()
        }
    };
    let Some((total, count)) = timeline else {
        // The job's run meets the same problem and fails it; the retry then gets the 410.
        let mut response = hls_files::json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the source could not be read yet",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        return response;
    };
    let seconds = state.config.segment_seconds;
    let text = if file == "index.m3u8" {
        write::vod(count, seconds, total)
    } else {
        let made = state.manager.made(job).unwrap_or_default();
        let ready = (0..).take_while(|i| made.contains(i)).count() as u32;
        write::event(ready, count, seconds, total)
    };
    let length = text.len();
    let mut response = if method == Method::HEAD {
        Response::new(warp::hyper::Body::empty())
    } else {
        Response::new(text.into())
    };
    let headers = response.headers_mut();
    hls_files::set_cors(headers);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(FileKind::Playlist.content_type()),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

async fn segment_reply(
    state: &Arc<AppState>,
    job: &str,
    file: &str,
    index: u32,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    if !state.manager.is_made(job, index) {
        if let Err(answer) = wait_for_segment(state, job, index).await {
            return answer;
        }
    }
    let root = &state.config.hls_root;
    let Some(resolved) = hls_files::resolve(root, job, file) else {
        return hls_files::json_error(StatusCode::NOT_FOUND, "not_found", "no such file");
    };
    match hls_files::open_confined(root, &resolved, hls_files::body_to_read(method)).await {
        Ok(opened) => hls_files::respond(opened, resolved.kind, method, headers).await,
        Err(_) => hls_files::json_error(StatusCode::NOT_FOUND, "not_found", "no such file"),
    }
}

/// Asks the job manager for segment `index` (which may restart the encoder there) and waits
/// until it is made, at most `segment_wait_seconds`; `Err` is the answer to send instead.
async fn wait_for_segment(state: &Arc<AppState>, job: &str, index: u32) -> Result<(), Response> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(state.config.segment_wait_seconds);
    // Subscribed before asking, so a segment landing in between is not missed.
    let Some(mut landed) = state.manager.segment_events(job) else {
        return Err(hls_files::not_found());
    };
    // The first question about a job may probe its source.
    let manager = Arc::clone(&state.manager);
    let id = job.to_string();
    let found = tokio::task::spawn_blocking(move || manager.want_segment(&id, index))
        .await
        .unwrap_or(SegmentState::Never);
    match found {
        SegmentState::Ready => {}
        SegmentState::Never => {
            return Err(state
                .manager
                .outcome(job)
                .and_then(ended)
                .unwrap_or_else(|| {
                    hls_files::json_error(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "no such segment in this film",
                    )
                }));
        }
        SegmentState::Pending => loop {
            let woken = tokio::time::timeout_at(deadline.into(), landed.changed()).await;
            if state.manager.is_made(job, index) {
                break;
            }
            if let Some(gone) = state.manager.outcome(job).and_then(ended) {
                return Err(gone);
            }
            if !matches!(woken, Ok(Ok(()))) {
                state.manager.record_wait(started.elapsed());
                let mut response = hls_files::json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "segment_not_ready",
                    "this segment is being made; retry shortly",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
                return Err(response);
            }
        },
    }
    state.manager.record_wait(started.elapsed());
    Ok(())
}

/// The answer for a job that will make no more segments: 410 with its state and error.
fn ended((state, error): (JobState, Option<String>)) -> Option<Response> {
    let (code, message) = match state {
        JobState::Failed => (
            "job_failed",
            error.unwrap_or_else(|| "the job failed".into()),
        ),
        JobState::Cancelled => ("job_cancelled", "the job was cancelled".to_string()),
        _ => return None,
    };
    Some(hls_files::json_answer(
        StatusCode::GONE,
        serde_json::json!({ "error": code, "message": message, "state": state }),
    ))
}

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
//!
//! With a ladder: `master.m3u8?profile=phone` lists the top rung and the lower rungs that are
//! ready (asking for the profile starts making the missing ones), and each lower rung has its own
//! `index.480p.m3u8`, `stream.480p.m3u8` and `segment_00042.480p.ts`, served the same way (a rung
//! segment not made yet is made next and waited for).

use std::collections::HashMap;
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
use crate::job_dir::{rung_segment_index, segment_index};
use crate::jobs::variants::{RungSegment, VariantError};
use crate::jobs::{JobState, SegmentState};

pub fn routes(state: Arc<AppState>) -> BoxedFilter<(Response,)> {
    let with_state = warp::any().map(move || Arc::clone(&state));
    warp::path!("hls" / String / String)
        .and(warp::get().or(warp::head()).unify())
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(super::viewer())
        .and(with_state)
        .and_then(handle)
        .boxed()
}

/// What a file name under `/hls/{job}/` asks for.
#[derive(Debug, PartialEq)]
enum Asked {
    Master,
    Playlist { rung: Option<String>, live: bool },
    Segment { rung: Option<String>, index: u32 },
}

fn asked(file: &str) -> Option<Asked> {
    if file == "master.m3u8" {
        return Some(Asked::Master);
    }
    if let Some(index) = segment_index(file) {
        return Some(Asked::Segment { rung: None, index });
    }
    if let Some((index, rung)) = rung_segment_index(file) {
        let rung = Some(rung);
        return Some(Asked::Segment { rung, index });
    }
    let (kind, rest) = file.strip_suffix(".m3u8")?.split_once('.').map_or_else(
        || (file.strip_suffix(".m3u8").unwrap_or(file), None),
        |(kind, rung)| (kind, Some(rung)),
    );
    let live = match kind {
        "index" => false,
        "stream" => true,
        _ => return None,
    };
    match rest {
        None => Some(Asked::Playlist { rung: None, live }),
        Some(rung) => {
            crate::ladder::height_of(rung)?;
            let rung = Some(rung.to_string());
            Some(Asked::Playlist { rung, live })
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    job: String,
    file: String,
    query: HashMap<String, String>,
    method: Method,
    headers: HeaderMap,
    viewer: String,
    state: Arc<AppState>,
) -> Result<Response, Rejection> {
    let asked = asked(&file);
    let Some(outcome) = state.manager.outcome(&job).filter(|_| asked.is_some()) else {
        return Err(warp::reject::not_found());
    };
    let asked = asked.expect("checked above");
    if let Some(gone) = ended(outcome) {
        return Ok(gone);
    }
    if let Asked::Playlist {
        rung: Some(rung), ..
    }
    | Asked::Segment {
        rung: Some(rung), ..
    } = &asked
    {
        // The first question about a job's rungs reads its folder.
        let variants = Arc::clone(&state.variants);
        let (id, name) = (job.clone(), rung.clone());
        let known = tokio::task::spawn_blocking(move || variants.has_rung(&id, &name))
            .await
            .unwrap_or(false);
        if !known {
            return Ok(hls_files::not_found());
        }
    }
    let segment = match &asked {
        Asked::Segment { index, .. } => Some(*index),
        _ => None,
    };
    let session = state.manager.viewer_request(&job, &viewer, segment);
    let mut reply = match asked {
        Asked::Master => master_reply(&state, &job, query.get("profile"), &method).await,
        Asked::Segment { rung: None, index } => {
            segment_reply(&state, &job, &file, index, &method, &headers).await
        }
        Asked::Segment {
            rung: Some(rung),
            index,
        } => rung_segment_reply(&state, &job, &file, &rung, index, &method, &headers).await,
        Asked::Playlist { rung: None, .. } => playlist_reply(&state, &job, &file, &method).await,
        Asked::Playlist {
            rung: Some(rung),
            live,
        } => rung_playlist_reply(&state, &job, &rung, live, &method).await,
    };
    if let Some(session) = session.and_then(|s| HeaderValue::from_str(&s).ok()) {
        reply.headers_mut().insert("x-liveup-session", session);
    }
    Ok(reply)
}

/// The film's length and segment count; `Err` is the answer to send instead.
async fn timeline(state: &Arc<AppState>, job: &str) -> Result<(f64, u32), Response> {
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
    // The job's run meets the same problem and fails it; the retry then gets the 410.
    timeline.ok_or_else(|| not_ready("not_ready", "the source could not be read yet"))
}

fn not_ready(code: &str, message: &str) -> Response {
    let mut response = hls_files::json_error(StatusCode::SERVICE_UNAVAILABLE, code, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    response
}

async fn playlist_reply(state: &Arc<AppState>, job: &str, file: &str, method: &Method) -> Response {
    let (total, count) = match timeline(state, job).await {
        Ok(known) => known,
        Err(answer) => return answer,
    };
    let seconds = state.config.segment_seconds;
    let text = if file == "index.m3u8" {
        write::vod(count, seconds, total)
    } else {
        let made = state.manager.made(job).unwrap_or_default();
        let ready = (0..).take_while(|i| made.contains(i)).count() as u32;
        write::event(ready, count, seconds, total)
    };
    playlist_response(text, method)
}

async fn rung_playlist_reply(
    state: &Arc<AppState>,
    job: &str,
    rung: &str,
    live: bool,
    method: &Method,
) -> Response {
    let (total, count) = match timeline(state, job).await {
        Ok(known) => known,
        Err(answer) => return answer,
    };
    let film = write::Film {
        count,
        segment_seconds: state.config.segment_seconds,
        total_seconds: total,
        rung: Some(rung),
    };
    let text = if live {
        film.event(state.variants.contiguous(job, rung))
    } else {
        film.vod()
    };
    playlist_response(text, method)
}

async fn master_reply(
    state: &Arc<AppState>,
    job: &str,
    profile: Option<&String>,
    method: &Method,
) -> Response {
    if let Err(answer) = timeline(state, job).await {
        return answer;
    }
    let variants = Arc::clone(&state.variants);
    let (id, profile) = (job.to_string(), profile.cloned());
    let offered = tokio::task::spawn_blocking(move || variants.offer(&id, profile.as_deref()))
        .await
        .unwrap_or(Err(VariantError::NotReady));
    match offered {
        Ok(variants) => playlist_response(write::master(&variants), method),
        Err(VariantError::NotReady) => not_ready(
            "not_ready",
            "the upscaled film has no segment yet; retry shortly",
        ),
        Err(error @ VariantError::NoProfile { .. }) => hls_files::json_error(
            StatusCode::BAD_REQUEST,
            "unknown_profile",
            &error.to_string(),
        ),
        Err(error @ VariantError::NoJob(_)) => {
            hls_files::json_error(StatusCode::NOT_FOUND, "not_found", &error.to_string())
        }
    }
}

fn playlist_response(text: String, method: &Method) -> Response {
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

async fn rung_segment_reply(
    state: &Arc<AppState>,
    job: &str,
    file: &str,
    rung: &str,
    index: u32,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    if let Err(answer) = wait_for_rung_segment(state, job, rung, index).await {
        return answer;
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

/// Asks for segment `index` of `rung` (made next when missing) and waits for it, at most
/// `segment_wait_seconds`; `Err` is the answer to send instead.
async fn wait_for_rung_segment(
    state: &Arc<AppState>,
    job: &str,
    rung: &str,
    index: u32,
) -> Result<(), Response> {
    let deadline = Instant::now() + Duration::from_secs(state.config.segment_wait_seconds);
    let Some(mut landed) = state.variants.events(job) else {
        return Err(hls_files::not_found());
    };
    let variants = Arc::clone(&state.variants);
    let (id, name) = (job.to_string(), rung.to_string());
    let want = move || variants.want_segment(&id, &name, index);
    loop {
        let found = tokio::task::spawn_blocking(want.clone())
            .await
            .unwrap_or(RungSegment::Never);
        match found {
            RungSegment::Ready => return Ok(()),
            RungSegment::Never => {
                return Err(hls_files::json_error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "no such segment in this rung (or the rung could not be made)",
                ))
            }
            RungSegment::Pending => {}
        }
        let woken = tokio::time::timeout_at(deadline.into(), landed.changed()).await;
        if let Some(gone) = state.manager.outcome(job).and_then(ended) {
            return Err(gone);
        }
        if !matches!(woken, Ok(Ok(()))) {
            return Err(not_ready(
                "segment_not_ready",
                "this segment is being made; retry shortly",
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_say_what_is_asked() {
        let rung = |r: &str| Some(r.to_string());
        assert_eq!(asked("master.m3u8"), Some(Asked::Master));
        assert_eq!(
            asked("index.m3u8"),
            Some(Asked::Playlist {
                rung: None,
                live: false
            })
        );
        assert_eq!(
            asked("stream.480p.m3u8"),
            Some(Asked::Playlist {
                rung: rung("480p"),
                live: true
            })
        );
        assert_eq!(
            asked("segment_00003.ts"),
            Some(Asked::Segment {
                rung: None,
                index: 3
            })
        );
        assert_eq!(
            asked("segment_00003.54p.ts"),
            Some(Asked::Segment {
                rung: rung("54p"),
                index: 3
            })
        );
        for other in [
            "encoder.m3u8",
            "index.x.m3u8",
            "job.json",
            "preview.png",
            "other.480p.m3u8",
        ] {
            assert_eq!(asked(other), None, "{other}");
        }
    }
}

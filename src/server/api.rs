//! Handlers of the daemon's own endpoints: the webhook, job control, status, health, metrics.

use std::sync::Arc;

use serde_json::json;
use warp::http::StatusCode;
use warp::hyper::body::Bytes;
use warp::{Rejection, Reply};

use super::errors::ApiError;
use super::webhook::{self, Decision, Target};
use super::{metrics, AppState};
use crate::jobs::{intake, JobState, JobView, Priority};
use crate::path_map;

pub async fn trigger(
    body: Bytes,
    state: Arc<AppState>,
) -> Result<warp::reply::Response, Rejection> {
    let trigger = webhook::parse_trigger(&body)
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()).reject())?;
    let priority = match webhook::decide(&trigger) {
        Decision::Ignore(reason) => {
            return Ok(
                warp::reply::json(&json!({"status": "ignored", "reason": reason})).into_response(),
            )
        }
        Decision::Start(priority) => priority,
    };
    let started = start(trigger, priority, &state).await?;
    Ok(warp::reply::json(&started_reply(&started, &state)).into_response())
}

/// Like the webhook, before the viewer presses play: the job starts (or queues) at playback
/// priority whatever the event, and the viewer's session exists already.
pub async fn warmup(
    body: Bytes,
    viewer: String,
    state: Arc<AppState>,
) -> Result<warp::reply::Response, Rejection> {
    let trigger = webhook::parse_trigger(&body)
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()).reject())?;
    let started = start(trigger, Priority::Playback, &state).await?;
    let session = state.manager.viewer_request(&started.job.id, &viewer, None);
    let mut reply = started_reply(&started, &state);
    reply["session_id"] = json!(session);
    reply["index_url"] = json!(format!(
        "{}/hls/{}/index.m3u8",
        state.public_url(),
        started.job.id
    ));
    Ok(warp::reply::json(&reply).into_response())
}

pub async fn sessions(state: Arc<AppState>) -> Result<warp::reply::Response, Rejection> {
    Ok(warp::reply::json(&json!({ "sessions": state.manager.sessions() })).into_response())
}

struct Started {
    job: JobView,
    created: bool,
}

fn started_reply(started: &Started, state: &AppState) -> serde_json::Value {
    let job = &started.job;
    let status = match (started.created, job.state) {
        (_, JobState::Complete) => "complete",
        (true, JobState::Running) => "started",
        (false, JobState::Running) => "running",
        (_, JobState::Queued) => "queued",
        (_, other) => other.as_str(),
    };
    json!({
        "status": status,
        "job_id": job.id,
        "hls_url": state.hls_url(&job.id),
        "estimated_delay_seconds": estimated_delay(job, state.config.segment_seconds),
        "streaming": true,
    })
}

/// Resolves what the body names to a file inside the media roots and starts or joins its job.
async fn start(
    trigger: webhook::Trigger,
    priority: Priority,
    state: &Arc<AppState>,
) -> Result<Started, Rejection> {
    let (path, name) = match trigger.target {
        Target::Path(path) => (path, trigger.name),
        Target::JellyfinItem(item_id) => {
            let client = state.jellyfin.clone().ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_IMPLEMENTED,
                    "jellyfin_not_configured",
                    "this body names a Jellyfin item, and this liveup cannot look items up: set \
                     jellyfin_url and jellyfin_api_key in its configuration file (or \
                     LIVEUP_JELLYFIN_URL and LIVEUP_JELLYFIN_API_KEY) and restart it, or send \
                     the file's path ({\"path\": …})",
                )
                .reject()
            })?;
            let item = tokio::task::spawn_blocking(move || client.resolve_item(&item_id))
                .await
                .map_err(|e| {
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
                        .reject()
                })?
                .map_err(|e| {
                    let status = if e.is_item_problem() {
                        StatusCode::NOT_FOUND
                    } else if e.is_configuration_problem() {
                        StatusCode::NOT_IMPLEMENTED
                    } else {
                        StatusCode::BAD_GATEWAY
                    };
                    ApiError::new(status, e.code(), e.to_string()).reject()
                })?;
            (item.path, trigger.name.or(item.name))
        }
    };
    // Both kinds name the file as Jellyfin sees it.
    let path = path_map::to_liveup(&state.config.path_map, &path);
    let manager = Arc::clone(&state.manager);
    let roots = state.config.media_roots.clone();
    // Resolving the path touches the file system: off the async workers, with the submission.
    let submitted = tokio::task::spawn_blocking(move || {
        intake::admit(&manager, &roots, &path, name, priority).map_err(ApiError::from)
    })
    .await
    .map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()).reject()
    })?
    .map_err(ApiError::reject)?;
    Ok(Started {
        job: submitted.job,
        created: submitted.created,
    })
}

/// Seconds until the first segment can play: none left once it exists; otherwise a segment's
/// worth of film at the job's measured rate, or at real time until a rate is known.
fn estimated_delay(job: &JobView, segment_seconds: u32) -> f64 {
    if job.segments > 0 || job.state == JobState::Complete {
        return 0.0;
    }
    let rate = if job.rate > 0.0 { job.rate } else { 1.0 };
    (f64::from(segment_seconds) / rate).round()
}

pub async fn list_jobs(state: Arc<AppState>) -> Result<warp::reply::Response, Rejection> {
    let jobs: Vec<serde_json::Value> = state
        .manager
        .list()
        .iter()
        .map(|job| state.job_json(job))
        .collect();
    Ok(warp::reply::json(&json!({ "jobs": jobs })).into_response())
}

pub async fn get_job(id: String, state: Arc<AppState>) -> Result<warp::reply::Response, Rejection> {
    if state.manager.get(&id).is_none() {
        // Another host may have made the job a moment ago.
        let (manager, wanted) = (Arc::clone(&state.manager), id.clone());
        let _ = tokio::task::spawn_blocking(move || manager.look_up(&wanted)).await;
    }
    let job = state
        .manager
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")).reject())?;
    Ok(warp::reply::json(&state.job_json(&job)).into_response())
}

pub async fn cancel_job(
    id: String,
    state: Arc<AppState>,
) -> Result<warp::reply::Response, Rejection> {
    // Saving the cancelled job syncs its job.json: off the async workers.
    let manager = Arc::clone(&state.manager);
    let job = tokio::task::spawn_blocking(move || manager.cancel(&id))
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()).reject()
        })?
        .map_err(|e| ApiError::from(e).reject())?;
    Ok(warp::reply::json(&state.job_json(&job)).into_response())
}

pub async fn hls_status(
    file: String,
    state: Arc<AppState>,
) -> Result<warp::reply::Response, Rejection> {
    let file = percent_encoding::percent_decode_str(&file)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("bad_name", "the file name is not UTF-8").reject())?;
    let Some(job) = state.manager.find_by_file_name(&file) else {
        let body = json!({"status": "not_found", "message": format!("no job for {file}")});
        return Ok(
            warp::reply::with_status(warp::reply::json(&body), StatusCode::NOT_FOUND)
                .into_response(),
        );
    };
    let status = match job.state {
        JobState::Queued if job.waiting_for_space.is_some() => "waiting_for_space",
        JobState::Running if job.segments == 0 => "starting",
        JobState::Running if job.throttled => "throttled",
        JobState::Running => "streaming",
        other => other.as_str(),
    };
    Ok(warp::reply::json(&json!({
        "status": status,
        "job_id": job.id,
        "hls_url": state.hls_url(&job.id),
        "segments": job.segments,
        "complete": job.state == JobState::Complete,
        "duration_seconds": job.duration_seconds,
        "source_duration_seconds": job.source_duration_seconds,
        "progress": job.progress,
        "rate": job.rate,
        "eta_seconds": job.eta_seconds,
        "live": job.live,
        "ready_at": job.ready_at,
        "throttled": job.throttled,
        "error": job.error,
        "waiting_for_space": job.waiting_for_space,
    }))
    .into_response())
}

pub async fn health(state: Arc<AppState>) -> Result<warp::reply::Response, Rejection> {
    Ok(warp::reply::json(&json!({
        "status": "healthy",
        "device": state.device,
        "ffmpeg_version": state.ffmpeg_version,
        "onnxruntime_version": state.onnxruntime_version,
        "model": state.config.model,
        "streaming_enabled": true,
        "checks": state.doctor.checks,
        "jobs_running": state.manager.state_counts().iter()
            .find(|(s, _)| *s == JobState::Running).map_or(0, |(_, n)| *n),
    }))
    .into_response())
}

pub async fn metrics(state: Arc<AppState>) -> Result<warp::reply::Response, Rejection> {
    let text = metrics::render(&state.http, &state.manager, &state.variants.counters);
    Ok(warp::reply::with_header(text, "content-type", "text/plain; version=0.0.4").into_response())
}

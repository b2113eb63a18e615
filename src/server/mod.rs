//! The HTTP side of the daemon (warp): route filters here, handlers in [`api`], HLS files in
//! [`hls_files`], every error mapped to a JSON response in [`errors`].

mod api;
pub mod errors;
pub mod hls_files;
pub mod metrics;
mod streaming;
pub mod web;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;
use warp::filters::BoxedFilter;
use warp::{Filter, Rejection, Reply};

use crate::config::Config;
use crate::jellyfin::JellyfinClient;
use crate::jobs::{JobManager, JobView};
use errors::ApiError;

/// What every handler shares.
pub struct AppState {
    pub config: Config,
    pub manager: Arc<JobManager>,
    pub variants: Arc<crate::jobs::variants::Variants>,
    pub jellyfin: Option<Arc<JellyfinClient>>,
    pub http: metrics::HttpCounters,
    /// What runs the model ("CPU", "CUDA:0", "ffmpeg"), found at start-up.
    pub device: String,
    /// What `liveup doctor` says of this machine, taken at start.
    pub doctor: crate::doctor::Report,
    pub ffmpeg_version: String,
    pub onnxruntime_version: Option<String>,
    /// `public_url` once the port is known, when the configured one was derived from a bind
    /// to port 0.
    pub bound_url: std::sync::OnceLock<String>,
}

impl AppState {
    pub fn public_url(&self) -> &str {
        self.bound_url.get().unwrap_or(&self.config.public_url)
    }

    pub fn hls_url(&self, job_id: &str) -> String {
        format!("{}/hls/{job_id}/stream.m3u8", self.public_url())
    }

    fn job_json(&self, job: &JobView) -> serde_json::Value {
        let mut value = serde_json::to_value(job).unwrap_or_else(|_| json!({}));
        value["hls_url"] = json!(self.hls_url(&job.id));
        value["master_url"] = json!(format!("{}/hls/{}/master.m3u8", self.public_url(), job.id));
        value["variants"] = json!(self.variants.view(&job.id));
        value["profiles"] = json!(self.config.profiles.keys().collect::<Vec<_>>());
        if let Some(stand_in) = &job.stand_in {
            value["stand_in"] = json!({
                "job_id": stand_in,
                "model": self.manager.get(stand_in).map(|j| j.model),
                "hls_url": self.hls_url(stand_in),
                "master_url": format!("{}/hls/{stand_in}/master.m3u8", self.public_url()),
            });
        }
        value
    }
}

pub fn routes(state: Arc<AppState>) -> BoxedFilter<(warp::reply::Response,)> {
    let with_state = {
        let state = Arc::clone(&state);
        warp::any().map(move || Arc::clone(&state))
    };
    let guarded = authorized(state.config.token.clone());
    let body =
        || warp::body::content_length_limit(webhook::MAX_BODY_BYTES).and(warp::body::bytes());

    // What the browser script calls from Jellyfin's page.
    let trigger = warp::path!("upscale-trigger")
        .and(warp::post())
        .and(guarded.clone())
        .and(body())
        .and(with_state.clone())
        .and_then(api::trigger);
    let warmup = warp::path!("api" / "warmup")
        .and(warp::post())
        .and(guarded.clone())
        .and(body())
        .and(viewer())
        .and(with_state.clone())
        .and_then(api::warmup);
    let job = warp::path!("api" / "jobs" / String)
        .and(warp::get())
        .and(guarded.clone())
        .and(with_state.clone())
        .and_then(api::get_job);
    let cancel = warp::path!("api" / "jobs" / String)
        .and(warp::delete())
        .and(guarded.clone())
        .and(with_state.clone())
        .and_then(api::cancel_job);
    let status = warp::path!("hls-status" / String)
        .and(warp::get())
        .and(with_state.clone())
        .and_then(api::hls_status);
    let script_calls = cross_origin(
        web::plugin_files()
            .or(trigger)
            .unify()
            .or(warmup)
            .unify()
            .or(job)
            .unify()
            .or(cancel)
            .unify()
            .or(status)
            .unify(),
    );

    let jobs = warp::path!("api" / "jobs")
        .and(warp::get())
        .and(guarded.clone())
        .and(with_state.clone())
        .and_then(api::list_jobs);
    let preview = warp::path!("api" / "jobs" / String / "preview.png")
        .and(warp::get())
        .and(guarded.clone())
        .and(with_state.clone())
        .then(web::preview_png);
    let sessions = warp::path!("api" / "sessions")
        .and(warp::get())
        .and(guarded)
        .and(with_state.clone())
        .and_then(api::sessions);
    let health = warp::path!("health")
        .and(warp::get())
        .and(with_state.clone())
        .and_then(api::health);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_state)
        .and_then(api::metrics);

    let counted = Arc::clone(&state);
    web::status_page()
        .or(script_calls)
        .unify()
        .or(jobs)
        .unify()
        .or(preview)
        .unify()
        .or(sessions)
        .unify()
        .or(health)
        .unify()
        .or(metrics)
        .unify()
        .or(streaming::routes(Arc::clone(&state)))
        .unify()
        .or(hls_files::routes(state.config.hls_root.clone()))
        .unify()
        .recover(errors::recover)
        .unify()
        .with(warp::log::custom(move |info| {
            counted.http.record(info.path(), info.status().as_u16())
        }))
        .map(Reply::into_response)
        .boxed()
}

/// `routes`, the ones the browser script calls from Jellyfin's page, answering other origins:
/// warp's CORS with its preflight, every answer (errors included, so the script can read them)
/// carrying `Access-Control-Allow-Origin`. Only on their paths: warp answers a preflight before
/// any route is matched.
fn cross_origin<F>(routes: F) -> BoxedFilter<(warp::reply::Response,)>
where
    F: Filter<Extract = (warp::reply::Response,), Error = Rejection>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let cors = warp::cors()
        .allow_any_origin()
        .allow_methods(["GET", "POST"])
        .allow_headers(["content-type", "x-liveup-token", "x-playback-session-id"])
        .max_age(std::time::Duration::from_secs(86400));
    let script_paths = warp::path::peek()
        .and_then(|path: warp::path::Peek| async move {
            if is_cross_origin_path(path.as_str()) {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one();
    script_paths
        .and(routes.recover(errors::recover).unify().with(cors))
        .map(Reply::into_response)
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
        (Some("plugin"), Some("hls-streaming.js" | "hls.js" | "hls.mjs"), None, _) => true,
        _ => false,
    }
}

/// When `token` is set, the control endpoints need it, as the `X-Liveup-Token` header or a
/// `token` query parameter, on every bind: a loopback bind is no fence when a proxy on the same
/// machine (the shipped nginx) forwards requests to it. Beyond loopback it must be set.
fn authorized(token: Option<String>) -> BoxedFilter<()> {
    let token: Option<Arc<str>> = token.map(Arc::from);
    let query = warp::query::<HashMap<String, String>>()
        .or(warp::any().map(HashMap::new))
        .unify();
    warp::header::optional::<String>("x-liveup-token")
        .and(query)
        .and_then(
            move |header: Option<String>, query: HashMap<String, String>| {
                let token = token.clone();
                async move {
                    let Some(expected) = token.as_deref() else {
                        return Ok::<(), Rejection>(());
                    };
                    let given = header
                        .or_else(|| query.get("token").cloned())
                        .unwrap_or_default();
                    if tokens_match(&given, expected) {
                        Ok(())
                    } else {
                        Err(ApiError::new(
                            warp::http::StatusCode::UNAUTHORIZED,
                            "unauthorized",
                            "a valid token is required (X-Liveup-Token header or ?token=)",
                        )
                        .reject())
                    }
                }
            },
        )
        .untuple_one()
        .boxed()
}

/// Who is asking: the `session` query parameter, else the `X-Playback-Session-Id` header, else
/// the client's address.
pub fn viewer() -> BoxedFilter<(String,)> {
    warp::query::<HashMap<String, String>>()
        .or(warp::any().map(HashMap::new))
        .unify()
        .and(warp::header::optional::<String>("x-playback-session-id"))
        .and(warp::addr::remote())
        .map(
            |query: HashMap<String, String>,
             header: Option<String>,
             remote: Option<std::net::SocketAddr>| {
                query
                    .get("session")
                    .cloned()
                    .or(header)
                    .or_else(|| remote.map(|a| a.ip().to_string()))
                    .unwrap_or_else(|| "unknown".to_string())
            },
        )
        .boxed()
}

/// Compares digests in constant time, so neither the token's bytes nor its length leak
/// through the time an answer takes.
fn tokens_match(given: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    bool::from(given.ct_eq(&expected))
}

/// `routes` under `base_path` (`/a/b`; empty: at the root).
fn under(
    base_path: &str,
    routes: BoxedFilter<(warp::reply::Response,)>,
) -> BoxedFilter<(warp::reply::Response,)> {
    base_path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .rev()
        .fold(routes, |inner, segment| {
            warp::path(segment.to_string()).and(inner).boxed()
        })
        // What lies outside the base path gets the same JSON 404 as a missing route inside it.
        .recover(errors::recover)
        .unify()
        .boxed()
}

/// Runs the server until `shutdown` resolves; returns the address it listened on via `bound`.
pub async fn serve(
    state: Arc<AppState>,
    bound: impl FnOnce(std::net::SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), warp::Error> {
    let address = state.config.bind;
    let base_path = state.config.base_path.clone();
    let (address, server) = warp::serve(under(&base_path, routes(Arc::clone(&state))))
        .try_bind_with_graceful_shutdown(address, shutdown)?;
    let derived_from_port_0 = state
        .config
        .public_url
        .strip_suffix(base_path.as_str())
        .and_then(|url| url.strip_suffix(":0"));
    if let Some(host) = derived_from_port_0 {
        let _ = state
            .bound_url
            .set(format!("{host}:{}{base_path}", address.port()));
    }
    bound(address);
    server.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn status(token: Option<&str>, path: &str, header: Option<&str>) -> u16 {
        let filter = authorized(token.map(String::from))
            .map(warp::reply)
            .recover(errors::recover);
        let mut request = warp::test::request().path(path);
        if let Some(header) = header {
            request = request.header("x-liveup-token", header);
        }
        request.reply(&filter).await.status().as_u16()
    }

    #[tokio::test]
    async fn a_set_token_is_required_whatever_the_bind() {
        assert_eq!(status(Some("s3cret"), "/api/jobs", None).await, 401);
        assert_eq!(
            status(Some("s3cret"), "/api/jobs", Some("wrong")).await,
            401
        );
        assert_eq!(
            status(Some("s3cret"), "/api/jobs", Some("s3cre")).await,
            401
        );
        assert_eq!(
            status(Some("s3cret"), "/api/jobs?token=nope", None).await,
            401
        );
        assert_eq!(
            status(Some("s3cret"), "/api/jobs", Some("s3cret")).await,
            200
        );
        assert_eq!(
            status(Some("s3cret"), "/api/jobs?token=s3cret", None).await,
            200
        );
        assert_eq!(status(None, "/api/jobs", None).await, 200);
    }

    #[test]
    fn only_the_scripts_endpoints_are_cross_origin() {
        for path in [
            "/upscale-trigger",
            "/hls-status/Film.mkv",
            "/api/jobs/abc123",
            "/api/warmup",
            "/plugin/hls.js",
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
            "/hls/abc/stream.m3u8",
        ] {
            assert!(!is_cross_origin_path(path), "{path}");
        }
    }

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("", "abc"));
        assert!(!tokens_match("abcd", "abc"));
    }
}

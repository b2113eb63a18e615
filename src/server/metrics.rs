//! Counters for `/metrics` (Prometheus text format): what the HTTP side answered, plus the job
//! manager's figures read at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use crate::jobs::variants::VariantCounters;
use crate::jobs::{JobManager, JobState};

#[derive(Default)]
pub struct HttpCounters {
    by_route_and_code: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

impl HttpCounters {
    pub fn record(&self, path: &str, status: u16) {
        let mut counts = self.by_route_and_code.lock().unwrap();
        *counts.entry((route_of(path), status)).or_default() += 1;
    }
}

/// A fixed label per route, so ids and file names never become label values.
fn route_of(path: &str) -> &'static str {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "" => "/",
        "upscale-trigger" => "/upscale-trigger",
        "hls-status" => "/hls-status/{file}",
        "hls" => "/hls/{job}/{file}",
        "health" => "/health",
        "metrics" => "/metrics",
        "plugin" => "/plugin/{file}",
        "api" => match path.trim_start_matches("/api/").split('/').next() {
            Some("jobs") if path.trim_end_matches('/') == "/api/jobs" => "/api/jobs",
            Some("jobs") => "/api/jobs/{id}",
            _ => "/api/other",
        },
        _ => "other",
    }
}

pub fn render(http: &HttpCounters, manager: &JobManager, variants: &VariantCounters) -> String {
    let mut out = String::new();
    let jobs = manager.list();
    let _ = writeln!(
        out,
        "# HELP liveup_jobs Jobs by state.\n# TYPE liveup_jobs gauge"
    );
    for (state, count) in manager.state_counts() {
        let _ = writeln!(out, "liveup_jobs{{state=\"{}\"}} {count}", state.as_str());
    }
    let running: Vec<_> = jobs
        .iter()
        .filter(|j| j.state == JobState::Running)
        .collect();
    let totals = manager.totals();
    let _ = writeln!(
        out,
        "# HELP liveup_frames_total Frames upscaled since the daemon started.\n\
         # TYPE liveup_frames_total counter\nliveup_frames_total {}",
        totals.frames
    );
    let _ = writeln!(
        out,
        "# HELP liveup_segments_total HLS segments made since the daemon started.\n\
         # TYPE liveup_segments_total counter\nliveup_segments_total {}",
        totals.segments
    );
    let _ = writeln!(
        out,
        "# HELP liveup_fps Frames per second across running jobs.\n\
         # TYPE liveup_fps gauge\nliveup_fps {:.3}",
        running.iter().map(|j| j.fps).sum::<f64>()
    );
    let _ = writeln!(
        out,
        "# HELP liveup_realtime_multiplier Seconds of film made per second, per running job.\n\
         # TYPE liveup_realtime_multiplier gauge"
    );
    for job in &running {
        let _ = writeln!(
            out,
            "liveup_realtime_multiplier{{job=\"{}\"}} {:.4}",
            job.id, job.rate
        );
    }
    let _ = writeln!(
        out,
        "# HELP liveup_device_jobs_running Runs on each device now.\n\
         # TYPE liveup_device_jobs_running gauge"
    );
    for (device, running) in manager.device_load() {
        let _ = writeln!(
            out,
            "liveup_device_jobs_running{{device=\"{device}\"}} {running}"
        );
    }
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP liveup_variant_generations_total Generations of missing lower rungs started.\n\
         # TYPE liveup_variant_generations_total counter\nliveup_variant_generations_total {}\n\
         # HELP liveup_variant_segments_total Lower-rung segments made from the top rung.\n\
         # TYPE liveup_variant_segments_total counter\nliveup_variant_segments_total {}\n\
         # HELP liveup_variant_retries_total Lower-rung segments tried again after failing.\n\
         # TYPE liveup_variant_retries_total counter\nliveup_variant_retries_total {}\n\
         # HELP liveup_variant_failures_total Rungs given up after their retries.\n\
         # TYPE liveup_variant_failures_total counter\nliveup_variant_failures_total {}\n\
         # HELP liveup_variant_fallbacks_total Missing rungs answered with the closest one.\n\
         # TYPE liveup_variant_fallbacks_total counter\nliveup_variant_fallbacks_total {}",
        load(&variants.generations),
        load(&variants.segments),
        load(&variants.retries),
        load(&variants.failures),
        load(&variants.fallbacks),
    );
    let counters = &manager.counters;
    let _ = writeln!(
        out,
        "# HELP liveup_sessions Active viewer sessions.\n# TYPE liveup_sessions gauge\n\
         liveup_sessions {}\n\
         # HELP liveup_restarts_total Encoder restarts where a viewer jumped ahead or behind.\n\
         # TYPE liveup_restarts_total counter\nliveup_restarts_total {}\n\
         # HELP liveup_throttled_seconds_total Time jobs spent paused, far ahead of every viewer.\n\
         # TYPE liveup_throttled_seconds_total counter\nliveup_throttled_seconds_total {:.3}\n\
         # HELP liveup_segment_wait_seconds_total Time segment requests waited for their segment.\n\
         # TYPE liveup_segment_wait_seconds_total counter\nliveup_segment_wait_seconds_total {:.3}",
        manager.active_sessions(),
        counters.restarts.load(Ordering::Relaxed),
        counters.throttled_millis.load(Ordering::Relaxed) as f64 / 1000.0,
        counters.wait_millis.load(Ordering::Relaxed) as f64 / 1000.0,
    );
    let _ = writeln!(
        out,
        "# HELP liveup_http_requests_total HTTP requests by route and status code.\n\
         # TYPE liveup_http_requests_total counter"
    );
    for ((route, code), count) in http.by_route_and_code.lock().unwrap().iter() {
        let _ = writeln!(
            out,
            "liveup_http_requests_total{{route=\"{route}\",code=\"{code}\"}} {count}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_labelled_without_their_variable_parts() {
        assert_eq!(
            route_of("/hls/film-0123/segment_00001.ts"),
            "/hls/{job}/{file}"
        );
        assert_eq!(route_of("/hls-status/My%20Film.mkv"), "/hls-status/{file}");
        assert_eq!(route_of("/api/jobs"), "/api/jobs");
        assert_eq!(route_of("/api/jobs/abc"), "/api/jobs/{id}");
        assert_eq!(route_of("/etc/passwd"), "other");
    }
}

//! The monitor's line: what an operator needs at a glance, with the rule that decides whether a
//! viewer can watch while the film is upscaled: a rate of at least 1.0× streams smoothly.

use super::status::Status;
use crate::cli::job_folder::human_duration;

pub fn line(status: &Status) -> String {
    let duration = match status.source_duration_seconds {
        Some(total) => format!("{:.1}s / {:.1}s", status.duration_seconds, total),
        None => format!("{:.1}s", status.duration_seconds),
    };
    let eta = match status.eta_seconds {
        Some(seconds) => human_duration(seconds),
        None => "-".to_string(),
    };
    format!(
        "Segments: {:>4} | Duration: {duration} | Progress: {:5.1}% | Rate: {} | ETA: {eta} | {}",
        status.segments,
        status.progress * 100.0,
        rate(status),
        label(status)
    )
}

/// `1.12x (smooth)`; below 1.0× playback catches up with the upscaler and stalls.
fn rate(status: &Status) -> String {
    let active = matches!(
        status.status.as_str(),
        "streaming" | "throttled" | "starting"
    );
    match status.rate {
        _ if !active => "-".to_string(),
        r if r <= 0.0 => "measuring".to_string(),
        r if r >= 1.0 => format!("{r:.2}x (smooth)"),
        r => format!("{r:.3}x (too slow to stream: viewers will wait)"),
    }
}

pub fn label(status: &Status) -> String {
    status.status.to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: &str, rate: f64) -> Status {
        Status {
            status: state.into(),
            segments: 45,
            duration_seconds: 270.0,
            source_duration_seconds: Some(720.0),
            progress: 0.375,
            rate,
            eta_seconds: Some(400.0),
            job_id: None,
        }
    }

    #[test]
    fn the_line_says_whether_it_streams_smoothly() {
        let text = line(&status("streaming", 1.12));
        assert!(text.contains("Segments:   45"), "{text}");
        assert!(text.contains("270.0s / 720.0s"), "{text}");
        assert!(text.contains("37.5%"), "{text}");
        assert!(text.contains("1.12x (smooth)"), "{text}");
        assert!(text.contains("ETA: 6m 40s"), "{text}");
        assert!(text.ends_with("STREAMING"), "{text}");
        assert!(line(&status("streaming", 0.4)).contains("too slow"));
        assert!(line(&status("throttled", 2.0)).ends_with("THROTTLED"));
    }
}

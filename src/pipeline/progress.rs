use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Counters the pipeline's threads update and anyone else reads (progress bar, status API).
#[derive(Debug)]
pub struct Progress {
    frames_done: AtomicU64,
    frames_total: AtomicU64,
    /// The output frame rate in millihertz, so it fits an atomic.
    frame_rate_milli: AtomicU64,
    /// Time spent inside the upscaler, to tell whether the rest of the pipeline keeps it busy.
    upscaling_nanos: AtomicU64,
    started: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    pub frames_done: u64,
    pub frames_total: u64,
    pub seconds_done: f64,
    pub elapsed_seconds: f64,
    pub fps: f64,
    /// Seconds of film made per second of wall time; ≥ 1.0 streams without stalling.
    pub realtime: f64,
    pub eta_seconds: Option<f64>,
    /// Share of the elapsed time the upscaler was working (1.0: never waited for frames).
    pub upscaler_busy: f64,
}

impl Default for Progress {
    fn default() -> Progress {
        Progress {
            frames_done: AtomicU64::new(0),
            frames_total: AtomicU64::new(0),
            frame_rate_milli: AtomicU64::new(0),
            upscaling_nanos: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

impl Progress {
    pub(crate) fn start(&self, frames_total: u64, frame_rate: f64) {
        self.frames_total.store(frames_total, Ordering::Relaxed);
        self.frame_rate_milli
            .store((frame_rate * 1000.0).round() as u64, Ordering::Relaxed);
    }

    pub(crate) fn upscaled_in(&self, spent: std::time::Duration) {
        self.upscaling_nanos
            .fetch_add(spent.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Forget the frames counted so far (they have been added to a running total elsewhere).
    pub(crate) fn reset_frames(&self) {
        self.frames_done.store(0, Ordering::Relaxed);
    }

    pub(crate) fn frame_done(&self) {
        self.frames_done.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let frames_done = self.frames_done.load(Ordering::Relaxed);
        let frames_total = self.frames_total.load(Ordering::Relaxed).max(frames_done);
        let frame_rate = self.frame_rate_milli.load(Ordering::Relaxed) as f64 / 1000.0;
        let elapsed_seconds = self.started.elapsed().as_secs_f64();
        let fps = if elapsed_seconds > 0.0 {
            frames_done as f64 / elapsed_seconds
        } else {
            0.0
        };
        let eta_seconds = (fps > 0.0).then(|| (frames_total - frames_done) as f64 / fps);
        Snapshot {
            frames_done,
            frames_total,
            seconds_done: if frame_rate > 0.0 {
                frames_done as f64 / frame_rate
            } else {
                0.0
            },
            elapsed_seconds,
            fps,
            realtime: if frame_rate > 0.0 {
                fps / frame_rate
            } else {
                0.0
            },
            eta_seconds,
            upscaler_busy: if elapsed_seconds > 0.0 {
                self.upscaling_nanos.load(Ordering::Relaxed) as f64 / 1e9 / elapsed_seconds
            } else {
                0.0
            },
        }
    }
}

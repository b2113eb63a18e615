//! Jobs: one per film and output settings. A job is a serde record with a small state machine
//! (queued → running → complete | failed | cancelled), stored in its own folder next to its
//! segments, run by the [`manager::JobManager`].

pub mod decide;
mod entry;
mod hosts;
pub mod id;
pub mod intake;
pub mod manager;
pub mod preview;
pub mod queue;
mod runner;
pub mod sessions;
pub mod shared;
pub mod store;
pub mod variants;
mod view;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use manager::{JobError, JobManager, ManagerSettings, SegmentState, Submitted, Totals};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Complete,
    Failed,
    Cancelled,
    /// A playback job whose last viewer left: its segments are kept and the next request for
    /// it picks it up again.
    Stopped,
}

impl JobState {
    pub fn is_active(self) -> bool {
        matches!(self, JobState::Queued | JobState::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Complete => "complete",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Stopped => "stopped",
        }
    }

    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Complete,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Stopped,
    ];
}

/// Who is waiting: a viewer who pressed play goes before a film that was just added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Playback,
    Library,
}

/// What `job.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub name: String,
    pub source: PathBuf,
    pub source_size: u64,
    pub source_mtime: i64,
    pub model: String,
    pub segment_seconds: u32,
    pub output: PathBuf,
    pub state: JobState,
    pub priority: Priority,
    pub created_at: u64,
    pub updated_at: u64,
    /// The source's length, known once the job has started.
    pub source_duration_seconds: Option<f64>,
    pub frame_rate: Option<f64>,
    /// How many segments the film has: estimated when it is first probed, exact once a run has
    /// reached the end.
    #[serde(default)]
    pub segment_count: Option<u32>,
    /// How many times the job was picked up again after the daemon stopped mid-way.
    pub resumes: u32,
    pub error: Option<String>,
    /// The lower rungs asked of this job and how far each is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<VariantRecord>,
    /// Who makes the lower rungs now, until when (renewed as it goes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_lock: Option<VariantLock>,
    /// The job whose live stream this one stands in for: made with `live_fallback_model` while
    /// that job's model cannot keep up with a viewer; it never writes a final file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stand_in_for: Option<String>,
    /// The job standing in for this one's live stream, once one was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stand_in: Option<String>,
    /// The host that ran the job last (several hosts sharing a database).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VariantState {
    /// Asked for; not all its segments are made yet.
    Pending,
    Complete,
    /// Gave up after its retries; the closest rung plays instead.
    Error,
}

/// A lower rung of a job, as job.json keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantRecord {
    pub name: String,
    pub height: u32,
    pub kbps: u32,
    /// The upscaled rung repackaged as CMAF (not encoded again).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repackaged: bool,
    pub state: VariantState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantLock {
    /// The rungs being made.
    pub rungs: Vec<String>,
    /// `host:pid` of the daemon making them.
    pub holder: String,
    /// Unix seconds; past it, the lock is free.
    pub expires_at: u64,
}

/// A job as the API shows it: the record plus live progress.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub id: String,
    pub name: String,
    pub source: PathBuf,
    pub state: JobState,
    pub priority: Priority,
    pub model: String,
    pub output: PathBuf,
    pub output_ready: bool,
    /// Complete segments on disk, wherever they are in the film.
    pub segments: usize,
    pub segment_count: Option<u32>,
    /// Seconds of upscaled film ready to play from the start without a gap.
    pub duration_seconds: f64,
    /// Paused because it is far ahead of every viewer.
    pub throttled: bool,
    /// The device the running job's network is on (`cuda:1`, `cpu`, `auto`).
    pub device: Option<String>,
    pub source_duration_seconds: Option<f64>,
    /// 0–1.
    pub progress: f64,
    pub fps: f64,
    /// Seconds of film made per second; ≥ 1.0 streams without stalling.
    pub rate: f64,
    pub eta_seconds: Option<f64>,
    /// Whether a viewer starting the film now would reach its end without catching up with the
    /// upscaler (the rest takes no longer to make than the whole film to watch); `None` until
    /// the run has measured its rate.
    pub live: Option<bool>,
    /// When the whole film should be ready (Unix seconds), at the measured rate.
    pub ready_at: Option<u64>,
    /// See [`JobRecord::stand_in_for`] and [`JobRecord::stand_in`].
    pub stand_in_for: Option<String>,
    pub stand_in: Option<String>,
    /// The host running the job now, else the one that ran it last (several hosts).
    pub host: Option<String>,
    pub resumes: u32,
    pub error: Option<String>,
    /// Set while the job is held because too little disk space is free: why, and what to do.
    pub waiting_for_space: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
}

pub fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

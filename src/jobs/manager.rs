//! The job manager: dedups requests into jobs, queues them (playback before library), runs at
//! most `max_jobs` pipelines at once on their own threads, and picks interrupted jobs up again
//! where they stopped when the daemon restarts.
//!
//! A job's progress is the set of complete segment files in its folder. A run makes the segments
//! from its start up to the next one already made (or the end); when a viewer asks for a segment
//! far ahead of the encoder, or in a hole behind it, the run is restarted there. Runs repeat
//! until every segment exists, then the final file is assembled from them.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::sessions::{Session, Sessions};
use super::{id, now_seconds, store, JobRecord, JobState, JobView, Priority};
use crate::disk::{self, LowSpace};
use crate::media::{self, Tools};
use crate::pipeline::{self, Control, EncoderSettings, PipelineError, PipelineSpec, Progress};
use crate::upscale::{self, EngineOptions};

/// The playlist the encoder keeps for itself; viewers get the ones liveup writes.
const ENCODER_PLAYLIST: &str = "encoder.m3u8";
/// Throttling follows viewers' requests and segments landing as they happen; the supervisor
/// only wakes for the next session to expire, this often while jobs wait for disk space, and
/// at least this often to notice the manager is gone.
const SPACE_RECHECK: Duration = Duration::from_secs(1);
const SUPERVISOR_IDLE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("no job {0}")]
    NotFound(String),
    #[error("cannot read {path}: {source}")]
    Source {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the daemon is shutting down")]
    ShuttingDown,
    #[error("cannot save job state: {0}")]
    Store(std::io::Error),
    #[error(transparent)]
    Probe(media::ProbeError),
}

#[derive(Debug, Clone)]
pub struct ManagerSettings {
    pub hls_root: PathBuf,
    pub output_root: PathBuf,
    pub model: String,
    pub engine: EngineOptions,
    pub segment_seconds: u32,
    pub max_jobs: usize,
    /// A request further than this ahead of the encoder restarts it there.
    pub jit_restart_seconds: f64,
    /// A watched job pauses when this far ahead of the furthest segment any viewer asked for.
    pub throttle_ahead_seconds: f64,
    pub session_timeout: Duration,
    /// No run starts, and a running one pauses, while less than this is free where jobs write.
    pub min_free_bytes: u64,
}

pub struct Submitted {
    pub job: JobView,
    /// False when the request joined an existing job.
    pub created: bool,
}

/// Totals since the daemon started, for /metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub frames: AtomicU64,
    pub segments: AtomicU64,
    pub restarts: AtomicU64,
    pub throttled_millis: AtomicU64,
    pub wait_millis: AtomicU64,
}

/// Frames and segments made since the daemon started, finished runs and running ones together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub frames: u64,
    pub segments: u64,
}

/// What a viewer's request for a segment found.
#[derive(Debug, Clone, PartialEq)]
pub enum SegmentState {
    Ready(PathBuf),
    /// Not made yet; being made (or queued).
    Pending,
    /// No such segment in this film, or no such job.
    Never,
}

pub struct JobManager {
    settings: ManagerSettings,
    tools: Tools,
    state: Mutex<State>,
    /// Signalled whenever a job thread ends, for `shutdown`.
    idle: Condvar,
    /// Wakes the supervisor early (shutdown).
    supervisor: Condvar,
    pub counters: Counters,
}

#[derive(Default)]
struct State {
    jobs: HashMap<String, Entry>,
    /// Queued job ids, kept sorted by (priority, arrival).
    queue: Vec<(Priority, u64, String)>,
    arrivals: u64,
    running: usize,
    shutting_down: bool,
    sessions: Sessions,
    /// Set while too little space is free where jobs write: nothing starts until it clears.
    low_space: Option<LowSpace>,
}

/// A job's record to be written after the state lock is released.
struct Saving {
    record: JobRecord,
    version: u64,
    saved: Arc<Mutex<u64>>,
}

impl Saving {
    /// Writes the record unless a newer one was written meanwhile; the job's own lock keeps
    /// its saves in order without holding up any other job or request.
    fn write(self, hls_root: &Path) -> std::io::Result<()> {
        let mut saved = self.saved.lock().unwrap();
        if *saved >= self.version {
            return Ok(());
        }
        store::save(hls_root, &self.record)?;
        *saved = self.version;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    Cancel,
    /// Restart the run at this segment (a viewer jumped there).
    Jump(u32),
    /// The last viewer of a playback job left.
    Abandoned,
}

struct Entry {
    record: JobRecord,
    /// The segments made, kept here so that serving a request never lists the folder: read
    /// from disk once, then updated by the runs as they move segments into place.
    made: BTreeSet<u32>,
    /// Bumped whenever a segment lands, waking the requests that wait for one.
    landed: Arc<watch::Sender<u64>>,
    /// Counts changes to `record`, so that saves made outside the lock never go back in time.
    version: u64,
    /// The version last written to `job.json`; its lock orders this job's saves.
    saved: Arc<Mutex<u64>>,
    progress: Arc<Progress>,
    control: Arc<Control>,
    /// The first segment of the current run.
    run_start: u32,
    stop: Option<Stop>,
    throttled_since: Option<Instant>,
    /// Segments that existed when the current run started, so /metrics counts only new ones.
    segments_at_start: usize,
}

impl JobManager {
    pub fn new(settings: ManagerSettings, tools: Tools) -> Arc<JobManager> {
        Arc::new(JobManager {
            settings,
            tools,
            state: Mutex::new(State::default()),
            idle: Condvar::new(),
            supervisor: Condvar::new(),
            counters: Counters::default(),
        })
    }

    /// Loads every job from disk; the ones that were queued or running are queued again and will
    /// continue from the segments they have. Returns how many were picked up.
    pub fn recover(self: &Arc<Self>) -> usize {
        let records: Vec<(JobRecord, BTreeSet<u32>)> = store::load_all(&self.settings.hls_root)
            .into_iter()
            .map(|record| {
                let made = segments_on_disk(&self.job_dir(&record.id));
                (record, made)
            })
            .collect();
        let mut resumed = 0;
        {
            let mut state = self.state.lock().unwrap();
            for (mut record, made) in records {
                if record.state.is_active() {
                    if record.state == JobState::Running {
                        record.resumes += 1;
                    }
                    record.state = JobState::Queued;
                    state.enqueue(&record);
                    resumed += 1;
                }
                state
                    .jobs
                    .insert(record.id.clone(), Entry::new(record, made));
            }
        }
        self.schedule();
        resumed
    }

    /// Starts the thread that expires sessions and lets jobs held for disk space go on.
    pub fn start_supervisor(self: &Arc<Self>) {
        let manager = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("job-supervisor".into())
            .spawn(move || loop {
                let Some(manager) = manager.upgrade() else {
                    return;
                };
                let held_for_space = {
                    let state = manager.state.lock().unwrap();
                    let now = Instant::now();
                    let mut wake = now + SUPERVISOR_IDLE;
                    if let Some(expiry) =
                        state.sessions.next_expiry(manager.settings.session_timeout)
                    {
                        wake = wake.min(expiry + Duration::from_millis(10));
                    }
                    if state.low_space.is_some() {
                        wake = wake.min(now + SPACE_RECHECK);
                    }
                    let (state, _) = manager
                        .supervisor
                        .wait_timeout_while(state, wake.saturating_duration_since(now), |s| {
                            !s.shutting_down
                        })
                        .unwrap();
                    if state.shutting_down {
                        return;
                    }
                    state.low_space.is_some()
                };
                manager.supervise();
                if held_for_space {
                    manager.schedule();
                }
            })
            .expect("spawn the supervisor");
    }

    /// Starts or joins the job for `source` (canonical, already checked by the caller).
    pub fn submit(
        self: &Arc<Self>,
        source: &Path,
        name: Option<String>,
        priority: Priority,
    ) -> Result<Submitted, JobError> {
        let metadata = std::fs::metadata(source).map_err(|e| JobError::Source {
            path: source.to_path_buf(),
            source: e,
        })?;
        let mtime = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        let settings = format!(
            "model={};segment={};codec={}",
            self.settings.model,
            self.settings.segment_seconds,
            EncoderSettings::default().codec
        );
        let id = id::job_id(source, metadata.len(), mtime, &settings);
        let on_disk = segments_on_disk(&self.job_dir(&id));
        let (created, saving) = {
            let mut state = self.state.lock().unwrap();
            if state.shutting_down {
                return Err(JobError::ShuttingDown);
            }
            let existing = state.jobs.get(&id).map(|e| e.record.state);
            match existing {
                Some(JobState::Queued) => {
                    state.raise_priority(&id, priority);
                    (false, None)
                }
                Some(JobState::Running | JobState::Complete) => (false, None),
                Some(JobState::Stopped) => {
                    let entry = state.jobs.get_mut(&id).expect("just seen");
                    entry.record.state = JobState::Queued;
                    entry.record.priority = priority;
                    let record = entry.record.clone();
                    let saving = entry.next_save();
                    state.enqueue(&record);
                    (false, Some(saving))
                }
                Some(JobState::Failed | JobState::Cancelled) | None => {
                    let now = now_seconds();
                    let display = name.unwrap_or_else(|| {
                        source
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    });
                    let record = JobRecord {
                        output: self.output_path(&state, source, &id),
                        id: id.clone(),
                        name: display,
                        source: source.to_path_buf(),
                        source_size: metadata.len(),
                        source_mtime: mtime,
                        model: self.settings.model.clone(),
                        segment_seconds: self.settings.segment_seconds,
                        state: JobState::Queued,
                        priority,
                        created_at: now,
                        updated_at: now,
                        source_duration_seconds: None,
                        frame_rate: None,
                        segment_count: None,
                        resumes: 0,
                        error: None,
                    };
                    state.enqueue(&record);
                    // A retried job keeps the segments it has; a new one starts from what
                    // the folder holds.
                    let made = state
                        .jobs
                        .remove(&id)
                        .map_or(on_disk, |previous| previous.made);
                    let mut entry = Entry::new(record, made);
                    let saving = entry.next_save();
                    state.jobs.insert(id.clone(), entry);
                    (true, Some(saving))
                }
            }
        };
        if let Some(saving) = saving {
            saving
                .write(&self.settings.hls_root)
                .map_err(JobError::Store)?;
        }
        self.schedule();
        let job = self
            .get(&id)
            .ok_or_else(|| JobError::NotFound(id.clone()))?;
        Ok(Submitted { job, created })
    }

    /// `<output_root>/<name>.upscaled.ts`, or with the job id added when another source already
    /// claimed that name.
    fn output_path(&self, state: &State, source: &Path, id: &str) -> PathBuf {
        let stem = source
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "film".into());
        let plain = self
            .settings
            .output_root
            .join(format!("{stem}.upscaled.ts"));
        let taken = state
            .jobs
            .values()
            .any(|e| e.record.output == plain && e.record.source != source);
        if taken {
            self.settings
                .output_root
                .join(format!("{stem}.{}.upscaled.ts", &id[id.len() - 8..]))
        } else {
            plain
        }
    }

    pub fn list(&self) -> Vec<JobView> {
        let state = self.state.lock().unwrap();
        let mut views: Vec<JobView> = state
            .jobs
            .values()
            .map(|e| self.view(e, state.low_space.as_ref()))
            .collect();
        views.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        views
    }

    pub fn get(&self, id: &str) -> Option<JobView> {
        let state = self.state.lock().unwrap();
        state
            .jobs
            .get(id)
            .map(|e| self.view(e, state.low_space.as_ref()))
    }

    /// The newest job whose source file is called `file_name`.
    pub fn find_by_file_name(&self, file_name: &str) -> Option<JobView> {
        let state = self.state.lock().unwrap();
        state
            .jobs
            .values()
            .filter(|e| e.record.source.file_name().is_some_and(|n| n == file_name))
            .max_by_key(|e| (e.record.state.is_active(), e.record.created_at))
            .map(|e| self.view(e, state.low_space.as_ref()))
    }

    pub fn cancel(self: &Arc<Self>, id: &str) -> Result<JobView, JobError> {
        let saving = {
            let mut state = self.state.lock().unwrap();
            let entry = state
                .jobs
                .get_mut(id)
                .ok_or_else(|| JobError::NotFound(id.to_string()))?;
            match entry.record.state {
                JobState::Queued | JobState::Stopped => {
                    entry.record.state = JobState::Cancelled;
                    entry.record.updated_at = now_seconds();
                    entry.wake_waiters();
                    let saving = entry.next_save();
                    state.queue.retain(|(_, _, queued)| queued != id);
                    Some(saving)
                }
                JobState::Running => {
                    entry.halt(Stop::Cancel);
                    None
                }
                _ => None,
            }
        };
        if let Some(saving) = saving {
            saving
                .write(&self.settings.hls_root)
                .map_err(JobError::Store)?;
        }
        self.get(id)
            .ok_or_else(|| JobError::NotFound(id.to_string()))
    }

    pub fn state_counts(&self) -> Vec<(JobState, usize)> {
        let state = self.state.lock().unwrap();
        JobState::ALL
            .iter()
            .map(|s| {
                (
                    *s,
                    state.jobs.values().filter(|e| e.record.state == *s).count(),
                )
            })
            .collect()
    }

    pub fn totals(&self) -> Totals {
        let state = self.state.lock().unwrap();
        let mut totals = Totals {
            frames: self.counters.frames.load(Ordering::Relaxed),
            segments: self.counters.segments.load(Ordering::Relaxed),
        };
        for entry in state.jobs.values() {
            if entry.record.state == JobState::Running {
                totals.frames += entry.progress.snapshot().frames_done;
                totals.segments += entry.made.len().saturating_sub(entry.segments_at_start) as u64;
            }
        }
        totals
    }

    pub fn job_dir(&self, id: &str) -> PathBuf {
        store::job_dir(&self.settings.hls_root, id)
    }

    /// The film's length and segment count, probing the source if no run has yet.
    pub fn timeline(&self, id: &str) -> Result<(f64, u32), JobError> {
        let (source, known) = {
            let state = self.state.lock().unwrap();
            let entry = state
                .jobs
                .get(id)
                .ok_or_else(|| JobError::NotFound(id.to_string()))?;
            let known = entry
                .record
                .source_duration_seconds
                .zip(entry.record.segment_count);
            (entry.record.source.clone(), known)
        };
        if let Some(known) = known {
            return Ok(known);
        }
        let info = media::probe(&self.tools, &source).map_err(JobError::Probe)?;
        let count = estimated_segments(&info, self.settings.segment_seconds);
        self.update(id, |r| {
            r.source_duration_seconds = Some(info.duration_seconds);
            r.frame_rate = Some(info.frame_rate.as_f64());
            r.segment_count.get_or_insert(count);
        });
        let state = self.state.lock().unwrap();
        let record = &state.jobs[id].record;
        Ok((info.duration_seconds, record.segment_count.unwrap_or(count)))
    }

    /// A viewer's request for a playlist (`segment` None) or a segment of job `id`: refreshes
    /// their session, lifts throttling, and returns the session id.
    pub fn viewer_request(&self, id: &str, viewer: &str, segment: Option<u32>) -> Option<String> {
        let mut state = self.state.lock().unwrap();
        if !state.jobs.contains_key(id) {
            return None;
        }
        let session = state.sessions.touch(id, viewer, segment).id.clone();
        self.throttle(&mut state, id);
        Some(session)
    }

    /// Where segment `index` of job `id` stands; restarts the encoder there when it is too far
    /// ahead of it or in a hole behind it.
    pub fn want_segment(self: &Arc<Self>, id: &str, index: u32) -> SegmentState {
        let made = {
            let state = self.state.lock().unwrap();
            state.jobs.get(id).map(|e| e.made.contains(&index))
        };
        match made {
            None => return SegmentState::Never,
            Some(true) => {
                return SegmentState::Ready(self.job_dir(id).join(pipeline::segment_name(index)))
            }
            Some(false) => {}
        }
        let Ok((_, count)) = self.timeline(id) else {
            return SegmentState::Never;
        };
        if index >= count {
            return SegmentState::Never;
        }
        let requeue = {
            let mut state = self.state.lock().unwrap();
            let Some(entry) = state.jobs.get_mut(id) else {
                return SegmentState::Never;
            };
            match entry.record.state {
                JobState::Running => {
                    let seconds = f64::from(self.settings.segment_seconds);
                    let encoder_at = f64::from(entry.run_start) * seconds
                        + entry.progress.snapshot().seconds_done;
                    let wanted_at = f64::from(index) * seconds;
                    let behind = index < entry.run_start;
                    let far_ahead = wanted_at > encoder_at + self.settings.jit_restart_seconds;
                    if (behind || far_ahead) && entry.stop.is_none() {
                        tracing::info!(job = %id, segment = index, "restarting the encoder where the viewer is");
                        entry.halt(Stop::Jump(index));
                    }
                    false
                }
                JobState::Queued => {
                    state.raise_priority(id, Priority::Playback);
                    false
                }
                JobState::Stopped => true,
                // A failed or cancelled job answers with its state; only a new trigger retries it.
                JobState::Failed | JobState::Cancelled => return SegmentState::Never,
                JobState::Complete => false,
            }
        };
        if requeue {
            let state = self.state.lock().unwrap();
            let record = state.jobs[id].record.clone();
            drop(state);
            let _ = self.submit(&record.source, Some(record.name), Priority::Playback);
            if let Some(entry) = self.state.lock().unwrap().jobs.get_mut(id) {
                entry.stop = Some(Stop::Jump(index));
            }
        }
        SegmentState::Pending
    }

    pub fn record_wait(&self, waited: Duration) {
        self.counters
            .wait_millis
            .fetch_add(waited.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn sessions(&self) -> Vec<Session> {
        self.state.lock().unwrap().sessions.list()
    }

    pub fn active_sessions(&self) -> usize {
        self.state.lock().unwrap().sessions.len()
    }

    /// Stops every pipeline (their jobs stay queued/running on disk, to resume at the next
    /// start), waits until every ffmpeg is reaped, and refuses new work.
    pub fn shutdown(&self) {
        let mut state = self.state.lock().unwrap();
        state.shutting_down = true;
        self.supervisor.notify_all();
        for entry in state.jobs.values() {
            if entry.record.state == JobState::Running {
                entry.control.cancel();
            }
        }
        while state.running > 0 {
            state = self.idle.wait(state).unwrap();
        }
    }

    fn supervise(&self) {
        let mut saves = Vec::new();
        let mut state = self.state.lock().unwrap();
        let expired = state.sessions.expire(self.settings.session_timeout);
        for session in expired {
            let (watched, _) = state.sessions.furthest_for(&session.job_id);
            if watched {
                continue;
            }
            if let Some(entry) = state.jobs.get_mut(&session.job_id) {
                if entry.record.priority == Priority::Playback && entry.record.state.is_active() {
                    tracing::info!(job = %session.job_id, "last viewer left: stopping, segments kept");
                    if entry.record.state == JobState::Running {
                        entry.halt(Stop::Abandoned);
                    } else {
                        entry.record.state = JobState::Stopped;
                        saves.push(entry.next_save());
                        let id = session.job_id.clone();
                        state.queue.retain(|(_, _, queued)| *queued != id);
                    }
                }
            }
        }
        let running: Vec<String> = state
            .jobs
            .values()
            .filter(|e| e.record.state == JobState::Running)
            .map(|e| e.record.id.clone())
            .collect();
        for id in running {
            self.throttle(&mut state, &id);
        }
        drop(state);
        for saving in saves {
            self.write(saving);
        }
    }

    /// Writes a job's record, logging a failure: the job goes on in memory either way.
    fn write(&self, saving: Saving) {
        let id = saving.record.id.clone();
        if let Err(e) = saving.write(&self.settings.hls_root) {
            tracing::error!("job {id}: cannot save state: {e}");
        }
    }

    /// Pauses job `id` while it is far ahead of every viewer; lets it run otherwise (and always
    /// when nobody watches).
    fn throttle(&self, state: &mut State, id: &str) {
        let (watched, furthest) = state.sessions.furthest_for(id);
        let Some(entry) = state.jobs.get_mut(id) else {
            return;
        };
        let seconds = f64::from(self.settings.segment_seconds);
        let encoder_at =
            f64::from(entry.run_start) * seconds + entry.progress.snapshot().seconds_done;
        let viewer_at = furthest.map_or(0.0, |f| f64::from(f + 1) * seconds);
        let pause = entry.record.state == JobState::Running
            && watched
            && encoder_at - viewer_at > self.settings.throttle_ahead_seconds;
        entry.control.set_paused(pause);
        match (pause, entry.throttled_since) {
            (true, None) => entry.throttled_since = Some(Instant::now()),
            (false, Some(since)) => {
                self.counters
                    .throttled_millis
                    .fetch_add(since.elapsed().as_millis() as u64, Ordering::Relaxed);
                entry.throttled_since = None;
            }
            _ => {}
        }
    }

    /// Too little space where jobs write, if so.
    fn low_space(&self) -> Option<LowSpace> {
        let needed = self.settings.min_free_bytes;
        disk::ensure_free(&self.settings.hls_root, needed)
            .and_then(|()| disk::ensure_free(&self.settings.output_root, needed))
            .err()
    }

    /// Whether a run that ended with `error` should wait for space rather than fail the job:
    /// it ran out of it, or was damaged while little is free.
    fn waits_for_space(&self, error: &PipelineError) -> Option<LowSpace> {
        match error {
            PipelineError::LowSpace(low) => Some(low.clone()),
            PipelineError::DamagedSegment { .. } => self.low_space(),
            PipelineError::Io(_, e) if e.kind() == std::io::ErrorKind::StorageFull => {
                self.low_space()
            }
            _ => None,
        }
    }

    fn schedule(self: &Arc<Self>) {
        // A hold lasts until what it needed is free, which may be more than the minimum.
        let held = self.state.lock().unwrap().low_space.clone();
        let low_space = held
            .and_then(|held| disk::ensure_free(&held.path, held.needed).err())
            .or_else(|| self.low_space());
        let mut state = self.state.lock().unwrap();
        match (low_space, state.low_space.is_some()) {
            (Some(low), held) => {
                if !held {
                    tracing::warn!("no job starts until space is freed: {low}");
                }
                state.low_space = Some(low);
                return;
            }
            (None, true) => {
                tracing::info!("enough free space again: queued jobs continue");
                state.low_space = None;
            }
            (None, false) => {}
        }
        while state.running < self.settings.max_jobs.max(1)
            && !state.shutting_down
            && !state.queue.is_empty()
        {
            let (_, _, id) = state.queue.remove(0);
            let Some(entry) = state.jobs.get_mut(&id) else {
                continue;
            };
            entry.record.state = JobState::Running;
            entry.record.updated_at = now_seconds();
            entry.record.error = None;
            entry.progress = Arc::new(Progress::default());
            let manager = Arc::downgrade(self);
            let job = id.clone();
            entry.control = Arc::new(Control::reporting_segments(move |index| {
                if let Some(manager) = manager.upgrade() {
                    manager.segment_landed(&job, index);
                }
            }));
            entry.segments_at_start = entry.made.len();
            let saving = entry.next_save();
            let record = entry.record.clone();
            state.running += 1;
            let manager = Arc::clone(self);
            std::thread::Builder::new()
                .name(format!("job-{}", &id[id.len().saturating_sub(8)..]))
                .spawn(move || {
                    manager.write(saving);
                    manager.run(record)
                })
                .expect("spawn a job thread");
        }
    }

    /// A run moved segment `index` of job `id` into place.
    fn segment_landed(&self, id: &str, index: u32) {
        let mut state = self.state.lock().unwrap();
        if let Some(entry) = state.jobs.get_mut(id) {
            entry.made.insert(index);
            entry.wake_waiters();
        }
        self.throttle(&mut state, id);
    }

    /// Wakes whoever waits on job `id`'s segments each time one lands (`None`: no such job).
    pub fn segment_events(&self, id: &str) -> Option<watch::Receiver<u64>> {
        let state = self.state.lock().unwrap();
        state.jobs.get(id).map(|e| e.landed.subscribe())
    }

    /// Job `id`'s state and error, without building its whole view (asked on every request).
    pub fn outcome(&self, id: &str) -> Option<(JobState, Option<String>)> {
        let state = self.state.lock().unwrap();
        state
            .jobs
            .get(id)
            .map(|e| (e.record.state, e.record.error.clone()))
    }

    /// Whether segment `index` of job `id` is made.
    pub fn is_made(&self, id: &str, index: u32) -> bool {
        let state = self.state.lock().unwrap();
        state.jobs.get(id).is_some_and(|e| e.made.contains(&index))
    }

    /// The segments of job `id` made so far.
    pub fn made(&self, id: &str) -> Option<BTreeSet<u32>> {
        let state = self.state.lock().unwrap();
        state.jobs.get(id).map(|e| e.made.clone())
    }

    fn run(self: Arc<Self>, record: JobRecord) {
        let id = record.id.clone();
        tracing::info!(job = %id, source = %record.source.display(), "job started");
        let outcome = self.execute(&record);
        let space_pause = match &outcome {
            Err(error) => self.waits_for_space(error),
            Ok(()) => None,
        };
        let (shutting_down, stop, saving) = {
            let mut state = self.state.lock().unwrap();
            let shutting_down = state.shutting_down;
            let mut stop = None;
            let mut saving = None;
            if let Some(entry) = state.jobs.get_mut(&id) {
                stop = entry.stop.take();
                if let Some(since) = entry.throttled_since.take() {
                    self.counters
                        .throttled_millis
                        .fetch_add(since.elapsed().as_millis() as u64, Ordering::Relaxed);
                }
                let record = &mut entry.record;
                match (&outcome, stop) {
                    (Ok(()), _) => record.state = JobState::Complete,
                    (Err(PipelineError::Cancelled), _) if shutting_down => {}
                    (Err(_), None) if space_pause.is_some() => record.state = JobState::Queued,
                    (Err(PipelineError::Cancelled), Some(Stop::Abandoned)) => {
                        record.state = JobState::Stopped
                    }
                    (Err(PipelineError::Cancelled), _) => record.state = JobState::Cancelled,
                    (Err(error), _) => {
                        record.state = JobState::Failed;
                        record.error = Some(error.to_string());
                    }
                }
                record.updated_at = now_seconds();
                saving = Some(entry.next_save());
                // Whoever waits for a segment learns of a failure at once.
                entry.wake_waiters();
            }
            if let Some(low) = space_pause.clone().filter(|_| stop.is_none()) {
                let record = state.jobs.get(&id).map(|e| e.record.clone());
                if let Some(record) = record.filter(|r| r.state == JobState::Queued) {
                    state.enqueue(&record);
                    state.low_space = Some(low);
                }
            }
            (shutting_down, stop, saving)
        };
        if let Some(saving) = saving {
            self.write(saving);
        }
        // Only now may a shutdown that waits for the runs let the process end.
        self.state.lock().unwrap().running -= 1;
        self.idle.notify_all();
        match &outcome {
            Ok(()) => tracing::info!(job = %id, "job complete"),
            Err(error) if space_pause.is_some() && stop.is_none() => {
                tracing::warn!(job = %id, "job waits for disk space: {error}")
            }
            Err(PipelineError::Cancelled) if shutting_down => {
                tracing::info!(job = %id, "job stopped; it resumes at the next start")
            }
            Err(error) => tracing::warn!(job = %id, ?stop, "job ended: {error}"),
        }
        self.schedule();
    }

    /// Runs until every segment exists (then assembles the final file), or a stop.
    fn execute(&self, record: &JobRecord) -> Result<(), PipelineError> {
        let id = &record.id;
        let dir = self.job_dir(id);
        let (probed_seconds, mut count) = self.timeline(id).map_err(|e| match e {
            JobError::Probe(probe) => PipelineError::Probe(probe),
            other => PipelineError::Io(other.to_string(), std::io::ErrorKind::Other.into()),
        })?;
        let _ = std::fs::remove_file(pipeline::partial_path(&record.output));
        let mut upscaler = upscale::build(&record.model, &self.settings.engine)?;
        loop {
            let made = self.made(id).unwrap_or_default();
            let (start, progress, control) = {
                let mut state = self.state.lock().unwrap();
                let entry = state.jobs.get_mut(id).expect("a running job has an entry");
                let jump = match entry.stop {
                    Some(Stop::Jump(index)) => {
                        entry.stop = None;
                        entry.control.clear_cancel();
                        self.counters.restarts.fetch_add(1, Ordering::Relaxed);
                        Some(index).filter(|i| !made.contains(i) && *i < count)
                    }
                    Some(_) => return Err(PipelineError::Cancelled),
                    None => None,
                };
                let Some(start) = jump.or_else(|| (0..count).find(|i| !made.contains(i))) else {
                    break;
                };
                entry.run_start = start;
                entry.progress = Arc::new(Progress::default());
                (
                    start,
                    Arc::clone(&entry.progress),
                    Arc::clone(&entry.control),
                )
            };
            let end = made
                .range(start + 1..)
                .next()
                .copied()
                .filter(|e| *e < count);
            let spec = PipelineSpec {
                input: record.source.clone(),
                output: None,
                hls_dir: dir.clone(),
                segment_seconds: record.segment_seconds,
                start_segment: start,
                end_segment: end,
                playlist_name: ENCODER_PLAYLIST.to_string(),
                encoder: EncoderSettings::default(),
                min_free_bytes: self.settings.min_free_bytes,
            };
            let result = pipeline::run(&self.tools, &spec, upscaler.as_mut(), &progress, &control);
            let frames = progress.snapshot().frames_done;
            self.count_output(id, &progress);
            let run_start_seconds = f64::from(start * record.segment_seconds);
            let decoded_until = match result {
                Ok(summary) => {
                    run_start_seconds + frames as f64 / summary.source.frame_rate.as_f64()
                }
                Err(PipelineError::Cancelled) if self.jump_pending(id) => continue,
                Err(PipelineError::NoFrames) if start > 0 && end.is_none() => run_start_seconds,
                Err(error) => return Err(error),
            };
            if end.is_none() {
                if probed_seconds - decoded_until > f64::from(record.segment_seconds) {
                    return Err(PipelineError::EndsEarly {
                        decoded_seconds: decoded_until,
                        probed_seconds,
                    });
                }
                // This run reached the end of the film: now the segment count is exact.
                // Fewer segments than estimated: the film is shorter. (A surplus one holds
                // only audio past the last frame and stays out of the playlists.)
                let last = self
                    .made(id)
                    .unwrap_or_default()
                    .range(start..)
                    .next_back()
                    .map_or(start, |l| l + 1);
                if last < count {
                    count = last;
                    self.update(id, |r| r.segment_count = Some(last));
                }
            }
        }
        let bytes: u64 = (0..count)
            .filter_map(|i| std::fs::metadata(dir.join(pipeline::segment_name(i))).ok())
            .map(|m| m.len())
            .sum();
        disk::ensure_free(
            &self.settings.output_root,
            bytes + self.settings.min_free_bytes,
        )?;
        pipeline::assemble_final(&dir, count, &record.output)
    }

    fn jump_pending(&self, id: &str) -> bool {
        let state = self.state.lock().unwrap();
        matches!(state.jobs.get(id).and_then(|e| e.stop), Some(Stop::Jump(_)))
            && !state.shutting_down
    }

    /// Moves a run's frames and segments into the daemon's totals, under the lock `totals`
    /// takes, so nothing is counted twice or missed.
    fn count_output(&self, id: &str, progress: &Progress) {
        let mut state = self.state.lock().unwrap();
        self.counters
            .frames
            .fetch_add(progress.snapshot().frames_done, Ordering::Relaxed);
        progress.reset_frames();
        if let Some(entry) = state.jobs.get_mut(id) {
            let made = entry.made.len();
            let new = made.saturating_sub(entry.segments_at_start);
            self.counters
                .segments
                .fetch_add(new as u64, Ordering::Relaxed);
            entry.segments_at_start = made;
        }
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut JobRecord)) {
        let saving = {
            let mut state = self.state.lock().unwrap();
            state.jobs.get_mut(id).map(|entry| {
                change(&mut entry.record);
                entry.record.updated_at = now_seconds();
                entry.next_save()
            })
        };
        if let Some(saving) = saving {
            self.write(saving);
        }
    }

    fn view(&self, entry: &Entry, low_space: Option<&LowSpace>) -> JobView {
        let record = &entry.record;
        let within = ..record.segment_count.unwrap_or(u32::MAX);
        let segments = entry.made.range(within).count();
        let complete = record.state == JobState::Complete;
        let contiguous = entry
            .made
            .range(within)
            .zip(0..)
            .take_while(|(made, expected)| *made == expected)
            .count() as u32;
        let seconds = f64::from(record.segment_seconds);
        let total = record.source_duration_seconds;
        let ready = match (total, record.segment_count) {
            (Some(total), Some(count)) if contiguous >= count => total,
            _ => f64::from(contiguous) * seconds,
        };
        let live = entry.progress.snapshot();
        let running = record.state == JobState::Running;
        let progress = match total {
            _ if complete => 1.0,
            Some(total) if total > 0.0 => (ready / total).min(1.0),
            _ => 0.0,
        };
        let rate = if running { live.realtime } else { 0.0 };
        let eta_seconds = match total {
            _ if complete => Some(0.0),
            Some(total) if running && rate > 0.0 => Some(((total - ready) / rate).max(0.0)),
            _ => None,
        };
        JobView {
            id: record.id.clone(),
            name: record.name.clone(),
            source: record.source.clone(),
            state: record.state,
            priority: record.priority,
            model: record.model.clone(),
            output: record.output.clone(),
            // The final file gets its name only when whole, just before the job completes.
            output_ready: complete,
            segments,
            segment_count: record.segment_count,
            duration_seconds: ready,
            throttled: running && entry.throttled_since.is_some(),
            source_duration_seconds: total,
            progress,
            fps: if running { live.fps } else { 0.0 },
            rate,
            eta_seconds,
            resumes: record.resumes,
            error: record.error.clone(),
            waiting_for_space: low_space
                .filter(|_| record.state == JobState::Queued)
                .map(LowSpace::to_string),
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

impl Entry {
    fn new(record: JobRecord, made: BTreeSet<u32>) -> Entry {
        Entry {
            record,
            made,
            landed: Arc::new(watch::channel(0).0),
            version: 0,
            saved: Arc::new(Mutex::new(0)),
            progress: Arc::new(Progress::default()),
            control: Arc::new(Control::default()),
            run_start: 0,
            stop: None,
            throttled_since: None,
            segments_at_start: 0,
        }
    }

    /// What to write to `job.json` once the lock is released.
    fn next_save(&mut self) -> Saving {
        self.version += 1;
        Saving {
            record: self.record.clone(),
            version: self.version,
            saved: Arc::clone(&self.saved),
        }
    }

    /// Wakes the requests waiting on this job's segments: one landed, or none will.
    fn wake_waiters(&self) {
        self.landed.send_modify(|landed| *landed += 1);
    }

    fn halt(&mut self, why: Stop) {
        self.stop = Some(why);
        self.control.cancel();
    }
}

impl State {
    fn enqueue(&mut self, record: &JobRecord) {
        self.arrivals += 1;
        self.queue
            .push((record.priority, self.arrivals, record.id.clone()));
        self.queue.sort();
    }

    fn raise_priority(&mut self, id: &str, priority: Priority) {
        let Some(entry) = self.jobs.get_mut(id) else {
            return;
        };
        if priority < entry.record.priority {
            entry.record.priority = priority;
            for queued in &mut self.queue {
                if queued.2 == id {
                    queued.0 = priority;
                }
            }
            self.queue.sort();
        }
    }
}

/// The film's segments by the source's frame count (a frame-rate-converted film has exactly
/// duration × rate frames), so the last segment is never one of trailing audio alone.
fn estimated_segments(info: &media::MediaInfo, segment_seconds: u32) -> u32 {
    let per_segment = f64::from(segment_seconds) * info.frame_rate.as_f64();
    ((info.expected_frames() as f64 / per_segment).ceil() as u32).max(1)
}

/// Indices of the complete segments in `dir` (ffmpeg renames a segment into place when whole).
pub fn segments_on_disk(dir: &Path) -> BTreeSet<u32> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| pipeline::segment_index(e.file_name().to_str()?))
                .collect()
        })
        .unwrap_or_default()
}

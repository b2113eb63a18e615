//! The job manager: one lock over every job's state, held only for decisions and bookkeeping
//! (no file-system call under it). Requests become jobs here (one per source and settings), go
//! through the [`Queue`] into runs on their own threads ([`super::runner`]), and viewers'
//! requests steer those runs through the pure functions of [`super::decide`]. Jobs that were
//! interrupted are picked up again where they stopped when the daemon restarts.
//!
//! A job's progress is the set of checked segments in its folder, read from disk once and then
//! kept in memory as runs move segments into place.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::decide::{seek_decision, throttle_decision, EncoderAt, Seek, SeekFacts};
use super::entry::{Entry, Saving, Stop};
use super::queue::{Queue, Slots, BESIDE};
use super::sessions::{Session, Sessions};
use super::shared::Notice;
use super::store::JobStore;
use super::view::{keeps_up, view};
use super::{id, now_seconds, JobRecord, JobState, JobView, Priority};
use crate::disk::{self, LowSpace};
use crate::job_dir::JobDir;
use crate::media::{self, Tools};
use crate::pipeline::{Control, EncoderSettings, PipelineError, Progress};
use crate::upscale::{DeviceChoice, EngineOptions};
/// Throttling follows viewers' requests and segments landing as they happen; the supervisor
/// only wakes for the next session to expire, this often while jobs wait for disk space, and
/// at least this often to notice the manager is gone.
const SPACE_RECHECK: Duration = Duration::from_secs(1);
const SUPERVISOR_IDLE: Duration = Duration::from_secs(5);
/// A run's rate decides on a stand-in only once measured this long: the first seconds (ffmpeg
/// starting, caches filling) are slower than the rest.
const STAND_IN_AFTER_SECONDS: f64 = 10.0;

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
    /// Where runs go: `jobs_per_device` at a time on each of these, a new run on the least busy.
    pub devices: Vec<DeviceChoice>,
    pub jobs_per_device: usize,
    /// A request further than this ahead of the encoder restarts it there.
    pub jit_restart_seconds: f64,
    /// A watched job pauses when this far ahead of the furthest segment any viewer asked for.
    pub throttle_ahead_seconds: f64,
    pub session_timeout: Duration,
    /// Plays while a viewer's job cannot keep up: see [`JobRecord::stand_in_for`].
    pub live_fallback_model: Option<String>,
    /// No run starts, and a running one pauses, while less than this is free where jobs write.
    pub min_free_bytes: u64,
    pub encoder: EncoderSettings,
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
    Ready,
    /// Not made yet; being made (or queued).
    Pending,
    /// No such segment in this film, or no such job.
    Never,
}

pub struct JobManager {
    pub(super) settings: ManagerSettings,
    pub(super) tools: Tools,
    pub(super) store: Arc<dyn JobStore>,
    pub(super) state: Mutex<State>,
    /// Signalled whenever a job thread ends, for `shutdown`.
    pub(super) idle: Condvar,
    /// Wakes the supervisor early (shutdown).
    pub(super) supervisor: Condvar,
    /// Held while claiming work from the hosts' shared queue.
    pub(super) claiming: Mutex<()>,
    pub counters: Counters,
}

#[derive(Default)]
pub(super) struct State {
    pub jobs: HashMap<String, Entry>,
    pub queue: Queue,
    pub shutting_down: bool,
    pub sessions: Sessions,
    /// Set while too little space is free where jobs write: nothing starts until it clears.
    pub low_space: Option<LowSpace>,
}

impl JobManager {
    pub fn new(
        settings: ManagerSettings,
        tools: Tools,
        store: Arc<dyn JobStore>,
    ) -> Arc<JobManager> {
        let mut state = State::default();
        let devices = settings.devices.iter().map(ToString::to_string).collect();
        state
            .queue
            .set_slots(Slots::new(devices, settings.jobs_per_device));
        Arc::new(JobManager {
            settings,
            tools,
            store,
            state: Mutex::new(state),
            idle: Condvar::new(),
            supervisor: Condvar::new(),
            claiming: Mutex::new(()),
            counters: Counters::default(),
        })
    }

    /// Loads every job from disk; the ones that were queued or running are queued again and will
    /// continue from the segments they have. Returns how many were picked up.
    pub fn recover(self: &Arc<Self>) -> usize {
        if self.store.shared().is_some() {
            return self.recover_shared();
        }
        let records: Vec<(JobRecord, BTreeSet<u32>)> = self
            .store
            .load_all()
            .into_iter()
            .map(|record| {
                let made = self.job_dir(&record.id).segments_on_disk();
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
                    self.enqueue(&mut state.queue, &record);
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
                    // Leases are renewed three times in each.
                    if let Some(shared) = manager.store.shared() {
                        wake = wake.min(now + shared.lease() / 3);
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
        let model = self.settings.model.clone();
        self.submit_job(source, name, priority, &model, None)
    }

    /// Queues `record`'s job: a stand-in runs beside the device slots, the others take one (with
    /// several hosts, the database's queue decides which).
    pub(super) fn enqueue(&self, queue: &mut Queue, record: &JobRecord) {
        if record.stand_in_for.is_some() {
            queue.push_beside(&record.id);
        } else if self.store.shared().is_none() {
            queue.push(&record.id, record.priority);
        }
    }

    /// The id of the job making `source` with `model`.
    fn job_id_for(&self, source: &Path, size: u64, mtime: i64, model: &str) -> String {
        let settings = format!(
            "model={model};segment={};codec={}",
            self.settings.segment_seconds, self.settings.encoder.codec
        );
        id::job_id(source, size, mtime, &settings)
    }

    fn submit_job(
        self: &Arc<Self>,
        source: &Path,
        name: Option<String>,
        priority: Priority,
        model: &str,
        stand_in_for: Option<&str>,
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
        let id = self.job_id_for(source, metadata.len(), mtime, model);
        // A job met for the first time starts from what its folder holds: listed only then.
        let known = self.state.lock().unwrap().jobs.contains_key(&id);
        let on_disk = (!known).then(|| self.job_dir(&id).segments_on_disk());
        let (mut created, saving) = {
            let mut state = self.state.lock().unwrap();
            if state.shutting_down {
                return Err(JobError::ShuttingDown);
            }
            let existing = state.jobs.get(&id).map(|e| e.record.state);
            match existing {
                Some(JobState::Queued) => {
                    state.queue.raise(&id, priority);
                    // (A stand-in waits for no device: raising it changes nothing.)
                    let entry = state.jobs.get_mut(&id).expect("just seen");
                    let raised = priority < entry.record.priority;
                    entry.record.priority = entry.record.priority.min(priority);
                    (false, raised.then(|| entry.next_save()))
                }
                Some(JobState::Running | JobState::Complete) => (false, None),
                Some(JobState::Stopped) => {
                    let entry = state.jobs.get_mut(&id).expect("just seen");
                    entry.record.state = JobState::Queued;
                    entry.record.priority = priority;
                    let saving = entry.next_save();
                    let record = entry.record.clone();
                    self.enqueue(&mut state.queue, &record);
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
                        model: model.to_string(),
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
                        variants: Vec::new(),
                        variant_lock: None,
                        stand_in_for: stand_in_for.map(str::to_string),
                        stand_in: None,
                        host: None,
                    };
                    self.enqueue(&mut state.queue, &record);
                    // A retried job keeps the segments it has; a new one starts from what
                    // the folder holds.
                    let made = state
                        .jobs
                        .remove(&id)
                        .map_or_else(|| on_disk.unwrap_or_default(), |previous| previous.made);
                    let mut entry = Entry::new(record, made);
                    let saving = entry.next_save();
                    state.jobs.insert(id.clone(), entry);
                    (true, Some(saving))
                }
            }
        };
        if let Some(saving) = saving {
            if !created {
                saving.write(&*self.store).map_err(JobError::Store)?;
            } else if saving
                .create(&*self.store)
                .map_err(JobError::Store)?
                .is_some()
            {
                // Another host made this job first: this request joins it.
                created = false;
                self.refresh(&id);
            }
        }
        self.schedule();
        let job = self
            .get(&id)
            .ok_or_else(|| JobError::NotFound(id.clone()))?;
        Ok(Submitted { job, created })
    }

    /// `<output_root>/<name>.upscaled.mp4`, or with the job id added when another source already
    /// claimed that name.
    fn output_path(&self, state: &State, source: &Path, id: &str) -> PathBuf {
        let stem = source
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "film".into());
        let plain = self
            .settings
            .output_root
            .join(format!("{stem}.upscaled.mp4"));
        let taken = state
            .jobs
            .values()
            .any(|e| e.record.output == plain && e.record.source != source);
        if taken {
            self.settings
                .output_root
                .join(format!("{stem}.{}.upscaled.mp4", &id[id.len() - 8..]))
        } else {
            plain
        }
    }

    pub fn list(&self) -> Vec<JobView> {
        let state = self.state.lock().unwrap();
        let mut views: Vec<JobView> = state
            .jobs
            .values()
            .map(|e| view(e, state.low_space.as_ref()))
            .collect();
        views.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        views
    }

    pub fn get(&self, id: &str) -> Option<JobView> {
        let state = self.state.lock().unwrap();
        state
            .jobs
            .get(id)
            .map(|e| view(e, state.low_space.as_ref()))
    }

    /// The newest job whose source file is called `file_name`.
    pub fn find_by_file_name(&self, file_name: &str) -> Option<JobView> {
        let state = self.state.lock().unwrap();
        state
            .jobs
            .values()
            .filter(|e| e.record.source.file_name().is_some_and(|n| n == file_name))
            .filter(|e| e.record.stand_in_for.is_none())
            .max_by_key(|e| (e.record.state.is_active(), e.record.created_at))
            .map(|e| view(e, state.low_space.as_ref()))
    }

    pub fn cancel(self: &Arc<Self>, id: &str) -> Result<JobView, JobError> {
        let saving = {
            let mut state = self.state.lock().unwrap();
            let entry = state
                .jobs
                .get_mut(id)
                .ok_or_else(|| JobError::NotFound(id.to_string()))?;
            if entry.runs_elsewhere() {
                drop(state);
                self.tell_holder(|from| Notice::Cancel {
                    job: id.to_string(),
                    from,
                });
                return self
                    .get(id)
                    .ok_or_else(|| JobError::NotFound(id.to_string()));
            }
            match entry.record.state {
                JobState::Queued | JobState::Stopped => {
                    entry.record.state = JobState::Cancelled;
                    entry.record.updated_at = now_seconds();
                    entry.wake_waiters();
                    let saving = entry.next_save();
                    state.queue.remove(id);
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
            saving.write(&*self.store).map_err(JobError::Store)?;
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

    pub fn job_dir(&self, id: &str) -> JobDir {
        JobDir::new(&self.settings.hls_root, id)
    }

    /// The film's length and segment count when known (once the source was probed).
    pub fn known_timeline(&self, id: &str) -> Option<(f64, u32)> {
        let state = self.state.lock().unwrap();
        let record = &state.jobs.get(id)?.record;
        record.source_duration_seconds.zip(record.segment_count)
    }

    /// The film's length and segment count, probing the source if no run has yet.
    pub fn timeline(&self, id: &str) -> Result<(f64, u32), JobError> {
        if let Some(known) = self.known_timeline(id) {
            return Ok(known);
        }
        let source = {
            let state = self.state.lock().unwrap();
            let entry = state
                .jobs
                .get(id)
                .ok_or_else(|| JobError::NotFound(id.to_string()))?;
            entry.record.source.clone()
        };
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
        let elsewhere = state.jobs.get(id)?.runs_elsewhere();
        let session = state.sessions.touch(id, viewer, segment).id.clone();
        self.throttle(&mut state, id);
        drop(state);
        // The host running the job throttles it by every host's viewers.
        if elsewhere {
            self.tell_holder(|from| Notice::Want {
                job: id.to_string(),
                index: segment,
                viewer: viewer.to_string(),
                from,
            });
        }
        Some(session)
    }

    /// Where segment `index` of job `id` stands; restarts the encoder there when it is too far
    /// ahead of it or in a hole behind it.
    pub fn want_segment(self: &Arc<Self>, id: &str, index: u32) -> SegmentState {
        let made = {
            let state = self.state.lock().unwrap();
            state
                .jobs
                .get(id)
                .map(|e| (e.made.contains(&index), e.runs_elsewhere()))
        };
        match made {
            None => return SegmentState::Never,
            Some((true, _)) => return SegmentState::Ready,
            Some((false, true)) => return self.want_from_holder(id, index),
            Some((false, false)) => {}
        }
        // Probes the source the first time: outside the lock.
        let Ok((_, count)) = self.timeline(id) else {
            return SegmentState::Never;
        };
        let (decision, resume) = {
            let mut guard = self.state.lock().unwrap();
            let state = &mut *guard;
            let Some(entry) = state.jobs.get_mut(id) else {
                return SegmentState::Never;
            };
            // Another host took the job while the source was probed.
            if entry.runs_elsewhere() {
                drop(guard);
                return self.want_from_holder(id, index);
            }
            let running = entry.record.state == JobState::Running;
            let decision = seek_decision(SeekFacts {
                state: entry.record.state,
                index,
                made: entry.made.contains(&index),
                count,
                encoder: running.then(|| EncoderAt {
                    run_start: entry.run_start,
                    seconds_done: entry.progress.snapshot().seconds_done,
                }),
                stopping: entry.stop.is_some(),
                segment_seconds: self.settings.segment_seconds,
                jit_restart_seconds: self.settings.jit_restart_seconds,
            });
            match decision {
                Seek::RestartAt(at) => {
                    tracing::info!(job = %id, segment = at, "restarting the encoder where the viewer is");
                    entry.halt(Stop::Jump(at));
                }
                Seek::Prioritise => {
                    entry.record.priority = Priority::Playback;
                    state.queue.raise(id, Priority::Playback);
                }
                _ => {}
            }
            let resume = match decision {
                Seek::ResumeAt(_) => Some(entry.record.clone()),
                _ => None,
            };
            (decision, resume)
        };
        if let (Seek::ResumeAt(at), Some(record)) = (decision, resume) {
            let _ = self.submit_job(
                &record.source,
                Some(record.name),
                Priority::Playback,
                &record.model,
                record.stand_in_for.as_deref(),
            );
            if let Some(entry) = self.state.lock().unwrap().jobs.get_mut(id) {
                entry.stop = Some(Stop::Jump(at));
            }
        }
        match decision {
            Seek::Ready => SegmentState::Ready,
            Seek::Never => SegmentState::Never,
            Seek::Wait | Seek::Prioritise | Seek::RestartAt(_) | Seek::ResumeAt(_) => {
                SegmentState::Pending
            }
        }
    }

    pub fn record_wait(&self, waited: Duration) {
        self.counters
            .wait_millis
            .fetch_add(waited.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn sessions(&self) -> Vec<Session> {
        self.state.lock().unwrap().sessions.list()
    }

    /// Each device runs go to, with the runs on it now.
    pub fn device_load(&self) -> Vec<(String, usize)> {
        self.state.lock().unwrap().queue.slots().load()
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
        while state.queue.running() > 0 {
            state = self.idle.wait(state).unwrap();
        }
    }

    fn supervise(self: &Arc<Self>) {
        let mut saves = Vec::new();
        let mut state = self.state.lock().unwrap();
        let expired = state.sessions.expire(self.settings.session_timeout);
        for session in expired {
            let (watched, _) = state.sessions.furthest_for(&session.job_id);
            if watched {
                continue;
            }
            if let Some(entry) = state.jobs.get_mut(&session.job_id) {
                // A job with a stand-in makes the final file whoever watches.
                let for_viewers =
                    entry.record.priority == Priority::Playback && entry.record.stand_in.is_none();
                if for_viewers && entry.record.state.is_active() {
                    tracing::info!(job = %session.job_id, "last viewer left: stopping, segments kept");
                    if entry.record.state == JobState::Running {
                        entry.halt(Stop::Abandoned);
                    } else {
                        entry.record.state = JobState::Stopped;
                        saves.push(entry.next_save());
                        state.queue.remove(&session.job_id);
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
        let mut stand_ins = Vec::new();
        for id in running {
            self.throttle(&mut state, &id);
            if let Some(claimed) = state
                .jobs
                .get_mut(&id)
                .and_then(|entry| self.claim_stand_in(entry))
            {
                stand_ins.push(claimed);
            }
        }
        drop(state);
        for saving in saves {
            self.write(saving);
        }
        for (saving, record, model) in stand_ins {
            self.write(saving);
            self.start_stand_in(&record, &model);
        }
        if self.store.shared().is_some() {
            self.renew_leases();
            self.claim_work();
        }
    }

    /// Writes a job's record, logging a failure: the job goes on in memory either way.
    pub(super) fn write(&self, saving: Saving) {
        let id = saving.job_id().to_string();
        if let Err(e) = saving.write(&*self.store) {
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
        let encoder = EncoderAt {
            run_start: entry.run_start,
            seconds_done: entry.progress.snapshot().seconds_done,
        };
        let pause = entry.record.state == JobState::Running
            && throttle_decision(
                encoder.film_seconds(self.settings.segment_seconds),
                furthest,
                watched,
                self.settings.segment_seconds,
                self.settings.throttle_ahead_seconds,
            );
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
    pub(super) fn waits_for_space(&self, error: &PipelineError) -> Option<LowSpace> {
        match error {
            PipelineError::LowSpace(low) => Some(low.clone()),
            PipelineError::DamagedSegment { .. } => self.low_space(),
            PipelineError::Io(_, e) if e.kind() == std::io::ErrorKind::StorageFull => {
                self.low_space()
            }
            _ => None,
        }
    }

    pub(super) fn schedule(self: &Arc<Self>) {
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
        while !state.shutting_down {
            let Some((id, device)) = state.queue.start_next() else {
                break;
            };
            self.start_run(&mut state, &id, device);
        }
        drop(state);
        if self.store.shared().is_some() {
            self.claim_work();
        }
    }

    /// Starts job `id`'s run on `device` (a slot taken for it), on a thread of its own.
    pub(super) fn start_run(self: &Arc<Self>, state: &mut State, id: &str, device: usize) {
        let label = if device == BESIDE {
            "stand-in".to_string()
        } else {
            state.queue.slots().label(device).to_string()
        };
        let host = self.store.shared().map(|shared| shared.host().to_string());
        {
            let Some(entry) = state.jobs.get_mut(id) else {
                state.queue.finished(device);
                return;
            };
            entry.device = Some((device, label));
            entry.holder = None;
            if host.is_some() {
                entry.record.host = host;
            }
            entry.record.state = JobState::Running;
            entry.record.updated_at = now_seconds();
            entry.record.error = None;
            entry.progress = Arc::new(Progress::default());
            let manager = Arc::downgrade(self);
            let job = id.to_string();
            entry.control = Arc::new(Control::reporting_segments(move |index| {
                if let Some(manager) = manager.upgrade() {
                    manager.segment_landed(&job, index);
                }
            }));
            entry.segments_at_start = entry.made.len();
        }
        let entry = state.jobs.get_mut(id).expect("just seen");
        let saving = entry.next_save();
        let record = entry.record.clone();
        let manager = Arc::clone(self);
        std::thread::Builder::new()
            .name(format!("job-{}", &id[id.len().saturating_sub(8)..]))
            .spawn(move || {
                manager.write(saving);
                manager.run(record, device)
            })
            .expect("spawn a job thread");
    }

    /// A run moved segment `index` of job `id` into place.
    fn segment_landed(self: &Arc<Self>, id: &str, index: u32) {
        if let Some(shared) = self.store.shared() {
            shared.tell(&Notice::Segment {
                job: id.to_string(),
                index,
            });
        }
        let stand_in = {
            let mut state = self.state.lock().unwrap();
            if let Some(entry) = state.jobs.get_mut(id) {
                entry.made.insert(index);
                entry.wake_waiters();
            }
            self.throttle(&mut state, id);
            state
                .jobs
                .get_mut(id)
                .and_then(|entry| self.claim_stand_in(entry))
        };
        if let Some((saving, record, model)) = stand_in {
            self.write(saving);
            self.start_stand_in(&record, &model);
        }
    }

    /// When job `entry` is watched and its model cannot keep up, marks it as having a stand-in
    /// (so it is started once) and returns what to save and start.
    fn claim_stand_in(&self, entry: &mut Entry) -> Option<(Saving, JobRecord, String)> {
        let fallback = self.settings.live_fallback_model.as_ref()?;
        let record = &entry.record;
        let wanted = record.priority == Priority::Playback
            && record.stand_in_for.is_none()
            && record.stand_in.is_none()
            && *fallback != record.model
            && entry.progress.snapshot().elapsed_seconds >= STAND_IN_AFTER_SECONDS
            && keeps_up(entry) == Some(false);
        if !wanted {
            return None;
        }
        let stand_in = self.job_id_for(
            &record.source,
            record.source_size,
            record.source_mtime,
            fallback,
        );
        entry.record.stand_in = Some(stand_in);
        Some((entry.next_save(), entry.record.clone(), fallback.clone()))
    }

    fn start_stand_in(self: &Arc<Self>, record: &JobRecord, model: &str) {
        let id = &record.id;
        match self.submit_job(
            &record.source,
            Some(record.name.clone()),
            Priority::Playback,
            model,
            Some(id),
        ) {
            Ok(submitted) => tracing::info!(
                job = %id,
                stand_in = %submitted.job.id,
                "{} cannot keep up with a viewer: the live stream is made with {model} \
                 meanwhile, the final file still with {}",
                record.model,
                record.model
            ),
            Err(error) => {
                tracing::warn!(job = %id, "cannot start a stand-in with {model}: {error}");
                self.update(id, |r| r.stand_in = None);
            }
        }
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

    /// A copy of job `id`'s record.
    pub fn record(&self, id: &str) -> Option<JobRecord> {
        let state = self.state.lock().unwrap();
        state.jobs.get(id).map(|e| e.record.clone())
    }

    /// Every job's id.
    pub fn ids(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state.jobs.keys().cloned().collect()
    }

    /// Like [`JobManager::update`], for a change of the job's lower rungs alone.
    pub(super) fn update_rungs(&self, id: &str, change: impl FnOnce(&mut JobRecord)) {
        let saving = {
            let mut state = self.state.lock().unwrap();
            state.jobs.get_mut(id).map(|entry| {
                change(&mut entry.record);
                entry.next_save()
            })
        };
        if let Some(saving) = saving {
            if let Err(e) = saving.write_rungs(&*self.store) {
                tracing::error!("job {id}: cannot save its rungs: {e}");
            }
        }
    }

    pub(super) fn update(&self, id: &str, change: impl FnOnce(&mut JobRecord)) {
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
}

/// The film's segments by the source's frame count (a frame-rate-converted film has exactly
/// duration × rate frames), so the last segment is never one of trailing audio alone.
fn estimated_segments(info: &media::MediaInfo, segment_seconds: u32) -> u32 {
    let per_segment = f64::from(segment_seconds) * info.frame_rate.as_f64();
    ((info.expected_frames() as f64 / per_segment).ceil() as u32).max(1)
}

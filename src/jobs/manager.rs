//! The job manager: dedups requests into jobs, queues them (playback before library), runs at
//! most `max_jobs` pipelines at once on their own threads, and picks interrupted jobs up again
//! from their last complete segment when the daemon restarts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use super::{id, now_seconds, store, JobRecord, JobState, JobView, Priority};
use crate::hls::MediaPlaylist;
use crate::media::{self, Tools};
use crate::pipeline::{self, EncoderSettings, PipelineError, PipelineSpec, Progress};
use crate::upscale::{self, EngineOptions};

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
}

#[derive(Debug, Clone)]
pub struct ManagerSettings {
    pub hls_root: PathBuf,
    pub output_root: PathBuf,
    pub model: String,
    pub engine: EngineOptions,
    pub segment_seconds: u32,
    pub max_jobs: usize,
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
}

pub struct JobManager {
    settings: ManagerSettings,
    tools: Tools,
    state: Mutex<State>,
    /// Signalled whenever a job thread ends, for `shutdown`.
    idle: Condvar,
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
}

struct Entry {
    record: JobRecord,
    progress: Arc<Progress>,
    cancel: Arc<AtomicBool>,
    /// Segments that existed when the current run started, so /metrics counts only new ones.
    segments_at_start: usize,
}

/// Frames and segments made since the daemon started, finished runs and running ones together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub frames: u64,
    pub segments: u64,
}

impl JobManager {
    pub fn new(settings: ManagerSettings, tools: Tools) -> Arc<JobManager> {
        Arc::new(JobManager {
            settings,
            tools,
            state: Mutex::new(State::default()),
            idle: Condvar::new(),
            counters: Counters::default(),
        })
    }

    pub fn settings(&self) -> &ManagerSettings {
        &self.settings
    }

    /// Loads every job from disk; the ones that were queued or running are queued again and will
    /// continue from their last complete segment. Returns how many were picked up.
    pub fn recover(self: &Arc<Self>) -> usize {
        let records = store::load_all(&self.settings.hls_root);
        let mut resumed = 0;
        {
            let mut state = self.state.lock().unwrap();
            for mut record in records {
                if record.state.is_active() {
                    if record.state == JobState::Running {
                        record.resumes += 1;
                    }
                    record.state = JobState::Queued;
                    state.enqueue(&record);
                    resumed += 1;
                }
                state.jobs.insert(record.id.clone(), Entry::new(record));
            }
        }
        self.schedule();
        resumed
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
        let created = {
            let mut state = self.state.lock().unwrap();
            if state.shutting_down {
                return Err(JobError::ShuttingDown);
            }
            match state.jobs.get_mut(&id) {
                Some(entry)
                    if entry.record.state != JobState::Cancelled
                        && entry.record.state != JobState::Failed =>
                {
                    if entry.record.state == JobState::Queued && priority < entry.record.priority {
                        entry.record.priority = priority;
                        state.requeue(&id, priority);
                    }
                    false
                }
                _ => {
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
                        resumes: 0,
                        error: None,
                    };
                    store::save(&self.settings.hls_root, &record).map_err(JobError::Store)?;
                    state.enqueue(&record);
                    state.jobs.insert(id.clone(), Entry::new(record));
                    true
                }
            }
        };
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
        let mut views: Vec<JobView> = state.jobs.values().map(|e| self.view(e)).collect();
        views.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        views
    }

    pub fn get(&self, id: &str) -> Option<JobView> {
        let state = self.state.lock().unwrap();
        state.jobs.get(id).map(|e| self.view(e))
    }

    /// The newest job whose source file is called `file_name`.
    pub fn find_by_file_name(&self, file_name: &str) -> Option<JobView> {
        let state = self.state.lock().unwrap();
        state
            .jobs
            .values()
            .filter(|e| e.record.source.file_name().is_some_and(|n| n == file_name))
            .max_by_key(|e| (e.record.state.is_active(), e.record.created_at))
            .map(|e| self.view(e))
    }

    pub fn cancel(self: &Arc<Self>, id: &str) -> Result<JobView, JobError> {
        {
            let mut state = self.state.lock().unwrap();
            let entry = state
                .jobs
                .get_mut(id)
                .ok_or_else(|| JobError::NotFound(id.to_string()))?;
            match entry.record.state {
                JobState::Queued => {
                    entry.record.state = JobState::Cancelled;
                    entry.record.updated_at = now_seconds();
                    store::save(&self.settings.hls_root, &entry.record).map_err(JobError::Store)?;
                    state.queue.retain(|(_, _, queued)| queued != id);
                }
                JobState::Running => entry.cancel.store(true, Ordering::Relaxed),
                _ => {}
            }
        }
        self.get(id)
            .ok_or_else(|| JobError::NotFound(id.to_string()))
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
                let dir = store::job_dir(&self.settings.hls_root, &entry.record.id);
                let listed = read_playlist(&dir).map_or(0, |p| p.segments.len());
                totals.segments += listed.saturating_sub(entry.segments_at_start) as u64;
            }
        }
        totals
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

    /// Stops every pipeline (their jobs stay queued/running on disk, to resume at the next
    /// start), waits until every ffmpeg is reaped, and refuses new work.
    pub fn shutdown(&self) {
        let mut state = self.state.lock().unwrap();
        state.shutting_down = true;
        for entry in state.jobs.values() {
            if entry.record.state == JobState::Running {
                entry.cancel.store(true, Ordering::Relaxed);
            }
        }
        while state.running > 0 {
            state = self.idle.wait(state).unwrap();
        }
    }

    fn schedule(self: &Arc<Self>) {
        let mut state = self.state.lock().unwrap();
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
            entry.cancel = Arc::new(AtomicBool::new(false));
            entry.segments_at_start = read_playlist(&store::job_dir(&self.settings.hls_root, &id))
                .map_or(0, |p| p.segments.len());
            if let Err(e) = store::save(&self.settings.hls_root, &entry.record) {
                tracing::error!("job {id}: cannot save state: {e}");
            }
            let (progress, cancel) = (Arc::clone(&entry.progress), Arc::clone(&entry.cancel));
            let record = entry.record.clone();
            state.running += 1;
            let manager = Arc::clone(self);
            std::thread::Builder::new()
                .name(format!("job-{}", &id[id.len().saturating_sub(8)..]))
                .spawn(move || manager.run(record, progress, cancel))
                .expect("spawn a job thread");
        }
    }

    fn run(self: Arc<Self>, record: JobRecord, progress: Arc<Progress>, cancel: Arc<AtomicBool>) {
        let id = record.id.clone();
        tracing::info!(job = %id, source = %record.source.display(), "job started");
        let outcome = self.execute(&record, &progress, &cancel);
        let shutting_down = {
            let mut state = self.state.lock().unwrap();
            let shutting_down = state.shutting_down;
            if let Some(entry) = state.jobs.get_mut(&id) {
                let record = &mut entry.record;
                match &outcome {
                    Ok(()) => record.state = JobState::Complete,
                    Err(PipelineError::Cancelled) if shutting_down => {}
                    Err(PipelineError::Cancelled) => record.state = JobState::Cancelled,
                    Err(error) => {
                        record.state = JobState::Failed;
                        record.error = Some(error.to_string());
                    }
                }
                record.updated_at = now_seconds();
                if let Err(e) = store::save(&self.settings.hls_root, record) {
                    tracing::error!("job {id}: cannot save state: {e}");
                }
            }
            state.running -= 1;
            self.idle.notify_all();
            shutting_down
        };
        match &outcome {
            Ok(()) => tracing::info!(job = %id, "job complete"),
            Err(PipelineError::Cancelled) if shutting_down => {
                tracing::info!(job = %id, "job stopped; it resumes at the next start")
            }
            Err(error) => tracing::warn!(job = %id, "job ended: {error}"),
        }
        self.schedule();
    }

    fn execute(
        &self,
        record: &JobRecord,
        progress: &Progress,
        cancel: &AtomicBool,
    ) -> Result<(), PipelineError> {
        let hls_dir = store::job_dir(&self.settings.hls_root, &record.id);
        let info = media::probe(&self.tools, &record.source)?;
        self.update(&record.id, |r| {
            r.source_duration_seconds = Some(info.duration_seconds);
            r.frame_rate = Some(info.frame_rate.as_f64());
        });
        let listed = read_playlist(&hls_dir);
        let done = listed.as_ref().map_or(0, |p| p.segments.len() as u32);
        let _ = std::fs::remove_file(pipeline::partial_path(&record.output));
        if listed.as_ref().is_some_and(|p| p.ended) {
            return pipeline::assemble_final(&hls_dir, done, &record.output);
        }
        let mut upscaler = upscale::build(&record.model, &self.settings.engine)?;
        let spec = PipelineSpec {
            input: record.source.clone(),
            output: (done == 0).then(|| record.output.clone()),
            hls_dir: hls_dir.clone(),
            segment_seconds: record.segment_seconds,
            start_segment: done,
            encoder: EncoderSettings::default(),
        };
        let result = pipeline::run(&self.tools, &spec, upscaler.as_mut(), progress, cancel);
        let total = read_playlist(&hls_dir).map_or(0, |p| p.segments.len() as u32);
        // Counted under the lock that `totals` takes, so no frame is counted twice or missed.
        {
            let _state = self.state.lock().unwrap();
            self.counters
                .frames
                .fetch_add(progress.snapshot().frames_done, Ordering::Relaxed);
            self.counters
                .segments
                .fetch_add(u64::from(total.saturating_sub(done)), Ordering::Relaxed);
            progress.reset_frames();
        }
        result?;
        if done > 0 {
            pipeline::assemble_final(&hls_dir, total, &record.output)?;
        }
        Ok(())
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut JobRecord)) {
        let mut state = self.state.lock().unwrap();
        if let Some(entry) = state.jobs.get_mut(id) {
            change(&mut entry.record);
            entry.record.updated_at = now_seconds();
            if let Err(e) = store::save(&self.settings.hls_root, &entry.record) {
                tracing::error!("job {id}: cannot save state: {e}");
            }
        }
    }

    fn view(&self, entry: &Entry) -> JobView {
        let record = &entry.record;
        let hls_dir = store::job_dir(&self.settings.hls_root, &record.id);
        let playlist = read_playlist(&hls_dir).unwrap_or_default();
        let ready = playlist.total_duration();
        let live = entry.progress.snapshot();
        let running = record.state == JobState::Running;
        let complete = record.state == JobState::Complete;
        let progress = match record.source_duration_seconds {
            _ if complete => 1.0,
            Some(total) if total > 0.0 => (ready / total).min(1.0),
            _ => 0.0,
        };
        let rate = if running { live.realtime } else { 0.0 };
        let eta_seconds = match record.source_duration_seconds {
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
            output_ready: complete && record.output.is_file(),
            segments: playlist.segments.len(),
            duration_seconds: ready,
            source_duration_seconds: record.source_duration_seconds,
            progress,
            fps: if running { live.fps } else { 0.0 },
            rate,
            eta_seconds,
            resumes: record.resumes,
            error: record.error.clone(),
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

impl Entry {
    fn new(record: JobRecord) -> Entry {
        Entry {
            record,
            progress: Arc::new(Progress::default()),
            cancel: Arc::new(AtomicBool::new(false)),
            segments_at_start: 0,
        }
    }
}

impl State {
    fn enqueue(&mut self, record: &JobRecord) {
        self.arrivals += 1;
        self.queue
            .push((record.priority, self.arrivals, record.id.clone()));
        self.queue.sort();
    }

    fn requeue(&mut self, id: &str, priority: Priority) {
        for queued in &mut self.queue {
            if queued.2 == id {
                queued.0 = priority;
            }
        }
        self.queue.sort();
    }
}

fn read_playlist(hls_dir: &Path) -> Option<MediaPlaylist> {
    let text = std::fs::read_to_string(hls_dir.join(media::args::PLAYLIST_NAME)).ok()?;
    MediaPlaylist::parse(&text).ok()
}

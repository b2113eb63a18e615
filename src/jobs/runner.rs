//! One job's runs, on the job's own thread: each run makes the segments from its start to the
//! next one already made (or the end of the film); runs repeat until every segment exists, then
//! the final file is assembled from them. How a run ends decides the job's next state.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::decide::next_run;
use super::entry::Stop;
use super::manager::{JobError, JobManager};
use super::{now_seconds, JobRecord, JobState};
use crate::disk;
use crate::job_dir::{partial_path, JobDir, RUN_PLAYLIST};
use crate::pipeline::{self, PipelineError, PipelineSpec, Progress};
use crate::upscale::{self, DeviceChoice};

impl JobManager {
    /// The job thread: runs job `record` and settles its state from the outcome.
    /// Runs job `record` on slot device `device` (an index into `settings.devices`).
    pub(super) fn run(self: Arc<Self>, record: JobRecord, device: usize) {
        let id = record.id.clone();
        let on = self.settings.devices.get(device).copied();
        tracing::info!(job = %id, source = %record.source.display(), device = ?on, "job started");
        let outcome = self.execute(&record, on);
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
                    (Err(PipelineError::Cancelled), Some(Stop::LeaseLost)) => {}
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
                let requeued = state
                    .jobs
                    .get(&id)
                    .filter(|e| e.record.state == JobState::Queued)
                    .map(|e| e.record.priority);
                if let Some(priority) = requeued {
                    state.queue.push(&id, priority);
                    state.low_space = Some(low);
                }
            }
            (shutting_down, stop, saving)
        };
        if let Some(saving) = saving {
            self.write(saving);
        }
        // Only now may a shutdown that waits for the runs let the process end.
        {
            let mut state = self.state.lock().unwrap();
            state.queue.finished(device);
            if let Some(entry) = state.jobs.get_mut(&id) {
                entry.device = None;
            }
        }
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
    fn execute(
        &self,
        record: &JobRecord,
        device: Option<DeviceChoice>,
    ) -> Result<(), PipelineError> {
        let id = &record.id;
        let dir = JobDir::new(&self.settings.hls_root, id);
        let (probed_seconds, mut count) = self.timeline(id).map_err(|e| match e {
            JobError::Probe(probe) => PipelineError::Probe(probe),
            other => PipelineError::Io(other.to_string(), std::io::ErrorKind::Other.into()),
        })?;
        if record.stand_in_for.is_none() {
            let _ = std::fs::remove_file(partial_path(&record.output));
        }
        let mut engine = self.settings.engine.clone();
        if let Some(device) = device {
            engine.device = device;
        }
        let mut upscaler = upscale::build(&record.model, &engine)?;
        loop {
            let (run, progress, control) = {
                let mut state = self.state.lock().unwrap();
                let entry = state.jobs.get_mut(id).expect("a running job has an entry");
                let jump = match entry.stop {
                    Some(Stop::Jump(index)) => {
                        entry.stop = None;
                        entry.control.clear_cancel();
                        self.counters.restarts.fetch_add(1, Ordering::Relaxed);
                        Some(index)
                    }
                    Some(_) => return Err(PipelineError::Cancelled),
                    None => None,
                };
                let Some(run) = next_run(&entry.made, count, jump) else {
                    break;
                };
                entry.run_start = run.start;
                entry.progress = Arc::new(Progress::default());
                (run, Arc::clone(&entry.progress), Arc::clone(&entry.control))
            };
            let spec = PipelineSpec {
                input: record.source.clone(),
                output: None,
                hls_dir: dir.path().to_path_buf(),
                segment_seconds: record.segment_seconds,
                start_segment: run.start,
                end_segment: run.end,
                playlist_name: RUN_PLAYLIST.to_string(),
                encoder: self.settings.encoder.clone(),
                min_free_bytes: self.settings.min_free_bytes,
            };
            let result = pipeline::run(&self.tools, &spec, upscaler.as_mut(), &progress, &control);
            let frames = progress.snapshot().frames_done;
            self.count_output(id, &progress);
            let run_start_seconds = f64::from(run.start * record.segment_seconds);
            let decoded_until = match result {
                Ok(summary) => {
                    run_start_seconds + frames as f64 / summary.source.frame_rate.as_f64()
                }
                Err(PipelineError::Cancelled) if self.jump_pending(id) => continue,
                Err(PipelineError::NoFrames) if run.start > 0 && run.end.is_none() => {
                    run_start_seconds
                }
                Err(error) => return Err(error),
            };
            if run.end.is_none() {
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
                    .range(run.start..)
                    .next_back()
                    .map_or(run.start, |l| l + 1);
                if last < count {
                    count = last;
                    self.update(id, |r| r.segment_count = Some(last));
                }
            }
        }
        if record.stand_in_for.is_some() {
            return Ok(());
        }
        let bytes: u64 = (0..count)
            .filter_map(|i| std::fs::metadata(dir.segment(i)).ok())
            .map(|m| m.len())
            .sum();
        disk::ensure_free(
            &self.settings.output_root,
            bytes + self.settings.min_free_bytes,
        )?;
        pipeline::assemble_final(&self.tools, &dir, count, &record.output)
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
}

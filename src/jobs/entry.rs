//! What the manager keeps for each job: its record (what `job.json` holds) and the live state of
//! its run, and the save of a record made after the manager's lock is released.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;

use super::store::JobStore;
use super::{JobRecord, JobState};
use crate::pipeline::{Control, Progress};

/// Why a run is being stopped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Stop {
    Cancel,
    /// Restart the run at this segment (a viewer jumped there).
    Jump(u32),
    /// The last viewer of a playback job left.
    Abandoned,
    /// This host no longer holds the job (another one may run it): stop, changing nothing.
    LeaseLost,
}

pub(super) struct Entry {
    pub record: JobRecord,
    /// The segments made, kept here so that serving a request never lists the folder: read
    /// from disk once, then updated by the runs as they move segments into place.
    pub made: BTreeSet<u32>,
    /// Bumped whenever a segment lands, waking the requests that wait for one.
    pub landed: Arc<watch::Sender<u64>>,
    /// Counts changes to `record`, so that saves made outside the lock never go back in time.
    version: u64,
    /// The version last written to `job.json`; its lock orders this job's saves.
    saved: Arc<Mutex<u64>>,
    pub progress: Arc<Progress>,
    pub control: Arc<Control>,
    /// The first segment of the current run.
    pub run_start: u32,
    pub stop: Option<Stop>,
    pub throttled_since: Option<Instant>,
    /// Segments that existed when the current run started, so /metrics counts only new ones.
    pub segments_at_start: usize,
    /// The slot's device (index and name) while the job runs here.
    pub device: Option<(usize, String)>,
    /// The host running the job, when another one holds it (several hosts).
    pub holder: Option<String>,
}

impl Entry {
    pub fn new(record: JobRecord, made: BTreeSet<u32>) -> Entry {
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
            device: None,
            holder: None,
        }
    }

    /// What to write to `job.json` once the lock is released.
    pub fn next_save(&mut self) -> Saving {
        self.version += 1;
        Saving {
            record: self.record.clone(),
            version: self.version,
            saved: Arc::clone(&self.saved),
        }
    }

    /// Wakes the requests waiting on this job's segments: one landed, or none will.
    pub fn wake_waiters(&self) {
        self.landed.send_modify(|landed| *landed += 1);
    }

    /// Running on another host: its segments land there, and its run is steered from there.
    pub fn runs_elsewhere(&self) -> bool {
        self.device.is_none() && self.holder.is_some() && self.record.state == JobState::Running
    }

    pub fn halt(&mut self, why: Stop) {
        self.stop = Some(why);
        self.control.cancel();
    }
}

/// A job's record to be written after the state lock is released.
pub(super) struct Saving {
    record: JobRecord,
    version: u64,
    saved: Arc<Mutex<u64>>,
}

impl Saving {
    pub fn job_id(&self) -> &str {
        &self.record.id
    }

    /// Writes the record unless a newer one was written meanwhile; the job's own lock keeps
    /// its saves in order without holding up any other job or request.
    pub fn write(self, store: &dyn JobStore) -> std::io::Result<()> {
        self.write_with(|record| store.save(record))
    }

    /// Writes the record's rungs alone (see [`JobStore::save_rungs`]), in the same order.
    pub fn write_rungs(self, store: &dyn JobStore) -> std::io::Result<()> {
        self.write_with(|record| store.save_rungs(record))
    }

    fn write_with(
        self,
        save: impl FnOnce(&JobRecord) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut saved = self.saved.lock().unwrap();
        if *saved >= self.version {
            return Ok(());
        }
        save(&self.record)?;
        *saved = self.version;
        Ok(())
    }

    /// Writes a new job's first record; `Some(existing)` when the job existed already.
    pub fn create(self, store: &dyn JobStore) -> std::io::Result<Option<JobRecord>> {
        let mut saved = self.saved.lock().unwrap();
        let existing = store.create(&self.record)?;
        *saved = self.version;
        Ok(existing)
    }
}

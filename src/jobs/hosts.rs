//! The job manager as one of several hosts sharing a database ([`super::shared`]): which jobs it
//! claims and keeps, what it learns from the others, and what it asks of them.
//!
//! Every host mirrors every job in memory (listing, serving playlists and segments from the
//! shared folders); a job runs only on the host holding it. A request on another host for a
//! segment not made yet is passed on to the holder, which restarts its run there when needed;
//! the segments it makes are announced as they land, so waiting viewers everywhere are woken.

use std::sync::{mpsc, Arc};

use super::entry::{Entry, Stop};
use super::manager::{JobManager, SegmentState};
use super::shared::Notice;
use super::JobState;

impl JobManager {
    /// Mirrors every job of the database; the ones no live host holds are claimed as slots
    /// allow. Returns how many are waiting for a host.
    pub(super) fn recover_shared(self: &Arc<Self>) -> usize {
        let Some(shared) = self.store.shared() else {
            return 0;
        };
        if let Err(error) = shared.forget_earlier_life() {
            tracing::warn!("cannot let go of this host's earlier jobs: {error}");
        }
        let held = match shared.load_held() {
            Ok(held) => held,
            Err(error) => {
                tracing::error!("cannot read the jobs from the database: {error}");
                Vec::new()
            }
        };
        let waiting = held
            .iter()
            .filter(|h| h.record.state.is_active() && h.holder.is_none())
            .count();
        for job in held {
            let made = self.job_dir(&job.record.id).segments_on_disk();
            let mut state = self.state.lock().unwrap();
            let mut entry = Entry::new(job.record, made);
            entry.holder = job.holder.filter(|holder| holder != shared.host());
            state.jobs.insert(entry.record.id.clone(), entry);
        }
        self.schedule();
        waiting
    }

    /// Claims queued jobs (and those of dead hosts) while this host has free slots.
    pub(super) fn claim_work(self: &Arc<Self>) {
        let Some(shared) = self.store.shared() else {
            return;
        };
        // One claimer at a time, so a job just claimed here is running before the next claim.
        let _claiming = self.claiming.lock().unwrap();
        loop {
            let (device, running) = {
                let mut state = self.state.lock().unwrap();
                if state.shutting_down || state.low_space.is_some() {
                    return;
                }
                let Some(device) = state.queue.take_slot() else {
                    return;
                };
                let running: Vec<String> = state
                    .jobs
                    .values()
                    .filter(|e| e.device.is_some())
                    .map(|e| e.record.id.clone())
                    .collect();
                (device, running)
            };
            let claimed = shared.claim_next(&running);
            let Ok(Some((mut record, host_died))) = claimed else {
                if let Err(error) = claimed {
                    tracing::warn!("cannot claim work from the database: {error}");
                }
                self.state.lock().unwrap().queue.finished(device);
                return;
            };
            let id = record.id.clone();
            if host_died {
                record.resumes += 1;
                tracing::info!(job = %id, "taking over a job whose host stopped renewing its lease");
            }
            let on_disk = self.job_dir(&id).segments_on_disk();
            let mut state = self.state.lock().unwrap();
            match state.jobs.get_mut(&id) {
                Some(entry) => {
                    entry.record = record;
                    entry.made.extend(on_disk);
                }
                None => {
                    state.jobs.insert(id.clone(), Entry::new(record, on_disk));
                }
            }
            self.start_run(&mut state, &id, device);
        }
    }

    /// This host is leaving (after [`JobManager::shutdown`]): the jobs it ran go back to the queue
    /// at once, for the other hosts to take.
    pub fn hand_back(&self) {
        let Some(shared) = self.store.shared() else {
            return;
        };
        match shared.release_all() {
            Ok(0) => {}
            Ok(count) => tracing::info!("handed {count} running job(s) back to the other hosts"),
            Err(error) => tracing::warn!(
                "cannot hand the running jobs back (others take them once the leases run out): {error}"
            ),
        }
    }

    /// Extends the leases of the jobs running here.
    pub(super) fn renew_leases(&self) {
        let Some(shared) = self.store.shared() else {
            return;
        };
        let running: Vec<String> = {
            let state = self.state.lock().unwrap();
            state
                .jobs
                .values()
                .filter(|e| e.device.is_some() && e.record.stand_in_for.is_none())
                .map(|e| e.record.id.clone())
                .collect()
        };
        if running.is_empty() {
            return;
        }
        match shared.renew(&running) {
            Ok(kept) => {
                let mut state = self.state.lock().unwrap();
                for lost in running.iter().filter(|id| !kept.contains(id)) {
                    tracing::error!(job = %lost, "lost the lease of a running job (not renewed within lease_seconds): stopping it here, another host takes it");
                    if let Some(entry) = state.jobs.get_mut(lost) {
                        entry.halt(Stop::LeaseLost);
                    }
                }
            }
            Err(error) => tracing::warn!("cannot renew the leases: {error}"),
        }
    }

    /// Starts following the other hosts' notices, on a thread of its own.
    pub fn start_listening(self: &Arc<Self>) {
        let Some(shared) = self.store.shared() else {
            return;
        };
        let (deliver, notices) = mpsc::channel();
        shared.listen(deliver);
        let manager = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("host-notices".into())
            .spawn(move || {
                for notice in notices {
                    let Some(manager) = manager.upgrade() else {
                        return;
                    };
                    manager.on_notice(notice);
                }
            })
            .expect("spawn the notice thread");
    }

    fn on_notice(self: &Arc<Self>, notice: Notice) {
        let me = self.store.shared().map(|s| s.host().to_string());
        match notice {
            Notice::Job { job } => {
                self.refresh(&job);
                self.schedule();
            }
            Notice::Segment { job, index } => {
                let mut state = self.state.lock().unwrap();
                if let Some(entry) = state.jobs.get_mut(&job).filter(|e| e.device.is_none()) {
                    entry.made.insert(index);
                    entry.wake_waiters();
                }
            }
            Notice::Want {
                job,
                index,
                viewer,
                from,
            } if Some(&from) != me.as_ref() && self.runs_here(&job) => {
                if !viewer.is_empty() {
                    self.viewer_request(&job, &format!("{viewer} via {from}"), index);
                }
                if let Some(index) = index {
                    self.want_segment(&job, index);
                }
            }
            Notice::Cancel { job, from } if Some(&from) != me.as_ref() && self.runs_here(&job) => {
                tracing::info!(job = %job, host = %from, "cancelled from another host");
                if let Err(error) = self.cancel(&job) {
                    tracing::warn!(job = %job, "cannot cancel: {error}");
                }
            }
            Notice::Want { .. } | Notice::Cancel { .. } => {}
        }
    }

    fn runs_here(&self, id: &str) -> bool {
        let state = self.state.lock().unwrap();
        state.jobs.get(id).is_some_and(|e| e.device.is_some())
    }

    /// A job this host has not heard of yet (its notice may be on its way), looked up in the
    /// database: its state and error, as [`JobManager::outcome`].
    pub fn look_up(self: &Arc<Self>, id: &str) -> Option<(JobState, Option<String>)> {
        self.store.shared()?;
        self.refresh(id);
        self.outcome(id)
    }

    /// Takes job `id` as the database has it now, unless it runs here.
    pub(super) fn refresh(self: &Arc<Self>, id: &str) {
        let Some(shared) = self.store.shared() else {
            return;
        };
        let held = match shared.load(id) {
            Ok(Some(held)) => held,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(job = %id, "cannot read the job from the database: {error}");
                return;
            }
        };
        let on_disk = {
            let known = self.state.lock().unwrap().jobs.contains_key(id);
            (!known).then(|| self.job_dir(id).segments_on_disk())
        };
        let mut state = self.state.lock().unwrap();
        let holder = held.holder.filter(|holder| holder != shared.host());
        match state.jobs.get_mut(id) {
            // Running here: only the rungs, which whichever host makes them owns, are news.
            Some(entry) if entry.device.is_some() => {
                entry.record.variants = held.record.variants;
                entry.record.variant_lock = held.record.variant_lock;
            }
            Some(entry) => {
                let ended = entry.record.state != held.record.state
                    && !matches!(held.record.state, JobState::Queued | JobState::Running);
                entry.record = held.record;
                entry.holder = holder;
                if ended {
                    entry.wake_waiters();
                }
            }
            None => {
                let mut entry = Entry::new(held.record, on_disk.unwrap_or_default());
                entry.holder = holder;
                state.jobs.insert(id.to_string(), entry);
            }
        }
    }

    /// A segment of a job running on another host: there already (the holder's notice may be on
    /// its way), or asked of the holder.
    pub(super) fn want_from_holder(&self, id: &str, index: u32) -> SegmentState {
        let on_disk = self.job_dir(id).segment(index).is_file();
        let mut state = self.state.lock().unwrap();
        let Some(entry) = state.jobs.get_mut(id) else {
            return SegmentState::Never;
        };
        if entry
            .record
            .segment_count
            .is_some_and(|count| index >= count)
        {
            return SegmentState::Never;
        }
        if on_disk {
            entry.made.insert(index);
            return SegmentState::Ready;
        }
        drop(state);
        self.tell_holder(|from| Notice::Want {
            job: id.to_string(),
            index: Some(index),
            viewer: String::new(),
            from,
        });
        SegmentState::Pending
    }

    /// Sends the notice `make(this host)` to the other hosts.
    pub(super) fn tell_holder(&self, make: impl FnOnce(String) -> Notice) {
        if let Some(shared) = self.store.shared() {
            shared.tell(&make(shared.host().to_string()));
        }
    }
}

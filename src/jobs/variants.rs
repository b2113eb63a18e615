//! A job's lower rungs, made from its top rung (the upscaled film) segment by segment: no frame
//! is upscaled twice, and every rung's segment N covers the same moment as the top one's.
//!
//! A client asks for a profile (`master.m3u8?profile=phone`); the rungs of that profile below
//! the top one that the job lacks are made, lowest first, while the closest rungs that exist play
//! meanwhile. One generation runs per job however many ask (single flight, in memory), under a
//! lock kept in the job's record: a restarted daemon picks an unfinished generation up again
//! (nothing forgotten) unless a live holder still has it (nothing made twice). A segment that
//! fails is retried three times with back-off; then its rung is marked `error` and the other
//! rungs go on. Rung segments already on disk are never made again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::{now_seconds, JobManager, JobState, VariantLock, VariantRecord, VariantState};
use crate::config::SegmentFormat;
use crate::job_dir::AUDIO_TRACK;
use crate::ladder::{self, Rung};
use crate::media::{process, Tools};
use crate::pipeline::derive::{derive_cmaf_segment, derive_segment, remux_top_segment, RungTarget};

/// Segments to measure: (path, seconds).
type Measured = Vec<(PathBuf, f64)>;

/// A rung is offered once this many of its first segments are made (fewer in a shorter film).
const READY_SEGMENTS: u32 = 2;
/// Back-off before each retry of a failed segment.
const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];
/// A generation with nothing to do looks again at least this often.
const IDLE_LOOK: Duration = Duration::from_secs(5);
/// Top segments measured for the master playlist's bandwidths.
const MEASURED_SEGMENTS: usize = 8;

#[derive(Debug, Default)]
pub struct VariantCounters {
    pub generations: AtomicU64,
    pub segments: AtomicU64,
    pub retries: AtomicU64,
    pub failures: AtomicU64,
    /// A missing rung answered with the closest existing one.
    pub fallbacks: AtomicU64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VariantError {
    #[error("no job {0}")]
    NoJob(String),
    #[error("no profile {asked:?}; the profiles are {known}")]
    NoProfile { asked: String, known: String },
    #[error("the upscaled film has no segment yet")]
    NotReady,
}

/// A job's rungs as the API shows them (the top rung first).
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct VariantView {
    pub name: String,
    pub height: u32,
    /// None for the top rung (encoded at constant quality).
    pub kbps: Option<u32>,
    pub state: String,
    pub segments: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a rung segment request finds.
#[derive(Debug, PartialEq)]
pub enum RungSegment {
    Ready,
    /// Being made (or waiting for its top segment); wait on [`Variants::events`].
    Pending,
    /// No such rung in this job, the rung failed, or past the film's end.
    Never,
}

/// Width, height and codecs of a track's segments (0×0 for sound), and their bit rates.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub width: u32,
    pub height: u32,
    pub codecs: String,
    pub bandwidth: u64,
    pub average_bandwidth: u64,
}

/// One track of what a job offers a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// `480p`, or `audio`.
    pub name: String,
    pub facts: Facts,
}

/// What a job offers a profile: its video rungs, best first, and (as CMAF) its sound alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Ladder {
    pub format: SegmentFormat,
    pub video: Vec<Track>,
    pub audio: Option<Track>,
    pub frame_rate: Option<f64>,
}

struct RungState {
    rung: Rung,
    /// The upscaled rung's own segments repackaged as CMAF, not encoded again.
    remux: bool,
    made: BTreeSet<u32>,
    state: VariantState,
    error: Option<String>,
    facts: Option<Facts>,
}

#[derive(Default)]
struct JobRungs {
    top: Option<Facts>,
    /// As CMAF: whether the film has sound (known once a segment was repackaged), and its facts.
    has_audio: Option<bool>,
    audio: Option<Facts>,
    /// By height.
    rungs: BTreeMap<u32, RungState>,
    /// Segments a viewer is waiting for: (height, index), made first.
    urgent: BTreeSet<(u32, u32)>,
    generating: bool,
}

struct Job {
    state: Mutex<JobRungs>,
    /// Bumped when a rung segment lands or a rung fails.
    landed: watch::Sender<u64>,
    wake: Notify,
}

/// What the configuration says of ladders.
#[derive(Debug, Clone)]
pub struct LadderSettings {
    pub format: SegmentFormat,
    pub profiles: BTreeMap<String, Vec<Rung>>,
    pub default_profile: String,
    pub lock_seconds: u64,
}

pub struct Variants {
    manager: Arc<JobManager>,
    tools: Tools,
    settings: LadderSettings,
    holder: String,
    runtime: tokio::runtime::Handle,
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    pub counters: VariantCounters,
}

impl Variants {
    pub fn new(
        manager: Arc<JobManager>,
        tools: Tools,
        settings: LadderSettings,
        runtime: tokio::runtime::Handle,
    ) -> Arc<Variants> {
        Arc::new(Variants {
            manager,
            tools,
            settings,
            holder: holder_name(),
            runtime,
            jobs: Mutex::new(HashMap::new()),
            counters: VariantCounters::default(),
        })
    }

    /// Picks up every generation a previous run of the daemon left unfinished.
    pub fn recover(self: &Arc<Self>) -> usize {
        let mut resumed = 0;
        for id in self.manager.ids() {
            let Some(record) = self.manager.record(&id) else {
                continue;
            };
            if record.variants.is_empty() {
                continue;
            }
            self.job(&id);
            let pending = record
                .variants
                .iter()
                .any(|v| v.state == VariantState::Pending);
            if pending && self.start(&id) {
                resumed += 1;
            }
        }
        resumed
    }

    /// What job `id` offers `profile` (the default one when `None`): the upscaled rung and
    /// every lower rung that is ready, best first. Missing rungs of the profile start being made;
    /// meanwhile the closest ready rung stands in for each (logged). As CMAF, `NotReady` until
    /// the upscaled rung's first segments are repackaged.
    pub fn offer(
        self: &Arc<Self>,
        id: &str,
        profile: Option<&str>,
    ) -> Result<Ladder, VariantError> {
        let name = profile
            .filter(|p| !p.is_empty())
            .unwrap_or(&self.settings.default_profile);
        let wanted =
            if name.is_empty() {
                Vec::new()
            } else {
                self.settings.profiles.get(name).cloned().ok_or_else(|| {
                    VariantError::NoProfile {
                        asked: name.to_string(),
                        known: self
                            .settings
                            .profiles
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", "),
                    }
                })?
            };
        let job = self
            .job(id)
            .ok_or_else(|| VariantError::NoJob(id.to_string()))?;
        let top = self.top_facts(id, &job)?;
        let plan = ladder::plan(&wanted, top.height);
        self.add_rungs(id, &job, &plan, top.height);
        self.start(id);
        let frame_rate = self.manager.record(id).and_then(|r| r.frame_rate);
        let count = self.manager.known_timeline(id).map(|(_, c)| c);
        let ready = self.ready_rungs(id, &job, count);
        let repackaging_failed = {
            let state = job.state.lock().unwrap();
            state
                .rungs
                .values()
                .any(|r| r.remux && r.state == VariantState::Error)
        };
        // The upscaled rung as CMAF could not be made: it plays as MPEG-TS, alone.
        let format = if repackaging_failed {
            SegmentFormat::Ts
        } else {
            self.settings.format
        };
        let mut video = Vec::new();
        if format == SegmentFormat::Ts {
            video.push(Track {
                name: ladder::rung_name(top.height),
                facts: top.clone(),
            });
        }
        for (height, facts) in ready
            .iter()
            .rev()
            .filter(|_| format == self.settings.format)
        {
            video.push(Track {
                name: ladder::rung_name(*height),
                facts: facts.clone(),
            });
        }
        if video.first().is_none_or(|t| t.facts.height != top.height) {
            return Err(VariantError::NotReady);
        }
        let audio = match format {
            SegmentFormat::Ts => None,
            SegmentFormat::Fmp4 => job.state.lock().unwrap().audio.clone().map(|facts| Track {
                name: AUDIO_TRACK.to_string(),
                facts,
            }),
        };
        let heights: Vec<u32> = video.iter().map(|t| t.facts.height).collect();
        for rung in &plan {
            if heights.contains(&rung.height) {
                continue;
            }
            if let Some(stand_in) = ladder::stand_in(rung.height, &heights) {
                self.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    job = id,
                    profile = name,
                    "{} is not made yet: {} stands in for it",
                    rung.name(),
                    ladder::rung_name(stand_in)
                );
            }
        }
        Ok(Ladder {
            format,
            video,
            audio,
            frame_rate,
        })
    }

    /// Whether `rung` (or `audio`) is one of job `id`'s tracks (made, being made or failed).
    /// Reads the job's folder the first time; see [`Variants::knows`] for memory only.
    pub fn has_rung(&self, id: &str, rung: &str) -> bool {
        self.job(id)
            .is_some_and(|job| has_track(&job.state.lock().unwrap(), rung))
    }

    /// [`Variants::has_rung`] from memory; `None` until the job's rungs are loaded.
    pub fn knows(&self, id: &str, rung: &str) -> Option<bool> {
        let job = self.jobs.lock().unwrap().get(id).cloned()?;
        let known = has_track(&job.state.lock().unwrap(), rung);
        Some(known)
    }

    /// Whether segment `index` of `track` is made, from memory.
    pub fn is_made(&self, id: &str, track: &str, index: u32) -> bool {
        let Some(job) = self.jobs.lock().unwrap().get(id).cloned() else {
            return false;
        };
        let state = job.state.lock().unwrap();
        Variants::height_of_track(&state, track)
            .and_then(|height| state.rungs.get(&height))
            .is_some_and(|r| r.made.contains(&index))
    }

    /// The rung a track's segments are made with: the repackaged one for the sound.
    fn height_of_track(state: &JobRungs, track: &str) -> Option<u32> {
        if track == AUDIO_TRACK {
            return state
                .rungs
                .values()
                .find(|r| r.remux)
                .map(|r| r.rung.height);
        }
        ladder::height_of(track)
    }

    /// How many of `rung`'s segments are made without a gap from the start.
    pub fn contiguous(&self, id: &str, rung: &str) -> u32 {
        let (Some(height), Some(job)) = (ladder::height_of(rung), self.job(id)) else {
            return 0;
        };
        let state = job.state.lock().unwrap();
        state.rungs.get(&height).map_or(0, |r| {
            (0..).take_while(|i| r.made.contains(i)).count() as u32
        })
    }

    /// Where segment `index` of `rung` stands; when it is not made, it is made next.
    pub fn want_segment(self: &Arc<Self>, id: &str, rung: &str, index: u32) -> RungSegment {
        let Some(job) = self.job(id) else {
            return RungSegment::Never;
        };
        {
            let mut state = job.state.lock().unwrap();
            let Some(height) = Variants::height_of_track(&state, rung) else {
                return RungSegment::Never;
            };
            let Some(r) = state.rungs.get(&height) else {
                return RungSegment::Never;
            };
            if r.made.contains(&index) {
                return RungSegment::Ready;
            }
            if r.state == VariantState::Error {
                return RungSegment::Never;
            }
            state.urgent.insert((height, index));
        }
        if let Some((_, count)) = self.manager.known_timeline(id) {
            if index >= count {
                return RungSegment::Never;
            }
        }
        // The top segment it is made from may not exist yet either.
        let _ = self.manager.want_segment(id, index);
        job.wake.notify_one();
        self.start(id);
        RungSegment::Pending
    }

    /// Wakes whoever waits on job `id`'s rung segments.
    pub fn events(&self, id: &str) -> Option<watch::Receiver<u64>> {
        self.job(id).map(|job| job.landed.subscribe())
    }

    /// From memory only: a job's rungs are loaded at start or when first asked for.
    pub fn view(&self, id: &str) -> Vec<VariantView> {
        let Some(job) = self.jobs.lock().unwrap().get(id).cloned() else {
            return Vec::new();
        };
        let state = job.state.lock().unwrap();
        state
            .rungs
            .values()
            .rev()
            .map(|r| VariantView {
                name: r.rung.name(),
                height: r.rung.height,
                kbps: (!r.remux).then_some(r.rung.kbps),
                state: state_name(r.state).to_string(),
                segments: r.made.len(),
                error: r.error.clone(),
            })
            .collect()
    }

    /// The job's state of rungs, loaded from its record and folder the first time it is needed.
    fn job(&self, id: &str) -> Option<Arc<Job>> {
        if let Some(job) = self.jobs.lock().unwrap().get(id) {
            return Some(Arc::clone(job));
        }
        let record = self.manager.record(id)?;
        let dir = self.manager.job_dir(id);
        let on_disk = match self.settings.format {
            SegmentFormat::Ts => dir.rung_segments_on_disk(),
            SegmentFormat::Fmp4 => dir.cmaf_segments_on_disk(),
        };
        let mut rungs = BTreeMap::new();
        for v in &record.variants {
            rungs.insert(
                v.height,
                RungState {
                    rung: Rung {
                        height: v.height,
                        kbps: v.kbps,
                    },
                    remux: v.repackaged,
                    made: on_disk.get(&v.name).cloned().unwrap_or_default(),
                    state: v.state,
                    error: v.error.clone(),
                    facts: None,
                },
            );
        }
        let has_audio = on_disk.contains_key(AUDIO_TRACK).then_some(true);
        let job = Arc::new(Job {
            state: Mutex::new(JobRungs {
                rungs,
                has_audio,
                ..JobRungs::default()
            }),
            landed: watch::channel(0).0,
            wake: Notify::new(),
        });
        let mut jobs = self.jobs.lock().unwrap();
        Some(Arc::clone(jobs.entry(id.to_string()).or_insert(job)))
    }

    fn top_facts(&self, id: &str, job: &Job) -> Result<Facts, VariantError> {
        if let Some(facts) = job.state.lock().unwrap().top.clone() {
            return Ok(facts);
        }
        let made = self.manager.made(id).unwrap_or_default();
        let dir = self.manager.job_dir(id);
        let duration = self.durations(id);
        let files: Vec<(PathBuf, f64)> = made
            .iter()
            .take(MEASURED_SEGMENTS)
            .map(|&i| (dir.segment(i), duration(i)))
            .collect();
        let first = files.first().map(|(path, _)| path.clone());
        let facts = first
            .and_then(|first| measure(&self.tools, &first, &files))
            .ok_or(VariantError::NotReady)?;
        // Measured on the first segments only once enough of them exist.
        if files.len() >= MEASURED_SEGMENTS.min(self.count(id).unwrap_or(u32::MAX) as usize) {
            job.state.lock().unwrap().top = Some(facts.clone());
        }
        Ok(facts)
    }

    /// Each segment's length in job `id`, read from its record once.
    fn durations(&self, id: &str) -> impl Fn(u32) -> f64 {
        let record = self.manager.record(id);
        let seconds = record.as_ref().map_or(6, |r| r.segment_seconds);
        let timeline = record
            .and_then(|r| r.source_duration_seconds)
            .zip(self.count(id));
        move |index| match timeline {
            Some((total, count)) => {
                crate::hls::write::segment_duration(index, count, seconds, total)
            }
            None => f64::from(seconds),
        }
    }

    fn count(&self, id: &str) -> Option<u32> {
        self.manager.known_timeline(id).map(|(_, count)| count)
    }

    /// Adds the rungs of `plan` the job does not have yet (as CMAF, the upscaled rung
    /// repackaged too); true when any was added.
    fn add_rungs(&self, id: &str, job: &Job, plan: &[Rung], top_height: u32) -> bool {
        let mut plan: Vec<(Rung, bool)> = plan.iter().map(|r| (*r, false)).collect();
        if self.settings.format == SegmentFormat::Fmp4 {
            let top = Rung {
                height: top_height,
                kbps: 0,
            };
            plan.push((top, true));
        }
        let added: Vec<(Rung, bool)> = {
            let mut state = job.state.lock().unwrap();
            let added: Vec<(Rung, bool)> = plan
                .into_iter()
                .filter(|(rung, _)| !state.rungs.contains_key(&rung.height))
                .collect();
            for (rung, remux) in &added {
                state.rungs.insert(
                    rung.height,
                    RungState {
                        rung: *rung,
                        remux: *remux,
                        made: BTreeSet::new(),
                        state: VariantState::Pending,
                        error: None,
                        facts: None,
                    },
                );
            }
            added
        };
        if added.is_empty() {
            return false;
        }
        self.manager.update_rungs(id, |record| {
            for (rung, remux) in &added {
                if !record.variants.iter().any(|v| v.height == rung.height) {
                    record.variants.push(VariantRecord {
                        name: rung.name(),
                        height: rung.height,
                        kbps: rung.kbps,
                        repackaged: *remux,
                        state: VariantState::Pending,
                        error: None,
                    });
                }
            }
        });
        true
    }

    /// Rungs whose first segments are made, by height, with what a manifest says of them; as
    /// CMAF, the sound's facts are measured along.
    fn ready_rungs(&self, id: &str, job: &Job, count: Option<u32>) -> Vec<(u32, Facts)> {
        let first = READY_SEGMENTS.min(count.unwrap_or(READY_SEGMENTS));
        let dir = self.manager.job_dir(id);
        let duration = self.durations(id);
        let files = |name: &str, made: &BTreeSet<u32>| -> (PathBuf, Vec<(PathBuf, f64)>) {
            let sized: Vec<(PathBuf, f64)> = made
                .iter()
                .take(MEASURED_SEGMENTS)
                .map(|&i| {
                    let path = match self.settings.format {
                        SegmentFormat::Ts => dir.rung_segment(i, name),
                        SegmentFormat::Fmp4 => dir.cmaf_segment(i, name),
                    };
                    (path, duration(i))
                })
                .collect();
            let probe = match self.settings.format {
                SegmentFormat::Ts => sized.first().map(|(p, _)| p.clone()).unwrap_or_default(),
                SegmentFormat::Fmp4 => dir.cmaf_init(name),
            };
            (probe, sized)
        };
        let (needing, audio) = {
            let state = job.state.lock().unwrap();
            let needing: Vec<(u32, PathBuf, Measured)> = state
                .rungs
                .values()
                .filter(|r| r.state != VariantState::Error && r.facts.is_none())
                .filter(|r| (0..first).all(|i| r.made.contains(&i)))
                .map(|r| {
                    let (probe, sized) = files(&r.rung.name(), &r.made);
                    (r.rung.height, probe, sized)
                })
                .collect();
            let audio = (state.has_audio == Some(true) && state.audio.is_none())
                .then(|| state.rungs.values().find(|r| r.remux))
                .flatten()
                .filter(|r| (0..first).all(|i| r.made.contains(&i)))
                .map(|r| files(AUDIO_TRACK, &r.made));
            (needing, audio)
        };
        for (height, probe, sized) in needing {
            if let Some(facts) = measure(&self.tools, &probe, &sized) {
                if let Some(r) = job.state.lock().unwrap().rungs.get_mut(&height) {
                    r.facts = Some(facts);
                }
            }
        }
        if let Some((probe, sized)) = audio {
            job.state.lock().unwrap().audio = measure(&self.tools, &probe, &sized);
        }
        let state = job.state.lock().unwrap();
        state
            .rungs
            .iter()
            .filter(|(_, r)| r.state != VariantState::Error)
            .filter_map(|(h, r)| Some((*h, r.facts.clone()?)))
            .collect()
    }

    /// Starts job `id`'s generation unless one runs (here, or in a live daemon holding the
    /// lock); true when it started.
    fn start(self: &Arc<Self>, id: &str) -> bool {
        let Some(job) = self.job(id) else {
            return false;
        };
        let rungs: Vec<String> = {
            let mut state = job.state.lock().unwrap();
            if state.generating {
                return false;
            }
            let pending: Vec<String> = state
                .rungs
                .values()
                .filter(|r| r.state == VariantState::Pending)
                .map(|r| r.rung.name())
                .collect();
            if pending.is_empty() {
                return false;
            }
            state.generating = true;
            pending
        };
        if !self.take_lock(id, rungs) {
            job.state.lock().unwrap().generating = false;
            return false;
        }
        self.counters.generations.fetch_add(1, Ordering::Relaxed);
        let variants = Arc::clone(self);
        let id = id.to_string();
        std::thread::Builder::new()
            .name(format!("rungs-{id}"))
            .spawn(move || {
                variants.generate(&id, &job);
                job.state.lock().unwrap().generating = false;
                variants.release_lock(&id);
            })
            .expect("spawn a rung generation thread");
        true
    }

    fn take_lock(&self, id: &str, rungs: Vec<String>) -> bool {
        let now = now_seconds();
        let Some(record) = self.manager.record(id) else {
            return false;
        };
        if let Some(lock) = &record.variant_lock {
            if lock.holder != self.holder && lock.expires_at > now && holder_alive(&lock.holder) {
                tracing::info!(job = id, holder = %lock.holder, "another daemon makes this job's rungs");
                return false;
            }
        }
        let lock = VariantLock {
            rungs,
            holder: self.holder.clone(),
            expires_at: now + self.settings.lock_seconds,
        };
        self.manager
            .update_rungs(id, |record| record.variant_lock = Some(lock));
        true
    }

    fn renew_lock(&self, id: &str) {
        let now = now_seconds();
        let renew = self
            .manager
            .record(id)
            .and_then(|r| r.variant_lock)
            .is_some_and(|lock| lock.expires_at < now + self.settings.lock_seconds / 2);
        if renew {
            let expires_at = now + self.settings.lock_seconds;
            self.manager.update_rungs(id, |record| {
                if let Some(lock) = &mut record.variant_lock {
                    lock.expires_at = expires_at;
                }
            });
        }
    }

    fn release_lock(&self, id: &str) {
        let holder = self.holder.clone();
        self.manager.update_rungs(id, |record| {
            if record
                .variant_lock
                .as_ref()
                .is_some_and(|l| l.holder == holder)
            {
                record.variant_lock = None;
            }
        });
    }

    /// Makes job `id`'s missing rung segments until every pending rung is whole, the job can
    /// make no more top segments, or the daemon stops.
    fn generate(&self, id: &str, job: &Job) {
        let mut top_landed = self.manager.segment_events(id);
        loop {
            let made = self.manager.made(id).unwrap_or_default();
            let count = self.count(id);
            let next = next_segment(&mut job.state.lock().unwrap(), &made);
            let Some((height, index)) = next else {
                if self.finish_whole_rungs(id, job, count, &made) {
                    return;
                }
                let over = !matches!(
                    self.manager.outcome(id),
                    Some((JobState::Queued | JobState::Running, _))
                );
                if over {
                    return;
                }
                self.sleep_until_something(job, top_landed.as_mut());
                continue;
            };
            self.make(id, job, height, index);
            self.renew_lock(id);
        }
    }

    fn make(&self, id: &str, job: &Job, height: u32, index: u32) {
        let Some((rung, remux, top_width, top_height)) = ({
            let state = job.state.lock().unwrap();
            let top = state.top.clone();
            state.rungs.get(&height).map(|r| (r.rung, r.remux, top))
        })
        .and_then(|(rung, remux, top)| {
            let top = top.or_else(|| self.top_facts(id, job).ok())?;
            Some((rung, remux, top.width, top.height))
        }) else {
            return;
        };
        let dir = self.manager.job_dir(id);
        let name = rung.name();
        let target = RungTarget {
            width: rung.width_for(top_width, top_height),
            height: rung.height,
            kbps: rung.kbps,
        };
        let attempt_once = || -> Result<Option<bool>, String> {
            match (self.settings.format, remux) {
                (SegmentFormat::Fmp4, true) => {
                    remux_top_segment(&self.tools, &dir, index, &name).map(Some)
                }
                (SegmentFormat::Fmp4, false) => {
                    derive_cmaf_segment(&self.tools, &dir, index, &name, &target).map(|()| None)
                }
                (SegmentFormat::Ts, _) => derive_segment(
                    &self.tools,
                    &dir.segment(index),
                    &dir.rung_segment(index, &name),
                    &target,
                )
                .map(|()| None),
            }
        };
        let mut attempt = 0;
        let outcome = loop {
            match attempt_once() {
                Ok(has_audio) => break Ok(has_audio),
                Err(error) if attempt < RETRY_DELAYS.len() => {
                    tracing::warn!(job = id, rung = %name, index, "retrying: {error}");
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(RETRY_DELAYS[attempt]);
                    attempt += 1;
                }
                Err(error) => break Err(error),
            }
        };
        let mut state = job.state.lock().unwrap();
        state.urgent.remove(&(height, index));
        let Some(r) = state.rungs.get_mut(&height) else {
            return;
        };
        match outcome {
            Ok(has_audio) => {
                r.made.insert(index);
                self.counters.segments.fetch_add(1, Ordering::Relaxed);
                if has_audio.is_some() {
                    state.has_audio = has_audio;
                }
            }
            Err(error) => {
                tracing::error!(job = id, rung = %name, "gave up on this rung: {error}");
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                r.state = VariantState::Error;
                r.error = Some(error.clone());
                drop(state);
                self.manager.update_rungs(id, |record| {
                    if let Some(v) = record.variants.iter_mut().find(|v| v.height == height) {
                        v.state = VariantState::Error;
                        v.error = Some(error);
                    }
                });
            }
        }
        job.landed.send_modify(|n| *n += 1);
    }

    /// Marks the rungs that have every segment of a finished film complete; true when none is
    /// left pending.
    fn finish_whole_rungs(
        &self,
        id: &str,
        job: &Job,
        count: Option<u32>,
        top: &BTreeSet<u32>,
    ) -> bool {
        let Some(count) = count.filter(|&c| (0..c).all(|i| top.contains(&i))) else {
            return false;
        };
        let whole: Vec<u32> = {
            let mut state = job.state.lock().unwrap();
            let mut whole = Vec::new();
            for (height, r) in state.rungs.iter_mut() {
                if r.state == VariantState::Pending && (0..count).all(|i| r.made.contains(&i)) {
                    r.state = VariantState::Complete;
                    whole.push(*height);
                }
            }
            whole
        };
        if !whole.is_empty() {
            self.manager.update_rungs(id, |record| {
                for v in record
                    .variants
                    .iter_mut()
                    .filter(|v| whole.contains(&v.height))
                {
                    v.state = VariantState::Complete;
                }
            });
            job.landed.send_modify(|n| *n += 1);
        }
        let state = job.state.lock().unwrap();
        !state
            .rungs
            .values()
            .any(|r| r.state == VariantState::Pending)
    }

    fn sleep_until_something(&self, job: &Job, top_landed: Option<&mut watch::Receiver<u64>>) {
        self.runtime.block_on(async {
            match top_landed {
                Some(landed) => {
                    tokio::select! {
                        _ = landed.changed() => {}
                        _ = job.wake.notified() => {}
                        _ = tokio::time::sleep(IDLE_LOOK) => {}
                    }
                }
                None => {
                    tokio::select! {
                        _ = job.wake.notified() => {}
                        _ = tokio::time::sleep(IDLE_LOOK) => {}
                    }
                }
            }
        });
    }
}

/// The next rung segment to make: one a viewer waits for, else the earliest missing one of the
/// lowest pending rung, among those whose top segment exists.
fn next_segment(state: &mut JobRungs, top: &BTreeSet<u32>) -> Option<(u32, u32)> {
    let open = |rungs: &BTreeMap<u32, RungState>, height: u32, index: u32| {
        top.contains(&index)
            && rungs
                .get(&height)
                .is_some_and(|r| r.state == VariantState::Pending && !r.made.contains(&index))
    };
    if let Some(&urgent) = state
        .urgent
        .iter()
        .find(|(h, i)| open(&state.rungs, *h, *i))
    {
        return Some(urgent);
    }
    let mut order: Vec<(&u32, &RungState)> = state.rungs.iter().collect();
    // The repackaged upscaled rung first: every manifest starts with it.
    order.sort_by_key(|(height, r)| (!r.remux, **height));
    order
        .into_iter()
        .filter(|(_, r)| r.state == VariantState::Pending)
        .find_map(|(&height, r)| {
            top.iter()
                .find(|i| !r.made.contains(i))
                .map(|&index| (height, index))
        })
}

fn has_track(state: &JobRungs, track: &str) -> bool {
    if track == AUDIO_TRACK {
        return state.has_audio != Some(false) && state.rungs.values().any(|r| r.remux);
    }
    ladder::height_of(track).is_some_and(|height| state.rungs.contains_key(&height))
}

fn state_name(state: VariantState) -> &'static str {
    match state {
        VariantState::Pending => "pending",
        VariantState::Complete => "complete",
        VariantState::Error => "error",
    }
}

/// Size and codecs of the streams in `probe`, and bit rates of segments `files` (path,
/// seconds); `None` without any.
fn measure(tools: &Tools, probe: &std::path::Path, files: &[(PathBuf, f64)]) -> Option<Facts> {
    files.first()?;
    let first = probe;
    let mut command = std::process::Command::new(&tools.ffprobe);
    command
        .args(["-v", "error", "-show_entries"])
        .args([
            "stream=codec_type,codec_name,profile,level,width,height",
            "-of",
            "json",
        ])
        .arg(first);
    let probed: serde_json::Value =
        serde_json::from_slice(&process::output("ffprobe", command).ok()?).ok()?;
    let streams = probed["streams"].as_array()?;
    let video = streams.iter().find(|s| s["codec_type"] == "video");
    let mut codecs: Vec<String> = video
        .map(|video| {
            avc1(
                video["profile"].as_str().unwrap_or("High"),
                video["level"].as_u64().unwrap_or(40),
            )
        })
        .into_iter()
        .collect();
    if streams
        .iter()
        .any(|s| s["codec_type"] == "audio" && s["codec_name"] == "aac")
    {
        codecs.push("mp4a.40.2".to_string());
    }
    let rates: Vec<f64> = files
        .iter()
        .filter_map(|(path, seconds)| {
            let bytes = std::fs::metadata(path).ok()?.len() as f64;
            Some(bytes * 8.0 / seconds.max(0.001))
        })
        .collect();
    let peak = rates.iter().copied().fold(0.0, f64::max);
    let average = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
    if codecs.is_empty() {
        return None;
    }
    let size = |key: &str| video.and_then(|v| v[key].as_u64()).unwrap_or(0) as u32;
    Some(Facts {
        width: size("width"),
        height: size("height"),
        codecs: codecs.join(","),
        bandwidth: peak.ceil() as u64,
        average_bandwidth: average.ceil() as u64,
    })
}

/// RFC 6381's name of an H.264 stream: `avc1.` profile, constraints, level (hex).
fn avc1(profile: &str, level: u64) -> String {
    let (idc, constraints) = match profile {
        "Constrained Baseline" => (0x42, 0xc0),
        "Baseline" => (0x42, 0x80),
        "Main" => (0x4d, 0x40),
        "High 10" => (0x6e, 0x00),
        "High 4:2:2" => (0x7a, 0x00),
        "High 4:4:4 Predictive" => (0xf4, 0x00),
        _ => (0x64, 0x00),
    };
    format!("avc1.{idc:02x}{constraints:02x}{level:02x}")
}

fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string());
    format!("{host}:{}", std::process::id())
}

/// Whether the daemon named `host:pid` still runs. Another host's daemon is taken to run until
/// its lock expires.
fn holder_alive(holder: &str) -> bool {
    let Some((host, pid)) = holder.rsplit_once(':') else {
        return false;
    };
    let here = holder_name();
    let this_host = here.rsplit_once(':').map(|(h, _)| h) == Some(host);
    match pid.parse::<i32>() {
        // SAFETY: kill with signal 0 only asks whether the process exists.
        Ok(pid) if this_host => pid > 0 && unsafe { libc::kill(pid, 0) } == 0,
        _ => !this_host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rung_state(height: u32, made: &[u32], state: VariantState) -> RungState {
        RungState {
            rung: Rung { height, kbps: 100 },
            remux: false,
            made: made.iter().copied().collect(),
            state,
            error: None,
            facts: None,
        }
    }

    #[test]
    fn the_lowest_rung_is_made_first_and_a_waiting_viewer_goes_before_it() {
        let mut state = JobRungs::default();
        state
            .rungs
            .insert(480, rung_state(480, &[0, 1], VariantState::Pending));
        state
            .rungs
            .insert(720, rung_state(720, &[], VariantState::Pending));
        state
            .rungs
            .insert(360, rung_state(360, &[], VariantState::Error));
        let top = BTreeSet::from([0, 1, 2, 5]);
        assert_eq!(next_segment(&mut state, &top), Some((480, 2)));
        state.urgent.insert((720, 5));
        assert_eq!(next_segment(&mut state, &top), Some((720, 5)));
        // A segment whose top segment is not made waits for it.
        state.urgent.clear();
        state.urgent.insert((720, 9));
        assert_eq!(next_segment(&mut state, &top), Some((480, 2)));
        let whole = BTreeSet::from([0, 1]);
        state.rungs.get_mut(&720).unwrap().made = whole.clone();
        assert_eq!(next_segment(&mut state, &whole), None);
    }

    #[test]
    fn codecs_are_named_as_players_expect() {
        assert_eq!(avc1("High", 31), "avc1.64001f");
        assert_eq!(avc1("Main", 30), "avc1.4d401e");
        assert_eq!(avc1("Constrained Baseline", 21), "avc1.42c015");
    }

    #[test]
    fn a_lock_of_a_dead_daemon_on_this_host_is_free() {
        let here = holder_name();
        assert!(holder_alive(&here));
        let host = here.rsplit_once(':').unwrap().0;
        assert!(!holder_alive(&format!("{host}:999999999")));
        assert!(holder_alive("another-host:12"));
        assert!(!holder_alive("garbage"));
    }
}

//! The job manager's decisions, as pure functions of what it knows: where a viewer's request
//! sends the encoder, whether a run pauses for its viewers, and where the next run starts. The
//! manager gathers the facts under its lock and acts on the answer; nothing here waits, locks or
//! touches a file.

use std::collections::BTreeSet;

use super::JobState;

/// Where a running job's encoder is: the first segment of its run and the film seconds it has
/// encoded since.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncoderAt {
    pub run_start: u32,
    pub seconds_done: f64,
}

impl EncoderAt {
    pub fn film_seconds(self, segment_seconds: u32) -> f64 {
        f64::from(self.run_start) * f64::from(segment_seconds) + self.seconds_done
    }
}

/// What the manager knows when a viewer asks for segment `index`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeekFacts {
    pub state: JobState,
    pub index: u32,
    pub made: bool,
    /// The film's segment count (an estimate until a run reached the end).
    pub count: u32,
    /// Set while the job runs.
    pub encoder: Option<EncoderAt>,
    /// A stop (restart, cancel, viewer gone) is already under way.
    pub stopping: bool,
    pub segment_seconds: u32,
    /// A request further ahead of the encoder than this restarts it there.
    pub jit_restart_seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    /// Made: serve it.
    Ready,
    /// Not in this film, or the job failed or was cancelled: only a new trigger retries it.
    Never,
    /// Being made, or about to be: wait for it.
    Wait,
    /// Queued: wait, and move the job to the front of the queue.
    Prioritise,
    /// Behind the running encoder's start, or far ahead of it: restart the run there.
    RestartAt(u32),
    /// The job stopped when its last viewer left: queue it again, starting there.
    ResumeAt(u32),
}

pub fn seek_decision(facts: SeekFacts) -> Seek {
    if facts.made {
        return Seek::Ready;
    }
    if facts.index >= facts.count {
        return Seek::Never;
    }
    match facts.state {
        JobState::Running => {
            let Some(encoder) = facts.encoder else {
                return Seek::Wait;
            };
            let wanted_at = f64::from(facts.index) * f64::from(facts.segment_seconds);
            let behind = facts.index < encoder.run_start;
            let far_ahead =
                wanted_at > encoder.film_seconds(facts.segment_seconds) + facts.jit_restart_seconds;
            if (behind || far_ahead) && !facts.stopping {
                Seek::RestartAt(facts.index)
            } else {
                Seek::Wait
            }
        }
        JobState::Queued => Seek::Prioritise,
        JobState::Stopped => Seek::ResumeAt(facts.index),
        JobState::Failed | JobState::Cancelled => Seek::Never,
        // A complete job has every segment of the film; a missing one is past its end.
        JobState::Complete => Seek::Never,
    }
}

/// Whether a run pauses: only while someone watches and the encoder is more than `ahead`
/// seconds past the end of the furthest segment any viewer asked for.
pub fn throttle_decision(
    encoder_seconds: f64,
    furthest_asked: Option<u32>,
    watched: bool,
    segment_seconds: u32,
    ahead: f64,
) -> bool {
    let viewer_seconds =
        furthest_asked.map_or(0.0, |f| f64::from(f + 1) * f64::from(segment_seconds));
    watched && encoder_seconds - viewer_seconds > ahead
}

/// The segments a run makes: from `start` up to `end`, the next one already made (`None`: to
/// the end of the film).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub start: u32,
    pub end: Option<u32>,
}

/// The next run of a film of `count` segments: at `jump` (where a viewer is) when that segment
/// is still missing, else at the first missing one. `None`: every segment is made.
pub fn next_run(made: &BTreeSet<u32>, count: u32, jump: Option<u32>) -> Option<Run> {
    let wanted = jump.filter(|i| *i < count && !made.contains(i));
    let start = wanted.or_else(|| (0..count).find(|i| !made.contains(i)))?;
    let end = made
        .range(start + 1..)
        .next()
        .copied()
        .filter(|e| *e < count);
    Some(Run { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(state: JobState, index: u32) -> SeekFacts {
        SeekFacts {
            state,
            index,
            made: false,
            count: 100,
            encoder: None,
            stopping: false,
            segment_seconds: 6,
            jit_restart_seconds: 24.0,
        }
    }

    fn running(index: u32, run_start: u32, seconds_done: f64) -> SeekFacts {
        SeekFacts {
            encoder: Some(EncoderAt {
                run_start,
                seconds_done,
            }),
            ..facts(JobState::Running, index)
        }
    }

    #[test]
    fn a_made_segment_is_served_whatever_the_job_does() {
        for state in JobState::ALL {
            let made = SeekFacts {
                made: true,
                ..facts(state, 3)
            };
            assert_eq!(seek_decision(made), Seek::Ready, "{state:?}");
        }
    }

    #[test]
    fn a_segment_past_the_film_never_comes() {
        assert_eq!(seek_decision(running(100, 0, 0.0)), Seek::Never);
        assert_eq!(seek_decision(facts(JobState::Queued, 250)), Seek::Never);
    }

    #[test]
    fn the_running_encoder_restarts_only_far_ahead_or_behind_its_start() {
        // Run from segment 10, 12 s in: the encoder is at 72 s of film.
        assert_eq!(
            seek_decision(running(13, 10, 12.0)),
            Seek::Wait,
            "just ahead"
        );
        assert_eq!(
            seek_decision(running(16, 10, 12.0)),
            Seek::Wait,
            "96 s: exactly the limit ahead"
        );
        assert_eq!(seek_decision(running(17, 10, 12.0)), Seek::RestartAt(17));
        assert_eq!(
            seek_decision(running(9, 10, 12.0)),
            Seek::RestartAt(9),
            "a hole behind"
        );
        let stopping = SeekFacts {
            stopping: true,
            ..running(40, 10, 12.0)
        };
        assert_eq!(seek_decision(stopping), Seek::Wait, "one restart at a time");
    }

    #[test]
    fn queued_stopped_and_ended_jobs_answer_by_their_state() {
        assert_eq!(seek_decision(facts(JobState::Queued, 5)), Seek::Prioritise);
        assert_eq!(
            seek_decision(facts(JobState::Stopped, 5)),
            Seek::ResumeAt(5)
        );
        assert_eq!(seek_decision(facts(JobState::Failed, 5)), Seek::Never);
        assert_eq!(seek_decision(facts(JobState::Cancelled, 5)), Seek::Never);
        assert_eq!(seek_decision(facts(JobState::Complete, 5)), Seek::Never);
    }

    #[test]
    fn a_run_pauses_only_far_ahead_of_someone_watching() {
        // Viewer asked for segment 4: they have film up to 30 s.
        assert!(!throttle_decision(59.0, Some(4), true, 6, 30.0));
        assert!(
            !throttle_decision(60.0, Some(4), true, 6, 30.0),
            "exactly the limit"
        );
        assert!(throttle_decision(60.5, Some(4), true, 6, 30.0));
        assert!(
            !throttle_decision(600.0, Some(4), false, 6, 30.0),
            "nobody watches"
        );
        assert!(
            throttle_decision(31.0, None, true, 6, 30.0),
            "a viewer who asked only playlists"
        );
    }

    #[test]
    fn a_run_starts_at_the_jump_or_the_first_hole_and_stops_at_the_next_made_segment() {
        let made = BTreeSet::from([0, 1, 2, 5, 6, 9]);
        assert_eq!(
            next_run(&made, 10, None),
            Some(Run {
                start: 3,
                end: Some(5)
            })
        );
        assert_eq!(
            next_run(&made, 10, Some(7)),
            Some(Run {
                start: 7,
                end: Some(9)
            })
        );
        assert_eq!(
            next_run(&made, 10, Some(5)),
            Some(Run {
                start: 3,
                end: Some(5)
            }),
            "a jump to a made segment goes to the first hole"
        );
        assert_eq!(
            next_run(&made, 10, Some(42)),
            Some(Run {
                start: 3,
                end: Some(5)
            }),
            "a jump past the film too"
        );
        assert_eq!(
            next_run(&made, 9, Some(7)),
            Some(Run {
                start: 7,
                end: None
            }),
            "9 is past a 9-segment film"
        );
        let whole: BTreeSet<u32> = (0..10).collect();
        assert_eq!(next_run(&whole, 10, Some(4)), None);
        assert_eq!(
            next_run(&BTreeSet::new(), 3, None),
            Some(Run {
                start: 0,
                end: None
            })
        );
    }
}

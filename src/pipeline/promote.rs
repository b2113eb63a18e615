//! Stage 4: a segment reaches its final name only once it is read back whole. The encoder
//! writes into a staging folder that nothing serves; each segment it finishes there is checked
//! (it parses, starts with a keyframe, holds a segment's worth of frames) and renamed into the
//! HLS folder. A damaged segment, or too little free space, stops the run at once; when a run
//! ends, what is left in the staging folder unchecked is deleted, never served.

use std::path::{Path, PathBuf};

use super::{Control, PipelineError, PipelineSpec};
use crate::disk;
use crate::hls::write;
use crate::job_dir::{segment_index, segment_name, JobDir};
use crate::media::{check, Tools};

pub(super) struct Promoter<'a> {
    tools: &'a Tools,
    control: &'a Control,
    staging: PathBuf,
    hls_dir: PathBuf,
    playlist: PathBuf,
    segment_seconds: u32,
    frame_rate: f64,
    first: u32,
    /// Free space below this stops the run (0: only damage does).
    min_free: u64,
    /// Video frames of each segment promoted so far, from `first` on.
    made: Vec<u64>,
}

/// How a run ended, for [`Promoter::finish`].
pub(super) enum Ending {
    /// The encoder exited cleanly after all of this many frames.
    Clean {
        frames: u64,
        film_end: bool,
    },
    Failed,
}

impl<'a> Promoter<'a> {
    pub fn new(
        tools: &'a Tools,
        control: &'a Control,
        spec: &PipelineSpec,
        frame_rate: f64,
    ) -> Promoter<'a> {
        Promoter {
            tools,
            control,
            staging: JobDir::at(&spec.hls_dir).staging(),
            hls_dir: spec.hls_dir.clone(),
            playlist: spec.hls_dir.join(&spec.playlist_name),
            segment_seconds: spec.segment_seconds,
            frame_rate,
            first: spec.start_segment,
            min_free: spec.min_free_bytes,
            made: Vec::new(),
        }
    }

    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// Checks and promotes every segment the encoder has finished and moved past (the one it
    /// closed last may be the film's short last one, known only when the encoder ends), and
    /// the free space.
    pub fn promote_finished(&mut self) -> Result<(), PipelineError> {
        disk::ensure_free(&self.hls_dir, self.min_free)?;
        let (finished, newest) = self.listing()?;
        for index in finished.into_iter().filter(|&i| Some(i) < newest) {
            self.promote(index, Length::Full)?;
        }
        Ok(())
    }

    /// Settles the run: after a clean end the rest is promoted (the film's last segment may be
    /// short) and the frames must all be there; after a failure whatever checks out whole is
    /// kept and the rest deleted. Either way the staging folder goes.
    pub fn finish(&mut self, ending: Ending) -> Result<(), PipelineError> {
        let outcome = self.settle(&ending);
        let _ = std::fs::remove_dir_all(&self.staging);
        outcome
    }

    fn settle(&mut self, ending: &Ending) -> Result<(), PipelineError> {
        let finished = self.finished()?;
        match *ending {
            Ending::Failed => {
                for index in finished {
                    if self.promote(index, Length::Full).is_err() {
                        break;
                    }
                }
                Ok(())
            }
            Ending::Clean { frames, film_end } => {
                let last = finished.last().copied();
                for index in finished {
                    let length = if Some(index) == last && film_end {
                        Length::Rest(frames.saturating_sub(self.made.iter().sum()))
                    } else {
                        Length::Full
                    };
                    self.promote(index, length)?;
                }
                let counted: u64 = self.made.iter().sum();
                if counted != frames {
                    return Err(self.damaged(
                        self.first + self.made.len() as u32,
                        format!("the run's segments hold {counted} of the {frames} frames encoded"),
                    ));
                }
                self.write_playlist(true)
            }
        }
    }

    /// Indices of the segments the encoder has closed (renamed from `.tmp`), in order.
    fn finished(&self) -> Result<Vec<u32>, PipelineError> {
        Ok(self.listing()?.0)
    }

    /// The closed segments, and the highest index the encoder has started (closed or not).
    fn listing(&self) -> Result<(Vec<u32>, Option<u32>), PipelineError> {
        let entries = match std::fs::read_dir(&self.staging) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
            Err(e) => {
                return Err(PipelineError::Io(
                    format!("reading {}", self.staging.display()),
                    e,
                ))
            }
        };
        let mut finished = Vec::new();
        let mut newest = None;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(index) = segment_index(name) {
                finished.push(index);
                newest = newest.max(Some(index));
            } else if let Some(index) = name.strip_suffix(".tmp").and_then(segment_index) {
                newest = newest.max(Some(index));
            }
        }
        finished.sort_unstable();
        Ok((finished, newest))
    }

    fn promote(&mut self, index: u32, length: Length) -> Result<(), PipelineError> {
        let name = segment_name(index);
        let staged = self.staging.join(&name);
        let expected = self.first + self.made.len() as u32;
        if index != expected {
            return Err(self.damaged(index, format!("segment {expected} never came")));
        }
        let contents =
            check::read_back(self.tools, &staged).map_err(|reason| self.damaged(index, reason))?;
        let frames = contents.video_packets;
        if frames == 0 && matches!(length, Length::Rest(0)) {
            // Audio that outlasts the last frame: nothing a player needs.
            let _ = std::fs::remove_file(&staged);
            return Ok(());
        }
        if !contents.starts_with_keyframe {
            return Err(self.damaged(index, "it does not start with a keyframe".into()));
        }
        if let Some(problem) = length.problem(frames, self.full_segment_frames()) {
            return Err(self.damaged(index, problem));
        }
        let target = self.hls_dir.join(&name);
        if target.exists() {
            // A segment once made may already be served as immutable: it is never replaced.
            let _ = std::fs::remove_file(&staged);
        } else {
            std::fs::rename(&staged, &target)
                .map_err(|e| PipelineError::Io(format!("moving {name} into place"), e))?;
        }
        self.made.push(frames);
        self.control.segment_landed(index);
        self.write_playlist(false)
    }

    fn full_segment_frames(&self) -> f64 {
        f64::from(self.segment_seconds) * self.frame_rate
    }

    fn write_playlist(&self, ended: bool) -> Result<(), PipelineError> {
        let durations: Vec<f64> = self
            .made
            .iter()
            .map(|&frames| frames as f64 / self.frame_rate)
            .collect();
        let text = write::run(self.first, &durations, self.segment_seconds, ended);
        let temporary = self.staging.join("playlist.tmp");
        let io = |e| PipelineError::Io(format!("writing {}", self.playlist.display()), e);
        std::fs::write(&temporary, text).map_err(io)?;
        std::fs::rename(&temporary, &self.playlist).map_err(io)
    }

    fn damaged(&self, index: u32, reason: String) -> PipelineError {
        let free = disk::free_bytes(&self.hls_dir).ok();
        PipelineError::DamagedSegment {
            name: segment_name(index),
            reason,
            free_mib: free.map(|f| f / disk::MIB),
        }
    }
}

/// How many frames a segment must hold.
enum Length {
    /// A whole segment: within a frame of the segment length.
    Full,
    /// The film's last segment: exactly the frames not yet accounted for.
    Rest(u64),
}

impl Length {
    fn problem(&self, frames: u64, full: f64) -> Option<String> {
        match *self {
            Length::Full if (frames as f64 - full).abs() > 1.0 + 1e-6 => Some(format!(
                "it holds {frames} frames where a segment has {full:.0}"
            )),
            Length::Rest(rest) if frames != rest || frames == 0 => Some(format!(
                "it holds {frames} frames where {rest} were left to encode"
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_segment_is_within_a_frame_of_its_length_and_the_last_holds_the_rest() {
        let full = 24.0 * 6.0;
        assert_eq!(Length::Full.problem(144, full), None);
        assert_eq!(Length::Full.problem(145, full), None);
        assert_eq!(Length::Full.problem(143, full), None);
        assert!(Length::Full.problem(142, full).is_some());
        assert!(Length::Full.problem(0, full).is_some());
        assert_eq!(Length::Rest(30).problem(30, full), None);
        assert!(Length::Rest(30).problem(29, full).is_some());
        assert!(Length::Rest(0).problem(0, full).is_some());
        // 29.97 fps: segments of 6 s alternate between 179 and 180 frames.
        let ntsc = 6.0 * 30000.0 / 1001.0;
        assert_eq!(Length::Full.problem(179, ntsc), None);
        assert_eq!(Length::Full.problem(180, ntsc), None);
    }
}

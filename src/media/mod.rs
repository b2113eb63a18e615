//! Everything about ffmpeg and ffprobe: where the binaries are, what a source file contains, and
//! the argument lists liveup hands them.

pub mod args;
pub mod check;
pub mod probe;
pub mod process;
pub mod rational;

use std::path::PathBuf;
use std::process::Command;

pub use probe::{probe, MediaInfo, ProbeError};
pub use rational::Rational;

const FFMPEG_NICENESS: i32 = 5;

/// The ffmpeg and ffprobe binaries liveup drives: `LIVEUP_FFMPEG` / `LIVEUP_FFPROBE`, else the
/// ones on `PATH`.
#[derive(Debug, Clone)]
pub struct Tools {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
}

impl Tools {
    pub fn from_env() -> Tools {
        let pick = |var: &str, default: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(default))
        };
        Tools {
            ffmpeg: pick("LIVEUP_FFMPEG", "ffmpeg"),
            ffprobe: pick("LIVEUP_FFPROBE", "ffprobe"),
        }
    }

    /// An ffmpeg command (through ffmpeg-sidecar) with the flags every liveup invocation wants:
    /// overwrite without asking, never read the terminal, errors and warnings on stderr. It runs
    /// at a lower CPU priority than liveup: decoding and encoding need little CPU and have frames
    /// buffered, while every cycle they take from the network is lost throughput.
    pub fn ffmpeg_command(&self) -> Command {
        use std::os::unix::process::CommandExt;
        let mut command = ffmpeg_sidecar::command::FfmpegCommand::new_with_path(&self.ffmpeg);
        command.hide_banner().args(["-nostdin", "-y"]);
        let mut command: Command = command.into();
        command.args(["-loglevel", "level+warning", "-nostats"]);
        // SAFETY: nice(2) and prctl(2) are async-signal-safe; if either fails the child only
        // keeps its priority or outlives a killed daemon, which a restart cleans up.
        unsafe {
            command.pre_exec(|| {
                libc::nice(FFMPEG_NICENESS);
                // A daemon killed with -9 must not leave encoders finishing its playlists.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        command
    }

    pub fn ffmpeg_version(&self) -> Result<String, process::ProcessError> {
        first_line_version(&self.ffmpeg, "ffmpeg")
    }

    pub fn ffprobe_version(&self) -> Result<String, process::ProcessError> {
        first_line_version(&self.ffprobe, "ffprobe")
    }
}

fn first_line_version(
    binary: &PathBuf,
    name: &'static str,
) -> Result<String, process::ProcessError> {
    let mut command = Command::new(binary);
    command.arg("-version");
    let out = process::output(name, command)?;
    let text = String::from_utf8_lossy(&out);
    Ok(text
        .split_whitespace()
        .nth(2)
        .unwrap_or("unknown")
        .to_string())
}

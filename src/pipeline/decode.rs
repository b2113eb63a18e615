//! Stage 1: ffmpeg decodes the source into raw rgb24 frames, read here into pooled buffers.

use std::io::Read;
use std::process::ChildStdout;
use std::sync::mpsc::{Receiver, SyncSender};

use super::frames::Frame;
use super::{Control, Message, PipelineError};
use crate::media::process::Process;

pub(super) fn read_frames(
    mut stdout: ChildStdout,
    decoder: &Process,
    free: Receiver<Frame>,
    frames: SyncSender<Message>,
    control: &Control,
) -> Result<(), PipelineError> {
    loop {
        if control.wait_while_paused() {
            return Err(PipelineError::Cancelled);
        }
        let mut frame = free.recv().map_err(|_| PipelineError::Aborted)?;
        match fill(&mut stdout, &mut frame.data)? {
            0 => break,
            n if n == frame.data.len() => {
                frames
                    .send(Message::Frame(frame))
                    .map_err(|_| PipelineError::Aborted)?;
            }
            n => {
                decoder.wait()?;
                return Err(PipelineError::TruncatedFrame {
                    got: n,
                    expected: frame.data.len(),
                });
            }
        }
    }
    // The decoder must have exited cleanly before the end is announced: a killed decoder also
    // closes its stdout, and that must not pass for the end of the film.
    decoder.wait()?;
    frames
        .send(Message::End)
        .map_err(|_| PipelineError::Aborted)
}

/// Reads until `buffer` is full or the stream ends; returns the bytes read.
fn fill(stdout: &mut ChildStdout, buffer: &mut [u8]) -> Result<usize, PipelineError> {
    let mut filled = 0;
    while filled < buffer.len() {
        match stdout.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(PipelineError::Io("reading decoded frames".into(), e)),
        }
    }
    Ok(filled)
}

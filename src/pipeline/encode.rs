//! Stage 3: upscaled frames are written to the encoding ffmpeg, which tees them into the live HLS
//! playlist and the final file.

use std::io::Write;
use std::process::ChildStdin;
use std::sync::mpsc::{Receiver, SyncSender};

use super::frames::Frame;
use super::progress::Progress;
use super::{Message, PipelineError};
use crate::media::process::Process;

pub(super) fn write_frames(
    mut stdin: ChildStdin,
    encoder: &Process,
    frames: Receiver<Message>,
    give_back: SyncSender<Frame>,
    progress: &Progress,
) -> Result<(), PipelineError> {
    for message in frames {
        match message {
            Message::Frame(frame) => {
                if let Err(e) = stdin.write_all(&frame.data) {
                    encoder.wait()?;
                    return Err(PipelineError::Io("writing frames to the encoder".into(), e));
                }
                progress.frame_done();
                let _ = give_back.send(frame);
            }
            Message::End => {
                drop(stdin);
                encoder.wait()?;
                return Ok(());
            }
        }
    }
    // The stream stopped without its end: never let the encoder finish the files as if whole.
    encoder.kill();
    Err(PipelineError::Aborted)
}

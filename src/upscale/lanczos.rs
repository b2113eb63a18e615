//! The non-AI model: ffmpeg's Lanczos scaler inside the decoder, for machines that cannot run a
//! network in real time.

use super::{UpscaleError, Upscaler};
use crate::pipeline::frames::Frame;

pub struct Lanczos {
    scale: u32,
}

impl Lanczos {
    pub fn new(scale: u32) -> Lanczos {
        Lanczos { scale }
    }
}

impl Upscaler for Lanczos {
    fn scale(&self) -> u32 {
        self.scale
    }

    fn device(&self) -> String {
        "ffmpeg".to_string()
    }

    fn decoder_filter(&self) -> Option<String> {
        Some(format!(
            "scale=iw*{0}:ih*{0}:flags=lanczos+accurate_rnd+full_chroma_int",
            self.scale
        ))
    }

    fn upscale(&mut self, input: &Frame, output: &mut Frame) -> Result<(), UpscaleError> {
        output.data.copy_from_slice(&input.data);
        Ok(())
    }
}

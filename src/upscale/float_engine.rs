//! Frames through a super-resolution network that takes `[1, 3, H, W]` float RGB in [0, 1] and
//! gives `[1, 3, sH, sW]`, whichever runtime runs it ([`FloatNetwork`]: ONNX Runtime or
//! OpenVINO). Frames are reflect-padded like the reference implementation, split into
//! overlapping tiles when large, shrunk when the network is larger than the model, and clamped
//! to [0, 1] before going back to 8 bits.

use super::models::ModelSpec;
use super::resize;
use super::tiling::{self, Tile};
use super::{EngineOptions, UpscaleError, Upscaler};
use crate::pipeline::frames::Frame;

/// One float window through the network.
pub trait FloatNetwork: Send {
    /// The network's input for a `width × height` window, planar RGB, to be filled before
    /// [`FloatNetwork::run`].
    fn input(&mut self, width: usize, height: usize) -> Result<&mut [f32], UpscaleError>;

    /// Runs the network on what [`FloatNetwork::input`] holds and hands its output's shape and
    /// values to `use_output`, whose error it returns.
    fn run(&mut self, use_output: &mut OutputUse<'_>) -> Result<(), UpscaleError>;
}

/// What is done with a network's output: its shape and its values.
pub type OutputUse<'a> = dyn FnMut(&[i64], &[f32]) -> Result<(), UpscaleError> + 'a;

pub struct FloatUpscaler {
    network: Box<dyn FloatNetwork>,
    scale: u32,
    /// The network's own scale; larger than `scale` when its output is shrunk afterwards.
    network_scale: u32,
    pad: u32,
    tile_size: u32,
    tile_overlap: u32,
    device: String,
    /// The padded frame as planar floats, reused from frame to frame.
    padded: Vec<f32>,
    /// For each column of the padded frame, the source column it mirrors; rebuilt only when
    /// the frame width changes.
    padded_columns: Vec<usize>,
    shrink_scratch: Vec<f32>,
    shrunk: Vec<f32>,
}

impl FloatUpscaler {
    /// `network` runs `spec`'s network, of scale `network_scale`, on `device` (for logs).
    pub(super) fn new(
        spec: &ModelSpec,
        network_scale: u32,
        options: &EngineOptions,
        network: Box<dyn FloatNetwork>,
        device: String,
    ) -> FloatUpscaler {
        FloatUpscaler {
            network,
            scale: spec.scale,
            network_scale,
            pad: spec.reflect_pad,
            tile_size: options.tile_size,
            tile_overlap: options.tile_overlap,
            device,
            padded: Vec::new(),
            padded_columns: Vec::new(),
            shrink_scratch: Vec::new(),
            shrunk: Vec::new(),
        }
    }

    fn fill_padded(&mut self, frame: &Frame) {
        let pad = i64::from(self.pad);
        let (width, height) = (frame.width, frame.height);
        let padded_w = (width + 2 * self.pad) as usize;
        let padded_h = (height + 2 * self.pad) as usize;
        let plane = padded_w * padded_h;
        self.padded.resize(plane * 3, 0.0);
        // The padding is fixed per model, so the padded width determines the frame width.
        if self.padded_columns.len() != padded_w {
            self.padded_columns = (0..padded_w as i64)
                .map(|x| tiling::reflect(x - pad, width))
                .collect();
        }
        let columns = &self.padded_columns;
        for py in 0..padded_h {
            let sy = tiling::reflect(py as i64 - pad, height);
            let row = &frame.data[sy * width as usize * 3..][..width as usize * 3];
            for (px, &sx) in columns.iter().enumerate() {
                let at = py * padded_w + px;
                for channel in 0..3 {
                    self.padded[channel * plane + at] = f32::from(row[sx * 3 + channel]) / 255.0;
                }
            }
        }
    }

    fn run_tile(
        &mut self,
        tile: &Tile,
        padded_w: usize,
        padded_h: usize,
        output: &mut Frame,
    ) -> Result<(), UpscaleError> {
        let window = tile.window;
        let (ww, wh) = (window.width() as usize, window.height() as usize);
        let plane = padded_w * padded_h;
        let input = self.network.input(ww, wh)?;
        for channel in 0..3 {
            for y in 0..wh {
                let src =
                    channel * plane + (window.y0 as usize + y) * padded_w + window.x0 as usize;
                let dst = (channel * wh + y) * ww;
                input[dst..dst + ww].copy_from_slice(&self.padded[src..src + ww]);
            }
        }
        let network_scale = self.network_scale as usize;
        let scale = self.scale as usize;
        let place = Placement {
            tile,
            pad: self.pad as usize,
            window: (ww, wh),
            network_scale,
            scale,
        };
        let (scratch, shrunk) = (&mut self.shrink_scratch, &mut self.shrunk);
        self.network
            .run(&mut |shape, data| place.write(shape, data, scratch, shrunk, output))
    }
}

/// Where one tile's network output goes in the output frame.
struct Placement<'a> {
    tile: &'a Tile,
    pad: usize,
    /// The window's size, input pixels.
    window: (usize, usize),
    network_scale: usize,
    scale: usize,
}

impl Placement<'_> {
    fn write(
        &self,
        shape: &[i64],
        data: &[f32],
        shrink_scratch: &mut Vec<f32>,
        shrunk: &mut Vec<f32>,
        output: &mut Frame,
    ) -> Result<(), UpscaleError> {
        let (ww, wh) = self.window;
        let (network_scale, scale) = (self.network_scale, self.scale);
        let (nw, nh) = (ww * network_scale, wh * network_scale);
        if shape.len() != 4 || shape[1] != 3 || shape[2] as usize != nh || shape[3] as usize != nw {
            return Err(UpscaleError::Inference(format!(
                "model gave shape {shape:?} for a {ww}x{wh} input at scale {network_scale}"
            )));
        }
        let (ow, oh) = (ww * scale, wh * scale);
        let data = if network_scale == scale {
            data
        } else {
            resize::resize_planes(data, 3, (nw, nh), (ow, oh), shrink_scratch, shrunk);
            &shrunk[..]
        };
        let out_plane = ow * oh;
        let (window, core) = (self.tile.window, self.tile.core);
        // Output pixel (x, y) of the frame comes from this tile's output at (x - left, y - top).
        let left = (window.x0 as isize - self.pad as isize) * scale as isize;
        let top = (window.y0 as isize - self.pad as isize) * scale as isize;
        let frame_w = output.width as usize;
        for y in core.y0 as usize * scale..core.y1 as usize * scale {
            let ty = (y as isize - top) as usize;
            let row = &mut output.data[y * frame_w * 3..(y + 1) * frame_w * 3];
            for x in core.x0 as usize * scale..core.x1 as usize * scale {
                let tx = (x as isize - left) as usize;
                let at = ty * ow + tx;
                for channel in 0..3 {
                    let value = data[channel * out_plane + at].clamp(0.0, 1.0);
                    row[x * 3 + channel] = (value * 255.0).round() as u8;
                }
            }
        }
        Ok(())
    }
}

impl Upscaler for FloatUpscaler {
    fn scale(&self) -> u32 {
        self.scale
    }

    fn device(&self) -> String {
        self.device.clone()
    }

    fn upscale(&mut self, input: &Frame, output: &mut Frame) -> Result<(), UpscaleError> {
        debug_assert_eq!(
            (output.width, output.height),
            (input.width * self.scale, input.height * self.scale)
        );
        self.fill_padded(input);
        let padded_w = (input.width + 2 * self.pad) as usize;
        let padded_h = (input.height + 2 * self.pad) as usize;
        let tiles = tiling::plan(
            input.width,
            input.height,
            self.pad,
            self.tile_size,
            self.tile_overlap,
        );
        for tile in &tiles {
            self.run_tile(tile, padded_w, padded_h, output)?;
        }
        Ok(())
    }
}

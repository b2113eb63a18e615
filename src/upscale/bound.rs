//! A network's uint8 graph (`x.u8.onnx`, `x.fp16.u8.onnx`: frames in and out as the decoder and
//! encoder give and take them, `[1, H, W, 3]` bytes, with the padding, clamping and rounding
//! inside the graph) run through I/O binding: each tile is written once into a host buffer the
//! device copies from (page-locked on CUDA, so the copy is a DMA), the result lands in another,
//! and the host does no float work. With several sessions, that many frames are in flight at once,
//! each on its own session and so its own CUDA stream: one frame's copies overlap another's
//! compute.

use std::collections::HashMap;

use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, Session};
use ort::value::Tensor;

use super::sessions::{Accel, Opened};
use super::tiling::{self, Tile};
use super::{UpscaleError, Upscaler};
use crate::pipeline::frames::Frame;

const FRAME_IN: &str = "frame";
const FRAME_OUT: &str = "upscaled";

fn failed(e: ort::Error) -> UpscaleError {
    UpscaleError::Inference(e.to_string())
}

/// One session with its I/O binding and host buffers, one pair per tile size (a frame has at
/// most four).
struct Lane {
    session: Session,
    binding: IoBinding,
    accel: Accel,
    buffers: HashMap<(u32, u32), (Tensor<u8>, Tensor<u8>)>,
}

impl Lane {
    fn allocator(&self, memory_type: MemoryType) -> Result<Allocator, ort::Error> {
        match self.accel {
            Accel::Cpu => Ok(Allocator::default()),
            Accel::Cuda(id) | Accel::TensorRt(id) => Allocator::new(
                &self.session,
                MemoryInfo::new(
                    AllocationDevice::CUDA_PINNED,
                    id as i32,
                    AllocatorType::Device,
                    memory_type,
                )?,
            ),
        }
    }

    /// Allocates the input and output buffers of a `width × height` tile once.
    fn ensure_buffers(&mut self, width: u32, height: u32, scale: u32) -> Result<(), ort::Error> {
        if !self.buffers.contains_key(&(width, height)) {
            let shape = |w: u32, h: u32| [1usize, h as usize, w as usize, 3];
            let input =
                Tensor::<u8>::new(&self.allocator(MemoryType::CPUInput)?, shape(width, height))?;
            let output = Tensor::<u8>::new(
                &self.allocator(MemoryType::CPUOutput)?,
                shape(width * scale, height * scale),
            )?;
            self.buffers.insert((width, height), (input, output));
        }
        Ok(())
    }

    /// Runs every tile of `input` and writes each tile's core into `output`.
    fn upscale(
        &mut self,
        tiles: &[Tile],
        scale: u32,
        input: &Frame,
        output: &mut Frame,
    ) -> Result<(), UpscaleError> {
        for tile in tiles {
            self.run_tile(tile, scale, input, output)?;
        }
        Ok(())
    }

    fn run_tile(
        &mut self,
        tile: &Tile,
        scale: u32,
        input: &Frame,
        output: &mut Frame,
    ) -> Result<(), UpscaleError> {
        let window = tile.window;
        let (ww, wh) = (window.width() as usize, window.height() as usize);
        self.ensure_buffers(window.width(), window.height(), scale)
            .map_err(failed)?;
        let Lane {
            session,
            binding,
            buffers,
            ..
        } = self;
        let (tile_in, tile_out) = buffers
            .get_mut(&(window.width(), window.height()))
            .expect("allocated above");
        let (_, bytes) = tile_in.extract_tensor_mut();
        let frame_row = input.width as usize * 3;
        for y in 0..wh {
            let from = (window.y0 as usize + y) * frame_row + window.x0 as usize * 3;
            bytes[y * ww * 3..(y + 1) * ww * 3].copy_from_slice(&input.data[from..from + ww * 3]);
        }
        binding.bind_input(FRAME_IN, &*tile_in).map_err(failed)?;
        binding
            .bind_output(FRAME_OUT, &mut *tile_out)
            .map_err(failed)?;
        let outputs = session.run_binding(binding).map_err(failed)?;
        let (shape, upscaled) = outputs[FRAME_OUT]
            .try_extract_tensor::<u8>()
            .map_err(failed)?;
        let scale = scale as usize;
        let (ow, oh) = (ww * scale, wh * scale);
        if shape.len() != 4 || shape[1] as usize != oh || shape[2] as usize != ow || shape[3] != 3 {
            return Err(UpscaleError::Inference(format!(
                "model gave shape {shape:?} for a {ww}x{wh} frame at scale {scale}"
            )));
        }
        let core = tile.core;
        let out_row = output.width as usize * 3;
        let core_w = core.width() as usize * scale * 3;
        let dx = (core.x0 - window.x0) as usize * scale;
        for y in core.y0 as usize * scale..core.y1 as usize * scale {
            let ty = y - window.y0 as usize * scale;
            let from = (ty * ow + dx) * 3;
            let to = y * out_row + core.x0 as usize * scale * 3;
            output.data[to..to + core_w].copy_from_slice(&upscaled[from..from + core_w]);
        }
        Ok(())
    }
}

pub struct BoundUpscaler {
    lanes: Vec<Lane>,
    scale: u32,
    tile_size: u32,
    tile_overlap: u32,
    device: String,
}

impl BoundUpscaler {
    /// `opened` holds the sessions of a uint8 graph of a model that multiplies each side by
    /// `scale`.
    pub(super) fn new(
        scale: u32,
        tile_size: u32,
        tile_overlap: u32,
        opened: Opened,
    ) -> Result<BoundUpscaler, UpscaleError> {
        let accel = opened.accel;
        let lanes = opened
            .sessions
            .into_iter()
            .map(|session| {
                Ok(Lane {
                    binding: session.create_binding().map_err(failed)?,
                    session,
                    accel,
                    buffers: HashMap::new(),
                })
            })
            .collect::<Result<_, UpscaleError>>()?;
        Ok(BoundUpscaler {
            lanes,
            scale,
            tile_size,
            tile_overlap,
            device: opened.device,
        })
    }

    /// The frame in tiles of at most `tile_size` a side with their context; the graph itself
    /// reflect-pads each tile, which at the frame's edges is the reference padding.
    fn tiles(&self, frame: &Frame) -> Vec<Tile> {
        tiling::plan(
            frame.width,
            frame.height,
            0,
            self.tile_size,
            self.tile_overlap,
        )
    }
}

impl Upscaler for BoundUpscaler {
    fn scale(&self) -> u32 {
        self.scale
    }

    fn device(&self) -> String {
        self.device.clone()
    }

    fn in_flight(&self) -> usize {
        self.lanes.len()
    }

    fn upscale(&mut self, input: &Frame, output: &mut Frame) -> Result<(), UpscaleError> {
        let tiles = self.tiles(input);
        self.lanes[0].upscale(&tiles, self.scale, input, output)
    }

    fn upscale_together(
        &mut self,
        frames: &mut [(&Frame, &mut Frame)],
    ) -> Result<(), UpscaleError> {
        if frames.len() <= 1 || self.lanes.len() == 1 {
            return frames
                .iter_mut()
                .try_for_each(|(input, output)| self.upscale(input, output));
        }
        let scale = self.scale;
        let tiles: Vec<Vec<Tile>> = frames.iter().map(|(input, _)| self.tiles(input)).collect();
        let lanes = self.lanes.len();
        let mut work: Vec<Vec<(&[Tile], &Frame, &mut Frame)>> =
            (0..lanes).map(|_| Vec::new()).collect();
        for (index, ((input, output), tiles)) in frames.iter_mut().zip(&tiles).enumerate() {
            work[index % lanes].push((tiles, *input, &mut **output));
        }
        std::thread::scope(|scope| {
            let running: Vec<_> = self
                .lanes
                .iter_mut()
                .zip(work)
                .map(|(lane, frames)| {
                    scope.spawn(move || {
                        frames.into_iter().try_for_each(|(tiles, input, output)| {
                            lane.upscale(tiles, scale, input, output)
                        })
                    })
                })
                .collect();
            running.into_iter().try_for_each(|lane| {
                lane.join().unwrap_or_else(|_| {
                    Err(UpscaleError::Inference(
                        "an inference thread panicked".into(),
                    ))
                })
            })
        })
    }
}

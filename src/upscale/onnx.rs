//! A float network run by an ONNX Runtime session, for [`FloatUpscaler`](super::float_engine).

use ort::session::Session;
use ort::value::TensorRef;

use super::float_engine::{FloatNetwork, OutputUse};
use super::UpscaleError;

pub struct OrtNetwork {
    session: Session,
    /// The window's planar floats and their `[1, 3, height, width]` shape.
    input: Vec<f32>,
    shape: [usize; 4],
}

impl OrtNetwork {
    pub fn new(session: Session) -> OrtNetwork {
        OrtNetwork {
            session,
            input: Vec::new(),
            shape: [1, 3, 0, 0],
        }
    }
}

impl FloatNetwork for OrtNetwork {
    fn input(&mut self, width: usize, height: usize) -> Result<&mut [f32], UpscaleError> {
        self.shape = [1, 3, height, width];
        self.input.resize(3 * width * height, 0.0);
        Ok(&mut self.input)
    }

    fn run(&mut self, use_output: &mut OutputUse<'_>) -> Result<(), UpscaleError> {
        let failed = |e: ort::Error| UpscaleError::Inference(e.to_string());
        let input = TensorRef::from_array_view((self.shape, &self.input[..])).map_err(failed)?;
        let outputs = self.session.run(ort::inputs![input]).map_err(failed)?;
        let (shape, data) = outputs[0].try_extract_tensor::<f32>().map_err(failed)?;
        use_output(shape, data)
    }
}

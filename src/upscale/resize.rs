//! Bicubic resizing of planar float images with the semantics of ONNX `Resize` (cubic,
//! `half_pixel`, a = −0.75, edge pixels repeated), which is also what the reference
//! implementation's final shrink computes. Done here instead of inside the network because
//! ONNX Runtime's CPU kernel for it costs a quarter of the whole model's time.

const A: f32 = -0.75;

fn cubic(distance: f32) -> f32 {
    let x = distance.abs();
    if x <= 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
    } else {
        0.0
    }
}

/// For each output index: the four source indices (clamped) and their weights.
fn taps(from: usize, to: usize) -> Vec<([usize; 4], [f32; 4])> {
    let scale = to as f32 / from as f32;
    (0..to)
        .map(|out| {
            let centre = (out as f32 + 0.5) / scale - 0.5;
            let base = centre.floor();
            let t = centre - base;
            let clamp =
                |offset: isize| (base as isize + offset).clamp(0, from as isize - 1) as usize;
            (
                [clamp(-1), clamp(0), clamp(1), clamp(2)],
                [cubic(t + 1.0), cubic(t), cubic(1.0 - t), cubic(2.0 - t)],
            )
        })
        .collect()
}

/// Resizes `channels` planes of `width × height` in `input` into `output` (resized to fit).
/// `scratch` holds the horizontal pass between calls so nothing is allocated per frame.
pub fn resize_planes(
    input: &[f32],
    channels: usize,
    (width, height): (usize, usize),
    (out_w, out_h): (usize, usize),
    scratch: &mut Vec<f32>,
    output: &mut Vec<f32>,
) {
    let columns = taps(width, out_w);
    let rows = taps(height, out_h);
    scratch.resize(channels * height * out_w, 0.0);
    output.resize(channels * out_h * out_w, 0.0);
    for channel in 0..channels {
        let plane = &input[channel * width * height..][..width * height];
        let across = &mut scratch[channel * height * out_w..][..height * out_w];
        for y in 0..height {
            let src = &plane[y * width..][..width];
            for (x, (index, weight)) in columns.iter().enumerate() {
                across[y * out_w + x] = (0..4).map(|k| src[index[k]] * weight[k]).sum();
            }
        }
        let out = &mut output[channel * out_h * out_w..][..out_h * out_w];
        for (y, (index, weight)) in rows.iter().enumerate() {
            let row = &mut out[y * out_w..][..out_w];
            row.fill(0.0);
            for k in 0..4 {
                let src = &across[index[k] * out_w..][..out_w];
                for (value, &s) in row.iter_mut().zip(src) {
                    *value += s * weight[k];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halving_uses_the_two_pairs_of_neighbours() {
        let weights = taps(8, 4);
        assert_eq!(weights[1].0, [1, 2, 3, 4]);
        let [w0, w1, w2, w3] = weights[1].1;
        assert!((w0 + 0.09375).abs() < 1e-6 && (w1 - 0.59375).abs() < 1e-6);
        assert!((w2 - w1).abs() < 1e-6 && (w3 - w0).abs() < 1e-6);
        assert_eq!(weights[0].0, [0, 0, 1, 2], "edges repeat the border pixel");
    }

    #[test]
    fn flat_images_stay_flat_and_sizes_are_exact() {
        let input = vec![0.25f32; 3 * 12 * 8];
        let (mut scratch, mut output) = (Vec::new(), Vec::new());
        resize_planes(&input, 3, (12, 8), (9, 6), &mut scratch, &mut output);
        assert_eq!(output.len(), 3 * 9 * 6);
        assert!(output.iter().all(|v| (v - 0.25).abs() < 1e-6));
    }
}

"""The int8 variant of a network for CPUs: weights int8 per output channel, activations uint8,
both with QuantizeLinear/DequantizeLinear pairs (QDQ) that ONNX Runtime's CPU provider fuses
into integer convolutions. Activation ranges are calibrated on photographs that ship with
scikit-image (never the ones the tests judge the result on), cut to the size of video frames.

reduce_range keeps the weights to 7 bits: on x86 without VNNI the u8*s8 multiply-add saturates
with 8, which cost about 3 dB; with VNNI it is a little less precise and as fast."""

import os
import tempfile

import numpy as np

# scikit-image's sample photographs used for calibration; the tests use others (chelsea, coffee).
CALIBRATION_PHOTOS = ["astronaut", "hubble_deep_field", "camera", "immunohistochemistry", "gravel", "rocket"]
CROP = (120, 200)
PERCENTILE = 99.999


def calibration_frames(pad):
    """One crop per photo, as the engine feeds it: float RGB in [0, 1], NCHW, reflect-padded."""
    from skimage import data, transform

    rng = np.random.default_rng(0)
    frames = []
    for name in CALIBRATION_PHOTOS:
        image = getattr(data, name)()
        if image.ndim == 2:
            image = np.stack([image] * 3, -1)
        image = image[..., :3].astype(np.float32) / 255.0
        height, width = image.shape[:2]
        shrink = max(360 / height, 640 / width)
        image = transform.resize(image, (round(height * shrink), round(width * shrink)), order=3, anti_aliasing=True)
        top = rng.integers(0, image.shape[0] - CROP[0] + 1)
        left = rng.integers(0, image.shape[1] - CROP[1] + 1)
        crop = np.floor(np.clip(image[top : top + CROP[0], left : left + CROP[1]], 0, 1) * 255 + 0.5) / 255
        nchw = np.transpose(crop, (2, 0, 1))[None]
        frames.append(np.pad(nchw, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="reflect").astype(np.float32))
    return frames


def to_int8(model, pad, input_name):
    """`model` (fp32, float frames in and out) statically quantized; returns the new model."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Frames(CalibrationDataReader):
        def __init__(self):
            self.frames = iter(calibration_frames(pad))

        def get_next(self):
            frame = next(self.frames, None)
            return None if frame is None else {input_name: frame}

    with tempfile.TemporaryDirectory(prefix="liveup-int8-") as work:
        source = os.path.join(work, "fp32.onnx")
        target = os.path.join(work, "int8.onnx")
        onnx.save(model, source)
        quantize_static(
            source,
            target,
            Frames(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            calibrate_method=CalibrationMethod.Percentile,
            extra_options={"CalibPercentile": PERCENTILE, "CalibMovingAverage": False},
        )
        return onnx.load(target)

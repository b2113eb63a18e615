"""Checks the OpenVINO int8 variant (NNCF, models/quantize_openvino.py) against the fp32 network
run by ONNX Runtime, on photographs its calibration never saw."""

import os
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import openvino as ov
import pytest
from skimage import data, transform
from skimage.metrics import peak_signal_noise_ratio

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "models"))

import convert  # noqa: E402
import quantize  # noqa: E402
import quantize_openvino  # noqa: E402

MODELS_DIR = Path(os.environ.get("LIVEUP_MODELS_DIR", REPO / ".deps" / "models"))
OPENVINO_INT8 = sorted(m["name"] for m in convert.load_manifest() if m.get("openvino_int8"))
ENTRIES = {m["name"]: m for m in convert.load_manifest()}


def upscale(run, image, scale, pad):
    """`image` (uint8 HWC) through `run` (NCHW float in, out) as liveup's engine does it."""
    x = image.astype(np.float32).transpose(2, 0, 1)[None] * np.float32(1 / 255)
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="reflect")
    y = run(x)[0]
    crop = pad * scale
    y = y[:, crop : y.shape[1] - crop, crop : y.shape[2] - crop]
    return np.floor(np.clip(y, 0.0, 1.0) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)


def test_the_small_network_has_an_openvino_int8_variant_calibrated_apart_from_the_test_photos():
    assert OPENVINO_INT8 == ["realesr-animevideov3-x4"]
    assert not {"chelsea", "coffee"} & set(quantize.CALIBRATION_PHOTOS)
    assert quantize_openvino.ir_name("m-x4.onnx") == "m-x4.openvino-int8.xml"


@pytest.mark.parametrize("name", OPENVINO_INT8)
@pytest.mark.parametrize("picture", ["chelsea", "coffee"])
def test_openvino_int8_stays_within_38_db_of_fp32_on_photos_it_was_not_calibrated_on(name, picture):
    entry = ENTRIES[name]
    xml = MODELS_DIR / quantize_openvino.ir_name(entry["onnx"])
    assert xml.is_file() and xml.with_suffix(".bin").is_file(), f"{xml} is missing: run scripts/setup"
    core = ov.Core()
    # f32 for what NNCF left unquantized, so that only the quantization is judged.
    compiled = core.compile_model(core.read_model(str(xml)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    fp32 = ort.InferenceSession(str(MODELS_DIR / entry["onnx"]), providers=["CPUExecutionProvider"])
    image = np.round(transform.resize(getattr(data, picture)(), (180, 320), anti_aliasing=True) * 255).astype(np.uint8)
    scale, pad = entry["scale"], entry["reflect_pad"]
    full = upscale(lambda x: fp32.run(["output"], {"input": x})[0], image, scale, pad)
    ours = upscale(lambda x: compiled(x)[0], image, scale, pad)
    psnr = peak_signal_noise_ratio(full, ours, data_range=255)
    print(f"\n{name} OpenVINO int8 vs fp32 on {picture}: PSNR {psnr:.2f} dB")
    assert psnr >= 38.0, f"{name} on {picture}: OpenVINO int8 at {psnr:.2f} dB < 38 dB"


def test_quantizing_writes_the_xml_and_its_weights_then_skips_them(tmp_path):
    """Written whole: the xml and its weights, under their final names only."""
    entry = ENTRIES["realesr-animevideov3-x4"]
    (tmp_path / entry["onnx"]).symlink_to(MODELS_DIR / entry["onnx"])
    made = quantize_openvino.quantize_entry(entry, tmp_path, skip_existing=True)
    assert "OpenVINO int8 ->" in made
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([entry["onnx"], "realesr-animevideov3-x4.openvino-int8.bin", "realesr-animevideov3-x4.openvino-int8.xml"])
    assert "skipped" in quantize_openvino.quantize_entry(entry, tmp_path, skip_existing=True)

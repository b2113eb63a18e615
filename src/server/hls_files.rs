//! Serving `<hls_root>/<job>/…` (placeholder until implemented).

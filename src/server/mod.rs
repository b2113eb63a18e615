//! The HTTP side of the daemon (warp): webhook, status, health, metrics, HLS files.

pub mod hls_files;
pub mod webhook;

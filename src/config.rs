//! The daemon's configuration (placeholder until implemented).

//! Library watcher (placeholder until implemented).

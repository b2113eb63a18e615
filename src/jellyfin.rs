//! Jellyfin API client (placeholder until implemented).

//! Webhook bodies (placeholder until implemented).

//! Job identity: the same film with the same output settings is one job, whoever asks and however
//! often; a changed file (size or modification time) is a new one.

use std::path::Path;

/// `<readable slug>-<16 hex digits>`, safe in URLs and file names. The hash is FNV-1a, spelled
/// out here so ids stay the same across Rust versions (they name folders on disk).
pub fn job_id(canonical_source: &Path, size: u64, mtime_seconds: i64, settings: &str) -> String {
    let mut hash = Fnv1a::default();
    hash.write(canonical_source.as_os_str().as_encoded_bytes());
    hash.write(&[0]);
    hash.write(&size.to_le_bytes());
    hash.write(&mtime_seconds.to_le_bytes());
    hash.write(settings.as_bytes());
    format!("{}-{:016x}", slug(canonical_source), hash.0)
}

fn slug(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut slug = String::new();
    for c in stem.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 40 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "film".to_string()
    } else {
        slug.to_string()
    }
}

struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_readable_and_change_with_the_file_or_settings() {
        let path = Path::new("/media/Films/The Movie (2001).mkv");
        let id = job_id(path, 1000, 42, "x2");
        assert_eq!(id, job_id(path, 1000, 42, "x2"));
        assert!(id.starts_with("the-movie-2001-"), "{id}");
        assert_eq!(id.len(), "the-movie-2001-".len() + 16);
        assert_ne!(id, job_id(path, 1001, 42, "x2"));
        assert_ne!(id, job_id(path, 1000, 43, "x2"));
        assert_ne!(id, job_id(path, 1000, 42, "x4"));
        assert!(job_id(Path::new("/m/$();'.mkv"), 1, 1, "")
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }

    #[test]
    fn fnv1a_matches_its_reference_value() {
        let mut hash = Fnv1a::default();
        hash.write(b"a");
        assert_eq!(hash.0, 0xaf63_dc4c_8601_ec8c);
    }
}

//! Jellyfin's paths in liveup's file system. Jellyfin and liveup often see the same library under
//! different folders (another container, another host, or Jellyfin's own `PathSubstitutions`),
//! and a path that comes from Jellyfin, in a webhook body or from its API, names the file as
//! Jellyfin sees it. `path_map = ["/media:/mnt/media"]` says that Jellyfin's `/media/…` is
//! liveup's `/mnt/media/…`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One `JELLYFIN:LIVEUP` pair of absolute folders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PathMapping {
    pub jellyfin: PathBuf,
    pub liveup: PathBuf,
}

impl FromStr for PathMapping {
    type Err = String;

    /// Split at the last `:` before liveup's side, which starts with `/`.
    fn from_str(text: &str) -> Result<PathMapping, String> {
        let (jellyfin, liveup) = text
            .rsplit_once(":/")
            .map(|(jellyfin, rest)| (jellyfin, format!("/{rest}")))
            .ok_or_else(|| {
                format!("expected JELLYFIN_FOLDER:LIVEUP_FOLDER such as /media:/mnt/media, got {text:?}")
            })?;
        if !jellyfin.starts_with('/') {
            return Err(format!(
                "Jellyfin's folder must be an absolute path, got {jellyfin:?} in {text:?}"
            ));
        }
        Ok(PathMapping {
            jellyfin: PathBuf::from(jellyfin),
            liveup: PathBuf::from(liveup),
        })
    }
}

impl fmt::Display for PathMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.jellyfin.display(), self.liveup.display())
    }
}

impl TryFrom<String> for PathMapping {
    type Error = String;

    fn try_from(text: String) -> Result<PathMapping, String> {
        text.parse()
    }
}

impl From<PathMapping> for String {
    fn from(mapping: PathMapping) -> String {
        mapping.to_string()
    }
}

/// `path` in liveup's file system: under the longest matching Jellyfin folder (whole path
/// components: `/media` does not match `/media2`), that folder replaced by liveup's; any other
/// path as it is.
pub fn to_liveup(mappings: &[PathMapping], path: &Path) -> PathBuf {
    mappings
        .iter()
        .filter_map(|m| Some((m, path.strip_prefix(&m.jellyfin).ok()?)))
        .max_by_key(|(m, _)| m.jellyfin.components().count())
        .map_or_else(|| path.to_path_buf(), |(m, rest)| m.liveup.join(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mappings(texts: &[&str]) -> Vec<PathMapping> {
        texts.iter().map(|t| t.parse().unwrap()).collect()
    }

    #[test]
    fn a_mapping_is_two_absolute_folders() {
        let m: PathMapping = "/media:/mnt/media".parse().unwrap();
        assert_eq!(m.jellyfin, Path::new("/media"));
        assert_eq!(m.liveup, Path::new("/mnt/media"));
        assert_eq!(m.to_string(), "/media:/mnt/media");
        let colon: PathMapping = "/srv/a:b:/data".parse().unwrap();
        assert_eq!(colon.jellyfin, Path::new("/srv/a:b"));
        for bad in ["/media", "media:/mnt", "/media:mnt", ""] {
            assert!(bad.parse::<PathMapping>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_longest_matching_folder_wins_by_whole_components() {
        let map = mappings(&["/media:/mnt/media", "/media/tv:/srv/tv"]);
        let to = |p: &str| to_liveup(&map, Path::new(p));
        assert_eq!(
            to("/media/films/A.mkv"),
            Path::new("/mnt/media/films/A.mkv")
        );
        assert_eq!(to("/media/tv/S01E01.mkv"), Path::new("/srv/tv/S01E01.mkv"));
        assert_eq!(to("/media2/B.mkv"), Path::new("/media2/B.mkv"));
        assert_eq!(to("/elsewhere/C.mkv"), Path::new("/elsewhere/C.mkv"));
        assert_eq!(
            to_liveup(&[], Path::new("/media/A.mkv")),
            Path::new("/media/A.mkv")
        );
    }
}

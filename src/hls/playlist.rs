//! Media playlists (RFC 8216 §4.3.3): parsed from what ffmpeg's hls muxer writes.

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub duration: f64,
    pub uri: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaPlaylist {
    pub target_duration: u64,
    pub media_sequence: u64,
    /// `EVENT`, `VOD`, or `None` for a sliding live window.
    pub playlist_type: Option<String>,
    pub segments: Vec<Segment>,
    /// `EXT-X-ENDLIST` seen: no segment will ever be added.
    pub ended: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlaylistError {
    #[error("not an HLS playlist (no #EXTM3U)")]
    NotAPlaylist,
    #[error("line {line}: {what}")]
    Malformed { line: usize, what: String },
}

impl MediaPlaylist {
    pub fn parse(text: &str) -> Result<MediaPlaylist, PlaylistError> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, first)) if first.trim() == "#EXTM3U" => {}
            _ => return Err(PlaylistError::NotAPlaylist),
        }
        let mut playlist = MediaPlaylist::default();
        let mut pending: Option<f64> = None;
        for (index, line) in lines {
            let line = line.trim();
            let malformed = |what: &str| PlaylistError::Malformed {
                line: index + 1,
                what: what.to_string(),
            };
            if let Some(value) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
                playlist.target_duration =
                    value.parse().map_err(|_| malformed("bad TARGETDURATION"))?;
            } else if let Some(value) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                playlist.media_sequence =
                    value.parse().map_err(|_| malformed("bad MEDIA-SEQUENCE"))?;
            } else if let Some(value) = line.strip_prefix("#EXT-X-PLAYLIST-TYPE:") {
                playlist.playlist_type = Some(value.to_string());
            } else if let Some(value) = line.strip_prefix("#EXTINF:") {
                let duration = value.split(',').next().unwrap_or("");
                pending = Some(duration.parse().map_err(|_| malformed("bad EXTINF"))?);
            } else if line == "#EXT-X-ENDLIST" {
                playlist.ended = true;
            } else if !line.is_empty() && !line.starts_with('#') {
                let duration = pending
                    .take()
                    .ok_or_else(|| malformed("URI without EXTINF"))?;
                playlist.segments.push(Segment {
                    duration,
                    uri: line.to_string(),
                });
            }
        }
        Ok(playlist)
    }

    pub fn total_duration(&self) -> f64 {
        self.segments.iter().map(|s| s.duration).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FFMPEG_EVENT: &str = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:6\n\
        #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-INDEPENDENT-SEGMENTS\n\
        #EXTINF:6.000000,\nsegment_00000.ts\n#EXTINF:6.000000,\nsegment_00001.ts\n\
        #EXTINF:2.480000,\nsegment_00002.ts\n#EXT-X-ENDLIST\n";

    #[test]
    fn reads_an_ffmpeg_event_playlist() {
        let playlist = MediaPlaylist::parse(FFMPEG_EVENT).unwrap();
        assert_eq!(playlist.target_duration, 6);
        assert_eq!(playlist.playlist_type.as_deref(), Some("EVENT"));
        assert_eq!(playlist.segments.len(), 3);
        assert_eq!(playlist.segments[2].uri, "segment_00002.ts");
        assert!((playlist.total_duration() - 14.48).abs() < 1e-9);
        assert!(playlist.ended);
    }

    #[test]
    fn rejects_what_is_not_a_playlist() {
        assert_eq!(
            MediaPlaylist::parse("<html>"),
            Err(PlaylistError::NotAPlaylist)
        );
        assert!(matches!(
            MediaPlaylist::parse("#EXTM3U\nsegment_00000.ts\n"),
            Err(PlaylistError::Malformed { line: 2, .. })
        ));
    }
}

//! HLS playlists: the model liveup reads back (what ffmpeg wrote) and, later, writes itself.

pub mod playlist;
pub mod write;

pub use playlist::{MediaPlaylist, Segment};

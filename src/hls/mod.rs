//! HLS playlists: the model liveup reads back (what ffmpeg wrote) and the playlists it writes
//! itself; and the DASH manifest over the same CMAF files.

pub mod dash;
pub mod playlist;
pub mod write;

pub use playlist::{MediaPlaylist, Segment};

//! Frames and the pools that recycle them: a fixed number of buffers per stage is allocated up
//! front and passed around, so memory stays flat however long the film is.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// One picture as packed 8-bit RGB, row after row (ffmpeg's `rgb24`).
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl Frame {
    pub fn new(width: u32, height: u32) -> Frame {
        Frame {
            width,
            height,
            data: vec![0; Frame::byte_len(width, height)],
        }
    }

    pub fn byte_len(width: u32, height: u32) -> usize {
        width as usize * height as usize * 3
    }

    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let at = (y as usize * self.width as usize + x as usize) * 3;
        [self.data[at], self.data[at + 1], self.data[at + 2]]
    }
}

/// Hands out `count` reusable frames. The consumer gives frames back through the returned
/// sender; once every sender is gone `take` fails, which tells the producer to stop.
pub fn pool(count: usize, width: u32, height: u32) -> (Receiver<Frame>, SyncSender<Frame>) {
    let (give_back, take) = sync_channel(count);
    for _ in 0..count {
        give_back
            .send(Frame::new(width, height))
            .expect("the pool has room for every frame");
    }
    (take, give_back)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_recycles_its_frames_and_never_grows() {
        let (take, give_back) = pool(2, 4, 2);
        let a = take.recv().unwrap();
        let b = take.recv().unwrap();
        assert_eq!(a.data.len(), 24);
        assert!(take.try_recv().is_err(), "only two frames exist");
        give_back.send(a).unwrap();
        assert!(take.recv().is_ok());
        drop(b);
        drop(give_back);
        assert!(
            take.recv().is_err(),
            "no giver left: the producer is told to stop"
        );
    }
}

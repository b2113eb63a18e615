//! Geometry of inference: reflect padding around the frame (as the reference implementation does,
//! so borders match it) and tiles with overlapping context for frames too large to run whole.

/// A rectangle `[x0, x1) × [y0, y1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

impl Rect {
    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> u32 {
        self.y1 - self.y0
    }
}

/// `core` is the part of the frame a tile produces; `window` is what the network sees, in the
/// coordinates of the padded frame (the frame shifted by `pad` and mirrored around it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    pub core: Rect,
    pub window: Rect,
}

/// Splits a `width × height` frame into tiles of at most `tile_size` pixels a side (0: never
/// split), each seeing at least `context` pixels beyond its core on every side that has any.
pub fn plan(width: u32, height: u32, pad: u32, tile_size: u32, context: u32) -> Vec<Tile> {
    let whole = tile_size == 0 || (width <= tile_size && height <= tile_size);
    let (step, context) = if whole {
        (width.max(height), pad)
    } else {
        (tile_size, context.max(pad))
    };
    let spans = |length: u32| -> Vec<(u32, u32)> {
        (0..length)
            .step_by(step as usize)
            .map(|start| (start, (start + step).min(length)))
            .collect()
    };
    let padded_w = width + 2 * pad;
    let padded_h = height + 2 * pad;
    let mut tiles = Vec::new();
    for &(y0, y1) in &spans(height) {
        for &(x0, x1) in &spans(width) {
            tiles.push(Tile {
                core: Rect { x0, y0, x1, y1 },
                window: Rect {
                    x0: (x0 + pad).saturating_sub(context),
                    y0: (y0 + pad).saturating_sub(context),
                    x1: (x1 + pad + context).min(padded_w),
                    y1: (y1 + pad + context).min(padded_h),
                },
            });
        }
    }
    tiles
}

/// The source index mirrored into `[0, length)` without repeating the edge (numpy's "reflect").
pub fn reflect(index: i64, length: u32) -> usize {
    let length = i64::from(length);
    if length == 1 {
        return 0;
    }
    let period = 2 * (length - 1);
    let folded = index.rem_euclid(period);
    (if folded < length {
        folded
    } else {
        period - folded
    }) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_mirrors_without_repeating_the_edge() {
        let mirrored: Vec<usize> = (-3..7).map(|i| reflect(i, 4)).collect();
        assert_eq!(mirrored, [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
        assert_eq!(reflect(-5, 1), 0);
    }

    #[test]
    fn a_small_frame_is_one_tile_that_sees_the_whole_padded_frame() {
        let tiles = plan(64, 36, 10, 512, 24);
        assert_eq!(tiles.len(), 1);
        assert_eq!(
            tiles[0].window,
            Rect {
                x0: 0,
                y0: 0,
                x1: 84,
                y1: 56
            }
        );
    }

    #[test]
    fn tiles_cover_the_frame_exactly_once_and_overlap_their_neighbours() {
        let (width, height) = (130, 70);
        let tiles = plan(width, height, 10, 48, 16);
        let mut covered = vec![0u8; (width * height) as usize];
        for tile in &tiles {
            assert!(tile.core.width() <= 48 && tile.core.height() <= 48);
            for y in tile.core.y0..tile.core.y1 {
                for x in tile.core.x0..tile.core.x1 {
                    covered[(y * width + x) as usize] += 1;
                }
            }
            if tile.core.x0 > 0 {
                assert_eq!(tile.window.x0 + 16, tile.core.x0 + 10);
            }
        }
        assert!(covered.iter().all(|&n| n == 1));
        assert_eq!(tiles.len(), 3 * 2);
    }
}

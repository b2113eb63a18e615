//! Rendition ladders: what each kind of client (a TV, a laptop, a phone) is offered. A rung is a
//! picture height and a video bitrate (`720p:3000`); a profile is a ladder of rungs. The film is
//! upscaled once, into the top rung (the model's output size); every lower rung is made from it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Lowest and highest picture heights a rung may name.
const HEIGHTS: std::ops::RangeInclusive<u32> = 16..=4320;
/// Video bitrates a rung may name, in kbit/s.
const KBPS: std::ops::RangeInclusive<u32> = 16..=200_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Rung {
    pub height: u32,
    pub kbps: u32,
}

impl Rung {
    /// `480p`: the rung's name in file names, URLs and the API.
    pub fn name(&self) -> String {
        rung_name(self.height)
    }

    /// The width that keeps the top rung's shape, even (4:2:0 video).
    pub fn width_for(&self, top_width: u32, top_height: u32) -> u32 {
        let exact = f64::from(self.height) * f64::from(top_width) / f64::from(top_height.max(1));
        ((exact / 2.0).round() as u32 * 2).max(2)
    }
}

pub fn rung_name(height: u32) -> String {
    format!("{height}p")
}

/// `480p` → 480.
pub fn height_of(name: &str) -> Option<u32> {
    let digits = name.strip_suffix('p')?;
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|h| HEIGHTS.contains(h))
}

impl FromStr for Rung {
    type Err = String;

    fn from_str(text: &str) -> Result<Rung, String> {
        let shape = || format!("{text:?} is not a rung: write HEIGHTp:KBPS, e.g. \"720p:3000\"");
        let (height, kbps) = text.trim().split_once(':').ok_or_else(shape)?;
        let height: u32 = height
            .strip_suffix('p')
            .and_then(|h| h.parse().ok())
            .ok_or_else(shape)?;
        let kbps: u32 = kbps.parse().map_err(|_| shape())?;
        if !HEIGHTS.contains(&height) || !height.is_multiple_of(2) {
            return Err(format!(
                "{text:?}: the height must be even and {} to {} pixels",
                HEIGHTS.start(),
                HEIGHTS.end()
            ));
        }
        if !KBPS.contains(&kbps) {
            return Err(format!(
                "{text:?}: the bitrate must be {} to {} kbit/s",
                KBPS.start(),
                KBPS.end()
            ));
        }
        Ok(Rung { height, kbps })
    }
}

impl fmt::Display for Rung {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}p:{}", self.height, self.kbps)
    }
}

impl TryFrom<String> for Rung {
    type Error = String;

    fn try_from(text: String) -> Result<Rung, String> {
        text.parse()
    }
}

impl From<Rung> for String {
    fn from(rung: Rung) -> String {
        rung.to_string()
    }
}

/// The ladders every liveup knows unless its configuration says otherwise.
pub fn default_profiles() -> BTreeMap<String, Vec<Rung>> {
    let ladder = |rungs: &[(u32, u32)]| {
        rungs
            .iter()
            .map(|&(height, kbps)| Rung { height, kbps })
            .collect()
    };
    BTreeMap::from([
        ("tv".to_string(), ladder(&[(2160, 16000), (1080, 8000)])),
        (
            "laptop".to_string(),
            ladder(&[(1080, 6000), (720, 3000), (480, 1400)]),
        ),
        ("phone".to_string(), ladder(&[(720, 3000), (480, 1400)])),
    ])
}

/// Checks a configuration's profiles: names a URL can carry, at least one rung each, no height
/// twice in one ladder. Returns the first problem as the message for the key.
pub fn check_profiles(profiles: &BTreeMap<String, Vec<Rung>>) -> Result<(), String> {
    for (name, rungs) in profiles {
        let good_name = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !good_name {
            return Err(format!(
                "profile {name:?}: a name is 1 to 32 letters, digits, '-' or '_'"
            ));
        }
        if rungs.is_empty() {
            return Err(format!("profile {name:?} has no rungs"));
        }
        let mut heights: Vec<u32> = rungs.iter().map(|r| r.height).collect();
        heights.sort_unstable();
        if let Some(twice) = heights.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!(
                "profile {name:?} names {} twice",
                rung_name(twice[0])
            ));
        }
    }
    Ok(())
}

/// What a job offers a profile, given the height of its top rung: the rungs to make from the
/// top one (lower than it, lowest first), and whether any rung asked for is at or above the top
/// (the top rung itself plays for it: a rung never exceeds the model's output size).
pub fn plan(rungs: &[Rung], top_height: u32) -> Vec<Rung> {
    let mut below: Vec<Rung> = rungs
        .iter()
        .copied()
        .filter(|r| r.height < top_height)
        .collect();
    below.sort_by_key(|r| r.height);
    below
}

/// The rung that plays for `wanted` while it is not made: the closest height among `ready`
/// (ties go to the higher one, which looks no worse).
pub fn stand_in(wanted: u32, ready: &[u32]) -> Option<u32> {
    ready
        .iter()
        .copied()
        .min_by_key(|&h| (h.abs_diff(wanted), std::cmp::Reverse(h)))
}

/// `LIVEUP_PROFILES`: `phone=720p:3000,480p:1400;tv=2160p:16000,1080p:8000`.
pub fn parse_env(text: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut profiles = BTreeMap::new();
    for part in text.split(';').filter(|p| !p.trim().is_empty()) {
        let (name, rungs) = part.split_once('=').ok_or_else(|| {
            format!("{part:?}: write NAME=HEIGHTp:KBPS,…; e.g. phone=720p:3000,480p:1400")
        })?;
        profiles.insert(
            name.trim().to_string(),
            rungs.split(',').map(|r| r.trim().to_string()).collect(),
        );
    }
    Ok(profiles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_read_and_write_as_height_and_kbps() {
        let rung: Rung = "720p:3000".parse().unwrap();
        assert_eq!(
            rung,
            Rung {
                height: 720,
                kbps: 3000
            }
        );
        assert_eq!(rung.to_string(), "720p:3000");
        assert_eq!(rung.name(), "720p");
        assert_eq!(height_of("720p"), Some(720));
        for bad in [
            "720:3000",
            "720p",
            "p:3000",
            "721p:3000",
            "720p:0",
            "720p:x",
            "8p:100",
        ] {
            assert!(bad.parse::<Rung>().is_err(), "{bad}");
        }
        for bad in ["720", "p", "0720px", "99999p"] {
            assert_eq!(height_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_rung_keeps_the_top_rungs_shape_with_an_even_width() {
        let rung = Rung {
            height: 480,
            kbps: 1,
        };
        assert_eq!(rung.width_for(1920, 1080), 854);
        assert_eq!(rung.width_for(1440, 1080), 640);
        let tiny = Rung {
            height: 54,
            kbps: 1,
        };
        assert_eq!(tiny.width_for(192, 108), 96);
    }

    #[test]
    fn profiles_are_checked() {
        assert!(check_profiles(&default_profiles()).is_ok());
        let rung = |h| Rung {
            height: h,
            kbps: 100,
        };
        for (name, rungs, want) in [
            ("", vec![rung(480)], "a name is"),
            ("a b", vec![rung(480)], "a name is"),
            ("phone", vec![], "no rungs"),
            ("phone", vec![rung(480), rung(480)], "480p twice"),
        ] {
            let profiles = BTreeMap::from([(name.to_string(), rungs)]);
            let error = check_profiles(&profiles).unwrap_err();
            assert!(error.contains(want), "{error}");
        }
    }

    #[test]
    fn only_rungs_below_the_top_are_made_lowest_first() {
        let rungs: Vec<Rung> = ["2160p:16000", "480p:1400", "1080p:8000", "720p:3000"]
            .iter()
            .map(|r| r.parse().unwrap())
            .collect();
        let heights: Vec<u32> = plan(&rungs, 1080).iter().map(|r| r.height).collect();
        assert_eq!(heights, [480, 720]);
        assert!(plan(&rungs, 360).is_empty());
    }

    #[test]
    fn the_closest_ready_rung_stands_in() {
        assert_eq!(stand_in(480, &[1080, 720]), Some(720));
        assert_eq!(stand_in(600, &[480, 720]), Some(720), "a tie goes up");
        assert_eq!(stand_in(480, &[]), None);
    }

    #[test]
    fn profiles_from_the_environment() {
        let profiles = parse_env("phone=720p:3000, 480p:1400;tv=2160p:16000").unwrap();
        assert_eq!(profiles["phone"], ["720p:3000", "480p:1400"]);
        assert_eq!(profiles["tv"], ["2160p:16000"]);
        assert!(parse_env("phone").is_err());
    }
}

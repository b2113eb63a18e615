use std::fmt;
use std::str::FromStr;

/// A frame rate as ffprobe writes it (`30000/1001`), kept exact so frame times never drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rational {
    pub num: u32,
    pub den: u32,
}

impl Rational {
    pub fn new(num: u32, den: u32) -> Rational {
        Rational { num, den }
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    pub fn is_valid(self) -> bool {
        self.num > 0 && self.den > 0
    }
}

impl FromStr for Rational {
    type Err = String;

    fn from_str(text: &str) -> Result<Rational, String> {
        let (num, den) = text.split_once('/').unwrap_or((text, "1"));
        let parse = |part: &str| {
            part.trim()
                .parse::<u32>()
                .map_err(|_| format!("not a rate: {text:?}"))
        };
        Ok(Rational::new(parse(num)?, parse(den)?))
    }
}

impl fmt::Display for Rational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ffprobe_rates() {
        assert_eq!("30000/1001".parse(), Ok(Rational::new(30000, 1001)));
        assert_eq!("25".parse(), Ok(Rational::new(25, 1)));
        assert!(!"0/0".parse::<Rational>().unwrap().is_valid());
        assert!("fast".parse::<Rational>().is_err());
    }
}

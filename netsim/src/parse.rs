//! Parsing the human forms of impairment parameters (`50ms`, `5%`, `10mbit`, `64k`), for
//! the command line and the proxy's control commands.

use crate::model::Probability;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("{0:?} is not a duration (try 50ms, 1.5s, 30s)")]
    Duration(String),
    #[error("{0:?} is not a percentage from 0% to 100% (or a fraction from 0 to 1)")]
    Percent(String),
    #[error("{0:?} is not a rate (try 10mbit, 512kbit, 1gbit, or bits per second)")]
    Rate(String),
    #[error("{0:?} is not a size in bytes (try 1500, 64k, 1m)")]
    Size(String),
    #[error("{0:?} is not a burst length (a number of datagrams, at least 1)")]
    Burst(String),
}

pub fn duration(s: &str) -> Result<Duration, ParseError> {
    humantime::parse_duration(s.trim()).map_err(|_| ParseError::Duration(s.into()))
}

/// `5%`, `0.5%`, or a fraction such as `0.05`.
pub fn percent(s: &str) -> Result<Probability, ParseError> {
    let bad = || ParseError::Percent(s.into());
    let t = s.trim();
    let p = match t.strip_suffix('%') {
        Some(n) => n.trim().parse::<f64>().map_err(|_| bad())? / 100.0,
        None => t.parse::<f64>().map_err(|_| bad())?,
    };
    Probability::new(p).map_err(|_| bad())
}

/// tc's units: `bit`, `kbit`, `mbit`, `gbit` (powers of 1000); a bare number is bits/s.
pub fn rate(s: &str) -> Result<u64, ParseError> {
    let bad = || ParseError::Rate(s.into());
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)]
        .iter()
        .find_map(|(u, m)| t.strip_suffix(u).map(|n| (n.trim().to_owned(), *m)))
        .unwrap_or((t.clone(), 1.0));
    let v = num.parse::<f64>().map_err(|_| bad())? * mult;
    if !(1.0..1e15).contains(&v) {
        return Err(bad());
    }
    Ok(v as u64)
}

/// Bytes, with an optional `k` or `m` suffix (powers of 1024).
pub fn size(s: &str) -> Result<usize, ParseError> {
    let bad = || ParseError::Size(s.into());
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = if let Some(n) = t.strip_suffix('k') {
        (n, 1024)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 1024 * 1024)
    } else {
        (t.as_str(), 1)
    };
    let v: usize = num.trim().parse().map_err(|_| bad())?;
    v.checked_mul(mult).filter(|v| *v > 0).ok_or_else(bad)
}

/// Mean burst length of the Gilbert loss model, in datagrams.
pub fn burst(s: &str) -> Result<f64, ParseError> {
    match s.trim().parse::<f64>() {
        Ok(v) if (1.0..=1e6).contains(&v) => Ok(v),
        _ => Err(ParseError::Burst(s.into())),
    }
}

/// The inverse of [`rate`], for reports.
pub fn format_rate(bps: u64) -> String {
    let f = |v: f64, u: &str| {
        if (v - v.round()).abs() < 1e-9 {
            format!("{}{u}", v.round())
        } else {
            format!("{v:.2}{u}")
        }
    };
    match bps {
        b if b >= 1_000_000_000 => f(b as f64 / 1e9, "gbit"),
        b if b >= 1_000_000 => f(b as f64 / 1e6, "mbit"),
        b if b >= 1_000 => f(b as f64 / 1e3, "kbit"),
        b => format!("{b}bit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(duration("50ms").unwrap(), Duration::from_millis(50));
        assert_eq!(duration("30s").unwrap(), Duration::from_secs(30));
        assert!(duration("fast").is_err());
        assert_eq!(percent("5%").unwrap().get(), 0.05);
        assert_eq!(percent("0.5 %").unwrap().get(), 0.005);
        assert_eq!(percent("0.01").unwrap().get(), 0.01);
        assert!(percent("150%").is_err());
        assert!(percent("-1%").is_err());
        assert_eq!(rate("10mbit").unwrap(), 10_000_000);
        assert_eq!(rate("1.5MBIT").unwrap(), 1_500_000);
        assert_eq!(rate("512kbit").unwrap(), 512_000);
        assert_eq!(rate("9600").unwrap(), 9600);
        assert!(rate("0").is_err());
        assert!(rate("10mbps").is_err(), "ambiguous unit refused");
        assert_eq!(size("1500").unwrap(), 1500);
        assert_eq!(size("64k").unwrap(), 65536);
        assert!(size("0").is_err());
        assert_eq!(burst("4").unwrap(), 4.0);
        assert!(burst("0.5").is_err());
        assert_eq!(format_rate(10_000_000), "10mbit");
        assert_eq!(format_rate(1_500_000), "1.50mbit");
    }
}

//! Go-style durations (`2m10s`, `1.5h`, `300ms`) as users write them in YAML.

use std::time::Duration;

/// A duration string that is not in Go's `time.ParseDuration` format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (expected e.g. \"2m10s\", \"1.5h\", \"300ms\")")]
pub struct DurationError {
    /// The text given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses a Go duration: one or more `<number><unit>` with units `ns`, `us`/`µs`, `ms`, `s`,
/// `m`, `h`; numbers may have a fraction. Negative durations are rejected (a TTL or interval
/// cannot be negative); `"0"` is zero.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(kstore_watcher::parse_duration("2m10s").unwrap(), Duration::from_secs(130));
/// assert_eq!(kstore_watcher::parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
/// assert!(kstore_watcher::parse_duration("10").is_err());
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError { input: input.to_owned(), reason };
    let s = input.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(err("empty"));
    }
    if s.starts_with('-') {
        return Err(err("negative"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return Err(err("expected a number"));
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| err("bad number"))?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(err("missing unit")),
            _ => return Err(err("unknown unit")),
        };
        rest = &rest[unit_len..];
        total += number * nanos_per;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(err("too large"));
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// Formats a duration the way Go prints it (`2m10s`, `1h0m0s`, `300ms`).
pub fn format_duration(d: Duration) -> String {
    let total = d.as_nanos();
    if total == 0 {
        return "0s".into();
    }
    if total < 1_000_000_000 {
        return if total.is_multiple_of(1_000_000) {
            format!("{}ms", total / 1_000_000)
        } else if total.is_multiple_of(1_000) {
            format!("{}µs", total / 1_000)
        } else {
            format!("{total}ns")
        };
    }
    let secs = d.as_secs();
    let frac = d.subsec_nanos();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let sec = if frac == 0 { format!("{s}s") } else { format!("{s}.{}s", format!("{frac:09}").trim_end_matches('0')) };
    match (h, m) {
        (0, 0) => sec,
        (0, m) => format!("{m}m{sec}"),
        (h, m) => format!("{h}h{m}m{sec}"),
    }
}

pub(crate) mod serde_opt {
    //! `Option<Duration>` as a Go duration string.
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&super::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| super::parse_duration(&s).map_err(serde::de::Error::custom)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        for (s, d) in [
            ("2m10s", Duration::from_secs(130)),
            ("10m", Duration::from_secs(600)),
            ("1h30m", Duration::from_secs(5400)),
            ("300ms", Duration::from_millis(300)),
            ("1.5s", Duration::from_millis(1500)),
            ("2us", Duration::from_micros(2)),
            ("2µs", Duration::from_micros(2)),
            ("5ns", Duration::from_nanos(5)),
            ("0", Duration::ZERO),
        ] {
            assert_eq!(parse_duration(s).unwrap(), d, "{s}");
        }
        for bad in ["", "10", "-1s", "1x", "s", "1..2s", "1e400h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("10").unwrap_err().to_string().contains("missing unit"));
    }

    #[test]
    fn formats_like_go_and_round_trips() {
        for (d, s) in [
            (Duration::from_secs(130), "2m10s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_millis(300), "300ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(format_duration(d), s);
            assert_eq!(parse_duration(s).unwrap(), d);
        }
    }
}

//! Human durations in config files: `"250ms"`, `"2s"`, `"1m30s"`, `"1h"`, `"365d"`.
//!
//! A bare integer is refused on purpose: `timeout = 5` is ambiguous (seconds? ms?).

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A `Duration` that reads and writes as a human string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn from_millis(ms: u64) -> Self {
        HumanDuration(Duration::from_millis(ms))
    }
    pub const fn from_secs(s: u64) -> Self {
        HumanDuration(Duration::from_secs(s))
    }
    pub fn get(self) -> Duration {
        self.0
    }
}

/// Parses `"1m30s"`-style strings: one or more `<integer><unit>` parts, unit one of
/// `ms`, `s`, `m`, `h`. Returns a message naming what is wrong.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. \"500ms\", \"2s\" or \"1m\"".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!(
                "bad duration {text:?}: expected a number before {rest:?}; write e.g. \"500ms\", \"2s\" or \"1m\""
            ));
        }
        let value: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("bad duration {text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            // Days: HSTS max-age and other long-lived settings read better as "365d".
            "d" => Duration::from_secs(value.saturating_mul(86_400)),
            "" => {
                return Err(format!(
                    "bad duration {text:?}: missing unit after {value}; use ms, s, m, h or d"
                ))
            }
            other => {
                return Err(format!(
                    "bad duration {text:?}: unknown unit {other:?}; use ms, s, m, h or d"
                ))
            }
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// Formats a duration the way `parse_duration` reads it back.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".into()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"500ms\", \"2s\" or \"1m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                parse_duration(v).map(HumanDuration).map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(
            parse_duration("365d").unwrap(),
            Duration::from_secs(31_536_000)
        );
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn refuses_ambiguous_or_broken_text() {
        for bad in [
            "",
            "5",
            "s",
            "5 s",
            "5sec",
            "-1s",
            "1.5s",
            "99999999999999999999999s",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("duration"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn format_round_trips() {
        for ms in [0u64, 1, 999, 1000, 1500, 60_000, 90_000, 3_600_000] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
    }
}

//! The unit forms people write in scenarios: durations (`250ms`, `1.5s`, `2m`), rates (`200/s`,
//! `30/m`), percentages (`99.9%`) and sizes (`16MB`, PostgreSQL's memory units).
//!
//! Each type parses from and formats to the same text, so `format(parse(x)) == x` for every
//! canonical `x` (property-tested below). Deserialisation accepts only the string form, with an
//! `expecting` message that shows a valid example, because a bare number is ambiguous (`5`: 5 s?
//! 5 ms?).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A length of time written with a unit: `250ms`, `1.5s`, `2m`, `1h`, `500us`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub Duration);

/// An arrival rate written as `COUNT/UNIT`: `200/s`, `30/m`, `0.5/s`.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Rate {
    /// How many per `per`.
    pub count: f64,
    /// The unit of the denominator.
    pub per: RateUnit,
}

/// The denominator of a [`Rate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd)]
pub enum RateUnit {
    /// Per second (`/s`).
    Second,
    /// Per minute (`/m`).
    Minute,
    /// Per hour (`/h`).
    Hour,
}

/// A percentage written with `%`: `99.9%`, `1%`. Stored as the number before the sign.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Percent(pub f64);

/// An amount of data written with PostgreSQL's memory units: `512B`, `64kB`, `1MB`, `2GB`, `1TB`.
/// As in `postgresql.conf`, the multiplier is 1024, not 1000 (`1kB` = 1024 bytes), and the units
/// are case-sensitive; a fraction is allowed when it comes to whole bytes (`1.5MB`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

/// How far a restore replays the archived WAL: `latest` (everything archived) or a time from the
/// start of the run (`38s`, PostgreSQL's `recovery_target_time`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RestoreTarget {
    /// Everything archived.
    #[default]
    Latest,
    /// Commits made up to this time from the start of the run.
    At(Span),
}

/// Why a unit string did not parse. The message says what was expected, with an example.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(pub String);

impl Span {
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl ByteSize {
    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl Rate {
    /// Arrivals per second.
    pub fn per_second(self) -> f64 {
        match self.per {
            RateUnit::Second => self.count,
            RateUnit::Minute => self.count / 60.0,
            RateUnit::Hour => self.count / 3600.0,
        }
    }
}

impl Percent {
    /// The fraction in 0..=1 (`99.9%` → 0.999).
    pub fn fraction(self) -> f64 {
        self.0 / 100.0
    }
}

const SPAN_UNITS: [(&str, u128); 6] = [
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// `-5`, `-5/s`, `- 1s`: a minus sign before a number.
fn negative(text: &str) -> bool {
    text.trim()
        .strip_prefix('-')
        .is_some_and(|rest| rest.trim_start().starts_with(|c: char| c.is_ascii_digit() || c == '.'))
}

fn split_number(text: &str) -> (&str, &str) {
    let end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    text.split_at(end)
}

/// A plain decimal (`50`, `99.9`): digits with at most one point inside, as the JSON Schema's
/// patterns say. A sign, an exponent or `inf` is malformed; callers say "negative" themselves
/// before calling, since that is the likely mistake.
fn parse_decimal(number: &str, what: &str, example: &str) -> Result<f64, UnitError> {
    let valid = !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && !number.starts_with('.')
        && !number.ends_with('.')
        && number.matches('.').count() <= 1;
    match number.parse::<f64>() {
        Ok(value) if valid && value.is_finite() => Ok(value),
        _ => Err(UnitError(format!(
            "expected {what} such as `{example}`, found a malformed number `{number}`"
        ))),
    }
}

/// `1e9` → `1000000000`, `2.5E3` → `2500`: a count written with an exponent, in plain digits
/// (the form the scenario language takes, so a message can show it). `None` if `number` has no
/// exponent or is no finite number.
fn exponent_in_digits(number: &str) -> Option<String> {
    let number = number.trim();
    if !number.contains(['e', 'E']) || !number.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let value: f64 = number.parse().ok().filter(|v: &f64| v.is_finite())?;
    // Decimal digits with at most six places, trailing zeros dropped: `1e-3` → `0.001`.
    let fixed = format!("{value:.6}");
    Some(fixed.trim_end_matches('0').trim_end_matches('.').to_owned())
}

/// `number` × `per` (nanoseconds, bytes), computed exactly in integers: `None` if the number is
/// malformed, `Some(Err)` if the result is not a whole number of the base unit or overflows.
fn exact_multiple(number: &str, per: u128) -> Option<Result<u64, ()>> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits_ok = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_ok(whole) || (number.contains('.') && !digits_ok(fraction)) {
        return None;
    }
    let whole: u128 = whole.parse().ok()?;
    let scale = 10u128.checked_pow(fraction.len() as u32)?;
    let fraction_value: u128 = if fraction.is_empty() { 0 } else { fraction.parse().ok()? };
    let numerator = fraction_value * per;
    let exact = numerator.is_multiple_of(scale);
    let total = whole.checked_mul(per).and_then(|w| w.checked_add(numerator / scale));
    Some(match total {
        Some(total) if exact => u64::try_from(total).map_err(|_| ()),
        _ => Err(()),
    })
}

impl FromStr for Span {
    type Err = UnitError;
    fn from_str(text: &str) -> Result<Self, UnitError> {
        let expected = "a duration with a unit (ns, us, ms, s, m, h) such as `250ms` or `1.5s`";
        if negative(text) {
            return Err(UnitError(format!(
                "the duration `{text}` is negative: write a length such as `250ms`"
            )));
        }
        let (number, unit) = split_number(text.trim());
        if number.is_empty() {
            return Err(UnitError(format!("expected {expected}, found `{text}`")));
        }
        let Some(&(_, nanos_per_unit)) = SPAN_UNITS.iter().find(|(name, _)| *name == unit) else {
            let hint = if unit.is_empty() {
                "the unit is missing".to_string()
            } else {
                format!("`{unit}` is not a unit")
            };
            return Err(UnitError(format!("expected {expected}, found `{text}` ({hint})")));
        };
        let nanos = exact_multiple(number, nanos_per_unit)
            .ok_or_else(|| UnitError(format!("expected a duration such as `250ms`, found `{text}`")))?;
        let nanos = nanos.map_err(|()| {
            UnitError(format!("duration `{text}` is finer than a nanosecond or too long; use another unit"))
        })?;
        Ok(Span(Duration::from_nanos(nanos)))
    }
}

impl FromStr for RestoreTarget {
    type Err = UnitError;
    fn from_str(text: &str) -> Result<Self, UnitError> {
        if text.trim() == "latest" {
            return Ok(RestoreTarget::Latest);
        }
        text.parse().map(RestoreTarget::At).map_err(|e: UnitError| {
            UnitError(format!("expected `latest` or a time from the start of the run such as `38s`: {}", e.0))
        })
    }
}

impl fmt::Display for RestoreTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreTarget::Latest => f.write_str("latest"),
            RestoreTarget::At(span) => span.fmt(f),
        }
    }
}

impl fmt::Display for Span {
    /// The largest unit that shows the value exactly, with at most three decimals
    /// (`1500ms` → `1.5s`, `120s` → `2m`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        for &(name, per) in SPAN_UNITS.iter().rev() {
            // Exact to 1/1000 of this unit, and at least one whole unit.
            if nanos >= per && (nanos * 1000).is_multiple_of(per) {
                let whole = nanos / per;
                let thousandths = (nanos % per) * 1000 / per;
                return if thousandths == 0 {
                    write!(f, "{whole}{name}")
                } else {
                    let frac = format!("{thousandths:03}");
                    write!(f, "{whole}.{}{name}", frac.trim_end_matches('0'))
                };
            }
        }
        write!(f, "{nanos}ns")
    }
}

const SIZE_UNITS: [(&str, u128); 5] =
    [("B", 1), ("kB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30), ("TB", 1 << 40)];

impl FromStr for ByteSize {
    type Err = UnitError;
    fn from_str(text: &str) -> Result<Self, UnitError> {
        let expected = "a size with a unit (B, kB, MB, GB, TB; 1kB = 1024B) such as `16MB`";
        if negative(text) {
            return Err(UnitError(format!("the size `{text}` is negative: write an amount such as `16MB`")));
        }
        let (number, unit) = split_number(text.trim());
        if number.is_empty() {
            return Err(UnitError(format!("expected {expected}, found `{text}`")));
        }
        let Some(&(_, bytes_per_unit)) = SIZE_UNITS.iter().find(|(name, _)| *name == unit) else {
            let hint = if unit.is_empty() {
                "the unit is missing".to_string()
            } else if let Some((name, _)) =
                SIZE_UNITS.iter().find(|(name, _)| name.eq_ignore_ascii_case(unit))
            {
                format!("`{unit}` is not a unit; units are case-sensitive, as in postgresql.conf: `{name}`")
            } else {
                format!("`{unit}` is not a unit")
            };
            return Err(UnitError(format!("expected {expected}, found `{text}` ({hint})")));
        };
        let bytes = exact_multiple(number, bytes_per_unit)
            .ok_or_else(|| UnitError(format!("expected a size such as `16MB`, found `{text}`")))?;
        let bytes = bytes.map_err(|()| {
            UnitError(format!(
                "size `{text}` is not a whole number of bytes or is too large; use another unit"
            ))
        })?;
        Ok(ByteSize(bytes))
    }
}

impl fmt::Display for ByteSize {
    /// The largest unit that divides the size exactly (`1048576B` → `1MB`, `1.5MB` → `1536kB`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = u128::from(self.0);
        if bytes == 0 {
            return f.write_str("0B");
        }
        let (name, per) = SIZE_UNITS
            .iter()
            .rev()
            .find(|(_, per)| bytes.is_multiple_of(*per))
            .expect("every size is a whole number of bytes");
        write!(f, "{}{name}", bytes / per)
    }
}

impl FromStr for Rate {
    type Err = UnitError;
    fn from_str(text: &str) -> Result<Self, UnitError> {
        let expected = "a rate such as `200/s`, `30/m` or `10/h`";
        let Some((number, unit)) = text.trim().split_once('/') else {
            return Err(UnitError(format!("expected {expected}, found `{text}` (no `/`)")));
        };
        let per = match unit {
            "s" => RateUnit::Second,
            "m" => RateUnit::Minute,
            "h" => RateUnit::Hour,
            _ => {
                return Err(UnitError(format!(
                    "expected {expected}, found `{text}` (`/{unit}` is not a unit: use /s, /m or /h)"
                )));
            }
        };
        if negative(number) {
            return Err(UnitError(format!(
                "the rate `{text}` is negative: a rate counts arrivals, such as `200/s`"
            )));
        }
        if let Some(digits) = exponent_in_digits(number) {
            return Err(UnitError(format!(
                "the rate `{text}` writes its count with an exponent; write the number in digits: `{digits}/{unit}`"
            )));
        }
        let count = parse_decimal(number, "a rate", "200/s")?;
        Ok(Rate { count, per })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per {
            RateUnit::Second => "s",
            RateUnit::Minute => "m",
            RateUnit::Hour => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl FromStr for Percent {
    type Err = UnitError;
    fn from_str(text: &str) -> Result<Self, UnitError> {
        let Some(number) = text.trim().strip_suffix('%') else {
            return Err(UnitError(format!(
                "expected a percentage such as `99.9%`, found `{text}` (the `%` is missing)"
            )));
        };
        if negative(number) {
            return Err(UnitError(format!("the percentage `{text}` is negative: use 0% to 100%")));
        }
        let value = parse_decimal(number, "a percentage", "99.9%")?;
        if value > 100.0 {
            return Err(UnitError(format!("percentage `{text}` is over 100%")));
        }
        Ok(Percent(value))
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

macro_rules! string_serde {
    ($ty:ty, $expecting:literal, $pattern:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl de::Visitor<'_> for Visitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, text: &str) -> Result<$ty, E> {
                        text.parse().map_err(|e: UnitError| E::custom(e.0))
                    }
                }
                deserializer.deserialize_str(Visitor)
            }
        }

        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($ty).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "pattern": $pattern,
                    "description": $expecting,
                })
            }
        }
    };
}

string_serde!(
    Span,
    "a duration with a unit, such as `250ms`, `1.5s` or `2m`",
    "^[0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h)$"
);
string_serde!(
    RestoreTarget,
    "`latest` or a time from the start of the run, such as `38s`",
    "^(latest|[0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))$"
);
string_serde!(Rate, "a rate such as `200/s`, `30/m` or `10/h`", "^[0-9]+(\\.[0-9]+)?/(s|m|h)$");
string_serde!(Percent, "a percentage such as `99.9%`", "^[0-9]+(\\.[0-9]+)?%$");
string_serde!(
    ByteSize,
    "a size with a unit (B, kB, MB, GB, TB; 1kB = 1024B), such as `16MB`",
    "^[0-9]+(\\.[0-9]+)?(B|kB|MB|GB|TB)$"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spans_parse_and_format() {
        for (text, nanos) in [
            ("250ms", 250_000_000u64),
            ("1.5s", 1_500_000_000),
            ("2m", 120_000_000_000),
            ("1h", 3_600_000_000_000),
            ("500us", 500_000),
            ("0s", 0),
        ] {
            let span: Span = text.parse().unwrap();
            assert_eq!(span.0, Duration::from_nanos(nanos), "{text}");
            assert_eq!(span.to_string(), text);
        }
        assert_eq!("1500ms".parse::<Span>().unwrap().to_string(), "1.5s");
        assert_eq!("120s".parse::<Span>().unwrap().to_string(), "2m");
    }

    #[test]
    fn bad_spans_say_what_was_expected() {
        for text in ["", "5", "5 parsecs", "ms", "1..5s", ".5s", "5.s", "-1s", "1.5ns"] {
            let err = text.parse::<Span>().unwrap_err();
            assert!(!err.0.is_empty(), "{text}");
        }
        assert!("5".parse::<Span>().unwrap_err().0.contains("unit is missing"));
    }

    #[test]
    fn rates_and_percents() {
        let rate: Rate = "30/m".parse().unwrap();
        assert_eq!(rate.per_second(), 0.5);
        assert_eq!(rate.to_string(), "30/m");
        assert!("200".parse::<Rate>().is_err());
        assert!("200/d".parse::<Rate>().unwrap_err().0.contains("/d"));
        assert!(("99.9%".parse::<Percent>().unwrap().fraction() - 0.999).abs() < 1e-12);
        assert!("99.9".parse::<Percent>().is_err());
        assert!("101%".parse::<Percent>().is_err());
        for malformed in ["+5/s", "1e3/s", "inf/s"] {
            assert!(malformed.parse::<Rate>().is_err(), "{malformed}");
        }
    }

    /// Goal: a rate written with an exponent says what form is wanted, with the same rate in it.
    #[test]
    fn a_rate_with_an_exponent_is_shown_in_digits() {
        let error = "1e9/s".parse::<Rate>().unwrap_err().0;
        assert_eq!(
            error,
            "the rate `1e9/s` writes its count with an exponent; write the number in digits: `1000000000/s`"
        );
        assert!("2.5E3/m".parse::<Rate>().unwrap_err().0.ends_with("`2500/m`"));
        assert!("inf/s".parse::<Rate>().unwrap_err().0.contains("malformed number"));
    }

    #[test]
    fn sizes_use_postgresqls_units_and_multiplier() {
        for (text, bytes) in
            [("0B", 0u64), ("512B", 512), ("64kB", 65_536), ("1MB", 1_048_576), ("2GB", 2 << 30)]
        {
            let size: ByteSize = text.parse().unwrap();
            assert_eq!(size.bytes(), bytes, "{text}");
            assert_eq!(size.to_string(), text);
        }
        assert_eq!("1.5MB".parse::<ByteSize>().unwrap().to_string(), "1536kB");
        assert_eq!("1048576B".parse::<ByteSize>().unwrap().to_string(), "1MB");
        let case = "16mb".parse::<ByteSize>().unwrap_err().0;
        assert!(case.contains("units are case-sensitive, as in postgresql.conf: `MB`"), "{case}");
        assert!("1048576".parse::<ByteSize>().unwrap_err().0.contains("the unit is missing"));
        assert!("1KiB".parse::<ByteSize>().unwrap_err().0.contains("`KiB` is not a unit"));
        assert!("0.1kB".parse::<ByteSize>().unwrap_err().0.contains("not a whole number of bytes"));
        assert!("-1MB".parse::<ByteSize>().unwrap_err().0.contains("the size `-1MB` is negative"));
        assert!("99999999999TB".parse::<ByteSize>().is_err(), "overflows u64");
    }

    /// Issue 18: a minus sign is named as such, for every unit form.
    #[test]
    fn negative_values_are_called_negative() {
        assert!("-5/s".parse::<Rate>().unwrap_err().0.contains("the rate `-5/s` is negative"));
        assert!("-1s".parse::<Span>().unwrap_err().0.contains("the duration `-1s` is negative"));
        assert!("-5%".parse::<Percent>().unwrap_err().0.contains("the percentage `-5%` is negative"));
    }

    proptest! {
        #[test]
        fn span_round_trips(nanos in 0u64..10_000_000_000_000) {
            let span = Span(Duration::from_nanos(nanos));
            let text = span.to_string();
            prop_assert_eq!(text.parse::<Span>().unwrap(), span, "{}", text);
        }

        #[test]
        fn rate_round_trips(whole in 0u32..1_000_000, tenths in 0u32..10, unit in 0usize..3) {
            let text = format!("{}/{}", f64::from(whole) + f64::from(tenths) / 10.0, ["s", "m", "h"][unit]);
            prop_assert_eq!(text.parse::<Rate>().unwrap().to_string(), text);
        }

        #[test]
        fn percent_round_trips(hundredths in 0u32..=10_000) {
            let text = format!("{}%", f64::from(hundredths) / 100.0);
            prop_assert_eq!(text.parse::<Percent>().unwrap().to_string(), text);
        }

        #[test]
        fn size_round_trips(bytes in 0u64..u64::MAX) {
            let size = ByteSize(bytes);
            let text = size.to_string();
            prop_assert_eq!(text.parse::<ByteSize>().unwrap(), size, "{}", text);
        }

        #[test]
        fn parsers_never_panic(text in "\\PC{0,16}") {
            let _ = text.parse::<ByteSize>();
            let _ = text.parse::<Span>();
            let _ = text.parse::<Rate>();
            let _ = text.parse::<Percent>();
        }
    }
}

//! Conversion of captured text into typed values, the way Python printed them:
//! `2.5`, `-0.75`, `1e-05`, `52,300.00`, `$52,300.00`, `92%`, `inf`.

use crate::event::Val;
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// How a captured string becomes a value. Pattern files name these in `types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Conversion {
    /// Kept as text.
    String,
    /// A whole number (thousands separators allowed).
    Int,
    /// Any number Python prints: sign, `$`, thousands separators, exponent,
    /// trailing `%` (the number is kept as printed: `92%` is 92.0).
    Number,
    /// `true`/`false`/`True`/`False`/`yes`/`no`/`1`/`0`.
    Bool,
}

/// Text that does not convert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvError {
    /// The text.
    pub text: String,
    /// What was expected.
    pub expected: Conversion,
}

impl fmt::Display for ConvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.expected {
            Conversion::String => "text",
            Conversion::Int => "a whole number",
            Conversion::Number => "a number",
            Conversion::Bool => "true or false",
        };
        write!(f, "{:?} is not {what}", self.text)
    }
}

impl Conversion {
    /// Converts `text` (kept as text, it is borrowed).
    pub fn apply(self, text: &str) -> Result<Val<'_>, ConvError> {
        let err = || ConvError {
            text: text.to_owned(),
            expected: self,
        };
        match self {
            Conversion::String => Ok(Val::Str(Cow::Borrowed(text))),
            Conversion::Int => {
                let clean = strip_number(text, false).ok_or_else(err)?;
                clean.parse::<i64>().map(Val::Int).map_err(|_| err())
            }
            Conversion::Number => {
                let clean = strip_number(text, true).ok_or_else(err)?;
                parse_float(&clean).map(Val::Float).ok_or_else(err)
            }
            Conversion::Bool => match text.trim() {
                "true" | "True" | "TRUE" | "yes" | "1" => Ok(Val::Bool(true)),
                "false" | "False" | "FALSE" | "no" | "0" => Ok(Val::Bool(false)),
                _ => Err(err()),
            },
        }
    }
}

/// Removes `$`, `%` (when `percent`), and valid thousands separators; returns the
/// plain numeric text, or None when separators are misplaced (`1,23`).
fn strip_number(text: &str, percent: bool) -> Option<Cow<'_, str>> {
    let mut s = text.trim();
    if percent {
        s = s.strip_suffix('%').unwrap_or(s).trim_end();
    }
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'-') => ("-", &s[1..]),
        Some(b'+') => ("", &s[1..]),
        _ => ("", s),
    };
    let rest = rest.strip_prefix('$').unwrap_or(rest);
    // `$-5.00` is how some f-strings print a negative amount.
    let (sign, rest) = match (sign, rest.strip_prefix('-')) {
        ("", Some(r)) => ("-", r),
        _ => (sign, rest),
    };
    if rest.is_empty() {
        return None;
    }
    if !rest.contains(',') {
        // A number printed as it reads (`5.2`, `+5.2`, `-5.2`) is borrowed;
        // one is built only when a `$` between sign and digits must go.
        return Some(match sign {
            "" => Cow::Borrowed(rest),
            _ if s.len() == rest.len() + 1 => Cow::Borrowed(s),
            _ => Cow::Owned(format!("{sign}{rest}")),
        });
    }
    // Thousands separators: only in the integer part, groups of exactly three.
    let int_end = rest.find(['.', 'e', 'E']).unwrap_or(rest.len());
    let (int_part, tail) = rest.split_at(int_end);
    if tail.contains(',') {
        return None;
    }
    let mut groups = int_part.split(',');
    let first = groups.next()?;
    if first.is_empty() || first.len() > 3 || !first.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut out = String::with_capacity(rest.len());
    out.push_str(sign);
    out.push_str(first);
    for g in groups {
        if g.len() != 3 || !g.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        out.push_str(g);
    }
    out.push_str(tail);
    Some(Cow::Owned(out))
}

/// Parses a float as Python prints it (repr, `%f`, `%e`, `%g`, `inf`, `nan`).
fn parse_float(s: &str) -> Option<f64> {
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if ok {
        return s.parse::<f64>().ok();
    }
    match s {
        "inf" | "Infinity" => Some(f64::INFINITY),
        "-inf" | "-Infinity" => Some(f64::NEG_INFINITY),
        "nan" | "NaN" | "-nan" => Some(f64::NAN),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn num(s: &str) -> Option<f64> {
        match Conversion::Number.apply(s) {
            Ok(Val::Float(f)) => Some(f),
            _ => None,
        }
    }

    #[test]
    fn python_numbers() {
        assert_eq!(num("2.5"), Some(2.5));
        assert_eq!(num("2.50"), Some(2.5));
        assert_eq!(num("-0.75"), Some(-0.75));
        assert_eq!(num("1e-05"), Some(1e-5));
        assert_eq!(num("52,300.00"), Some(52300.0));
        assert_eq!(num("$52,300.00"), Some(52300.0));
        assert_eq!(num("-$1,234,567.5"), Some(-1234567.5));
        assert_eq!(num("$-5.00"), Some(-5.0));
        assert_eq!(num("-$5.00"), Some(-5.0));
        assert_eq!(num("92%"), Some(92.0));
        assert_eq!(num("2.0%"), Some(2.0));
        assert_eq!(num("inf"), Some(f64::INFINITY));
        assert!(num("nan").unwrap().is_nan());
    }

    #[test]
    fn rejects_what_python_would_not_print() {
        for bad in [
            "", "$", "1,23", "12,3456", "1.0,000", "abc", "2.5x", "--1", "1 000", ",100",
        ] {
            assert_eq!(num(bad), None, "{bad:?} should not convert");
        }
        assert!(Conversion::Int.apply("5.0").is_err());
        assert!(Conversion::Int.apply("5%").is_err());
    }

    #[test]
    fn ints_and_bools() {
        assert_eq!(Conversion::Int.apply("1,000"), Ok(Val::Int(1000)));
        assert_eq!(Conversion::Int.apply("-3"), Ok(Val::Int(-3)));
        assert_eq!(Conversion::Bool.apply("True"), Ok(Val::Bool(true)));
        assert!(Conversion::Bool.apply("maybe").is_err());
    }

    /// Python's `'{:,.2f}'.format(x)` for a finite x, written independently.
    fn python_comma_2f(x: f64) -> String {
        let plain = format!("{:.2}", x.abs());
        let (int, frac) = plain.split_once('.').unwrap();
        let mut grouped = String::new();
        for (i, c) in int.chars().enumerate() {
            if i > 0 && (int.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        let sign = if x.is_sign_negative() && plain != "0.00" {
            "-"
        } else {
            ""
        };
        format!("{sign}{grouped}.{frac}")
    }

    proptest! {
        /// Rust's `{}` and `{:e}` print the shortest repr that round-trips,
        /// as Python's `repr(float)` does: parsing gives the same bits back.
        #[test]
        fn float_repr_round_trips(x in any::<f64>().prop_filter("finite", |x| x.is_finite())) {
            prop_assert_eq!(num(&format!("{x}")), Some(x));
            prop_assert_eq!(num(&format!("{x:e}")), Some(x));
        }

        #[test]
        fn money_round_trips(cents in -10_000_000_000i64..10_000_000_000i64) {
            let x = cents as f64 / 100.0;
            let printed = python_comma_2f(x);
            let back = num(&printed).unwrap();
            prop_assert!((back - x).abs() < 0.005, "{} -> {}", printed, back);
            let dollars = format!("${}", printed.trim_start_matches('-'));
            prop_assert!((num(&dollars).unwrap() - x.abs()).abs() < 0.005);
        }

        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = Conversion::Number.apply(&s);
            let _ = Conversion::Int.apply(&s);
            let _ = Conversion::Bool.apply(&s);
        }
    }
}

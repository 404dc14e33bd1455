//! Numbers as Python prints them, parsed back to the same float: Python writes
//! each value in the formats the engine uses (repr, `%.2f`, `{:,.2f}`, `$`,
//! `%e`, `%g`) with its exact hex, and the parser must agree bit for bit with
//! Python's own reading of the printed text.

use risktail::event::Val;
use risktail::parse::fields::Conversion;

use crate::util::{root, run_python};

#[test]
fn what_python_prints_parses_to_what_python_reads() {
    let script = r#"
import random
rng = random.Random(20260128)
vals = [0.0, -0.0, 1e-05, 2.5, -0.75, 52300.0, 1234567.891, 5e-324, 1.7976931348623157e308, 0.1 + 0.2]
vals += [rng.uniform(-1e6, 1e6) for _ in range(2000)] + [rng.lognormvariate(0, 8) for _ in range(2000)]
for v in vals:
    for text in (repr(v), "%.2f" % v, "{:,.2f}".format(v), "%e" % v, "%g" % v, "{:,}".format(v)):
        print(text, float(text.replace(",", "")).hex())
    if v >= 0:
        text = "${:,.2f}".format(v)
        print(text, float(text[1:].replace(",", "")).hex())
    text = "%.1f%%" % v
    print(text, float(text[:-1]).hex())
"#;
    let out = run_python(&["-c", script], &root());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let mut checked = 0;
    for line in text.lines() {
        let (printed, hex) = line.rsplit_once(' ').expect("two fields");
        let want = hex_float(hex);
        match Conversion::Number.apply(printed) {
            Ok(Val::Float(got)) => assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{printed}: got {got}, Python read {want}"
            ),
            other => panic!("{printed}: {other:?}"),
        }
        checked += 1;
    }
    assert!(checked > 25_000, "only {checked} numbers");
}

/// Parses Python's `float.hex()` output (`-0x1.8000000000000p+1`).
fn hex_float(s: &str) -> f64 {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let s = s.strip_prefix("0x").expect("0x");
    let (mant, exp) = s.split_once('p').expect("p");
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let mut bits: u64 = u64::from_str_radix(int, 16).expect("int");
    for c in frac.chars() {
        bits = (bits << 4) | u64::from(c.to_digit(16).expect("hex digit"));
    }
    let exp: i32 = exp.parse().expect("exp");
    let v = if bits == 0 {
        0.0
    } else {
        // value = bits * 2^(exp - 4*len(frac)); split the scaling to stay finite/subnormal-exact.
        let scale = exp - 4 * frac.len() as i32;
        let mut v = bits as f64;
        let mut e = scale;
        while e > 0 {
            let step = e.min(1000);
            v *= 2f64.powi(step);
            e -= step;
        }
        while e < 0 {
            let step = e.max(-1000);
            v *= 2f64.powi(step);
            e -= step;
        }
        v
    };
    if neg { -v } else { v }
}

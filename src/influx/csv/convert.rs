//! One cell's text to a typed [`Value`] by its `#datatype`, and the RFC3339 checks and
//! formatting that needs.

use crate::influx::{Value, parse_duration_ns};

/// Converts one non-empty cell by its `#datatype`, by the rules of Flux's CSV decoder (Go's
/// `strconv` and `time.Parse(time.RFC3339Nano)`), so a value Flux would refuse is an error
/// here too rather than a guess:
///
/// * `long`: a signed decimal; `unsignedLong`: an unsigned decimal (no sign), kept exact;
/// * `double`: a decimal or exponent float, `NaN`, `Inf`; a finite number out of range (`1e400`)
///   is an error, as `strconv.ParseFloat` reports it, not infinity;
/// * `boolean`: `true`/`false`, `t`/`f`, `1`/`0`, `TRUE`, `True`, ... (Go's `ParseBool`);
/// * `dateTime:RFC3339` (what Flux sends) and `dateTime:RFC3339Nano`: a real date and time
///   (`2023-02-30T25:61:00Z` is an error), kept as text; a bare number there is an error;
/// * `dateTime:number`: nanoseconds since the epoch, an int;
/// * `dateTime` with no format (the `influx write` CSV dialect, which accepts either): a
///   number is normalised to RFC3339 text, so one column holds one type;
/// * `duration`: a Flux duration, in nanoseconds.
pub(super) fn convert(raw: &str, datatype: &str) -> Result<Value, String> {
    let (base, format) = match datatype.split_once(':') {
        Some((b, f)) => (b, f),
        None => (datatype, ""),
    };
    let bad = |what: &str| format!("{raw:?} is not a valid {what}");
    Ok(match base {
        "long" => Value::Int(raw.parse().map_err(|_| bad("long"))?),
        "unsignedLong" => {
            // Rust would take "+1"; Go's ParseUint (and so Flux) does not.
            if !raw.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("unsignedLong"));
            }
            Value::UInt(raw.parse().map_err(|_| bad("unsignedLong"))?)
        }
        "double" => {
            let f: f64 = raw.parse().map_err(|_| bad("double"))?;
            let spelled = raw.trim_start_matches(['+', '-']).to_ascii_lowercase();
            if f.is_infinite() && spelled != "inf" && spelled != "infinity" {
                return Err(format!("{raw:?} is out of the range of a double"));
            }
            Value::Float(f)
        }
        "boolean" => Value::Bool(match raw {
            "true" | "True" | "TRUE" | "t" | "T" | "1" => true,
            "false" | "False" | "FALSE" | "f" | "F" | "0" => false,
            _ => return Err(bad("boolean")),
        }),
        "dateTime" | "time" => match format {
            "number" => Value::Int(raw.parse().map_err(|_| bad("dateTime:number"))?),
            "RFC3339" | "RFC3339Nano" => {
                check_rfc3339(raw)
                    .map_err(|why| format!("{raw:?} is not a valid {datatype} ({why})"))?;
                Value::Time(raw.to_string())
            }
            "" => match raw.parse::<i64>() {
                Ok(ns) => Value::Time(rfc3339_from_ns(ns)),
                Err(_) => {
                    check_rfc3339(raw)
                        .map_err(|why| format!("{raw:?} is not a valid dateTime ({why})"))?;
                    Value::Time(raw.to_string())
                }
            },
            // A Go layout (`dateTime:2006-01-02`): the text as the file wrote it.
            _ => Value::Time(raw.to_string()),
        },
        "duration" => Value::Duration(parse_duration_ns(raw)?),
        // string, base64Binary, line-protocol elements (tag, field, measurement, ignored)
        // and types we do not know: the text as is.
        _ => Value::String(raw.to_string()),
    })
}

/// Checks `s` the way Go's `time.Parse(time.RFC3339Nano, s)` does:
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, with a real month, day of that month, hour,
/// minute and second. Returns what is wrong.
pub fn check_rfc3339(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let t = b.get(from..from + len)?;
        t.iter()
            .all(u8::is_ascii_digit)
            .then(|| t.iter().fold(0, |a, d| a * 10 + u32::from(d - b'0')))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let shape = "expected YYYY-MM-DDTHH:MM:SS followed by Z or an offset";
    let (Some(year), Some(month), Some(day), Some(hour), Some(min), Some(sec)) = (
        num(0, 4),
        num(5, 2),
        num(8, 2),
        num(11, 2),
        num(14, 2),
        num(17, 2),
    ) else {
        return Err(shape.into());
    };
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return Err(shape.into());
    }
    if !(1..=12).contains(&month) {
        return Err(format!("month {month} is out of range"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(format!(
            "day {day} is out of range for {year:04}-{month:02}"
        ));
    }
    if hour > 23 {
        return Err(format!("hour {hour} is out of range"));
    }
    if min > 59 {
        return Err(format!("minute {min} is out of range"));
    }
    if sec > 59 {
        return Err(format!("second {sec} is out of range"));
    }
    let mut i = 19;
    if at(i, b'.') {
        i += 1;
        let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err("no digits after the decimal point".into());
        }
        i += digits;
    }
    match &b[i..] {
        b"Z" => Ok(()),
        [b'+' | b'-', ..] if b.len() - i == 6 && at(i + 3, b':') => {
            match (num(i + 1, 2), num(i + 4, 2)) {
                (Some(h), Some(m)) if h <= 23 && m <= 59 => Ok(()),
                (Some(_), Some(_)) => Err("time zone offset out of range".into()),
                _ => Err(shape.into()),
            }
        }
        _ => Err(shape.into()),
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Nanoseconds since the Unix epoch as RFC3339 text in UTC, with the fraction trimmed the
/// way Go's `RFC3339Nano` trims it.
pub fn rfc3339_from_ns(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if frac != 0 {
        let f = format!("{frac:09}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

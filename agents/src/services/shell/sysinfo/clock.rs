//! Time as the machine shows it: broken-down local time in the persona's zone, GNU
//! `date +FORMAT` conversions, and `date` itself.

use super::super::State;
use super::super::commands::Out;
use super::persona;
use crate::persona::{civil, weekday};
use honeybee_proto::event::clamp;

pub(super) const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const MONTHS_LONG: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const DAYS_LONG: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// A broken-down local time.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tm {
    /// Unix seconds (UTC).
    pub(super) unix: i64,
    pub(super) year: i64,
    pub(super) month: u32,
    pub(super) day: u32,
    pub(super) hour: i64,
    pub(super) min: i64,
    pub(super) sec: i64,
    /// 0 = Sunday.
    pub(super) wday: i64,
    /// 0-based day of the year.
    pub(super) yday: i64,
    pub(super) offset: i32,
    pub(super) zone: &'static str,
    /// `%N`: nanoseconds (0 for a time given with `-d`, as GNU).
    pub(super) nanos: i64,
}

pub(super) fn tm_at(unix: i64, offset: i32, zone: &'static str) -> Tm {
    let local = unix + i64::from(offset);
    let days = local.div_euclid(86_400);
    let s = local.rem_euclid(86_400);
    let (year, month, day) = civil(days);
    Tm {
        unix,
        year,
        month,
        day,
        hour: s / 3600,
        min: (s % 3600) / 60,
        sec: s % 60,
        wday: weekday(days),
        yday: days - crate::persona::days_from_civil(year, 1, 1),
        offset,
        zone,
        nanos: 0,
    }
}

/// `t` in the machine's time zone.
pub(super) fn local(st: &State, t: i64) -> Tm {
    let (off, abbr) = persona(st).zone.at(t);
    tm_at(t, off, abbr)
}

/// `Sun Apr 14 10:22:31 2024`, as `Last login:` shows.
pub(super) fn ctime(tm: &Tm) -> String {
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[tm.wday as usize],
        MONTHS[(tm.month - 1) as usize],
        tm.day,
        tm.hour,
        tm.min,
        tm.sec,
        tm.year
    )
}

/// ISO 8601 week-based year and week number.
fn iso_week(tm: &Tm) -> (i64, i64) {
    use crate::persona::days_from_civil;
    let days_in = |y: i64| days_from_civil(y + 1, 1, 1) - days_from_civil(y, 1, 1);
    // A year has 53 weeks when it starts on a Thursday, or on a Wednesday in a leap year.
    let weeks_in = |y: i64| {
        let jan1 = weekday(days_from_civil(y, 1, 1));
        if jan1 == 4 || (jan1 == 3 && days_in(y) == 366) {
            53
        } else {
            52
        }
    };
    let wday = (tm.wday + 6) % 7; // Monday = 0
    let week = (tm.yday - wday + 10) / 7;
    if week < 1 {
        let py = tm.year - 1;
        return (py, (tm.yday + days_in(py) - wday + 10) / 7);
    }
    if week > weeks_in(tm.year) {
        return (tm.year + 1, 1);
    }
    (tm.year, week)
}

/// GNU `date +FORMAT` (C locale): the conversions, with the `-`, `_`, `0`, `^` and `#`
/// flags and a field width. An unknown conversion is printed as written, as GNU does.
pub(super) fn strftime(fmt: &str, tm: &Tm) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = String::from("%");
        let mut pad: Option<char> = None;
        let mut upper = false;
        let mut swap = false;
        while let Some(&f) = chars.peek() {
            match f {
                '-' | '_' | '0' => pad = Some(f),
                '^' => upper = true,
                '#' => swap = true,
                _ => break,
            }
            spec.push(f);
            chars.next();
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            spec.push(d);
            chars.next();
        }
        let width: usize = width.parse::<usize>().unwrap_or(0).min(64);
        let mut colons = 0;
        while chars.peek() == Some(&':') && colons < 3 {
            colons += 1;
            chars.next();
            spec.push(':');
        }
        let Some(conv) = chars.next() else {
            out.push_str(&spec);
            break;
        };
        // (text, numeric default padding char, default width)
        let num = |v: i64, w: usize, p: char| (v.to_string(), Some(p), w);
        let (text, num_pad, def_w): (String, Option<char>, usize) = match conv {
            'a' => (DAYS[tm.wday as usize].into(), None, 0),
            'A' => (DAYS_LONG[tm.wday as usize].into(), None, 0),
            'b' | 'h' => (MONTHS[(tm.month - 1) as usize].into(), None, 0),
            'B' => (MONTHS_LONG[(tm.month - 1) as usize].into(), None, 0),
            'c' => (strftime("%a %b %e %H:%M:%S %Y", tm), None, 0),
            'C' => num(tm.year.div_euclid(100), 2, '0'),
            'd' => num(i64::from(tm.day), 2, '0'),
            'D' => (strftime("%m/%d/%y", tm), None, 0),
            'e' => num(i64::from(tm.day), 2, ' '),
            'F' => (strftime("%Y-%m-%d", tm), None, 0),
            'g' => num(iso_week(tm).0.rem_euclid(100), 2, '0'),
            'G' => num(iso_week(tm).0, 0, '0'),
            'H' => num(tm.hour, 2, '0'),
            'I' => num((tm.hour + 11) % 12 + 1, 2, '0'),
            'j' => num(tm.yday + 1, 3, '0'),
            'k' => num(tm.hour, 2, ' '),
            'l' => num((tm.hour + 11) % 12 + 1, 2, ' '),
            'm' => num(i64::from(tm.month), 2, '0'),
            'M' => num(tm.min, 2, '0'),
            'n' => ("\n".into(), None, 0),
            'N' => num(tm.nanos, 9, '0'),
            'p' => (if tm.hour < 12 { "AM" } else { "PM" }.into(), None, 0),
            'P' => (if tm.hour < 12 { "am" } else { "pm" }.into(), None, 0),
            'r' => (strftime("%I:%M:%S %p", tm), None, 0),
            'R' => (strftime("%H:%M", tm), None, 0),
            's' => num(tm.unix, 0, '0'),
            'S' => num(tm.sec, 2, '0'),
            't' => ("\t".into(), None, 0),
            'T' => (strftime("%H:%M:%S", tm), None, 0),
            'u' => num((tm.wday + 6) % 7 + 1, 1, '0'),
            'U' => num((tm.yday + 7 - tm.wday) / 7, 2, '0'),
            'V' => num(iso_week(tm).1, 2, '0'),
            'w' => num(tm.wday, 1, '0'),
            'W' => num((tm.yday + 7 - (tm.wday + 6) % 7) / 7, 2, '0'),
            'x' => (strftime("%m/%d/%y", tm), None, 0),
            'X' => (strftime("%H:%M:%S", tm), None, 0),
            'y' => num(tm.year.rem_euclid(100), 2, '0'),
            'Y' => num(tm.year, 0, '0'),
            'z' => {
                let sign = if tm.offset < 0 { '-' } else { '+' };
                let a = tm.offset.unsigned_abs();
                let (h, m, s) = (a / 3600, (a % 3600) / 60, a % 60);
                let t = match colons {
                    0 => format!("{sign}{h:02}{m:02}"),
                    1 => format!("{sign}{h:02}:{m:02}"),
                    2 => format!("{sign}{h:02}:{m:02}:{s:02}"),
                    _ if m == 0 && s == 0 => format!("{sign}{h:02}"),
                    _ => format!("{sign}{h:02}:{m:02}"),
                };
                (t, None, 0)
            }
            'Z' => (tm.zone.into(), None, 0),
            '%' => ("%".into(), None, 0),
            _ => {
                spec.push(conv);
                out.push_str(&spec);
                continue;
            }
        };
        let mut text = text;
        // `^` upper-cases; `#` swaps: lower case for %p and %Z, upper case otherwise.
        if swap && matches!(conv, 'p' | 'Z') {
            text = text.to_lowercase();
        } else if upper || swap {
            text = text.to_uppercase();
        }
        let w = if width > 0 { width } else { def_w };
        match (num_pad, pad) {
            (Some(_), Some('-')) => {}
            (Some(p), pad) => {
                let p = match pad {
                    Some('_') => ' ',
                    Some('0') => '0',
                    _ => p,
                };
                let trimmed = if p == ' ' {
                    text.trim_start_matches('0').to_owned()
                } else {
                    text.clone()
                };
                let body = if trimmed.is_empty() {
                    "0".to_owned()
                } else {
                    trimmed
                };
                let body = if p == ' ' { body } else { text.clone() };
                let neg = body.starts_with('-');
                let digits = body.trim_start_matches('-');
                let fill = w.saturating_sub(body.len());
                if neg && p == '0' {
                    text = format!("-{}{digits}", "0".repeat(fill));
                } else {
                    text = format!("{}{body}", p.to_string().repeat(fill));
                }
            }
            (None, pad) => {
                let p = if pad == Some('0') { '0' } else { ' ' };
                let fill = w.saturating_sub(text.chars().count());
                if pad != Some('-') {
                    text = format!("{}{text}", p.to_string().repeat(fill));
                }
            }
        }
        out.push_str(&text);
    }
    out
}

/// `date`: `Sun Apr 14 10:22:31 UTC 2024`, `+FORMAT`, `-u`, `-R`, `-I`, `-d @N`.
pub(super) fn date(st: &State, args: &[String]) -> Out {
    let mut utc = false;
    let mut format: Option<String> = None;
    let mut t = st.now;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-u" | "--utc" | "--universal" => utc = true,
            "-R" | "--rfc-email" => format = Some("%a, %d %b %Y %H:%M:%S %z".into()),
            "-I" | "--iso-8601" | "--iso-8601=date" => format = Some("%Y-%m-%d".into()),
            "-Iseconds" | "--iso-8601=seconds" => format = Some("%Y-%m-%dT%H:%M:%S%:z".into()),
            "-Iminutes" | "--iso-8601=minutes" => format = Some("%Y-%m-%dT%H:%M%:z".into()),
            "-Ihours" | "--iso-8601=hours" => format = Some("%Y-%m-%dT%H%:z".into()),
            "-d" | "--date" => {
                i += 1;
                match args.get(i).map(|s| parse_date_arg(s, st.now)) {
                    Some(Ok(v)) => t = v,
                    Some(Err(e)) => return e,
                    None => {
                        return Out::fail(
                            1,
                            "date: option requires an argument -- 'd'\nTry 'date --help' for more information.\n",
                        );
                    }
                }
            }
            a if a.starts_with("--date=") => match parse_date_arg(&a[7..], st.now) {
                Ok(v) => t = v,
                Err(e) => return e,
            },
            a if a.starts_with('+') => {
                if format.is_some() {
                    return Out::fail(
                        1,
                        format!(
                            "date: extra operand '{}'\nTry 'date --help' for more information.\n",
                            clamp(a, 200)
                        ),
                    );
                }
                format = Some(a[1..].to_owned());
            }
            a if a.starts_with('-') => {
                return Out::fail(
                    1,
                    format!(
                        "date: invalid option -- '{}'\nTry 'date --help' for more information.\n",
                        a.chars().nth(1).unwrap_or('-')
                    ),
                );
            }
            _ => {
                // Setting the clock needs root and a real clock; refuse as a container does.
                return Out::fail(1, "date: cannot set date: Operation not permitted\n");
            }
        }
        i += 1;
    }
    let mut tm = if utc {
        tm_at(t, 0, "UTC")
    } else {
        local(st, t)
    };
    if t == st.now {
        // The clock's sub-second part, which the session's whole seconds do not keep.
        tm.nanos = (t.wrapping_mul(2_654_435_761)).rem_euclid(1_000_000_000);
    }
    let fmt = format.unwrap_or_else(|| "%a %b %e %H:%M:%S %Z %Y".into());
    let mut text = strftime(&clamp(&fmt, 1024), &tm);
    text.push('\n');
    Out::ok(text)
}

/// `-d` values: `@SECONDS`, `now`, `today`, `yesterday`, `tomorrow`.
fn parse_date_arg(s: &str, now: i64) -> Result<i64, Out> {
    if let Some(n) = s.strip_prefix('@')
        && let Ok(v) = n.trim().parse::<i64>()
        && v.unsigned_abs() < 67_767_976_233_316_800
    {
        return Ok(v);
    }
    match s.trim() {
        "" | "now" | "today" => Ok(now),
        "yesterday" => Ok(now - 86_400),
        "tomorrow" => Ok(now + 86_400),
        _ => Err(Out::fail(
            1,
            format!("date: invalid date '{}'\n", clamp(s, 200)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tm(t: i64) -> Tm {
        tm_at(t, 0, "UTC")
    }

    #[test]
    fn strftime_matches_gnu_date() {
        // 2024-04-14 10:22:31 UTC, a Sunday (GNU date's answers).
        let t = tm(1_713_090_151);
        assert_eq!(
            strftime("%a %b %e %H:%M:%S %Z %Y", &t),
            "Sun Apr 14 10:22:31 UTC 2024"
        );
        assert_eq!(strftime("%s", &t), "1713090151");
        assert_eq!(strftime("%F %T", &t), "2024-04-14 10:22:31");
        assert_eq!(
            strftime("%j %U %W %V %G %u %w", &t),
            "105 15 15 15 2024 7 0"
        );
        assert_eq!(
            strftime("%-d/%-m %_H %I%p %P %y %C", &t),
            "14/4 10 10AM am 24 20"
        );
        assert_eq!(
            strftime("%^a %#Z %10Y %z %:z", &t),
            "SUN utc 0000002024 +0000 +00:00"
        );
        assert_eq!(strftime("%Q %%", &t), "%Q %");
        assert_eq!(strftime("%D %R %r", &t), "04/14/24 10:22 10:22:31 AM");
        // Early January in the previous ISO year: 2021-01-01 is in 2020's week 53.
        let jan = tm(1_609_459_200);
        assert_eq!(strftime("%G-W%V", &jan), "2020-W53");
        // 2024-12-30 (Monday) is in 2025's week 1.
        let dec = tm(1_735_516_800);
        assert_eq!(strftime("%G-W%V", &dec), "2025-W01");
        let t2 = tm_at(1_713_090_151, -14_400, "EDT");
        assert_eq!(strftime("%H %Z %z", &t2), "06 EDT -0400");
    }

    /// Differential: GNU date (coreutils) and tzdata as oracles for the formats and for
    /// every zone a persona may have, around both DST switches of several years.
    #[test]
    fn strftime_and_zones_agree_with_gnu_date() {
        let fmts = "%a %A %b %B %c|%C %d %D %e %F %g %G %h %H %I %j %k %l %m %M|%p %P %r %R %s %S %T %u %U %V %w %W %x %X %y %Y %z %:z %::z %Z|%-d %_m %05e %^b %#p %10A %-H";
        let mut times = vec![1_713_090_151i64, 1_609_459_200, 1_735_516_800, 951_782_400];
        for y in [2024, 2025, 2026, 2027] {
            for (m, d) in [
                (3, 9),
                (3, 10),
                (3, 30),
                (3, 31),
                (10, 26),
                (10, 27),
                (11, 2),
                (11, 3),
            ] {
                let day = crate::persona::days_from_civil(y, m, d) * 86_400;
                for h in [0, 1, 2, 5, 6, 7, 8, 23] {
                    times.push(day + h * 3600 - 1);
                    times.push(day + h * 3600);
                }
            }
        }
        for zone in crate::persona::zones() {
            let tz = if zone.name == "Etc/UTC" {
                "UTC"
            } else {
                zone.name
            };
            let mut script = String::new();
            for t in &times {
                script.push_str(&format!("date -d @{t} '+{fmts}'\n"));
            }
            let out = std::process::Command::new("sh")
                .env("TZ", tz)
                .env("LC_ALL", "C")
                .arg("-c")
                .arg(&script)
                .output()
                .expect("this test needs sh and GNU date (coreutils)");
            let real = String::from_utf8(out.stdout).unwrap();
            assert_eq!(
                real.lines().count(),
                times.len(),
                "tzdata missing for {tz}?"
            );
            for (t, want) in times.iter().zip(real.lines()) {
                let (off, abbr) = zone.at(*t);
                let got = strftime(fmts, &tm_at(*t, off, abbr));
                assert_eq!(got, want, "{tz} at {t}");
            }
        }
    }
}

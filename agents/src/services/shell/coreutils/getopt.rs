//! GNU `getopt_long` as coreutils uses it: clustered short options, values attached or
//! in the next word, long options (unique prefixes, `=value`), `--`, and operands
//! anywhere (permutation), with glibc's error texts.

use super::super::commands::Out;

/// A long option: its name, the short letter it stands for, and whether it takes a value.
pub(super) type Long = (&'static str, char, bool);

/// The options seen, in order, and the operands.
#[derive(Debug, Default)]
pub(super) struct Opts {
    pub opts: Vec<(char, Option<String>)>,
    pub operands: Vec<String>,
}

impl Opts {
    pub(super) fn has(&self, c: char) -> bool {
        self.opts.iter().any(|(k, _)| *k == c)
    }

    /// The last value given to `c`.
    pub(super) fn value(&self, c: char) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(k, _)| *k == c)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// Parses `args`: `flags` are short options without a value, `with_value` those with
/// one. Errors come back as the program's answer (status `status`).
pub(super) fn parse(
    name: &str,
    args: &[String],
    flags: &str,
    with_value: &str,
    longs: &[Long],
    status: i32,
) -> Result<Opts, Out> {
    let fail = |msg: String| {
        Out::fail(
            status,
            format!("{name}: {msg}\nTry '{name} --help' for more information.\n"),
        )
    };
    let mut o = Opts::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            o.operands.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (key, val) = match long.split_once('=') {
                Some((k, v)) => (k, Some(v.to_owned())),
                None => (long, None),
            };
            let exact = longs.iter().find(|l| l.0 == key);
            let matches: Vec<&Long> = longs.iter().filter(|l| l.0.starts_with(key)).collect();
            let l = match (exact, matches.len()) {
                (Some(l), _) => l,
                (None, 1) => matches[0],
                (None, 0) => return Err(fail(format!("unrecognized option '{a}'"))),
                _ => return Err(fail(format!("option '{a}' is ambiguous"))),
            };
            if l.2 {
                let v = match val {
                    Some(v) => v,
                    None if i < args.len() => {
                        i += 1;
                        args[i - 1].clone()
                    }
                    None => {
                        return Err(fail(format!("option '--{}' requires an argument", l.0)));
                    }
                };
                o.opts.push((l.1, Some(v)));
            } else {
                if val.is_some() {
                    return Err(fail(format!(
                        "option '--{}' doesn't allow an argument",
                        l.0
                    )));
                }
                o.opts.push((l.1, None));
            }
            continue;
        }
        if a.len() > 1 && a.starts_with('-') {
            let letters: Vec<char> = a[1..].chars().collect();
            let mut k = 0;
            while k < letters.len() {
                let c = letters[k];
                k += 1;
                if with_value.contains(c) {
                    let v = if k < letters.len() {
                        letters[k..].iter().collect()
                    } else if i < args.len() {
                        i += 1;
                        args[i - 1].clone()
                    } else {
                        return Err(fail(format!("option requires an argument -- '{c}'")));
                    };
                    o.opts.push((c, Some(v)));
                    break;
                } else if flags.contains(c) {
                    o.opts.push((c, None));
                } else {
                    return Err(fail(format!("invalid option -- '{c}'")));
                }
            }
            continue;
        }
        o.operands.push(a.clone());
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn clusters_values_and_permutation() {
        let o = parse(
            "cut",
            &v(&["-sd:", "x", "-f", "2", "--output-delimiter=,"]),
            "s",
            "df",
            &[("output-delimiter", 'O', true)],
            1,
        )
        .unwrap();
        assert!(o.has('s'));
        assert_eq!(o.value('d'), Some(":"));
        assert_eq!(o.value('f'), Some("2"));
        assert_eq!(o.value('O'), Some(","));
        assert_eq!(o.operands, vec!["x"]);
        let e = parse("cut", &v(&["-x"]), "s", "", &[], 1).unwrap_err();
        assert_eq!(
            String::from_utf8_lossy(&e.err),
            "cut: invalid option -- 'x'\nTry 'cut --help' for more information.\n"
        );
    }
}

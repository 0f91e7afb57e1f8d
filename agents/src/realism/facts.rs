//! Observations as named facts, their one text form (shared by the reference files and
//! the node's own probes, so the comparison is plain string equality), and the
//! comparison of a service's facts with its reference.

use honeybee_proto::realism::CheckFailure;

/// What a probe saw, as `(check name, normalised value)` in the order observed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts(pub Vec<(String, String)>);

impl Facts {
    pub fn push(&mut self, name: &str, value: impl AsRef<[u8]>) {
        self.0.push((name.to_owned(), escape(value.as_ref())));
    }

    /// The escaped value of `name`, if observed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The text form of a reference file: a comment header, then `name = value` lines.
    pub fn to_ref_text(&self, header: &str) -> String {
        let mut out = String::new();
        for l in header.lines() {
            out += &format!("# {l}\n");
        }
        for (n, v) in &self.0 {
            out += &format!("{n} = {v}\n");
        }
        out
    }
}

/// Bytes as one line of printable ASCII: `\\`, `\r`, `\n`, `\t`, other bytes outside
/// 0x20..0x7e as `\xNN`. Injective, so equal texts mean equal bytes.
pub fn escape(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

/// A recorded reference: where it came from, and the facts the real program showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The `@product` line: the real program and its Debian package version.
    pub product: String,
    pub facts: Facts,
}

/// Parses a reference file (`# comment`, `@product = …`, `name = value`). Used on the
/// files compiled into the agent and on the recorder's output; a malformed line is an
/// error rather than a silently missing check.
pub fn parse_ref(text: &str) -> Result<Reference, String> {
    let mut product = String::new();
    let mut facts = Facts::default();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once(" = ") else {
            return Err(format!("line {}: expected `name = value`", i + 1));
        };
        if name == "@product" {
            product = value.to_owned();
        } else {
            facts.0.push((name.to_owned(), value.to_owned()));
        }
    }
    if product.is_empty() {
        return Err("no @product line".into());
    }
    Ok(Reference { product, facts })
}

/// What a comparison found: how many checks passed, of how many, and each failure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub passed: u32,
    pub total: u32,
    pub failures: Vec<CheckFailure>,
}

impl Outcome {
    /// Records one check.
    pub fn check(&mut self, name: &str, expected: &str, got: Option<&str>) {
        self.total += 1;
        if got == Some(expected) {
            self.passed += 1;
        } else {
            self.failures.push(CheckFailure {
                check: name.to_owned(),
                expected: expected.to_owned(),
                got: got.unwrap_or("(not observed)").to_owned(),
            });
        }
    }

    /// Records a check whose verdict was reached elsewhere.
    pub fn verdict(&mut self, name: &str, ok: bool, expected: &str, got: &str) {
        self.total += 1;
        if ok {
            self.passed += 1;
        } else {
            self.failures.push(CheckFailure {
                check: name.to_owned(),
                expected: expected.to_owned(),
                got: got.to_owned(),
            });
        }
    }
}

/// Every fact of the reference is one check: the node must show the same value. Facts
/// the node shows beyond the reference are not judged (the reference decides what a
/// scanner looks at).
pub fn compare(reference: &Reference, observed: &Facts) -> Outcome {
    let mut out = Outcome::default();
    for (name, want) in &reference.facts.0 {
        out.check(name, want, observed.get(name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_is_printable_and_distinguishes_bytes() {
        assert_eq!(
            escape(b"a\\b\r\n\t\xff\x01 ~"),
            "a\\\\b\\r\\n\\t\\xff\\x01 ~"
        );
        // `\` escaped means the text `\x41` and the byte 0x41 differ.
        assert_ne!(escape(b"\\x41"), escape(b"A"));
    }

    #[test]
    fn reference_round_trips_through_its_text() {
        let mut f = Facts::default();
        f.push("ident", b"SSH-2.0-OpenSSH_9.2p1\r\n");
        f.push("empty", b"");
        let text = format!("@product = X 1.0\n{}", f.to_ref_text("recorded by a test"));
        let r = parse_ref(&text).unwrap();
        assert_eq!(r.product, "X 1.0");
        assert_eq!(r.facts, f);
    }

    #[test]
    fn malformed_reference_is_refused() {
        assert!(parse_ref("name value\n").is_err());
        assert!(parse_ref("a = b\n").is_err(), "no product");
    }

    #[test]
    fn compare_counts_each_reference_fact_and_names_failures() {
        let r = parse_ref("@product = P\na = 1\nb = 2\nc = 3\n").unwrap();
        let mut seen = Facts::default();
        seen.push("a", b"1");
        seen.push("b", b"two");
        seen.push("extra", b"ignored");
        let o = compare(&r, &seen);
        assert_eq!((o.passed, o.total), (1, 3));
        assert_eq!(o.failures[0].check, "b");
        assert_eq!(o.failures[0].expected, "2");
        assert_eq!(o.failures[0].got, "two");
        assert_eq!(o.failures[1].check, "c");
        assert_eq!(o.failures[1].got, "(not observed)");
    }
}

//! Envelope addresses and ESMTP parameters of `MAIL FROM:` / `RCPT TO:` / `VRFY`, read
//! the way Postfix's smtpd reads them with its defaults (`strict_rfc821_envelopes = no`:
//! a space after the colon and a bare address without `<>` are accepted).

/// An address split off a command's argument, with what followed it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    /// The address without brackets and source route; empty for `<>`.
    pub addr: String,
    /// ESMTP parameters after the address (`SIZE=100`, `BODY=8BITMIME`, …).
    pub params: Vec<&'a str>,
}

/// Splits `<addr> PARAM…` (or `addr PARAM…`). `None` when the address is malformed:
/// an unclosed bracket, a space or control character inside, a second `<`.
pub(crate) fn split(arg: &str) -> Option<Parsed<'_>> {
    let arg = arg.trim_start_matches([' ', '\t']);
    let (inner, rest) = if let Some(body) = arg.strip_prefix('<') {
        let end = body.find('>')?;
        (&body[..end], &body[end + 1..])
    } else {
        match arg.find([' ', '\t']) {
            Some(i) => (&arg[..i], &arg[i..]),
            None => (arg, ""),
        }
    };
    // Spaces, line ends and NUL break an address; other control characters are kept
    // (and shown as spaces in replies, see [`shown`]), as smtpd does.
    if inner
        .bytes()
        .any(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0 | b'<' | b'>'))
    {
        return None;
    }
    // RFC 5321 source routes (`@relay1,@relay2:user@host`) are ignored, as Postfix does.
    let addr = match inner.strip_prefix('@') {
        Some(route) => route.split_once(':').map(|(_, a)| a)?,
        None => inner,
    };
    Some(Parsed {
        addr: addr.to_owned(),
        params: rest.split([' ', '\t']).filter(|p| !p.is_empty()).collect(),
    })
}

/// An address as smtpd writes it into a reply: control characters become spaces.
pub(crate) fn shown(addr: &str) -> String {
    addr.chars()
        .map(|c| if c.is_ascii_control() { ' ' } else { c })
        .collect()
}

/// `user@domain` into its parts (no `@`: an unqualified local name).
pub(crate) fn parts(addr: &str) -> (&str, Option<&str>) {
    match addr.rsplit_once('@') {
        Some((u, d)) => (u, Some(d)),
        None => (addr, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_postfix() {
        let p = split("<a@b> SIZE=10 BODY=8BITMIME").unwrap();
        assert_eq!(p.addr, "a@b");
        assert_eq!(p.params, ["SIZE=10", "BODY=8BITMIME"]);
        assert_eq!(split(" <a@b>").unwrap().addr, "a@b");
        assert_eq!(split("a@b").unwrap().addr, "a@b");
        assert_eq!(split("<>").unwrap().addr, "");
        assert_eq!(split("<@r1,@r2:u@d>").unwrap().addr, "u@d");
        assert!(split("<a b>").is_none());
        assert!(split("<a\rb>").is_none());
        assert_eq!(split("<x\u{7f}@y>").unwrap().addr, "x\u{7f}@y");
        assert_eq!(shown("a\u{1}b"), "a b");
        assert!(split("<a@b").is_none());
        assert!(split("<a<b>").is_none());
        assert_eq!(parts("root"), ("root", None));
        assert_eq!(parts("x@y@z"), ("x@y", Some("z")));
    }
}

//! Pure text helpers for the web personas: urlencoded form fields, HTML escaping, and
//! the string values of an XML-RPC call. All bounded; all work on hostile input.

/// Most form fields looked at in one body (the rest are ignored).
const MAX_FORM_FIELDS: usize = 64;
/// Most scalar values read out of one XML-RPC call.
const MAX_XMLRPC_VALUES: usize = 512;

/// The fields of an `application/x-www-form-urlencoded` body (or query string), decoded.
/// Invalid percent escapes are kept as they are, invalid UTF-8 is replaced.
pub(crate) fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    body.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .take(MAX_FORM_FIELDS)
        .map(|pair| {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// The first field named any of `names` (in the order of the body).
pub(crate) fn field<'a>(fields: &'a [(String, String)], names: &[&str]) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| names.contains(&k.as_str()))
        .map(|(_, v)| v.as_str())
}

fn percent_decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Escapes text for an HTML element or a quoted attribute: a persona that echoes a
/// username back must not become a vector against whoever looks at it.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#039;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes everything but unreserved characters (for a `redirect_to` parameter).
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An XML-RPC call as far as a honeypot cares: the method and its scalar string values
/// in document order (nested ones too, which is how `system.multicall` carries the
/// calls it batches).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct XmlRpcCall {
    pub method: Option<String>,
    pub strings: Vec<String>,
}

/// Reads the method name and string values out of an XML-RPC body without an XML parser:
/// a `<value>` whose content, once `<string>` tags are dropped, holds no other tag is a
/// scalar string. Good enough for the clients that brute-force `xmlrpc.php`.
pub(crate) fn xmlrpc_call(body: &[u8]) -> XmlRpcCall {
    let text = String::from_utf8_lossy(body);
    let method = between(&text, "<methodName>", "</methodName>").map(|m| xml_unescape(m.trim()));
    let mut strings = Vec::new();
    let mut rest: &str = &text;
    while let Some(start) = rest.find("<value>") {
        if strings.len() >= MAX_XMLRPC_VALUES {
            break;
        }
        rest = &rest[start + "<value>".len()..];
        let Some(end) = rest.find("</value>") else {
            break;
        };
        let inner = rest[..end]
            .trim()
            .trim_start_matches("<string>")
            .trim_end_matches("</string>");
        if !inner.contains('<') {
            strings.push(xml_unescape(inner));
        }
    }
    XmlRpcCall { method, strings }
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let len = s[start..].find(close)?;
    Some(&s[start..start + len])
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_form_fields() {
        let f = form_fields(b"log=admin&pwd=p%40ss+w%C3%B6rd&x&bad=%zz%4&wp-submit=Log+In");
        assert_eq!(field(&f, &["log"]), Some("admin"));
        assert_eq!(field(&f, &["pwd"]), Some("p@ss wörd"));
        assert_eq!(field(&f, &["x"]), Some(""));
        assert_eq!(field(&f, &["bad"]), Some("%zz%4"));
        assert_eq!(field(&f, &["nope", "wp-submit"]), Some("Log In"));
        assert_eq!(field(&f, &["missing"]), None);
        assert_eq!(form_fields(b"%").len(), 1);
        assert_eq!(
            form_fields(b"a=%f").first().map(|p| p.1.as_str()),
            Some("%f")
        );
        assert_eq!(
            form_fields(b"a=%ff").first().map(|p| p.1.as_str()),
            Some("\u{fffd}")
        );
        let many = "a=1&".repeat(1000);
        assert_eq!(form_fields(many.as_bytes()).len(), MAX_FORM_FIELDS);
    }

    #[test]
    fn escapes_html_and_urls() {
        assert_eq!(
            html_escape("<b a=\"x\">&'"),
            "&lt;b a=&quot;x&quot;&gt;&amp;&#039;"
        );
        assert_eq!(
            url_encode("http://h:1/wp-admin/"),
            "http%3A%2F%2Fh%3A1%2Fwp-admin%2F"
        );
    }

    #[test]
    fn reads_xmlrpc_strings() {
        let single =
            b"<?xml version=\"1.0\"?><methodCall><methodName>wp.getUsersBlogs</methodName>\
            <params><param><value><string>admin</string></value></param>\
            <param><value>p&amp;ss</value></param><param><value><int>1</int></value></param>\
            </params></methodCall>";
        let c = xmlrpc_call(single);
        assert_eq!(c.method.as_deref(), Some("wp.getUsersBlogs"));
        assert_eq!(c.strings, ["admin", "p&ss"]);

        let multi = b"<methodCall><methodName>system.multicall</methodName><params><param><value><array><data>\
            <value><struct><member><name>methodName</name><value><string>wp.getUsersBlogs</string></value></member>\
            <member><name>params</name><value><array><data><value><array><data>\
            <value><string>admin</string></value><value><string>one</string></value>\
            </data></array></value></data></array></value></member></struct></value>\
            </data></array></value></param></params></methodCall>";
        let c = xmlrpc_call(multi);
        assert_eq!(c.method.as_deref(), Some("system.multicall"));
        assert_eq!(c.strings, ["wp.getUsersBlogs", "admin", "one"]);

        assert_eq!(xmlrpc_call(b"<value>").strings, Vec::<String>::new());
        assert_eq!(xmlrpc_call(b"garbage \xff\xfe").method, None);
    }
}

//! The `router` persona: a SOHO router's admin login behind lighttpd. The form posts
//! `username`/`password` to `/login.cgi`; an OpenWrt-style `/cgi-bin/luci` takes
//! `luci_username`/`luci_password`. Error pages and reason phrases are lighttpd 1.4.69's
//! own (Debian 12's), checked against the real server by `tests/http_oracle.rs`.

use super::form::{field, form_fields, html_escape};
use super::persona::{Login, Reply, Request, is_form};

pub(crate) const SERVER: &str = "lighttpd/1.4.69";

/// When the reference firmware's static pages were "built": their `Last-Modified`
/// (2020-04-09 08:56:45 UTC, the build date its login page shows).
pub(crate) const PAGES_MTIME: u64 = 1_586_422_605;

/// One node's router: model, hardware revision, firmware build and the page's colour,
/// drawn from the node's persona, so no two nodes serve the same admin page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Device {
    /// "Wireless N Router", shown as the page's heading.
    pub family: &'static str,
    pub model: &'static str,
    /// "WR840N v6 00000000"
    pub hardware: String,
    /// "3.16.9 Build 200409 Rel.56145n"
    pub firmware: String,
    /// The header bar's colour.
    pub color: &'static str,
    /// The firmware build time: the static pages' `Last-Modified`.
    pub mtime: u64,
}

/// (family, model, hardware revisions, firmware version, earliest build as Unix days).
const MODELS: &[(&str, &str, &[u32], &str, i64)] = &[
    ("Wireless N Router", "WR840N", &[4, 5, 6], "3.16.9", 17_897),
    ("Wireless N Router", "WR841N", &[13, 14], "3.16.9", 17_532),
    ("Wireless N Router", "WR850N", &[2, 3], "1.0.6", 17_167),
    (
        "AC750 Wireless Dual Band Router",
        "Archer C20",
        &[4, 5, 6],
        "1.0.12",
        18_262,
    ),
    (
        "AC750 Wireless Dual Band Router",
        "Archer C2",
        &[3],
        "1.0.4",
        17_713,
    ),
    (
        "AC1200 Wireless Dual Band Gigabit Router",
        "Archer C6",
        &[2, 3],
        "1.1.4",
        18_628,
    ),
    (
        "AC1200 Wireless Dual Band Router",
        "Archer C50",
        &[4, 6],
        "1.0.7",
        18_080,
    ),
    (
        "AC1750 Wireless Dual Band Gigabit Router",
        "Archer C7",
        &[5],
        "1.1.3",
        18_262,
    ),
];
const COLORS: &[&str] = &["#1c5d99", "#4acbd6", "#2a7ab0", "#00a0a8", "#3d6ea8"];

impl Device {
    /// The router of the node whose persona is `p`.
    pub(crate) fn of(p: &crate::persona::Persona) -> Device {
        let mut d = p.stream("http-router");
        let &(family, model, revs, version, earliest) = d.pick(MODELS);
        let rev = *d.pick(revs);
        // A build from the model's first year or two, at a time of the working day.
        let day = earliest + d.range(0, 540);
        let mtime = day * 86_400 + d.range(7 * 3600, 19 * 3600);
        let (y, m, dd) = crate::persona::civil(day);
        let firmware = format!(
            "{version} Build {:02}{m:02}{dd:02} Rel.{}n",
            y % 100,
            d.range(30_000, 69_999)
        );
        Device {
            family,
            model,
            hardware: format!("{model} v{rev} 00000000"),
            firmware,
            color: COLORS[d.below(COLORS.len() as u64) as usize],
            mtime: u64::try_from(mtime).unwrap_or(PAGES_MTIME),
        }
    }

    /// The device every node used to show (the unit tests').
    #[cfg(test)]
    pub(crate) fn reference() -> Device {
        Device {
            family: "Wireless N Router",
            model: "WR840N",
            hardware: "WR840N v6 00000000".into(),
            firmware: "3.16.9 Build 200409 Rel.56145n".into(),
            color: "#1c5d99",
            mtime: PAGES_MTIME,
        }
    }
}

/// The pages served as static files, and where lighttpd would find them.
pub(crate) const STATIC_PAGES: &[&str] = &["/", "/index.html", "/login.html", "/login.htm"];

const USER_FIELDS: &[&str] = &["username", "luci_username", "user", "login", "name"];
const PASS_FIELDS: &[&str] = &["password", "luci_password", "pass", "passwd", "pwd"];

pub(crate) const LOGIN_FAILED: &str = "Invalid username or password.";

pub(crate) fn route(dev: &Device, req: &Request<'_>) -> Reply {
    // What follows a file's name is lighttpd's PATH_INFO: `/index.html/x` is the file.
    let file = ["/index.html", "/login.html", "/login.htm", "/robots.txt"]
        .into_iter()
        .find(|f| {
            req.path
                .strip_prefix(f)
                .is_some_and(|rest| rest.starts_with('/'))
        });
    if let Some(file) = file {
        return route(dev, &Request { path: file, ..*req });
    }
    let logins = match req.method {
        "POST" => form_login(req),
        _ => Vec::new(),
    };
    let mut reply = match (req.method, req.path) {
        ("GET" | "HEAD", p) if STATIC_PAGES.contains(&p) => {
            Reply::html(200, index_page(dev)).file(dev.mtime)
        }
        ("GET" | "HEAD", "/login.cgi") => Reply::html(200, index_page(dev)),
        ("POST", "/" | "/index.html" | "/login.html" | "/login.htm" | "/login.cgi") => {
            let user = logins.first().map_or("", |l| l.username.as_str());
            Reply::html(
                200,
                login_page(
                    dev,
                    "/login.cgi",
                    "username",
                    "password",
                    Some(LOGIN_FAILED),
                    user,
                ),
            )
        }
        ("GET" | "HEAD", p) if p == "/cgi-bin/luci" || p.starts_with("/cgi-bin/luci/") => {
            Reply::html(
                200,
                login_page(
                    dev,
                    "/cgi-bin/luci",
                    "luci_username",
                    "luci_password",
                    None,
                    "",
                ),
            )
        }
        ("POST", p) if p == "/cgi-bin/luci" || p.starts_with("/cgi-bin/luci/") => {
            let user = logins.first().map_or("", |l| l.username.as_str());
            Reply::html(
                403,
                login_page(
                    dev,
                    "/cgi-bin/luci",
                    "luci_username",
                    "luci_password",
                    Some(LOGIN_FAILED),
                    user,
                ),
            )
        }
        // A directory without an index: lighttpd adds the slash, then refuses it.
        ("GET" | "HEAD" | "POST", "/cgi-bin") => Reply::redirect(301, "/cgi-bin/".into()),
        ("GET" | "HEAD" | "POST", "/cgi-bin/") => error_page(403),
        ("GET" | "HEAD" | "POST", "/robots.txt") => {
            Reply::new(200, "text/plain", ROBOTS).file(dev.mtime)
        }
        ("OPTIONS", _) => {
            Reply::new(200, "text/html", Vec::new()).header("allow", "OPTIONS, GET, HEAD, POST")
        }
        ("GET" | "HEAD" | "POST", _) => error_page(404),
        // lighttpd looks the file up first: another method is 501 only where there is
        // something to apply it to.
        (_, p) if exists(p) => error_page(501),
        _ => error_page(404),
    };
    reply.logins = logins;
    reply
}

/// Whether the device serves something at `path`.
fn exists(path: &str) -> bool {
    STATIC_PAGES.contains(&path)
        || matches!(
            path,
            "/robots.txt" | "/login.cgi" | "/cgi-bin" | "/cgi-bin/" | "*"
        )
        || path == "/cgi-bin/luci"
        || path.starts_with("/cgi-bin/luci/")
}

/// Credentials in a posted form, whatever the path: scanners post router logins to the
/// paths of many models.
fn form_login(req: &Request<'_>) -> Vec<Login> {
    if !is_form(req) {
        return Vec::new();
    }
    let fields = form_fields(req.body);
    match (field(&fields, USER_FIELDS), field(&fields, PASS_FIELDS)) {
        (Some(u), Some(p)) => vec![Login {
            username: u.to_owned(),
            password: p.to_owned(),
        }],
        _ => Vec::new(),
    }
}

/// The static `robots.txt`.
pub(crate) const ROBOTS: &str = "User-agent: *\nDisallow: /\n";

/// The static login page (`/index.html`), byte for byte what the oracle test serves
/// from the real lighttpd's document root.
pub(crate) fn index_page(dev: &Device) -> String {
    login_page(dev, "/login.cgi", "username", "password", None, "")
}

/// lighttpd 1.4.69's reason phrases (`http_status_buf`).
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// lighttpd's built-in error page (its exact layout is how scanners recognise it).
pub(crate) fn error_page(status: u16) -> Reply {
    let title = format!("{status} {}", reason(status));
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n\
<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n         \
\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n\
<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n \
<head>\n  <title>{title}</title>\n </head>\n <body>\n  <h1>{title}</h1>\n </body>\n</html>\n"
    );
    Reply::html(status, body)
}

fn login_page(
    dev: &Device,
    action: &str,
    user_field: &str,
    pass_field: &str,
    error: Option<&str>,
    username: &str,
) -> String {
    let error = error.map_or(String::new(), |e| format!("<div class=\"err\">{e}</div>\n"));
    let username = html_escape(username);
    let Device {
        family,
        model,
        hardware,
        firmware,
        color,
        ..
    } = dev;
    format!(
        r#"<!DOCTYPE html>
<html>
<head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Cache-Control" content="no-cache">
<title>{family} {model} - Login</title>
<style>
body{{margin:0;background:#eef1f5;font:13px Arial,Helvetica,sans-serif;color:#333}}
.top{{background:{color};height:56px;color:#fff}}
.top h1{{margin:0;padding:15px 24px;font-size:20px;font-weight:normal}}
.top span{{float:right;font-size:12px;padding-top:5px}}
.box{{width:340px;margin:72px auto 24px;background:#fff;border:1px solid #cdd4dc;border-radius:4px;padding:24px 28px}}
.box h2{{margin:0 0 18px;font-size:16px;color:{color}}}
label{{display:block;margin:12px 0 4px}}
input.t{{width:100%;box-sizing:border-box;padding:7px;border:1px solid #b8c2cc;border-radius:3px}}
.btn{{margin-top:20px;width:100%;padding:8px;background:{color};color:#fff;border:0;border-radius:3px;font-size:14px;cursor:pointer}}
.err{{color:#c0392b;background:#fdecea;border:1px solid #f5c6c1;padding:6px 8px;margin-bottom:6px}}
.foot{{text-align:center;color:#8a96a3;font-size:11px;line-height:18px}}
</style>
</head>
<body>
<div class="top"><h1>{family} <span>Model No. {model}</span></h1></div>
<div class="box">
<h2>Administrator Login</h2>
{error}<form method="post" action="{action}" autocomplete="off">
<label for="u">Username</label>
<input class="t" type="text" id="u" name="{user_field}" maxlength="31" value="{username}">
<label for="p">Password</label>
<input class="t" type="password" id="p" name="{pass_field}" maxlength="63">
<input class="btn" type="submit" value="Log In">
</form>
</div>
<div class="foot">Firmware Version: {firmware}<br>Hardware Version: {hardware}</div>
</body>
</html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference device's answer (shadows the glob-imported `route`).
    fn route(r: &Request<'_>) -> Reply {
        super::route(&Device::reference(), r)
    }

    fn req<'a>(method: &'a str, path: &'a str, body: &'a [u8]) -> Request<'a> {
        Request {
            method,
            path,
            query: None,
            scheme: "http",
            host: "192.168.0.1",
            content_type: Some("application/x-www-form-urlencoded"),
            body,
            sign_as: ("web-prod-02", 80),
        }
    }

    #[test]
    fn routes() {
        let r = route(&req("GET", "/", b""));
        assert_eq!(r.status, 200);
        let page = String::from_utf8(r.body).unwrap();
        assert!(page.contains("action=\"/login.cgi\"") && page.contains("name=\"password\""));
        assert!(!page.contains(LOGIN_FAILED));
        assert!(r.logins.is_empty());

        let r = route(&req(
            "POST",
            "/login.cgi",
            b"username=admin&password=%3Cb%3E",
        ));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.logins,
            [Login {
                username: "admin".into(),
                password: "<b>".into()
            }]
        );
        assert!(String::from_utf8(r.body).unwrap().contains(LOGIN_FAILED));

        let r = route(&req(
            "POST",
            "/login.cgi",
            b"username=%22%3E%3Cscript%3E&password=x",
        ));
        let page = String::from_utf8(r.body).unwrap();
        assert!(
            page.contains("value=\"&quot;&gt;&lt;script&gt;\""),
            "{page}"
        );

        let r = route(&req(
            "POST",
            "/cgi-bin/luci",
            b"luci_username=root&luci_password=pw",
        ));
        assert_eq!(r.status, 403);
        assert_eq!(r.logins[0].username, "root");
        assert_eq!(r.logins[0].password, "pw");

        // Credentials posted to a path that does not exist still count.
        let r = route(&req("POST", "/goform/login", b"user=a&pass=b"));
        assert_eq!((r.status, r.logins.len()), (404, 1));
        // A form without a password is no login.
        assert!(
            route(&req("POST", "/login.cgi", b"username=a"))
                .logins
                .is_empty()
        );

        assert_eq!(route(&req("GET", "/cgi-bin/", b"")).status, 403);
        assert_eq!(route(&req("GET", "/cgi-bin", b"")).status, 301);
        assert_eq!(route(&req("GET", "/", b"")).modified, Some(PAGES_MTIME));
        assert_eq!(route(&req("GET", "/favicon.ico", b"")).status, 404);
        assert_eq!(route(&req("GET", "/robots.txt", b"")).status, 200);
        assert_eq!(route(&req("PROPFIND", "/", b"")).status, 501);
        assert_eq!(route(&req("DELETE", "/nope", b"")).status, 404);
        assert_eq!(route(&req("GET", "/index.html/x/y", b"")).status, 200);
        assert_eq!(route(&req("GET", "/robots.txt/", b"")).status, 200);
        let nf = String::from_utf8(route(&req("GET", "/x", b"")).body).unwrap();
        assert!(nf.contains("<title>404 Not Found</title>"));
    }
}

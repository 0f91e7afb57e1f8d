//! The `plc` persona: the embedded web page of the controller the node's Modbus service
//! is (the `ics` profile). It names the same vendor, product and firmware revision as
//! Modbus's device identification (function 43/14), the node's MAC and address, and a
//! serial number and station name drawn from the node's persona; its setup pages ask for
//! a login, which is recorded. Served with lighttpd's wire behaviour and error pages.

use super::form::{field, form_fields, html_escape};
use super::persona::{Login, Reply, Request, is_form};
use super::router;
use honeybee_proto::config::ModbusOptions;

/// One node's controller as its web page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Panel {
    pub vendor: String,
    pub product: String,
    pub revision: String,
    /// `00:80:F4:12:34:56`
    pub mac: String,
    pub address: String,
    pub serial: String,
    /// The station name an integrator gave it: `PUMP-STATION-3`.
    pub station: String,
    /// When the firmware's pages were built (their `Last-Modified`).
    pub mtime: u64,
}

/// Station names of water sites: the Modbus service simulates a tank process (level,
/// temperature, pressure, flow), so the controller runs a tank, a pump or a reservoir.
const SITES: &[&str] = &[
    "PUMP-STATION",
    "LIFT-STATION",
    "BOOSTER-STATION",
    "WTP",
    "WWTP",
    "TANK-FARM",
    "RESERVOIR",
    "WELL",
];
const USER_FIELDS: &[&str] = &["username", "user", "login", "name"];
const PASS_FIELDS: &[&str] = &["password", "pass", "passwd", "pwd"];
const DENIED: &str = "Access denied: invalid user name or password.";

impl Panel {
    /// The controller of the node whose persona is `p`, with the identity its Modbus
    /// service announces (`modbus`: the node's Modbus options, if it runs one).
    pub(crate) fn of(p: &crate::persona::Persona, modbus: Option<&ModbusOptions>) -> Panel {
        let defaults = ModbusOptions::default();
        let o = modbus.unwrap_or(&defaults);
        let mut d = p.stream("http-plc");
        // Schneider Electric's own OUI for a Schneider controller; else the NIC's.
        let mut mac = p.net.mac;
        if o.vendor.to_ascii_lowercase().contains("schneider") {
            mac[..3].copy_from_slice(&[0x00, 0x80, 0xf4]);
        }
        let mac = mac
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let serial = format!(
            "{}{:07}",
            d.pick(&["20", "21", "22", "23"]),
            d.below(10_000_000)
        );
        let station = format!("{}-{}", d.pick(SITES), 1 + d.below(12));
        let mtime = 1_546_300_800 + d.below(3 * 365 * 86_400);
        Panel {
            vendor: o.vendor.clone(),
            product: o.product_code.clone(),
            revision: o.revision.clone(),
            mac,
            address: p.net.addr.to_string(),
            serial,
            station,
            mtime,
        }
    }
}

pub(crate) fn route(panel: &Panel, req: &Request<'_>) -> Reply {
    let logins = if req.method == "POST" && is_form(req) {
        let fields = form_fields(req.body);
        match (field(&fields, USER_FIELDS), field(&fields, PASS_FIELDS)) {
            (Some(u), Some(p)) => vec![Login {
                username: u.to_owned(),
                password: p.to_owned(),
            }],
            _ => Vec::new(),
        }
    } else {
        Vec::new()
    };
    let mut reply = match (req.method, req.path) {
        ("GET" | "HEAD", "/" | "/index.htm" | "/index.html") => {
            Reply::html(200, home(panel)).file(panel.mtime)
        }
        ("GET" | "HEAD", "/login.htm" | "/setup.htm" | "/diag.htm") => {
            Reply::html(200, login(panel, None))
        }
        ("POST", "/login.htm" | "/login.cgi" | "/setup.htm" | "/diag.htm") => {
            Reply::html(200, login(panel, Some(DENIED)))
        }
        ("OPTIONS", _) => {
            Reply::new(200, "text/html", Vec::new()).header("allow", "OPTIONS, GET, HEAD, POST")
        }
        _ => router::error_page(404),
    };
    reply.logins = logins;
    reply
}

fn page(panel: &Panel, body: &str) -> String {
    let vendor = html_escape(&panel.vendor);
    let product = html_escape(&panel.product);
    let station = html_escape(&panel.station);
    format!(
        r#"<!DOCTYPE html>
<html>
<head>
<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">
<title>{vendor} - {product} - {station}</title>
<style>
body{{margin:0;font:12px Verdana,Arial,sans-serif;background:#f2f2f2;color:#222}}
.hd{{background:#3dcd58;color:#fff;padding:10px 16px;font-size:16px}}
.nav{{background:#626469;padding:6px 16px}}
.nav a{{color:#fff;margin-right:18px;text-decoration:none}}
.main{{margin:18px 16px}}
table{{border-collapse:collapse;background:#fff}}
td{{border:1px solid #c8c8c8;padding:5px 10px}}
td.k{{background:#e6e6e6;width:180px}}
.err{{color:#b00000;margin-bottom:8px}}
</style>
</head>
<body>
<div class="hd">{vendor} &nbsp;|&nbsp; {product}</div>
<div class="nav"><a href="/index.htm">Home</a><a href="/diag.htm">Diagnostics</a><a href="/setup.htm">Setup</a></div>
<div class="main">
{body}</div>
</body>
</html>
"#
    )
}

fn home(panel: &Panel) -> String {
    let rows = [
        ("Station name", &panel.station),
        ("Product", &panel.product),
        ("Firmware version", &panel.revision),
        ("Serial number", &panel.serial),
        ("MAC address", &panel.mac),
        ("IP address", &panel.address),
    ]
    .iter()
    .map(|(k, v)| {
        format!(
            "<tr><td class=\"k\">{k}</td><td>{}</td></tr>\n",
            html_escape(v)
        )
    })
    .collect::<String>();
    page(
        panel,
        &format!("<h3>Module information</h3>\n<table>\n{rows}</table>\n"),
    )
}

fn login(panel: &Panel, error: Option<&str>) -> String {
    let error = error.map_or(String::new(), |e| format!("<div class=\"err\">{e}</div>\n"));
    page(
        panel,
        &format!(
            "<h3>Password required</h3>\n{error}<form method=\"post\" action=\"/login.htm\">\n<table>\n<tr><td class=\"k\">User name</td><td><input type=\"text\" name=\"username\" maxlength=\"16\"></td></tr>\n<tr><td class=\"k\">Password</td><td><input type=\"password\" name=\"password\" maxlength=\"16\"></td></tr>\n</table>\n<p><input type=\"submit\" value=\"Login\"></p>\n</form>\n"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(method: &'a str, path: &'a str, body: &'a [u8]) -> Request<'a> {
        Request {
            method,
            path,
            query: None,
            scheme: "http",
            host: "10.0.0.5",
            content_type: Some("application/x-www-form-urlencoded"),
            body,
            sign_as: ("web-prod-02", 80),
        }
    }

    #[test]
    fn shows_the_modbus_identity_and_records_logins() {
        let p = crate::persona::Persona::reference("plc");
        let o = ModbusOptions::default();
        let panel = Panel::of(&p, Some(&o));
        let home = String::from_utf8(route(&panel, &req("GET", "/", b"")).body).unwrap();
        for want in [&o.vendor, &o.product_code, &o.revision, &panel.serial] {
            assert!(home.contains(want.as_str()), "{want} in {home}");
        }
        assert!(home.contains("00:80:F4:"), "{home}");
        let r = route(
            &panel,
            &req("POST", "/login.htm", b"username=USER&password=USER"),
        );
        assert_eq!(r.logins.len(), 1);
        assert!(String::from_utf8(r.body).unwrap().contains(DENIED));
        assert_eq!(route(&panel, &req("GET", "/x", b"")).status, 404);
    }
}

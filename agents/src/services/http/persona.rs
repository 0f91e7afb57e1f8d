//! Routing of one request to a persona's answer: pure, no I/O, so each persona is tested
//! as a table of requests and replies.

use super::{plc, router, wordpress};
use honeybee_proto::config::HttpPersona;

/// What one node's site is: the persona, and the per-node facts its pages show (the
/// router's model and firmware, the blog's name and posts, the PLC's identity), all drawn
/// from the node's persona so no page is the same on two nodes.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    pub persona: HttpPersona,
    pub router: router::Device,
    pub blog: wordpress::Blog,
    pub plc: plc::Panel,
    /// The machine's host name (a configured SSH/Telnet one wins over the persona's).
    pub hostname: String,
}

/// What a persona looks at in a request. The body is complete up to `body::PERSONA_PREFIX`
/// (64 KiB); a longer one is streamed to the capture spool and the persona sees its start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Host for absolute links: the request's `Host` if it is a plain host name, else the
    /// address that was contacted.
    pub host: &'a str,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    /// The name and port Apache's error pages sign with: the request's `Host` (with
    /// Debian's `UseCanonicalName Off`), else the machine's name and the scheme's port.
    pub sign_as: (&'a str, u16),
}

/// Credentials a request carried to a login form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Login {
    pub username: String,
    pub password: String,
}

/// A persona's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Login attempts the request made (several for an XML-RPC multicall).
    pub logins: Vec<Login>,
    /// Served as a static file last modified then (Unix seconds): the server adds
    /// `ETag`/`Last-Modified` and answers conditional and range requests.
    pub modified: Option<u64>,
}

impl Reply {
    pub(crate) fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Reply {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
            logins: Vec::new(),
            modified: None,
        }
    }

    /// This reply as a static file modified at `mtime` (Unix seconds).
    pub(crate) fn file(mut self, mtime: u64) -> Self {
        self.modified = Some(mtime);
        self
    }

    pub(crate) fn html(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Reply::new(status, "text/html", body)
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn redirect(status: u16, location: String) -> Self {
        Reply::html(status, Vec::new()).header("location", location)
    }
}

/// The `Server` header a persona sends when the options leave it empty.
pub(crate) fn default_server(persona: HttpPersona) -> &'static str {
    match persona {
        HttpPersona::Router | HttpPersona::Plc => router::SERVER,
        HttpPersona::Wordpress => wordpress::SERVER,
    }
}

/// The site's answer to `req`.
pub(crate) fn route(site: &Site, req: &Request<'_>) -> Reply {
    match site.persona {
        HttpPersona::Router => router::route(&site.router, req),
        HttpPersona::Wordpress => wordpress::route(&site.blog, req),
        HttpPersona::Plc => plc::route(&site.plc, req),
    }
}

/// The persona's page for a status the server decides before routing (413, 408, 400).
/// `sign_as`: see [`Request::sign_as`].
pub(crate) fn error_page(site: &Site, status: u16, sign_as: (&str, u16)) -> Reply {
    match site.persona {
        HttpPersona::Router | HttpPersona::Plc => router::error_page(status),
        HttpPersona::Wordpress => wordpress::error_page(sign_as, status),
    }
}

/// Whether a request's body is a urlencoded form (what browsers and hydra post).
pub(crate) fn is_form(req: &Request<'_>) -> bool {
    req.content_type.is_none_or(|ct| {
        ct.trim()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    })
}

/// The reason phrase of the persona's server for `status`.
pub(crate) fn server_reason(persona: HttpPersona, status: u16) -> &'static str {
    match persona {
        HttpPersona::Router | HttpPersona::Plc => router::reason(status),
        HttpPersona::Wordpress => reason(status),
    }
}

/// The reason phrase for the statuses personas use (Apache's wording).
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        206 => "Partial Content",
        304 => "Not Modified",
        411 => "Length Required",
        416 => "Requested Range Not Satisfiable",
        505 => "HTTP Version Not Supported",
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        _ => "Error",
    }
}

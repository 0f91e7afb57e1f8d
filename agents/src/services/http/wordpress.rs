//! The `wordpress` persona: a small WordPress 6.4 site on Apache: the home page with its
//! generator tag, `/wp-login.php` (`log`/`pwd`, WordPress's own error messages),
//! `/xmlrpc.php` (`wp.getUsersBlogs`, also batched in `system.multicall`, the usual
//! brute-force route), `/wp-admin/` redirecting to the login, `/readme.html`, robots.

use super::form::{XmlRpcCall, field, form_fields, html_escape, url_encode, xmlrpc_call};
use super::persona::{Login, Reply, Request, is_form, reason};

pub(crate) const SERVER: &str = "Apache/2.4.62 (Debian)";
const VERSION: &str = "6.4.3";
/// Users the site "has": the error message differs for them, as WordPress's does.
const KNOWN_USERS: &[&str] = &["admin", "editor"];
/// Most attempts one `system.multicall` may carry before the rest are ignored.
const MAX_MULTICALL_LOGINS: usize = 500;

const NO_CACHE: &str = "no-cache, must-revalidate, max-age=0, no-store, private";
const EXPIRES_1984: &str = "Wed, 11 Jan 1984 05:00:00 GMT";

/// One node's site: its name, tagline and latest posts, drawn from the node's persona so
/// that no two nodes of a fleet serve the same blog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blog {
    pub name: String,
    pub tagline: &'static str,
    /// Newest first: (date as `YYYY/MM/DD`, slug, title, excerpt).
    pub posts: Vec<(String, String, &'static str, &'static str)>,
}

const PLACES: &[&str] = &[
    "Harbour Street",
    "Oakfield",
    "Northgate",
    "Bluebell",
    "Riverside",
    "Copper Lane",
    "Saltmarsh",
    "Greenway",
    "Kingsley",
    "Hillcrest",
    "Millbrook",
    "Westbury",
    "Elm Row",
    "Larkspur",
];
/// A trade and its tagline.
const TRADES: &[(&str, &str)] = &[
    ("Studio", "Design and print, since 2009"),
    ("Dental Care", "Friendly family dentistry"),
    ("Bakery", "Sourdough, cakes and coffee"),
    ("Photography", "Weddings, portraits and events"),
    ("Architects", "Homes, extensions and restorations"),
    ("Yoga", "Classes for every body"),
    ("Motors", "Servicing, MOT and repairs"),
    ("Consulting", "IT support for small businesses"),
    ("Florist", "Fresh flowers, delivered"),
    ("Veterinary Clinic", "Caring for your pets since 2004"),
    ("Joinery", "Bespoke kitchens and furniture"),
    ("Accountants", "Tax returns and bookkeeping"),
];
const POSTS: &[(&str, &str)] = &[
    (
        "New opening hours",
        "From next month we are open Tuesday to Saturday, 9 to 5. Drop by and say hello&hellip;",
    ),
    (
        "We are hiring",
        "We are looking for a friendly, organised person to join the team part-time&hellip;",
    ),
    (
        "Our new website",
        "Welcome to our new website! You can now find our prices, opening hours and contact details here&hellip;",
    ),
    (
        "Closed for the holidays",
        "We will be closed over the holidays and back in the new year. Thank you for your support&hellip;",
    ),
    (
        "Meet the team",
        "A few words about the people behind the counter, and how we got started&hellip;",
    ),
    (
        "Price update",
        "After three years without a change we are adjusting some of our prices slightly&hellip;",
    ),
    (
        "Thank you for a great year",
        "What a year it has been. A big thank you to all our customers, old and new&hellip;",
    ),
    (
        "Parking at the back",
        "Good news: customers can now use the car park behind the building&hellip;",
    ),
];

impl Blog {
    /// The site of the node whose persona is `p`: posts dated after its install.
    pub(crate) fn of(p: &crate::persona::Persona) -> Blog {
        let mut d = p.stream("http-wordpress");
        let (trade, tagline) = *d.pick(TRADES);
        let name = format!("{} {trade}", d.pick(PLACES));
        let first = d.below(POSTS.len() as u64) as usize;
        let second = (first + 1 + d.below(POSTS.len() as u64 - 1) as usize) % POSTS.len();
        // The newer post a few weeks to months after the install, the older one before.
        let newer = p.install_time + d.range(20, 200) * 86_400;
        let older = newer - d.range(30, 120) * 86_400;
        let posts = [(newer, first), (older, second)]
            .into_iter()
            .map(|(t, i)| {
                let (y, m, day) = crate::persona::civil(t.div_euclid(86_400));
                let (title, excerpt) = POSTS[i];
                (format!("{y}/{m:02}/{day:02}"), slug(title), title, excerpt)
            })
            .collect();
        Blog {
            name,
            tagline,
            posts,
        }
    }

    /// The site the unit tests use.
    #[cfg(test)]
    pub(crate) fn reference() -> Blog {
        Blog {
            name: "Harbour Street Studio".into(),
            tagline: "Design and print, since 2009",
            posts: vec![(
                "2024/01/18".into(),
                "new-opening-hours".into(),
                POSTS[0].0,
                POSTS[0].1,
            )],
        }
    }
}

/// WordPress's slug of a title: lower case, words joined by `-`.
fn slug(title: &str) -> String {
    title
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join("-")
}

pub(crate) fn route(blog: &Blog, req: &Request<'_>) -> Reply {
    if let Some(r) = apache_answer(req) {
        return r;
    }
    let base = format!("{}://{}", req.scheme, req.host);
    let site = html_escape(&blog.name);
    let tagline = blog.tagline;
    match (req.method, req.path) {
        ("GET" | "HEAD", "/" | "/index.php") => Reply::html(200, home(blog, &base)).header(
            "link",
            format!("<{base}/wp-json/>; rel=\"https://api.w.org/\""),
        ),
        (_, "/wp-login.php") => login(&site, req, &base),
        ("POST", "/xmlrpc.php") => xmlrpc(req),
        (_, "/xmlrpc.php") => Reply::new(
            405,
            "text/plain;charset=UTF-8",
            "XML-RPC server accepts POST requests only.",
        )
        .header("allow", "POST"),
        ("GET" | "HEAD", "/wp-admin" | "/wp-admin/") => Reply::redirect(
            302,
            format!(
                "{base}/wp-login.php?redirect_to={}&reauth=1",
                url_encode(&format!("{base}/wp-admin/"))
            ),
        )
        .header("cache-control", NO_CACHE)
        .header("expires", EXPIRES_1984),
        ("GET" | "HEAD", "/readme.html") => Reply::html(200, readme()),
        ("GET" | "HEAD", "/robots.txt") => Reply::new(
            200,
            "text/plain; charset=utf-8",
            format!(
                "User-agent: *\nDisallow: /wp-admin/\nAllow: /wp-admin/admin-ajax.php\n\nSitemap: {base}/wp-sitemap.xml\n"
            ),
        ),
        ("GET" | "HEAD", "/wp-json" | "/wp-json/") => Reply::new(
            200,
            "application/json; charset=UTF-8",
            format!(
                "{{\"name\":\"{site}\",\"description\":\"{tagline}\",\"url\":\"{base}\",\"home\":\"{base}\",\"gmt_offset\":\"0\",\"timezone_string\":\"\",\"namespaces\":[\"oembed/1.0\",\"wp/v2\",\"wp-site-health/v1\"],\"authentication\":[],\"routes\":{{}}}}"
            ),
        ),
        ("OPTIONS", _) => Reply::html(200, Vec::new()).header("allow", "GET,POST,OPTIONS,HEAD"),
        ("GET" | "HEAD" | "POST", p) if p.starts_with("/wp-admin/") => Reply::redirect(
            302,
            format!(
                "{base}/wp-login.php?redirect_to={}&reauth=1",
                url_encode(&format!("{base}{p}"))
            ),
        ),
        ("GET" | "HEAD" | "POST", _) => Reply::html(404, not_found(&site, &base)),
        (m, _) => apache_page(req.sign_as, 405, m, ""),
    }
}

/// Apache's error page, for what is refused before WordPress runs: Apache 2.4's
/// wording (`get_canned_error_string`), signed (`ServerSignature On`, Debian's default)
/// with the server name and port of `sign_as`. `note`: Apache's error note, shown after
/// the 400 text (an over-long header field).
pub(crate) fn error_page(sign_as: (&str, u16), status: u16) -> Reply {
    apache_page(sign_as, status, "POST", "")
}

/// [`error_page`] for a request with `method` (named in the 405, 413 and 501 texts).
pub(crate) fn apache_page(sign_as: (&str, u16), status: u16, method: &str, note: &str) -> Reply {
    let m = html_escape(method);
    let text = match status {
        403 => "You don't have permission to access this resource.".to_owned(),
        404 => "The requested URL was not found on this server.".to_owned(),
        405 => format!("The requested method {m} is not allowed for this URL."),
        408 => "Server timeout waiting for the HTTP request from the client.".to_owned(),
        413 => format!(
            "The requested resource does not allow request data with {m} requests, or the amount of data provided in\nthe request exceeds the capacity limit.\n"
        ),
        414 => "The requested URL's length exceeds the capacity\nlimit for this server.<br />\n"
            .to_owned(),
        416 => "None of the range-specifier values in the Range\nrequest-header field overlap the current extent\nof the selected resource.".to_owned(),
        501 => format!("{m} not supported for current URL.<br />\n"),
        _ => format!(
            "Your browser sent a request that this server could not understand.<br />\n{note}"
        ),
    };
    let mut r = Reply::new(
        status,
        APACHE_ERROR_TYPE,
        format!(
            "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\" \"http://www.w3.org/TR/html4/strict.dtd\">\n<html><head>\n<title>{status} {reason}</title>\n</head><body>\n<h1>{reason}</h1>\n<p>{text}</p>\n<hr>\n<address>{SERVER} Server at {} Port {}</address>\n</body></html>\n",
            html_escape(sign_as.0),
            sign_as.1,
            reason = reason(status),
        ),
    );
    match status {
        // TraceEnable Off (Debian's security.conf): refused with an empty Allow.
        405 if method == "TRACE" => r = r.header("allow", ""),
        405 | 501 => r = r.header("allow", "HEAD,GET,POST,OPTIONS"),
        _ => {}
    }
    r
}

/// The type of Apache's own error pages.
pub(crate) const APACHE_ERROR_TYPE: &str = "text/html; charset=iso-8859-1";

/// Whether Apache itself answers `method` on `path` before WordPress runs: `.ht*` files
/// (`<FilesMatch "^\.ht">` in Debian's apache2.conf), TRACE, methods it refuses.
fn apache_answer(req: &Request<'_>) -> Option<Reply> {
    let file = req.path.rsplit('/').next().unwrap_or("");
    match req.method {
        "TRACE" | "CONNECT" => Some(apache_page(req.sign_as, 405, req.method, "")),
        "OPTIONS" if req.path == "*" => Some(Reply::new(200, "", Vec::new())),
        _ if file.starts_with(".ht") => Some(apache_page(req.sign_as, 403, req.method, "")),
        "GET" | "HEAD" | "POST" | "OPTIONS" => None,
        m if APACHE_METHODS.contains(&m) => Some(apache_page(req.sign_as, 405, m, "")),
        m => Some(apache_page(req.sign_as, 501, m, "")),
    }
}

/// Whether Apache 2.4 knows `method` (any other is answered 501).
pub(crate) fn apache_knows(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "POST" | "OPTIONS" | "TRACE" | "CONNECT"
    ) || APACHE_METHODS.contains(&method)
}

/// Methods Apache 2.4 registers (`ap_method_registry`); any other is 501.
const APACHE_METHODS: &[&str] = &[
    "PUT",
    "DELETE",
    "PATCH",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "VERSION-CONTROL",
    "CHECKOUT",
    "UNCHECKOUT",
    "CHECKIN",
    "UPDATE",
    "LABEL",
    "REPORT",
    "MKWORKSPACE",
    "MKACTIVITY",
    "BASELINE-CONTROL",
    "MERGE",
];

fn login(site: &str, req: &Request<'_>, base: &str) -> Reply {
    let action = req
        .query
        .and_then(|q| {
            form_fields(q.as_bytes())
                .into_iter()
                .find(|(k, _)| k == "action")
                .map(|(_, v)| v)
        })
        .unwrap_or_default();
    let reply = if req.method == "POST" && is_form(req) && action.is_empty() {
        let fields = form_fields(req.body);
        let user = field(&fields, &["log"]).unwrap_or("").to_owned();
        let pass = field(&fields, &["pwd"]).unwrap_or("").to_owned();
        let error = login_error(&user, &pass, base);
        let mut r = Reply::html(200, login_page(site, base, Some(&error), &user));
        if !user.is_empty() || !pass.is_empty() {
            r.logins.push(Login {
                username: user,
                password: pass,
            });
        }
        r
    } else {
        Reply::html(200, login_page(site, base, None, ""))
    };
    reply
        .header("expires", EXPIRES_1984)
        .header("cache-control", NO_CACHE)
        .header(
            "set-cookie",
            "wordpress_test_cookie=WP%20Cookie%20check; path=/",
        )
        .header("x-frame-options", "SAMEORIGIN")
        .header("referrer-policy", "strict-origin-when-cross-origin")
}

/// WordPress's message for a failed login (they differ by case, and attackers use the
/// difference to enumerate users, so the persona keeps it).
fn login_error(user: &str, pass: &str, base: &str) -> String {
    let lost = format!("{base}/wp-login.php?action=lostpassword");
    if user.is_empty() {
        "<strong>Error:</strong> The username field is empty.".to_owned()
    } else if pass.is_empty() {
        "<strong>Error:</strong> The password field is empty.".to_owned()
    } else if KNOWN_USERS.contains(&user) {
        format!(
            "<strong>Error:</strong> The password you entered for the username <strong>{}</strong> is incorrect. <a href=\"{lost}\">Lost your password?</a>",
            html_escape(user)
        )
    } else if user.contains('@') {
        "<strong>Error:</strong> Unknown email address. Check again or try your username."
            .to_owned()
    } else {
        format!(
            "<strong>Error:</strong> The username <strong>{}</strong> is not registered on this site. If you are unsure of your username, try your email address instead.",
            html_escape(user)
        )
    }
}

fn xmlrpc(req: &Request<'_>) -> Reply {
    let call = xmlrpc_call(req.body);
    let logins = xmlrpc_logins(&call);
    let body = match call.method.as_deref() {
        Some("wp.getUsersBlogs") => fault(403, "Incorrect username or password."),
        Some("system.multicall") => {
            let faults: String = (0..logins.len().max(1))
                .map(|_| {
                    "<value><struct><member><name>faultCode</name><value><int>403</int></value></member><member><name>faultString</name><value><string>Incorrect username or password.</string></value></member></struct></value>\n"
                })
                .collect();
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse>\n  <params>\n    <param>\n      <value>\n      <array><data>\n{faults}</data></array>\n      </value>\n    </param>\n  </params>\n</methodResponse>\n"
            )
        }
        Some("system.listMethods") => {
            let methods: String = [
                "system.multicall",
                "system.listMethods",
                "system.getCapabilities",
                "demo.addTwoNumbers",
                "demo.sayHello",
                "pingback.extensions.getPingbacks",
                "pingback.ping",
                "wp.getUsersBlogs",
                "wp.getPosts",
                "wp.getProfile",
                "wp.getOptions",
                "metaWeblog.getUsersBlogs",
                "blogger.getUsersBlogs",
            ]
            .iter()
            .map(|m| format!("  <value><string>{m}</string></value>\n"))
            .collect();
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse>\n  <params>\n    <param>\n      <value>\n      <array><data>\n{methods}</data></array>\n      </value>\n    </param>\n  </params>\n</methodResponse>\n"
            )
        }
        Some("demo.sayHello") => "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse>\n  <params>\n    <param>\n      <value>\n        <string>Hello!</string>\n      </value>\n    </param>\n  </params>\n</methodResponse>\n".to_owned(),
        Some(m) if m.starts_with("wp.") || m.starts_with("metaWeblog.") || m.starts_with("blogger.") => {
            fault(403, "Incorrect username or password.")
        }
        Some(m) => fault(
            -32601,
            &format!("server error. requested method {} does not exist.", html_escape(m)),
        ),
        None => fault(-32700, "parse error. not well formed"),
    };
    let mut r = Reply::new(200, "text/xml; charset=UTF-8", body);
    r.logins = logins;
    r
}

/// Username and password of every `wp.getUsersBlogs` in the call, batched ones included:
/// the two string values after the method name (or the first two of a direct call).
fn xmlrpc_logins(call: &XmlRpcCall) -> Vec<Login> {
    let pair = |s: &[String], i: usize| match (s.get(i), s.get(i + 1)) {
        (Some(u), Some(p)) => Some(Login {
            username: u.clone(),
            password: p.clone(),
        }),
        _ => None,
    };
    match call.method.as_deref() {
        Some("wp.getUsersBlogs") => pair(&call.strings, 0).into_iter().collect(),
        Some("system.multicall") => call
            .strings
            .iter()
            .enumerate()
            .filter(|(_, s)| *s == "wp.getUsersBlogs")
            .filter_map(|(i, _)| pair(&call.strings, i + 1))
            .take(MAX_MULTICALL_LOGINS)
            .collect(),
        _ => Vec::new(),
    }
}

fn fault(code: i32, text: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse>\n  <fault>\n    <value>\n      <struct>\n        <member>\n          <name>faultCode</name>\n          <value><int>{code}</int></value>\n        </member>\n        <member>\n          <name>faultString</name>\n          <value><string>{text}</string></value>\n        </member>\n      </struct>\n    </value>\n  </fault>\n</methodResponse>\n"
    )
}

fn head(site: &str, base: &str, title: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en-US">
<head>
	<meta charset="UTF-8" />
	<meta name="viewport" content="width=device-width, initial-scale=1" />
<meta name='robots' content='max-image-preview:large' />
<title>{title}</title>
<link rel="alternate" type="application/rss+xml" title="{site} &raquo; Feed" href="{base}/feed/" />
<link rel="alternate" type="application/rss+xml" title="{site} &raquo; Comments Feed" href="{base}/comments/feed/" />
<link rel='stylesheet' id='wp-block-library-css' href='{base}/wp-includes/css/dist/block-library/style.min.css?ver={VERSION}' media='all' />
<link rel='stylesheet' id='twentytwentyfour-style-css' href='{base}/wp-content/themes/twentytwentyfour/style.css?ver=1.0' media='all' />
<link rel="https://api.w.org/" href="{base}/wp-json/" />
<link rel="EditURI" type="application/rsd+xml" title="RSD" href="{base}/xmlrpc.php?rsd" />
<meta name="generator" content="WordPress {VERSION}" />
</head>
"#
    )
}

fn home(blog: &Blog, base: &str) -> String {
    let site = html_escape(&blog.name);
    let posts: String = blog
        .posts
        .iter()
        .map(|(date, slug, title, excerpt)| {
            format!(
                "<h2 class=\"wp-block-post-title\"><a href=\"{base}/{date}/{slug}/\">{title}</a></h2>\n<div class=\"wp-block-post-excerpt\"><p>{excerpt}</p></div>\n"
            )
        })
        .collect();
    format!(
        r#"{}
<body class="home blog wp-embed-responsive">
<div class="wp-site-blocks">
<header class="wp-block-template-part">
<p class="wp-block-site-title"><a href="{base}" rel="home" aria-current="page">{site}</a></p>
<p class="wp-block-site-tagline">{}</p>
<nav class="wp-block-navigation"><a href="{base}/about/">About</a> <a href="{base}/contact/">Contact</a></nav>
</header>
<main class="wp-block-group">
{posts}</main>
<footer class="wp-block-template-part"><p>Designed with <a href="https://wordpress.org" rel="nofollow">WordPress</a></p></footer>
</div>
<script src="{base}/wp-includes/js/dist/interactivity.min.js?ver={VERSION}" id="wp-interactivity-js"></script>
</body>
</html>
"#,
        head(&site, base, &site),
        blog.tagline
    )
}

fn not_found(site: &str, base: &str) -> String {
    format!(
        r#"{}
<body class="error404 wp-embed-responsive">
<div class="wp-site-blocks">
<header class="wp-block-template-part"><p class="wp-block-site-title"><a href="{base}" rel="home">{site}</a></p></header>
<main class="wp-block-group">
<h1 class="wp-block-heading">Page Not Found</h1>
<p>The page you are looking for does not exist, or it has been moved. Please try searching using the form below.</p>
<form role="search" method="get" action="{base}/" class="wp-block-search"><label for="s">Search</label><input type="search" id="s" name="s" value="" placeholder="Search..." required /><button type="submit">Search</button></form>
</main>
</div>
</body>
</html>
"#,
        head(site, base, &format!("Page not found &#8211; {site}"))
    )
}

fn login_page(site: &str, base: &str, error: Option<&str>, username: &str) -> String {
    let error = error.map_or(String::new(), |e| {
        format!("<div id=\"login_error\" class=\"notice notice-error\">\t{e}<br />\n</div>\n")
    });
    let shake = if error.is_empty() {
        ""
    } else {
        "<script type=\"text/javascript\">\naddLoadEvent = function(func){if(typeof jQuery!=='undefined')jQuery(function(){func();});else if(typeof wpOnload!=='function'){wpOnload=func;}else{var oldonload=wpOnload;wpOnload=function(){oldonload();func();}}};\nfunction s(id,pos){g(id).left=pos+'px';}\nfunction g(id){return document.getElementById(id).style;}\nfunction shake(id,a,d){c=a.shift();s(id,c);if(a.length>0){setTimeout(function(){shake(id,a,d);},d);}else{try{g(id).position='static';wp_attempt_focus();}catch(e){}}}\naddLoadEvent(function(){ var p=new Array(15,30,15,0,-15,-30,-15,0);p=p.concat(p.concat(p));var i=document.forms[0].id;g(i).position='relative';shake(i,p,20);});\n</script>\n"
    };
    let username = html_escape(username);
    format!(
        r#"<!DOCTYPE html>
<html lang="en-US">
<head>
	<meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
	<title>Log In &lsaquo; {site} &#8212; WordPress</title>
	<meta name='robots' content='max-image-preview:large, noindex, noarchive' />
<link rel='stylesheet' id='dashicons-css' href='{base}/wp-includes/css/dashicons.min.css?ver={VERSION}' media='all' />
<link rel='stylesheet' id='buttons-css' href='{base}/wp-includes/css/buttons.min.css?ver={VERSION}' media='all' />
<link rel='stylesheet' id='forms-css' href='{base}/wp-admin/css/forms.min.css?ver={VERSION}' media='all' />
<link rel='stylesheet' id='l10n-css' href='{base}/wp-admin/css/l10n.min.css?ver={VERSION}' media='all' />
<link rel='stylesheet' id='login-css' href='{base}/wp-admin/css/login.min.css?ver={VERSION}' media='all' />
	<meta name='referrer' content='strict-origin-when-cross-origin' />
		<meta name="viewport" content="width=device-width" />
		</head>
	<body class="login no-js login-action-login wp-core-ui  locale-en-us">
	<script type="text/javascript">
/* <![CDATA[ */
document.body.className = document.body.className.replace('no-js','js');
/* ]]> */
</script>
		<div id="login">
		<h1><a href="https://wordpress.org/">Powered by WordPress</a></h1>
	{error}
		<form name="loginform" id="loginform" action="{base}/wp-login.php" method="post">
			<p>
				<label for="user_login">Username or Email Address</label>
				<input type="text" name="log" id="user_login" class="input" value="{username}" size="20" autocapitalize="off" autocomplete="username" required="required" />
			</p>

			<div class="user-pass-wrap">
				<label for="user_pass">Password</label>
				<div class="wp-pwd">
					<input type="password" name="pwd" id="user_pass" class="input password-input" value="" size="20" autocomplete="current-password" spellcheck="false" required="required" />
					<button type="button" class="button button-secondary wp-hide-pw hide-if-no-js" data-toggle="0" aria-label="Show password">
						<span class="dashicons dashicons-visibility" aria-hidden="true"></span>
					</button>
				</div>
			</div>
						<p class="forgetmenot"><input name="rememberme" type="checkbox" id="rememberme" value="forever"  /> <label for="rememberme">Remember Me</label></p>
			<p class="submit">
				<input type="submit" name="wp-submit" id="wp-submit" class="button button-primary button-large" value="Log In" />
									<input type="hidden" name="redirect_to" value="{base}/wp-admin/" />
									<input type="hidden" name="testcookie" value="1" />
			</p>
		</form>

					<p id="nav">
				<a href="{base}/wp-login.php?action=lostpassword">Lost your password?</a>			</p>
					<p id="backtoblog">
			<a href="{base}/">&larr; Go to {site}</a>		</p>
			</div>
		{shake}
	</body>
	</html>
"#
    )
}

fn readme() -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
	<meta name="viewport" content="width=device-width" />
	<meta http-equiv="Content-Type" content="text/html; charset=utf-8" />
	<title>WordPress &#8250; ReadMe</title>
	<link rel="stylesheet" href="wp-admin/css/install.css?ver=20100228" type="text/css" />
</head>
<body>
<h1 id="logo">
	<a href="https://wordpress.org/"><img alt="WordPress" src="wp-admin/images/wordpress-logo.png" /></a>
</h1>
<p style="text-align: center">Semantic Personal Publishing Platform</p>

<h2>First Things First</h2>
<p>Welcome. WordPress is a very special project to me. Every developer and contributor adds something unique to the mix, and together we create something beautiful that I am proud to be a part of. Thousands of hours have gone into WordPress, and we are dedicated to making it better every day. Thank you for making it part of your world.</p>
<p style="text-align: right">&#8212; Matt Mullenweg</p>

<h2>Installation: Famous 5-minute install</h2>
<ol>
	<li>Unzip the package in an empty directory and upload everything.</li>
	<li>Open <span class="file"><a href="wp-admin/install.php">wp-admin/install.php</a></span> in your browser. It will take you through the process to set up a <code>wp-config.php</code> file with your database connection details.</li>
	<li>Once the configuration file is set up, the installer will set up the tables needed for your site.</li>
</ol>

<h2>Updating</h2>
<h3>Using the Automatic Updater</h3>
<ol>
	<li>Open <span class="file"><a href="wp-admin/update-core.php">wp-admin/update-core.php</a></span> in your browser and follow the instructions.</li>
	<li>You wanted more, perhaps? That&#8217;s it!</li>
</ol>

<h2>System Requirements</h2>
<ul>
	<li><a href="https://secure.php.net/">PHP</a> version <strong>7.0</strong> or greater.</li>
	<li><a href="https://www.mysql.com/">MySQL</a> version <strong>5.0</strong> or greater.</li>
</ul>

<h2>Share the Love</h2>
<p>WordPress has no multi-million dollar marketing campaign or celebrity sponsors, but we do have something even better&#8212;you. If you enjoy WordPress please consider telling a friend, setting it up for someone less knowledgeable than yourself, or writing the author of a media article that overlooks us.</p>
<p><!-- version {VERSION} --></p>

<h2>License</h2>
<p>WordPress is free software, and is released under the terms of the <abbr>GPL</abbr> (GNU General Public License) version 2 or (at your option) any later version. See <a href="license.txt">license.txt</a>.</p>

</body>
</html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference site's answer (shadows the glob-imported `route`).
    fn route(r: &Request<'_>) -> Reply {
        super::route(&Blog::reference(), r)
    }

    fn req<'a>(
        method: &'a str,
        path: &'a str,
        query: Option<&'a str>,
        body: &'a [u8],
    ) -> Request<'a> {
        Request {
            method,
            path,
            query,
            scheme: "http",
            host: "blog.example",
            content_type: None,
            body,
            sign_as: ("web-prod-02", 80),
        }
    }

    fn text(r: &Reply) -> String {
        String::from_utf8(r.body.clone()).unwrap()
    }

    #[test]
    fn pages() {
        let r = route(&req("GET", "/", None, b""));
        assert_eq!(r.status, 200);
        assert!(text(&r).contains("<meta name=\"generator\" content=\"WordPress 6.4.3\" />"));
        let r = route(&req("GET", "/wp-admin/", None, b""));
        assert_eq!(r.status, 302);
        let loc = &r.headers.iter().find(|h| h.0 == "location").unwrap().1;
        assert_eq!(
            loc,
            "http://blog.example/wp-login.php?redirect_to=http%3A%2F%2Fblog.example%2Fwp-admin%2F&reauth=1"
        );
        assert_eq!(
            route(&req("GET", "/wp-admin/options.php", None, b"")).status,
            302
        );
        assert_eq!(route(&req("GET", "/xmlrpc.php", None, b"")).status, 405);
        assert!(text(&route(&req("GET", "/readme.html", None, b""))).contains("version 6.4.3"));
        assert_eq!(route(&req("GET", "/nope", None, b"")).status, 404);
        assert_eq!(route(&req("DELETE", "/", None, b"")).status, 405);
    }

    #[test]
    fn login_form() {
        let r = route(&req("GET", "/wp-login.php", None, b""));
        assert_eq!(r.status, 200);
        assert!(r.logins.is_empty());
        assert!(!text(&r).contains("login_error"));

        let r = route(&req(
            "POST",
            "/wp-login.php",
            None,
            b"log=admin&pwd=hunter2&wp-submit=Log+In",
        ));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.logins,
            [Login {
                username: "admin".into(),
                password: "hunter2".into()
            }]
        );
        assert!(text(&r).contains(
            "The password you entered for the username <strong>admin</strong> is incorrect."
        ));

        let r = route(&req("POST", "/wp-login.php", None, b"log=%3Cx%3E&pwd=a"));
        assert!(text(&r).contains("The username <strong>&lt;x&gt;</strong> is not registered"));
        let r = route(&req("POST", "/wp-login.php", None, b"log=a&pwd="));
        assert!(text(&r).contains("The password field is empty."));
        // The lost-password form is not a login.
        let r = route(&req(
            "POST",
            "/wp-login.php",
            Some("action=lostpassword"),
            b"user_login=a",
        ));
        assert!(r.logins.is_empty());
    }

    #[test]
    fn xmlrpc_logins_recorded() {
        let one = b"<methodCall><methodName>wp.getUsersBlogs</methodName><params><param><value><string>admin</string></value></param><param><value><string>pw1</string></value></param></params></methodCall>";
        let r = route(&req("POST", "/xmlrpc.php", None, one));
        assert_eq!(r.logins.len(), 1);
        assert_eq!(
            (r.logins[0].username.as_str(), r.logins[0].password.as_str()),
            ("admin", "pw1")
        );
        assert!(text(&r).contains("Incorrect username or password."));

        let call = |p: &str| {
            format!(
                "<value><struct><member><name>methodName</name><value><string>wp.getUsersBlogs</string></value></member><member><name>params</name><value><array><data><value><array><data><value><string>admin</string></value><value><string>{p}</string></value></data></array></value></data></array></value></member></struct></value>"
            )
        };
        let multi = format!(
            "<methodCall><methodName>system.multicall</methodName><params><param><value><array><data>{}{}</data></array></value></param></params></methodCall>",
            call("a"),
            call("b")
        );
        let r = route(&req("POST", "/xmlrpc.php", None, multi.as_bytes()));
        let pw: Vec<_> = r.logins.iter().map(|l| l.password.as_str()).collect();
        assert_eq!(pw, ["a", "b"]);
        assert_eq!(text(&r).matches("faultCode").count(), 2);

        let r = route(&req(
            "POST",
            "/xmlrpc.php",
            None,
            b"<methodCall><methodName>x.y</methodName></methodCall>",
        ));
        assert!(r.logins.is_empty());
        assert!(text(&r).contains("requested method x.y does not exist"));
    }
}

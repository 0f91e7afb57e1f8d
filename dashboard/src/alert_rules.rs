//! The alerts module's rules and outputs, edited from the dashboard: read, validated (the
//! same checks `modules/examples/alerts/alerts.py` makes when it starts, so a saved file is
//! one the module accepts), written, and applied by restarting the managed module.
//!
//! Which file: when `core.toml` declares a `[[module]]` named `alerts` whose arguments say
//! `--config PATH`, that file (TOML or JSON, by its extension), so the operator's TOML and
//! the dashboard edit the same thing; otherwise `<data-dir>/dashboard/alerts.toml`. Applying
//! unloads the managed `alerts` module and loads it again with the same command (from
//! `core.toml`, else `python3 alerts.py --config PATH`, the script found beside the binary
//! or named by `HONEYBEE_ALERTS_SCRIPT`), with the permissions the rules need.

use crate::auth::{AdminOnly, Authed};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, unexpected};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use honeybee_proto::admin::{AdminRequest as Req, AdminResponse as Resp, ModuleSpec};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

/// The module's name, as `core.toml` and the docs call it.
pub const MODULE: &str = "alerts";
/// Largest configuration accepted.
const MAX_CONFIG: usize = 256 * 1024;
const MAX_RULES: usize = 200;
const MAX_OUTPUTS: usize = 50;

pub const SEVERITIES: [&str; 5] = ["info", "low", "medium", "high", "critical"];
pub const RULE_TYPES: [&str; 5] = [
    "login_success",
    "auth_username",
    "scan_detected",
    "new_capture",
    "source_on_nodes",
];
const SYSLOG_FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];
const TOP_KEYS: [&str; 5] = [
    "hostname",
    "publish",
    "captures_poll_seconds",
    "rules",
    "outputs",
];
const RULE_KEYS: [&str; 9] = [
    "name",
    "type",
    "severity",
    "cooldown_seconds",
    "usernames",
    "min_nodes",
    "alert_existing",
    "max_sources",
    "outputs",
];
const WEBHOOK_KEYS: [&str; 6] = ["type", "name", "url", "format", "headers", "timeout"];
const SYSLOG_KEYS: [&str; 9] = [
    "type", "name", "host", "port", "protocol", "facility", "hostname", "app_name", "sd_id",
];
const FILE_KEYS: [&str; 3] = ["type", "name", "path"];

/// One problem: where (`rules[1].usernames`) and what.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

fn problem(out: &mut Vec<Problem>, path: impl Into<String>, message: impl Into<String>) {
    out.push(Problem {
        path: path.into(),
        message: message.into(),
    });
}

fn unknown_keys(out: &mut Vec<Problem>, at: &str, o: &Map<String, Value>, known: &[&str]) {
    for k in o.keys() {
        // Keys starting with '#' are comments (JSON has no other way), as alerts.py allows.
        if !k.starts_with('#') && !known.contains(&k.as_str()) {
            problem(
                out,
                format!("{at}.{k}"),
                format!("unknown key; known: {}", known.join(", ")),
            );
        }
    }
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Every problem alerts.py would refuse the configuration for (all of them, not the first).
pub fn validate(cfg: &Value) -> Vec<Problem> {
    let mut out = Vec::new();
    let Some(top) = cfg.as_object() else {
        problem(&mut out, "", "the configuration must be a table");
        return out;
    };
    unknown_keys(&mut out, "configuration", top, &TOP_KEYS);
    if let Some(h) = top.get("hostname")
        && !h.is_string()
    {
        problem(&mut out, "hostname", "a text");
    }
    if let Some(p) = top.get("publish")
        && !p.is_boolean()
    {
        problem(&mut out, "publish", "true or false");
    }
    if let Some(p) = top.get("captures_poll_seconds")
        && !number(p).is_some_and(|n| n > 0.0 && n <= 86400.0)
    {
        problem(
            &mut out,
            "captures_poll_seconds",
            "a number of seconds above 0 (at most a day)",
        );
    }
    // Outputs first: rules name them.
    let mut output_names: Vec<String> = Vec::new();
    match top.get("outputs") {
        None => {}
        Some(Value::Array(outs)) if outs.len() <= MAX_OUTPUTS => {
            for (i, o) in outs.iter().enumerate() {
                let at = format!("outputs[{i}]");
                let Some(o) = o.as_object() else {
                    problem(&mut out, &at, "an output is a table");
                    continue;
                };
                let kind = o.get("type").and_then(Value::as_str).unwrap_or("");
                let name = match o.get("name") {
                    Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
                    Some(_) => {
                        problem(&mut out, format!("{at}.name"), "a non-empty text");
                        format!("{kind}{i}")
                    }
                    None => format!("{kind}{i}"),
                };
                if output_names.contains(&name) {
                    problem(
                        &mut out,
                        format!("{at}.name"),
                        format!("two outputs are named {name:?}"),
                    );
                }
                output_names.push(name);
                match kind {
                    "webhook" => {
                        unknown_keys(&mut out, &at, o, &WEBHOOK_KEYS);
                        let url = o.get("url").and_then(Value::as_str).unwrap_or("");
                        if !(url.starts_with("http://") || url.starts_with("https://"))
                            || url.len() < 10
                            || url.chars().any(char::is_whitespace)
                        {
                            problem(
                                &mut out,
                                format!("{at}.url"),
                                "a webhook needs an http:// or https:// URL",
                            );
                        }
                        if let Some(f) = o.get("format")
                            && !matches!(f.as_str(), Some("json" | "slack"))
                        {
                            problem(&mut out, format!("{at}.format"), "json or slack");
                        }
                        if let Some(h) = o.get("headers") {
                            let ok = h.as_object().is_some_and(|m| {
                                m.iter().all(|(k, v)| {
                                    !k.is_empty()
                                        && k.bytes().all(|b| b.is_ascii_graphic() && b != b':')
                                        && v.as_str()
                                            .is_some_and(|v| !v.contains('\r') && !v.contains('\n'))
                                })
                            });
                            if !ok {
                                problem(
                                    &mut out,
                                    format!("{at}.headers"),
                                    "header names to one-line text values",
                                );
                            }
                        }
                        if let Some(t) = o.get("timeout")
                            && !number(t).is_some_and(|n| n > 0.0 && n <= 300.0)
                        {
                            problem(
                                &mut out,
                                format!("{at}.timeout"),
                                "seconds, above 0 and at most 300",
                            );
                        }
                    }
                    "syslog" => {
                        unknown_keys(&mut out, &at, o, &SYSLOG_KEYS);
                        if let Some(h) = o.get("host")
                            && !h.as_str().is_some_and(|h| {
                                !h.trim().is_empty() && !h.contains(char::is_whitespace)
                            })
                        {
                            problem(&mut out, format!("{at}.host"), "a host name or address");
                        }
                        if let Some(p) = o.get("port")
                            && !p.as_u64().is_some_and(|p| (1..=65535).contains(&p))
                        {
                            problem(&mut out, format!("{at}.port"), "a port, 1 to 65535");
                        }
                        if let Some(p) = o.get("protocol")
                            && !matches!(p.as_str(), Some("udp" | "tcp"))
                        {
                            problem(&mut out, format!("{at}.protocol"), "udp or tcp");
                        }
                        if let Some(f) = o.get("facility") {
                            let ok = match f {
                                Value::String(s) => SYSLOG_FACILITIES.contains(&s.as_str()),
                                Value::Number(n) => n.as_u64().is_some_and(|n| n <= 23),
                                _ => false,
                            };
                            if !ok {
                                problem(
                                    &mut out,
                                    format!("{at}.facility"),
                                    format!(
                                        "a facility name ({}) or 0..23",
                                        SYSLOG_FACILITIES.join(", ")
                                    ),
                                );
                            }
                        }
                        for k in ["hostname", "app_name", "sd_id"] {
                            if let Some(v) = o.get(k)
                                && !v.is_string()
                            {
                                problem(&mut out, format!("{at}.{k}"), "a text");
                            }
                        }
                    }
                    "file" => {
                        unknown_keys(&mut out, &at, o, &FILE_KEYS);
                        let p = o.get("path").and_then(Value::as_str).unwrap_or("");
                        if !p.starts_with('/') || p.contains('\0') {
                            problem(
                                &mut out,
                                format!("{at}.path"),
                                "a file output needs an absolute path",
                            );
                        }
                    }
                    _ => problem(&mut out, format!("{at}.type"), "webhook, syslog or file"),
                }
            }
        }
        Some(Value::Array(_)) => problem(
            &mut out,
            "outputs",
            format!("at most {MAX_OUTPUTS} outputs"),
        ),
        Some(_) => problem(&mut out, "outputs", "a list of outputs"),
    }
    match top.get("rules") {
        Some(Value::Array(rules)) if !rules.is_empty() && rules.len() <= MAX_RULES => {
            let mut names: Vec<String> = Vec::new();
            for (i, r) in rules.iter().enumerate() {
                let at = format!("rules[{i}]");
                let Some(r) = r.as_object() else {
                    problem(&mut out, &at, "a rule is a table");
                    continue;
                };
                unknown_keys(&mut out, &at, r, &RULE_KEYS);
                let ty = r.get("type").and_then(Value::as_str).unwrap_or("");
                if !RULE_TYPES.contains(&ty) {
                    problem(
                        &mut out,
                        format!("{at}.type"),
                        format!("one of {}", RULE_TYPES.join(", ")),
                    );
                }
                let name = match r.get("name") {
                    Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
                    Some(_) => {
                        problem(&mut out, format!("{at}.name"), "a non-empty text");
                        String::new()
                    }
                    None => ty.to_owned(),
                };
                if names.contains(&name) {
                    problem(
                        &mut out,
                        format!("{at}.name"),
                        format!("rule names must be unique ({name:?} twice)"),
                    );
                }
                names.push(name);
                if let Some(s) = r.get("severity")
                    && !s.as_str().is_some_and(|s| SEVERITIES.contains(&s))
                {
                    problem(
                        &mut out,
                        format!("{at}.severity"),
                        format!("one of {}", SEVERITIES.join(", ")),
                    );
                }
                if let Some(c) = r.get("cooldown_seconds")
                    && !number(c).is_some_and(|n| (0.0..=86400.0 * 30.0).contains(&n))
                {
                    problem(
                        &mut out,
                        format!("{at}.cooldown_seconds"),
                        "seconds, 0 or more",
                    );
                }
                let users = r.get("usernames");
                if let Some(u) = users
                    && !u.as_array().is_some_and(|a| {
                        a.iter().all(|x| x.as_str().is_some_and(|s| !s.is_empty()))
                    })
                {
                    problem(&mut out, format!("{at}.usernames"), "a list of user names");
                }
                if ty == "auth_username"
                    && users.and_then(Value::as_array).is_none_or(Vec::is_empty)
                {
                    problem(
                        &mut out,
                        format!("{at}.usernames"),
                        "auth_username needs at least one user name to watch",
                    );
                }
                if let Some(m) = r.get("min_nodes")
                    && !m.as_u64().is_some_and(|m| (2..=10_000).contains(&m))
                {
                    problem(
                        &mut out,
                        format!("{at}.min_nodes"),
                        "a whole number, at least 2",
                    );
                }
                if let Some(m) = r.get("max_sources")
                    && !m.as_u64().is_some_and(|m| (1..=10_000_000).contains(&m))
                {
                    problem(
                        &mut out,
                        format!("{at}.max_sources"),
                        "a whole number, at least 1",
                    );
                }
                if let Some(a) = r.get("alert_existing")
                    && !a.is_boolean()
                {
                    problem(&mut out, format!("{at}.alert_existing"), "true or false");
                }
                match r.get("outputs") {
                    None => {}
                    Some(Value::Array(list)) => {
                        for o in list {
                            match o.as_str() {
                                Some(o) if output_names.iter().any(|n| n == o) => {}
                                Some(o) => problem(
                                    &mut out,
                                    format!("{at}.outputs"),
                                    format!("no output named {o:?}"),
                                ),
                                None => problem(&mut out, format!("{at}.outputs"), "output names"),
                            }
                        }
                    }
                    Some(_) => problem(&mut out, format!("{at}.outputs"), "a list of output names"),
                }
            }
        }
        Some(Value::Array(r)) if r.is_empty() => {
            problem(&mut out, "rules", "no rules configured: add at least one")
        }
        Some(Value::Array(_)) => problem(&mut out, "rules", format!("at most {MAX_RULES} rules")),
        None => problem(&mut out, "rules", "no rules configured: add at least one"),
        Some(_) => problem(&mut out, "rules", "a list of rules"),
    }
    out
}

/// The permissions the rules need (as alerts.py's `needs`).
pub fn permissions(cfg: &Value) -> Vec<String> {
    let mut p = vec!["events:read".to_owned()];
    if cfg.get("publish").and_then(Value::as_bool).unwrap_or(true) {
        p.push("alerts:write".into());
    }
    let capture = cfg["rules"]
        .as_array()
        .is_some_and(|r| r.iter().any(|r| r["type"] == "new_capture"));
    if capture {
        p.push("captures:read".into());
    }
    p.sort();
    p
}

/// Where the configuration lives and how the module is started.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub path: PathBuf,
    /// `core.toml` or `dashboard`.
    pub declared_in: &'static str,
    /// The command to (re)load; `None` when the script cannot be found.
    pub spec: Option<ModuleSpec>,
}

fn script_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HONEYBEE_ALERTS_SCRIPT") {
        return Some(PathBuf::from(p));
    }
    let rel = Path::new("modules/examples/alerts/alerts.py");
    let exe = std::env::current_exe().ok()?;
    // A development tree (target/debug/honeybee) or an install beside share/.
    let mut candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(4)
        .map(|d| d.join(rel))
        .collect();
    // The source tree this binary was built from (a development checkout).
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel));
    candidates.push(Path::new("/usr/share/honeybee").join(rel));
    candidates.push(Path::new("/opt/honeybee").join(rel));
    candidates.into_iter().find(|p| p.is_file())
}

/// Finds the alerts module's configuration for the core in `data_dir`.
pub fn target(data_dir: &Path) -> Target {
    let declared = std::fs::read_to_string(data_dir.join(honeybee_core::config::CONFIG_FILE))
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| {
            t.get("module")?.as_array()?.iter().find_map(|m| {
                let m = m.as_table()?;
                if m.get("name")?.as_str()? != MODULE {
                    return None;
                }
                let args: Vec<String> = m
                    .get("args")?
                    .as_array()?
                    .iter()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect();
                let at = args.iter().position(|a| a == "--config")?;
                let path = PathBuf::from(args.get(at + 1)?);
                let spec = ModuleSpec {
                    name: MODULE.into(),
                    command: m.get("command")?.as_str()?.to_owned(),
                    args,
                    permissions: Vec::new(),
                };
                Some((path, spec))
            })
        });
    match declared {
        Some((path, spec)) => Target {
            path,
            declared_in: "core.toml",
            spec: Some(spec),
        },
        None => {
            let path = crate::init::DashboardPaths::new(data_dir).alerts_config();
            let spec = script_path().map(|s| ModuleSpec {
                name: MODULE.into(),
                command: "python3".into(),
                args: vec![
                    s.to_string_lossy().into_owned(),
                    "--config".into(),
                    path.to_string_lossy().into_owned(),
                ],
                permissions: Vec::new(),
            });
            Target {
                path,
                declared_in: "dashboard",
                spec,
            }
        }
    }
}

fn is_json(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "json")
}

/// The file's configuration as JSON (an absent file is an empty configuration).
pub fn read(path: &Path) -> Result<(Value, String), String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((json!({"rules": [], "outputs": []}), String::new()));
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    if text.len() > MAX_CONFIG {
        return Err(format!("{} is larger than 256 KiB", path.display()));
    }
    let v = if is_json(path) {
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
    } else {
        let t: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| format!("{}: {}", path.display(), e.message()))?;
        serde_json::to_value(t).map_err(|e| e.to_string())?
    };
    Ok((v, text))
}

/// The configuration as the file will hold it.
pub fn render(path: &Path, cfg: &Value) -> Result<String, String> {
    if is_json(path) {
        return serde_json::to_string_pretty(cfg).map_err(|e| e.to_string());
    }
    let t: toml::Table =
        serde_json::from_value(cfg.clone()).map_err(|e| format!("not expressible in TOML: {e}"))?;
    let body = toml::to_string(&t).map_err(|e| format!("not expressible in TOML: {e}"))?;
    Ok(format!(
        "# HoneyBee alerts module configuration (modules/examples/alerts), written by the dashboard.\n{body}"
    ))
}

/// Writes atomically (a temporary file renamed over the old one), readable by the owner
/// only: webhook URLs and headers are secrets.
fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp-dashboard");
    honeybee_pki::files::write_private(&tmp, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot replace {}: {e}", path.display()))
}

async fn module_state(app: &AppState, user: &str) -> ApiResult<Option<(String, bool)>> {
    let Resp::Modules(m) = app.ask(user, Req::ListModules).await? else {
        return Err(unexpected());
    };
    Ok(m.into_iter()
        .find(|m| m.name == MODULE)
        .map(|m| (m.state, m.managed)))
}

pub async fn get(State(app): State<AppState>, a: Authed) -> ApiResult<Json<Value>> {
    let t = target(app.core.data_dir());
    let (cfg, text) = read(&t.path).map_err(ApiError::bad_request)?;
    let state = module_state(&app, a.user()).await?;
    let problems = if text.is_empty() {
        Vec::new()
    } else {
        validate(&cfg)
    };
    Ok(Json(json!({
        "path": t.path, "declared_in": t.declared_in, "exists": !text.is_empty(),
        "config": cfg, "text": text, "problems": problems,
        "module": {"state": state.as_ref().map(|s| s.0.clone()), "managed": state.as_ref().map(|s| s.1),
                   "can_apply": t.spec.is_some(), "command": t.spec.as_ref().map(|s| s.command.clone()), "args": t.spec.as_ref().map(|s| s.args.clone())},
        "rule_types": RULE_TYPES, "severities": SEVERITIES, "facilities": SYSLOG_FACILITIES,
    })))
}

#[derive(Deserialize)]
pub struct PutBody {
    config: Value,
    /// Validate only.
    #[serde(default)]
    dry_run: bool,
    /// Restart (or start) the managed module with the new configuration.
    #[serde(default)]
    apply: bool,
}

fn refused(problems: Vec<Problem>) -> ApiError {
    let first = problems
        .first()
        .map(|p| {
            if p.path.is_empty() {
                p.message.clone()
            } else {
                format!("{}: {}", p.path, p.message)
            }
        })
        .unwrap_or_default();
    let mut e = ApiError::bad_request(format!(
        "the alerts configuration has {} problem{}; first: {first}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    ));
    e.problems = Some(json!(problems));
    e
}

pub async fn put(
    State(app): State<AppState>,
    AdminOnly(a): AdminOnly,
    Json(b): Json<PutBody>,
) -> ApiResult<Json<Value>> {
    let problems = validate(&b.config);
    if !problems.is_empty() {
        return Err(refused(problems));
    }
    let t = target(app.core.data_dir());
    let text = render(&t.path, &b.config).map_err(ApiError::bad_request)?;
    if text.len() > MAX_CONFIG {
        return Err(ApiError::bad_request(
            "the configuration is larger than 256 KiB",
        ));
    }
    if b.dry_run {
        return Ok(Json(json!({"valid": true, "text": text})));
    }
    write(&t.path, &text).map_err(ApiError::internal)?;
    tracing::info!(by = %a.user(), path = %t.path.display(), "alerts configuration saved");
    let mut applied = false;
    if b.apply {
        let Some(mut spec) = t.spec.clone() else {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "saved, but the alerts module's script was not found to start it: set HONEYBEE_ALERTS_SCRIPT or declare the module in core.toml",
            ));
        };
        spec.permissions = permissions(&b.config);
        if let Some((_, managed)) = module_state(&app, a.user()).await? {
            if !managed {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "saved, but the running alerts module is not managed by the core (it was started by hand): restart it yourself",
                ));
            }
            app.ask(
                a.user(),
                Req::UnloadModule {
                    name: MODULE.into(),
                },
            )
            .await?;
        }
        app.ask(a.user(), Req::LoadModule(spec)).await?;
        applied = true;
    }
    Ok(Json(
        json!({"saved": t.path, "text": text, "applied": applied}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../modules/examples/alerts/alerts.example.toml");
        read(&path).unwrap().0
    }

    fn paths(cfg: &Value) -> Vec<String> {
        validate(cfg).into_iter().map(|p| p.path).collect()
    }

    #[test]
    fn the_documented_example_is_valid_and_round_trips() {
        let cfg = example();
        assert_eq!(validate(&cfg), vec![]);
        assert_eq!(
            permissions(&cfg),
            vec!["alerts:write", "captures:read", "events:read"]
        );
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.toml", "a.json"] {
            let p = dir.path().join(name);
            write(&p, &render(&p, &cfg).unwrap()).unwrap();
            assert_eq!(read(&p).unwrap().0, cfg, "{name}");
        }
        // An absent file is an empty configuration (no rules yet), not an error.
        let (empty, text) = read(&dir.path().join("none.toml")).unwrap();
        assert!(text.is_empty());
        assert_eq!(paths(&empty), vec!["rules"]);
    }

    #[test]
    fn every_problem_is_named_where_it_is() {
        let mut cfg = example();
        cfg["rules"][1]["usernames"] = json!([]);
        cfg["rules"][0]["severity"] = json!("urgent");
        cfg["rules"][2]["type"] = json!("port_scan");
        cfg["rules"][3]["outputs"] = json!(["nowhere"]);
        cfg["rules"][4]["min_nodes"] = json!(1);
        cfg["rules"][4]["name"] = json!("login-success");
        cfg["outputs"][0]["url"] = json!("ftp://x");
        cfg["outputs"][1]["format"] = json!("teams");
        cfg["outputs"][2]["port"] = json!(70000);
        cfg["outputs"][2]["facility"] = json!("local9");
        cfg["outputs"][2]["protocol"] = json!("quic");
        cfg["outputs"][3]["path"] = json!("relative/alerts.jsonl");
        cfg["outputs"][0]["headers"] = json!({"X-Bad": "a\r\nInjected: 1"});
        cfg["rules"][0]["colour"] = json!("red");
        let got = paths(&cfg);
        for want in [
            "rules[1].usernames",
            "rules[0].severity",
            "rules[2].type",
            "rules[3].outputs",
            "rules[4].min_nodes",
            "rules[4].name",
            "outputs[0].url",
            "outputs[1].format",
            "outputs[2].port",
            "outputs[2].facility",
            "outputs[2].protocol",
            "outputs[3].path",
            "outputs[0].headers",
            "rules[0].colour",
        ] {
            assert!(got.iter().any(|g| g == want), "{want} not in {got:?}");
        }
        assert_eq!(paths(&json!("rules")), vec![""]);
        assert_eq!(paths(&json!({"rules": "x"})), vec!["rules"]);
        let e = refused(validate(&cfg));
        assert!(e.message.contains("14 problems"), "{}", e.message);
    }

    #[test]
    fn the_core_toml_declaration_names_the_file_and_command() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("core.toml"),
            "[[module]]\nname = \"geo\"\ncommand = \"python3\"\nargs = [\"geo.py\"]\n\n\
             [[module]]\nname = \"alerts\"\ncommand = \"/usr/bin/python3\"\n\
             args = [\"/opt/a/alerts.py\", \"--config\", \"/etc/honeybee/alerts.json\"]\n",
        )
        .unwrap();
        let t = target(dir.path());
        assert_eq!(t.path, Path::new("/etc/honeybee/alerts.json"));
        assert_eq!(t.declared_in, "core.toml");
        assert_eq!(t.spec.unwrap().command, "/usr/bin/python3");
        std::fs::write(dir.path().join("core.toml"), "").unwrap();
        let t = target(dir.path());
        assert_eq!(t.declared_in, "dashboard");
        assert!(t.path.ends_with("dashboard/alerts.toml"));
    }
}

//! The OpenAPI 3.1 document served at `/api/openapi.json`, written by hand (it says what
//! the handlers in `api.rs` take and answer; a test checks it names every route).

use serde_json::{Map, Value, json};

fn obj(props: &[(&str, Value)]) -> Value {
    let p: Map<String, Value> = props
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    json!({"type": "object", "properties": p})
}

fn s() -> Value {
    json!({"type": "string"})
}
fn i() -> Value {
    json!({"type": "integer"})
}
fn b() -> Value {
    json!({"type": "boolean"})
}
fn arr(items: Value) -> Value {
    json!({"type": "array", "items": items})
}
fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}
/// `honeybee node check --json`'s document (see `realism.rs`).
fn realism_check() -> Value {
    let failure = obj(&[("check", s()), ("expected", s()), ("got", s())]);
    let service = obj(&[
        ("name", s()),
        (
            "kind",
            json!({"type": "string", "description": "the service kind, or `consistency` for the cross-service checks against the node persona"}),
        ),
        ("reference", s()),
        ("passed", i()),
        ("total", i()),
        ("failures", arr(failure)),
        ("skipped", nullable("string")),
    ]);
    let mut v = obj(&[
        ("node", s()),
        ("received_ms", i()),
        ("passed", i()),
        ("total", i()),
        (
            "report",
            obj(&[
                ("started_ms", i()),
                ("duration_ms", i()),
                ("services", arr(service)),
            ]),
        ),
    ]);
    v["type"] = json!(["object", "null"]);
    v
}
fn nullable(t: &str) -> Value {
    json!({"type": [t, "null"]})
}

struct Op {
    summary: &'static str,
    params: Vec<Value>,
    body: Option<Value>,
    ok: Value,
    ok_status: &'static str,
    changes: bool,
    public: bool,
}

fn op(summary: &'static str, ok: Value) -> Op {
    Op {
        summary,
        params: Vec::new(),
        body: None,
        ok,
        ok_status: "200",
        changes: false,
        public: false,
    }
}

impl Op {
    fn path(mut self, name: &str, desc: &str) -> Op {
        self.params.push(json!({"name": name, "in": "path", "required": true, "description": desc, "schema": s()}));
        self
    }
    fn query(mut self, name: &str, schema: Value, desc: &str) -> Op {
        self.params.push(json!({"name": name, "in": "query", "required": false, "description": desc, "schema": schema}));
        self
    }
    fn body(mut self, schema: Value) -> Op {
        self.body = Some(schema);
        self.changes = true;
        self
    }
    fn changes(mut self) -> Op {
        self.changes = true;
        self
    }
    fn status(mut self, s: &'static str) -> Op {
        self.ok_status = s;
        self
    }
    fn public(mut self) -> Op {
        self.public = true;
        self
    }
    fn render(self) -> Value {
        let err = json!({"description": "error", "content": {"application/json": {"schema": reference("Error")}}});
        let mut responses = Map::new();
        responses.insert(
            self.ok_status.into(),
            if self.ok.is_null() {
                json!({"description": "done"})
            } else {
                json!({"description": "ok", "content": {"application/json": {"schema": self.ok}}})
            },
        );
        responses.insert("400".into(), err.clone());
        if !self.public {
            responses.insert("401".into(), err.clone());
            responses.insert("503".into(), err.clone());
        }
        if self.changes {
            responses.insert("403".into(), json!({"description": "no or wrong X-CSRF-Token, or a viewer", "content": {"application/json": {"schema": reference("Error")}}}));
        }
        let mut o = json!({"summary": self.summary, "responses": responses});
        let mut params = self.params;
        if self.changes && !self.public {
            params.push(json!({"name": "X-CSRF-Token", "in": "header", "required": true, "schema": s(), "description": "the session's csrf token"}));
        }
        if !params.is_empty() {
            o["parameters"] = Value::Array(params);
        }
        if let Some(body) = self.body {
            o["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": body}}});
        }
        if self.public {
            o["security"] = json!([]);
        }
        o
    }
}

/// (path, method, operation) for every route.
fn operations() -> Vec<(&'static str, &'static str, Op)> {
    let me = obj(&[("username", s()), ("role", s()), ("csrf", s())]);
    let key_count = arr(obj(&[("key", s()), ("count", i())]));
    let creds = arr(obj(&[("username", s()), ("password", s()), ("count", i())]));
    let range = |o: Op| {
        o.query("since_ms", i(), "start (ms since the epoch)")
            .query("until_ms", i(), "end, exclusive")
    };
    vec![
        ("/api/login", "post", op("Sign in; sets the hb_session cookie", me.clone())
            .body(obj(&[("username", s()), ("password", s())])).public()),
        ("/api/logout", "post", op("Sign out", Value::Null).changes().status("204")),
        ("/api/me", "get", op("Who is signed in, and the CSRF token", me)),
        ("/api/overview", "get", op("Counts for the overview page", obj(&[
            ("nodes_online", i()), ("nodes_total", i()), ("events_total", i()),
            ("nodes_degraded", i()), ("alerts_total", i()), ("alerts_open", i()),
            ("incidents_open", i()), ("incidents_open_severe", json!({"type": "integer", "description": "open incidents that are critical or high"})),
            ("events_per_minute", arr(obj(&[("t", i()), ("count", i())]))),
            ("top_sources", key_count.clone()), ("top_credentials", creds.clone()),
            ("top_services", key_count.clone()), ("alerts", arr(reference("Alert"))),
            ("geo", arr(obj(&[("country", s()), ("lat", nullable("number")), ("lon", nullable("number")), ("count", i())]))),
        ]))),
        ("/api/nodes", "get", op("Every node", arr(reference("Node")))),
        ("/api/devices", "get", op("Devices that report through a node's aggregator service (syslog, SNMP traps)", arr(obj(&[
            ("node", s()), ("service", s()), ("name", s()), ("address", s()), ("kind", s()),
            ("last_seen_ms", nullable("integer")), ("events", i()),
        ])))),
        ("/api/nodes/{id}", "get", op("One node, its services and configuration", obj(&[
            ("node", reference("Node")),
            ("services", arr(obj(&[("name", s()), ("kind", s()), ("listen", s()), ("enabled", b()),
                ("running", b()), ("error", nullable("string")), ("active_sessions", i())]))),
            ("config_toml", s()),
        ])).path("id", "node id")),
        ("/api/nodes/{id}/health", "get", op("Health history kept by the dashboard", arr(obj(&[
            ("time_ms", i()), ("cpu_percent", json!({"type": "number"})), ("rss_bytes", i()),
            ("spool_events", i()), ("spool_dropped", i()), ("active_sessions", i()), ("uptime_s", i()),
        ]))).path("id", "node id")),
        ("/api/nodes/{id}/config", "put", op("Replace a node's services and push them to it", obj(&[("config_toml", s())]))
            .path("id", "node id").body(obj(&[("config_toml", s())]))),
        ("/api/nodes/{id}/revoke", "post", op("Revoke a node", obj(&[("revoked", s())])).path("id", "node id").changes()),
        ("/api/nodes/{id}/check", "get", op("The node's latest realism check the core holds (null if none since the core started)", realism_check())
            .path("id", "node id")),
        ("/api/nodes/{id}/check", "post", op("Run the realism check on a live node now: it probes its own services on loopback as scanners do and compares them with references recorded from the real programs (a few seconds; admins only)", realism_check())
            .path("id", "node id").changes()),
        ("/api/upgrades", "get", op("Agent versions and remote upgrade: the version each online node reported, the packages the core can send (its packages/ folder), which online nodes run a version older than the newest package, and each node's last upgrade outcome from the core's audit log", obj(&[
            ("core_version", s()), ("offer", nullable("string")), ("outdated", i()),
            ("packages", arr(obj(&[("version", s()), ("bytes", i())]))),
            ("nodes", arr(obj(&[("id", s()), ("name", s()), ("online", b()), ("version", nullable("string")),
                ("outdated", b()),
                ("last", json!({"type": ["object", "null"], "properties": {
                    "state": {"enum": ["sent", "installing", "done", "failed", "rolled_back"]},
                    "version": {"type": "string"}, "time_ms": {"type": "integer"}, "detail": {"type": "string"}}}))]))),
        ]))),
        ("/api/upgrades", "post", op("Send the agent package to one node, or to every outdated online node (admins only); the outcome arrives later in GET /api/upgrades", obj(&[
            ("version", s()),
            ("results", arr(obj(&[("node", s()), ("sent", b()), ("detail", s())]))),
        ])).body(obj(&[("node", s()), ("version", s())])).changes()),
        ("/api/tokens", "get", op("Enrolment tokens (no secrets)", arr(obj(&[
            ("id", s()), ("role", s()), ("name", s()), ("labels", json!({"type": "object"})),
            ("created_ms", i()), ("expires_ms", i()), ("uses_total", i()), ("uses_left", i()), ("revoked", b()),
        ])))),
        ("/api/tokens", "post", op("Create a one-time enrolment token", obj(&[("id", s()), ("token", s()), ("command", s()), ("install_command", nullable("string"))]))
            .body(obj(&[("name", s()), ("role", json!({"enum": ["agent", "relay"]})), ("ttl_s", i()),
                ("labels", json!({"type": "object", "additionalProperties": {"type": "string"}}))]))),
        ("/api/events", "get", range(op("Events, newest first, one page. With `query`, also the parsed query (for applying it to live events) and how many events were examined (`scan_capped`: the 10,000-event bound was reached before the page filled; continue with `next`). A query that does not parse is a 400 with `position`, the byte offset of the problem", obj(&[
            ("events", arr(reference("Event"))), ("next", nullable("string")),
            ("query", json!({"type": "object"})), ("scanned", i()), ("scan_capped", b()),
            ("total", json!({"type": "integer", "description": "first page only (no `before`): how many events match over every page, counted by the core"})),
            ("total_capped", json!({"type": "boolean", "description": "the count stopped at 1,000,000: at least `total` match"})),
            ("total_exact", json!({"type": "boolean", "description": "false when the query has terms the core cannot count (OR, NOT, text, other fields): `total` is then an upper bound"})),
        ])))
            .query("node", s(), "node id").query("service", s(), "service name")
            .query("kind", s(), "event kind").query("src", s(), "source IP or prefix ending in . or :")
            .query("q", s(), "free text").query("limit", i(), "1..500")
            .query("before", s(), "cursor: a previous page's next")
            .query("query", s(), "search language: field:value, AND/OR/NOT (or -), parentheses, quotes, * wildcards, source.ip CIDR (service:ssh AND kind:command AND NOT source.ip:10.0.0.0/8); at most 1024 bytes, 16 levels, 32 terms")),
        ("/api/events/{node}/{seq}", "get", op("One event", reference("Event"))
            .path("node", "node id").path("seq", "sequence number")),
        ("/api/sessions/{id}", "get", op("An attacker session's events and transcript", obj(&[
            ("events", arr(reference("Event"))),
            ("transcript", json!({"type": ["object", "null"], "properties": {"sha256": s(), "size": i()}})),
        ])).path("id", "session id (16 hex)")),
        ("/api/captures", "get", op("Captures, newest first", arr(obj(&[
            ("sha256", s()), ("size", i()), ("kind", s()), ("node", s()), ("service", s()),
            ("session", nullable("string")), ("time_ms", i()), ("meta", json!({"type": "object"})),
        ]))).query("limit", i(), "at most 1000")),
        ("/api/captures/{sha256}", "get", {
            let mut o = op("Download a capture's content", Value::Null);
            o.ok = Value::Null;
            o.path("sha256", "hex SHA-256")
        }),
        ("/api/alerts", "get", op("Alerts from modules, newest first", arr(reference("Alert"))).query("limit", i(), "at most 1000")),
        ("/api/alerts/count", "get", op("How many alerts there are and how many are open (not a page: every alert)",
            obj(&[("total", i()), ("open", i())]))),
        ("/api/alerts/{id}/ack", "post", op("Acknowledge an alert", obj(&[("acked", i())])).path("id", "alert id").changes()),
        ("/api/analytics", "get", range(op("Time series and top lists", obj(&[
            ("since_ms", i()), ("until_ms", i()), ("bucket_ms", i()),
            ("by_service", json!({"type": "object", "additionalProperties": arr(arr(i()))})),
            ("by_node", json!({"type": "object", "additionalProperties": arr(arr(i()))})),
            ("geo", arr(obj(&[("country", s()), ("lat", nullable("number")), ("lon", nullable("number")), ("count", i())]))),
            ("top_credentials", creds.clone()), ("top_commands", key_count.clone()),
            ("top_sources", key_count.clone()), ("by_kind", key_count.clone()),
            ("shell_services", json!({"type": "array", "items": s(), "description": "the services whose command lines top_commands counts (kind ssh or telnet on any node)"})),
        ]))).query("bucket_ms", i(), "bucket width")),
        ("/api/incidents", "get", op("Incidents: alerts of one source against one node and service, each within window_ms of the last, grouped. Sorted and paged here", obj(&[
            ("incidents", arr(reference("Incident"))), ("total", i()), ("open", i()),
            ("ignored_alerts", i()), ("window_ms", i()), ("synced", b()),
        ])).query("state", json!({"enum": ["open", "acknowledged", "all"]}), "default open")
            .query("severity", s(), "comma-separated: info, low, medium, high, critical")
            .query("rule", s(), "login_success, auth_username, scan_detected, new_capture, source_on_nodes, node_degraded, or a module name")
            .query("q", s(), "text in source, node, service or title")
            .query("since_ms", i(), "last seen at or after").query("until_ms", i(), "first seen before")
            .query("sort", json!({"enum": ["last_seen", "first_seen", "count", "severity", "source", "node", "service", "sessions"]}), "default last_seen")
            .query("order", json!({"enum": ["asc", "desc"]}), "default desc")
            .query("limit", i(), "1..500 (default 50)").query("offset", i(), "rows to skip")),
        ("/api/incidents/{id}", "get", op("One incident with its alerts (newest 500) and the sessions in it", reference("Incident")).path("id", "incident id")),
        ("/api/incidents/ack", "post", op("Acknowledge incidents (admin only); their alerts are acknowledged in the core too", obj(&[("acked", i()), ("alerts_acked", i())]))
            .body(obj(&[("ids", arr(i()))]))),
        ("/api/ignore", "get", op("The ignore list: alerts from these sources or to these ports are not grouped into incidents", arr(reference("Ignore")))),
        ("/api/ignore", "post", op("Add an ignore entry (admin only)", obj(&[("id", i()), ("kind", s()), ("value", s())]))
            .body(obj(&[("kind", json!({"enum": ["source", "port"]})), ("value", json!({"type": "string", "description": "an IP address or CIDR block, or a port"})), ("note", s())]))),
        ("/api/alert-rules", "get", op("The alerts module's rules and outputs: the file core.toml's `alerts` module reads (`--config`), else dashboard/alerts.toml; its problems if it has any; whether the module runs", obj(&[
            ("path", s()), ("declared_in", json!({"enum": ["core.toml", "dashboard"]})), ("exists", b()),
            ("config", json!({"type": "object", "description": "as in alerts.example.toml: hostname, publish, captures_poll_seconds, rules[], outputs[]"})),
            ("text", s()), ("problems", arr(obj(&[("path", s()), ("message", s())]))),
            ("module", obj(&[("state", nullable("string")), ("managed", nullable("boolean")), ("can_apply", b()), ("command", nullable("string")), ("args", json!({"type": ["array", "null"], "items": s()}))])),
            ("rule_types", arr(s())), ("severities", arr(s())), ("facilities", arr(s())),
        ]))),
        ("/api/alert-rules", "put", op("Validate and save the alerts module's configuration (admin only); `apply` restarts the managed module with it. Refused with 400 `{error, problems: [{path, message}]}` listing every problem", obj(&[("saved", s()), ("text", s()), ("applied", b()), ("valid", b())]))
            .body(obj(&[("config", json!({"type": "object"})), ("dry_run", b()), ("apply", b())]))),
        ("/api/ignore/{id}", "delete", op("Remove an ignore entry (admin only)", obj(&[("deleted", i())])).path("id", "entry id").changes()),
        ("/api/modules", "get", op("Modules", arr(obj(&[
            ("name", s()), ("state", s()), ("managed", b()), ("transport", s()), ("version", s()),
            ("permissions", arr(s())), ("pid", nullable("integer")), ("restarts", i()),
            ("subscriptions", i()), ("queue_depth", i()), ("dropped", i()),
            ("last_exit", json!({"type": ["string", "null"], "description": "how a managed module's last process ended (exit code 1, killed by signal 9)"})),
            ("log_tail", json!({"type": "array", "items": s(), "description": "a managed module's last output lines (at most 20)"})),
            ("builtin", json!({"type": "boolean", "description": "the dashboard's own connection: it cannot be unloaded"})),
            ("crash_looping", b()),
        ])))),
        ("/api/modules", "post", op("Load a managed module", obj(&[("loaded", s())]))
            .body(obj(&[("name", s()), ("command", s()), ("args", arr(s())), ("permissions", arr(s()))]))),
        ("/api/modules/{name}", "delete", op("Unload a managed module; the built-in dashboard module is refused with 409", obj(&[("unloaded", s())])).path("name", "module name").changes()),
        ("/api/reports/export", "get", {
            let mut o = op("Download the events of a time range", Value::Null);
            o.ok = Value::Null;
            o.query("from", i(), "start (ms)").query("to", i(), "end (ms), exclusive")
                .query("format", json!({"enum": ["csv", "json"]}), "file format")
        }),
        ("/api/reports/summary", "get", op("Summary of a time range", obj(&[
            ("from", i()), ("to", i()), ("events_total", i()), ("by_service", key_count.clone()),
            ("by_kind", key_count.clone()), ("top_sources", key_count.clone()),
            ("top_credentials", creds), ("top_commands", key_count.clone()),
            ("nodes", key_count), ("alerts", arr(reference("Alert"))),
        ])).query("from", i(), "start (ms)").query("to", i(), "end (ms), exclusive")),
        ("/api/users", "get", op("Dashboard users (admin only)", arr(obj(&[("username", s()), ("role", s()), ("created_ms", i())])))),
        ("/api/users", "post", op("Create a dashboard user (admin only)", obj(&[("username", s()), ("role", s())]))
            .body(obj(&[("username", s()), ("password", s()), ("role", json!({"enum": ["admin", "viewer"]}))]))),
        ("/api/users/{name}", "delete", op("Delete a dashboard user (admin only)", obj(&[("deleted", s())])).path("name", "user name").changes()),
        ("/api/audit", "get", op("The core's audit log, newest first, a page at a time (admin only; viewers get 403). Paging and the text filter cover the newest 10,000 rows (`capped` says the window is full)", obj(&[
            ("entries", arr(obj(&[("time_ms", i()), ("actor", s()), ("action", s()), ("outcome", s()), ("source", nullable("string")), ("detail", s())]))),
            ("offset", i()), ("limit", i()), ("more", b()), ("scanned", i()), ("capped", b()),
        ])).query("limit", i(), "rows per page, 1..500 (default 50)").query("offset", i(), "rows to skip, < 10000 (default 0)").query("q", s(), "case-insensitive text in actor, action, outcome, source or detail (at most 200 bytes)").query("since_ms", i(), "only rows at or after this time (ms), within the same window")),
        ("/api/openapi.json", "get", op("This document", json!({"type": "object"})).public()),
        ("/api/ws", "get", op("WebSocket of live events (`{type: event, id, event}`, in store order), node changes and alerts (upgrade); `{type: missed, count, reason}` says how many events this socket will not get (count null: unknown)", Value::Null).status("101")
            .query("last_id", i(), "reconnecting: the last event id this page has; the events kept after it (up to 4096) are sent first, or a missed count")),
    ]
}

pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for (path, method, o) in operations() {
        let entry = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        entry[method] = o.render();
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "HoneyBee dashboard API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "REST and WebSocket API of the HoneyBee dashboard backend; see dashboard/API.md.",
        },
        "servers": [{"url": "/"}],
        "security": [{"session": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "hb_session"},
            },
            "schemas": {
                "Error": obj(&[("error", s())]),
                "Node": obj(&[
                    ("id", s()), ("name", s()), ("role", s()), ("mode", s()), ("online", b()),
                    ("version", nullable("string")),
                    ("revoked", b()), ("last_seen_ms", i()), ("first_seen_ms", i()),
                    ("cert_not_after_ms", i()), ("addr", nullable("string")), ("via", nullable("string")),
                    ("labels", json!({"type": "object", "additionalProperties": {"type": "string"}})),
                    ("health", json!({"type": ["object", "null"]})),
                    ("state", json!({"enum": ["healthy", "degraded", "offline"],
                        "description": "the core's assessment: offline without a live connection; degraded when an enabled service is not listening or the spool dropped events since the last report"})),
                    ("services_up", i()), ("services_total", i()),
                    ("spool_dropped", i()), ("last_event_ms", nullable("integer")),
                    ("problems", arr(s())),
                ]),
                "Alert": obj(&[
                    ("id", i()), ("time_ms", i()), ("module", s()), ("severity", s()), ("title", s()),
                    ("body", s()), ("node", nullable("string")), ("seq", nullable("integer")),
                    ("acked_ms", nullable("integer")), ("acked_by", nullable("string")),
                ]),
                "Incident": obj(&[
                    ("id", i()), ("source", nullable("string")), ("node", nullable("string")),
                    ("service", nullable("string")), ("severity", s()), ("rules", arr(s())),
                    ("title", json!({"type": "string", "description": "the newest alert's title"})),
                    ("count", i()), ("sessions", i()), ("first_seen_ms", i()), ("last_seen_ms", i()),
                    ("state", json!({"enum": ["open", "acknowledged"]})),
                    ("acked_ms", nullable("integer")), ("acked_by", nullable("string")),
                    ("alerts", json!({"type": "array", "description": "detail only: id, time_ms, module, rule, severity, title, body, node, seq, session, capture, port", "items": {"type": "object"}})),
                    ("session_ids", json!({"type": "array", "items": s(), "description": "detail only"})),
                ]),
                "Ignore": obj(&[
                    ("id", i()), ("kind", json!({"enum": ["source", "port"]})), ("value", s()), ("note", s()),
                    ("created_ms", i()), ("created_by", s()), ("hits", json!({"type": "integer", "description": "alerts it kept out"})),
                ]),
                "Event": {
                    "type": "object",
                    "description": "The core's ECS JSON for one event (as `honeybee events --json`), plus event.time_ms",
                    "properties": {"@timestamp": s(), "event": {"type": "object"}, "observer": {"type": "object"},
                        "service": {"type": "object"}, "source": {"type": ["object", "null"]}},
                },
            },
        },
    })
}

/// Every (method, path) the document describes.
pub fn described() -> Vec<(String, String)> {
    let doc = document();
    let mut out = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (p, ops) in paths {
            for m in ops.as_object().into_iter().flat_map(|o| o.keys()) {
                out.push((m.clone(), p.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let mut routes: Vec<(String, String)> = crate::api::routes()
            .into_iter()
            .map(|r| (r.method.to_owned(), r.path.to_owned()))
            .collect();
        let mut doc = super::described();
        routes.sort();
        doc.sort();
        assert_eq!(routes, doc);
    }
}

"""HoneyBee example module "alerts": rules over the event stream and the capture store,
sent to webhooks (generic JSON or Slack-compatible), syslog (RFC 5424 over UDP, or TCP
with RFC 6587 octet counting) and a JSON-lines file, and published as HoneyBee alerts.
Standard library only.

Rules (see README.md and alerts.example.toml):
  login_success    an auth_attempt the honeypot accepted (honeybee.success == true)
  auth_username    an auth_attempt whose user.name is in a watch list
  scan_detected    an event with event.action == "scan_detected" (emitted by extension
                   nodes, which are not built yet)
  new_capture      a capture whose sha256 was not in the store before (polls "captures")
  source_on_nodes  one source address seen on at least N different nodes

    honeybee module load alerts --permissions events:read,alerts:write,captures:read -- \\
        python3 modules/examples/alerts/alerts.py --config /etc/honeybee/alerts.toml
"""

import argparse
import collections
import http.client
import json
import os
import signal
import socket
import sys
import time
import unicodedata
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
from honeybee_module import Module, ModuleError  # noqa: E402

VERSION = "1.0.0"
SEVERITIES = ("info", "low", "medium", "high", "critical")
# RFC 5424 severities: critical → 2 (Critical), high → 3 (Error), medium → 4 (Warning),
# low → 5 (Notice), info → 6 (Informational).
SYSLOG_SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}
SYSLOG_FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "audit": 13, "alert": 14,
    "clock": 15, "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20,
    "local5": 21, "local6": 22, "local7": 23,
}
# 32473 is the private enterprise number RFC 5612 reserves for documentation; set your own
# organisation's with `sd_id` in the syslog output.
DEFAULT_SD_ID = "honeybee@32473"
RULE_TYPES = ("login_success", "auth_username", "scan_detected", "new_capture", "source_on_nodes")
DEFAULT_COOLDOWN = {"auth_username": 300.0, "scan_detected": 300.0}


class ConfigError(Exception):
    """The configuration is not usable; the message says why."""


# -- configuration ---------------------------------------------------------------------


def load_config(path):
    """Reads a .toml (tomllib) or .json configuration file."""
    with open(path, "rb") as f:
        raw = f.read()
    if path.endswith(".toml"):
        import tomllib
        try:
            return tomllib.loads(raw.decode("utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: {e}") from None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None


def _check_keys(where, obj, allowed):
    if not isinstance(obj, dict):
        raise ConfigError(f"{where} must be a table/object")
    # Keys starting with "#" are comments (JSON has no other way to say what a file is).
    unknown = sorted(k for k in set(obj) - set(allowed) if not str(k).startswith("#"))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")


# -- rules -----------------------------------------------------------------------------


def _text(v):
    """A value as alert bodies show it: JSON spelling for booleans, lists and maps."""
    if isinstance(v, (bool, dict, list)):
        return json.dumps(v, sort_keys=True)
    return str(v)


def _pairs(items):
    return " ".join(f"{k}={_text(v)}" for k, v in items if v is not None)


def _src(event):
    return (event.get("source") or {}).get("ip")


def _ref(event):
    return {"node": event["observer"]["name"], "seq": event["event"]["sequence"]}


def make_record(rule, title, body, time_, node=None, event=None, source_ip=None, details=None):
    """The one alert document every output sends (webhook JSON and file lines verbatim)."""
    return {
        "rule": rule.name,
        "type": rule.type,
        "severity": rule.severity,
        "time": time_,
        "title": title,
        "body": body,
        "node": node,
        "event": event,
        "source_ip": source_ip,
        "details": details or {},
        "alert_id": None,
    }


class Rule:
    KEYS = {"name", "type", "severity", "cooldown_seconds", "usernames", "min_nodes",
            "alert_existing", "max_sources", "outputs"}

    def __init__(self, cfg, index):
        _check_keys(f"rules[{index}]", cfg, self.KEYS)
        self.type = cfg.get("type")
        if self.type not in RULE_TYPES:
            raise ConfigError(f"rules[{index}]: type must be one of {', '.join(RULE_TYPES)}, not {self.type!r}")
        self.name = str(cfg.get("name") or self.type)
        self.severity = cfg.get("severity", "high")
        if self.severity not in SEVERITIES:
            raise ConfigError(f"rule {self.name}: severity must be one of {', '.join(SEVERITIES)}")
        self.cooldown = float(cfg.get("cooldown_seconds", DEFAULT_COOLDOWN.get(self.type, 0.0)))
        self.outputs = cfg.get("outputs")  # None: every output
        self.usernames = set(cfg.get("usernames", []))
        if self.type == "auth_username" and not self.usernames:
            raise ConfigError(f"rule {self.name}: auth_username needs a non-empty usernames list")
        self.min_nodes = int(cfg.get("min_nodes", 2))
        if self.type == "source_on_nodes" and self.min_nodes < 2:
            raise ConfigError(f"rule {self.name}: min_nodes must be at least 2")
        self.alert_existing = bool(cfg.get("alert_existing", False))
        self.max_sources = int(cfg.get("max_sources", 100_000))
        self._last = {}  # cooldown key → monotonic time of the last alert
        self._seen = collections.OrderedDict()  # source_on_nodes: ip → set of nodes
        self._fired = set()
        self._known = None  # new_capture: sha256s already in the store

    def _cooling(self, key, now):
        if self.cooldown <= 0:
            return False
        last = self._last.get(key)
        if last is not None and now - last < self.cooldown:
            return True
        self._last[key] = now
        if len(self._last) > 100_000:
            self._last = {k: t for k, t in self._last.items() if now - t < self.cooldown}
        return False

    def on_event(self, event, now=None):
        """The alert this event raises under this rule, or None."""
        now = time.monotonic() if now is None else now
        action = (event.get("event") or {}).get("action")
        node = (event.get("observer") or {}).get("name")
        src = _src(event)
        service = (event.get("service") or {}).get("name")
        ts = event.get("@timestamp")
        hb = event.get("honeybee") or {}
        if self.type in ("login_success", "auth_username"):
            if action != "auth_attempt":
                return None
            user = (event.get("user") or {}).get("name")
            if self.type == "login_success":
                if hb.get("success") is not True:
                    return None
                title = f'Successful login as "{user}" on {node} ({service}) from {src}'
            else:
                if user not in self.usernames:
                    return None
                title = f'Login attempt as watched user "{user}" on {node} ({service}) from {src}'
            if self._cooling((src, user), now):
                return None
            details = {"user": user, "service": service, "method": hb.get("method"),
                       "success": hb.get("success"), "session": (event.get("session") or {}).get("id")}
            return make_record(self, title, _pairs(details.items()), ts, node, _ref(event), src, details)
        if self.type == "scan_detected":
            if action != "scan_detected":
                return None
            if self._cooling((node, src), now):
                return None
            details = {"service": service, "scan": hb}
            return make_record(self, f"Scan from {src} detected on {node}", _pairs(sorted(hb.items())), ts, node,
                               _ref(event), src, details)
        if self.type == "source_on_nodes":
            if not src or not node:
                return None
            nodes = self._seen.get(src)
            if nodes is None:
                nodes = self._seen[src] = set()
                if len(self._seen) > self.max_sources:
                    old, _ = self._seen.popitem(last=False)
                    self._fired.discard(old)
            else:
                self._seen.move_to_end(src)
            nodes.add(node)
            if len(nodes) < self.min_nodes or src in self._fired:
                return None
            self._fired.add(src)
            names = sorted(nodes)
            title = f"Source {src} seen on {len(names)} nodes: {', '.join(names)}"
            return make_record(self, title, f"nodes={','.join(names)} last={node}", ts, node, _ref(event), src,
                               {"nodes": names})
        return None

    def on_captures(self, captures):
        """Alerts for captures not seen before. The first call learns what is already stored
        (and alerts on it only with alert_existing = true)."""
        if self.type != "new_capture":
            return []
        first = self._known is None
        if first:
            self._known = set()
        out = []
        for c in sorted(captures, key=lambda c: (c.get("time") or "", c.get("sha256") or "")):
            sha = c.get("sha256")
            if not sha or sha in self._known:
                continue
            self._known.add(sha)
            if first and not self.alert_existing:
                continue
            title = f"New capture {sha[:16]} ({c.get('kind')}, {c.get('size')} bytes) on {c.get('node')}"
            details = {k: c.get(k) for k in ("sha256", "size", "kind", "service", "session")}
            out.append(make_record(self, title, _pairs(details.items()), c.get("time"), c.get("node"), None, None,
                                   details))
        return out


# -- outputs ---------------------------------------------------------------------------


def slack_escape(s):
    """Attacker text (user names, paths, node names) made inert for Slack's message format.

    Slack reads `<…>` as a control sequence (`<!channel>` notifies everyone, `<url|text>`
    is a link whose shown text hides its target, `<@U123>` mentions a person) and `&` as
    the start of an entity; its documented rule is to escape exactly `&`, `<` and `>`.
    Control and invisible format characters (ESC, bidi overrides, zero-width spaces, line
    separators) are dropped, except the line breaks and tabs this module writes itself.
    """
    out = []
    for ch in str(s):
        if ch in "\n\t":
            out.append(ch)
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            continue
        elif ch == "&":
            out.append("&amp;")
        elif ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        else:
            out.append(ch)
    return "".join(out)


def slack_payload(record):
    """Slack incoming-webhook (and Mattermost, Rocket.Chat …) compatible body; every part
    goes through slack_escape, since titles and bodies quote what attackers typed."""
    text = f"[{slack_escape(record['severity'].upper())}] {slack_escape(record['title'])}"
    if record.get("body"):
        text += f"\n{slack_escape(record['body'])}"
    return {"text": text}


def _printable(s, limit, nil="-"):
    """An RFC 5424 header field: printable US-ASCII without spaces, bounded, or NILVALUE."""
    s = "".join(ch for ch in str(s or "") if 33 <= ord(ch) <= 126)[:limit]
    return s or nil


def _sd_escape(v):
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def syslog_message(record, facility=16, hostname="-", app_name="honeybee-alerts", procid=None,
                   sd_id=DEFAULT_SD_ID):
    """One RFC 5424 message: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG."""
    pri = facility * 8 + SYSLOG_SEVERITY[record["severity"]]
    ts = record.get("time") or "-"
    params = [("rule", record["rule"]), ("severity", record["severity"])]
    if record.get("node"):
        params.append(("node", record["node"]))
    if record.get("event"):
        params.append(("seq", record["event"]["seq"]))
    if record.get("source_ip"):
        params.append(("src", record["source_ip"]))
    if record.get("alert_id") is not None:
        params.append(("alert", record["alert_id"]))
    sd = "[" + _printable(sd_id, 32) + "".join(f' {k}="{_sd_escape(v)}"' for k, v in params) + "]"
    msg = record["title"]
    if record.get("body"):
        msg += " | " + record["body"]
    msg = msg.replace("\r", " ").replace("\n", " ")
    if not msg.isascii():
        msg = "\ufeff" + msg  # RFC 5424 6.4: UTF-8 MSG starts with a BOM
    return (f"<{pri}>1 {ts} {_printable(hostname, 255)} {_printable(app_name, 48)} "
            f"{_printable(os.getpid() if procid is None else procid, 128)} {_printable(record['rule'], 32)} {sd} {msg}")


def octet_frame(message):
    """RFC 6587 3.4.1 octet counting: MSG-LEN SP SYSLOG-MSG."""
    data = message.encode("utf-8")
    return str(len(data)).encode() + b" " + data


class WebhookOutput:
    KEYS = {"type", "name", "url", "format", "headers", "timeout"}

    def __init__(self, cfg):
        self.url = cfg.get("url")
        if not self.url or not self.url.startswith(("http://", "https://")):
            raise ConfigError("webhook output needs an http:// or https:// url")
        self.format = cfg.get("format", "json")
        if self.format not in ("json", "slack"):
            raise ConfigError("webhook format must be json or slack")
        self.headers = dict(cfg.get("headers", {}))
        self.timeout = float(cfg.get("timeout", 5))

    def send(self, record):
        body = slack_payload(record) if self.format == "slack" else record
        data = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        req = urllib.request.Request(self.url, data=data, method="POST")
        req.add_header("Content-Type", "application/json")
        req.add_header("User-Agent", f"honeybee-alerts/{VERSION}")
        for k, v in self.headers.items():
            req.add_header(k, v)
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            resp.read()


class SyslogOutput:
    KEYS = {"type", "name", "host", "port", "protocol", "facility", "hostname", "app_name", "sd_id"}

    def __init__(self, cfg, default_hostname):
        self.host = cfg.get("host", "127.0.0.1")
        self.port = int(cfg.get("port", 514))
        self.protocol = cfg.get("protocol", "udp")
        if self.protocol not in ("udp", "tcp"):
            raise ConfigError("syslog protocol must be udp or tcp")
        facility = cfg.get("facility", "local0")
        self.facility = SYSLOG_FACILITIES.get(facility) if isinstance(facility, str) else int(facility)
        if self.facility is None or not 0 <= self.facility <= 23:
            raise ConfigError(f"syslog facility {facility!r} is not a facility name or 0..23")
        self.hostname = cfg.get("hostname", default_hostname)
        self.app_name = cfg.get("app_name", "honeybee-alerts")
        self.sd_id = cfg.get("sd_id", DEFAULT_SD_ID)
        self.sock = None

    def format(self, record):
        return syslog_message(record, self.facility, self.hostname, self.app_name, None, self.sd_id)

    def send(self, record):
        msg = self.format(record)
        if self.protocol == "udp":
            with socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(msg.encode("utf-8"), (self.host, self.port))
            return
        frame = octet_frame(msg)
        for attempt in (1, 2):
            try:
                if self.sock is None:
                    self.sock = socket.create_connection((self.host, self.port), timeout=5)
                self.sock.sendall(frame)
                return
            except OSError:
                self.close()
                if attempt == 2:
                    raise

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None


class FileOutput:
    KEYS = {"type", "name", "path"}

    def __init__(self, cfg):
        self.path = cfg.get("path")
        if not self.path:
            raise ConfigError("file output needs a path")

    def send(self, record):
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n")


def build_outputs(cfg):
    hostname = cfg.get("hostname") or socket.gethostname()
    outputs = {}
    for i, o in enumerate(cfg.get("outputs", [])):
        kind = o.get("type") if isinstance(o, dict) else None
        if kind == "webhook":
            _check_keys(f"outputs[{i}]", o, WebhookOutput.KEYS)
            out = WebhookOutput(o)
        elif kind == "syslog":
            _check_keys(f"outputs[{i}]", o, SyslogOutput.KEYS)
            out = SyslogOutput(o, hostname)
        elif kind == "file":
            _check_keys(f"outputs[{i}]", o, FileOutput.KEYS)
            out = FileOutput(o)
        else:
            raise ConfigError(f"outputs[{i}]: type must be webhook, syslog or file")
        name = str(o.get("name") or f"{kind}{i}")
        if name in outputs:
            raise ConfigError(f"two outputs are named {name!r}")
        outputs[name] = out
    return outputs


class Alerter:
    """Rules, outputs and (optionally) the module that publishes HoneyBee alerts."""

    KEYS = {"hostname", "publish", "captures_poll_seconds", "rules", "outputs"}

    def __init__(self, cfg, module=None, warn=None):
        _check_keys("configuration", cfg, self.KEYS)
        self.rules = [Rule(r, i) for i, r in enumerate(cfg.get("rules", []))]
        if not self.rules:
            raise ConfigError("no rules configured")
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ConfigError("rule names must be unique")
        self.outputs = build_outputs(cfg)
        for r in self.rules:
            for o in r.outputs or []:
                if o not in self.outputs:
                    raise ConfigError(f"rule {r.name}: no output named {o!r}")
        self.publish = bool(cfg.get("publish", True))
        self.poll = float(cfg.get("captures_poll_seconds", 10))
        self.module = module
        self.warn = warn or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.sent = 0

    def needs(self):
        """Permissions and subscription filter these rules need."""
        perms = {"events:read"}
        if self.publish:
            perms.add("alerts:write")
        types = {r.type for r in self.rules}
        if "new_capture" in types:
            perms.add("captures:read")
        event_types = types - {"new_capture"}
        if not event_types:
            flt = None
        elif event_types <= {"login_success", "auth_username"}:
            flt = {"kinds": ["auth_attempt"]}
        else:
            flt = {}  # scan_detected is not a kind the core knows yet; source_on_nodes wants all
        return sorted(perms), flt

    def on_event(self, event):
        for rule in self.rules:
            rec = rule.on_event(event)
            if rec is not None:
                self.emit(rule, rec)

    def on_captures(self, captures):
        for rule in self.rules:
            for rec in rule.on_captures(captures):
                self.emit(rule, rec)

    def emit(self, rule, record):
        if self.publish and self.module is not None:
            try:
                res = self.module.alert(record["severity"], record["title"], record["body"], event=record["event"])
                record["alert_id"] = (res or {}).get("alert")
            except ModuleError as e:
                self.warn(f"alerts: publishing {record['rule']} to HoneyBee failed: {e}")
        for name, out in self.outputs.items():
            if rule.outputs is not None and name not in rule.outputs:
                continue
            try:
                out.send(record)
            except (OSError, urllib.error.URLError, http.client.HTTPException, ValueError) as e:
                self.warn(f"alerts: output {name} failed for rule {record['rule']}: {e}")
        self.sent += 1


def run(alerter, module):
    perms, flt = alerter.needs()
    missing = [p for p in perms if p not in module.granted]
    if missing:
        sys.exit(f"alerts: the configured rules need {', '.join(missing)} (granted: {', '.join(module.granted) or 'none'})")
    capture_rules = any(r.type == "new_capture" for r in alerter.rules)
    next_poll = time.monotonic()

    def poll():
        nonlocal next_poll
        if capture_rules and time.monotonic() >= next_poll:
            try:
                alerter.on_captures(module.query("captures", limit=1000) or [])
            except ModuleError as e:
                alerter.warn(f"alerts: captures query failed: {e}")
            next_poll = time.monotonic() + alerter.poll

    poll()  # learn which captures already exist before anything else
    if flt is not None:
        module.subscribe(flt)
    module.log("info", f"alerts: {len(alerter.rules)} rule(s), {len(alerter.outputs)} output(s)")
    print("alerts: ready", flush=True)
    wait = alerter.poll if capture_rules else 15.0
    while True:
        for _sub, event in module.events(timeout=wait):
            alerter.on_event(event)
            poll()
        poll()


def main(argv=None):
    p = argparse.ArgumentParser(description="HoneyBee alerts module")
    p.add_argument("--config", required=True, help="rules and outputs, .toml or .json")
    p.add_argument("--name", default=None, help="module name (default: $HONEYBEE_MODULE_NAME or 'alerts')")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        alerter = Alerter(load_config(args.config))
    except (ConfigError, OSError) as e:
        sys.exit(f"alerts: {e}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    name = args.name or os.environ.get("HONEYBEE_MODULE_NAME") or "alerts"
    perms, _ = alerter.needs()
    with Module(name, version=VERSION, permissions=perms) as m:
        alerter.module = m
        alerter.warn = lambda msg: (print(msg, file=sys.stderr, flush=True), m.log("warn", msg))
        run(alerter, m)


if __name__ == "__main__":
    main()

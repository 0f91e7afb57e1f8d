"""HoneyBee example module "export": every event as one line of Elastic Common Schema JSON,
to stdout, to a size-rotated file, and/or published to an hpfeeds broker, so existing
honeypot pipelines (Logstash/Filebeat, Elastic, hpfeeds consumers) take HoneyBee's data.
Standard library only.

    honeybee module load export --permissions events:read -- \\
        python3 modules/examples/export/export.py --file /var/log/honeybee/events.json \\
        --hpfeeds 127.0.0.1:10000 --hpfeeds-ident honeybee --hpfeeds-channel honeybee.events
    # the hpfeeds secret comes from $HPFEEDS_SECRET, --hpfeeds-secret-file or --hpfeeds-secret
"""

import argparse
import collections
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
import hpfeeds_client  # noqa: E402
from honeybee_module import Module  # noqa: E402

VERSION = "1.0.0"
ECS_VERSION = "8.11.0"

# event.action → (event.kind, event.category, event.type), within ECS's allowed values.
ECS_EVENT = {
    "connect": ("event", ["network"], ["connection", "start"]),
    "disconnect": ("event", ["network"], ["connection", "end"]),
    "auth_attempt": ("event", ["authentication"], ["start"]),
    "command": ("event", ["process"], ["start"]),
    "data": ("event", ["network"], ["info"]),
    "limit_reached": ("event", ["network"], ["denied"]),
    "service_error": ("event", None, ["error"]),
    "scan_detected": ("alert", ["network", "intrusion_detection"], ["info"]),
}


def to_ecs(doc):
    """The ECS document for one event as the core delivers it (already ECS-named: @timestamp,
    event.action/sequence/ingested, observer.name, service.name, source, destination,
    user.name, process.command_line; HoneyBee's own details under `honeybee`, the session
    id under `session`, both custom field sets). Adds ecs.version, event.kind/category/type/
    outcome/module/dataset and observer.type/vendor/product; drops absent addresses."""
    out = {k: v for k, v in doc.items() if v is not None}
    ev = dict(out.get("event") or {})
    action = ev.get("action")
    kind, category, types = ECS_EVENT.get(action, ("event", None, None))
    ev["kind"] = kind
    if category:
        ev["category"] = category
    if types:
        ev["type"] = types
    if action == "auth_attempt":
        success = (out.get("honeybee") or {}).get("success")
        if isinstance(success, bool):
            ev["outcome"] = "success" if success else "failure"
    ev["module"] = "honeybee"
    ev["dataset"] = "honeybee.events"
    out["event"] = ev
    observer = dict(out.get("observer") or {})
    observer.update({"type": "honeypot", "vendor": "HoneyBee", "product": "HoneyBee"})
    out["observer"] = observer
    out["ecs"] = {"version": ECS_VERSION}
    return out


def ecs_line(doc):
    return json.dumps(to_ecs(doc), separators=(",", ":"), ensure_ascii=False)


class RotatingFile:
    """Appends lines; when the next line would take the file past max_bytes, renames
    path → path.1 → … → path.N (the oldest is dropped) and starts a new file."""

    def __init__(self, path, max_bytes=100 * 1024 * 1024, backups=5):
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self.f = open(path, "ab")

    def write_line(self, line):
        data = line.encode("utf-8") + b"\n"
        if self.max_bytes > 0 and self.f.tell() > 0 and self.f.tell() + len(data) > self.max_bytes:
            self.rotate()
        self.f.write(data)
        self.f.flush()

    def rotate(self):
        self.f.close()
        if self.backups > 0:
            for i in range(self.backups - 1, 0, -1):
                src = f"{self.path}.{i}"
                if os.path.exists(src):
                    os.replace(src, f"{self.path}.{i + 1}")
            os.replace(self.path, f"{self.path}.1")
            self.f = open(self.path, "ab")
        else:
            self.f = open(self.path, "wb")

    def close(self):
        self.f.close()


class HpfeedsPublisher:
    """Publishes lines to one channel; reconnects with backoff and keeps a bounded backlog
    while the broker is away (the oldest lines go first when it overflows)."""

    def __init__(self, host, port, ident, secret, channel, backlog=10000, warn=None):
        self.host, self.port, self.ident, self.secret, self.channel = host, port, ident, secret, channel
        self.backlog = collections.deque(maxlen=backlog)
        self.client = None
        self.retry_at = 0.0
        self.backoff = 0.5
        self.warn = warn or (lambda m: print(m, file=sys.stderr, flush=True))

    def _connect(self):
        if self.client is not None:
            return True
        if time.monotonic() < self.retry_at:
            return False
        try:
            self.client = hpfeeds_client.Client(self.host, self.port, self.ident, self.secret).connect()
            self.backoff = 0.5
            return True
        except (OSError, hpfeeds_client.HpfeedsError) as e:
            self.warn(f"export: hpfeeds broker {self.host}:{self.port}: {e}; retrying in {self.backoff:.1f} s")
            self.client = None
            self.retry_at = time.monotonic() + self.backoff
            self.backoff = min(self.backoff * 2, 30.0)
            return False

    def publish(self, line):
        self.backlog.append(line.encode("utf-8"))
        self.flush()

    def flush(self):
        while self.backlog and self._connect():
            try:
                self.client.publish(self.channel, self.backlog[0])
                self.client.check_errors()
                self.backlog.popleft()
            except (OSError, hpfeeds_client.HpfeedsError) as e:
                self.warn(f"export: hpfeeds publish failed: {e}")
                self.client.close()
                self.client = None
                self.retry_at = time.monotonic() + self.backoff
                self.backoff = min(self.backoff * 2, 30.0)

    def close(self):
        if self.client is not None:
            self.client.close()


def parse_args(argv):
    p = argparse.ArgumentParser(description="HoneyBee export module: ECS JSON lines to stdout, a file, hpfeeds")
    p.add_argument("--name", default=None, help="module name (default: $HONEYBEE_MODULE_NAME or 'export')")
    p.add_argument("--stdout", action="store_true", help="write each event to stdout")
    p.add_argument("--file", help="append each event to this file")
    p.add_argument("--max-bytes", type=int, default=100 * 1024 * 1024, help="rotate the file past this size (0: never)")
    p.add_argument("--backups", type=int, default=5, help="rotated files kept (FILE.1 … FILE.N)")
    p.add_argument("--hpfeeds", metavar="HOST:PORT", help="publish each event to this hpfeeds broker")
    p.add_argument("--hpfeeds-ident", default="honeybee")
    p.add_argument("--hpfeeds-secret", default=None, help="default: $HPFEEDS_SECRET")
    p.add_argument("--hpfeeds-secret-file", default=None,
                   help="read the secret from this file (managed modules get only an allowlisted environment, never the core's secrets)")
    p.add_argument("--hpfeeds-channel", default="honeybee.events")
    p.add_argument("--kinds", default="", help="comma-separated event kinds (default: all)")
    p.add_argument("--services", default="", help="comma-separated services (default: all)")
    p.add_argument("--nodes", default="", help="comma-separated nodes (default: all)")
    args = p.parse_args(argv)
    if not (args.stdout or args.file or args.hpfeeds):
        p.error("nothing to export to: give --stdout, --file and/or --hpfeeds")
    if args.hpfeeds:
        if args.hpfeeds_secret_file:
            with open(args.hpfeeds_secret_file, encoding="utf-8") as f:
                args.hpfeeds_secret = f.read().strip()
        args.hpfeeds_secret = args.hpfeeds_secret or os.environ.get("HPFEEDS_SECRET")
        if not args.hpfeeds_secret:
            p.error("--hpfeeds needs a secret: $HPFEEDS_SECRET, --hpfeeds-secret-file or --hpfeeds-secret")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sinks = []
    if args.stdout:
        sinks.append(lambda line: print(line, flush=True))
    if args.file:
        sinks.append(RotatingFile(args.file, args.max_bytes, args.backups).write_line)
    publisher = None
    if args.hpfeeds:
        host, _, port = args.hpfeeds.rpartition(":")
        publisher = HpfeedsPublisher(host.strip("[]"), int(port), args.hpfeeds_ident, args.hpfeeds_secret,
                                     args.hpfeeds_channel)
        sinks.append(publisher.publish)
    flt = {}
    for key in ("kinds", "services", "nodes"):
        values = [v.strip() for v in getattr(args, key).split(",") if v.strip()]
        if values:
            flt[key] = values
    name = args.name or os.environ.get("HONEYBEE_MODULE_NAME") or "export"
    with Module(name, version=VERSION, permissions=["events:read"]) as m:
        if "events:read" not in m.granted:
            sys.exit("export: this module needs the events:read permission")
        m.subscribe(flt)
        m.log("info", "export: subscribed")
        while True:
            for _sub, event in m.events(timeout=2.0):
                line = ecs_line(event)
                for sink in sinks:
                    sink(line)
            if publisher is not None:
                publisher.flush()  # retry a backlog kept while the broker was away
    return 0


if __name__ == "__main__":
    sys.exit(main())

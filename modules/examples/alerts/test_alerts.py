"""Unit tests of the alerts module: every rule on synthetic event dicts (scan_detected among
them, which no node emits yet), cooldowns, capture baselines, RFC 5424 / RFC 6587 syslog
formatting, the Slack payload and configuration errors. Run by tests/modules_examples.rs:
python3 -m unittest discover -s modules/examples/alerts"""

import json
import os
import socket
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alerts  # noqa: E402


def event(action, node="alpha", seq=1, src="203.0.113.7", ts="2023-11-14T22:13:20.123Z", **extra):
    doc = {
        "@timestamp": ts,
        "event": {"action": action, "sequence": seq, "ingested": ts},
        "observer": {"name": node},
        "service": {"name": "ssh"},
        "source": {"ip": src, "port": 40000} if src else None,
        "destination": None,
    }
    doc.update(extra)
    return doc


def auth(user, success=False, **kw):
    return event("auth_attempt", user={"name": user},
                 honeybee={"method": "password", "password": "x", "success": success}, **kw)


def alerter(rules, outputs=()):
    return alerts.Alerter({"rules": rules, "outputs": list(outputs), "publish": False, "hostname": "hb"})


class Collect:
    def __init__(self):
        self.records = []

    def send(self, record):
        self.records.append(json.loads(json.dumps(record)))


def with_collector(a):
    c = Collect()
    a.outputs = {"collect": c}
    return c


class RuleTests(unittest.TestCase):
    def test_scan_detected(self):
        a = alerter([{"type": "scan_detected", "severity": "medium"}])
        c = with_collector(a)
        a.on_event(event("connect"))
        scan = event("scan_detected", seq=9, src="198.51.100.3",
                     honeybee={"ports": [22, 23, 80], "packets": 3})
        a.on_event(scan)
        a.on_event(scan)  # within the default 300 s cooldown for this node and source
        self.assertEqual(c.records, [{
            "rule": "scan_detected", "type": "scan_detected", "severity": "medium",
            "time": "2023-11-14T22:13:20.123Z",
            "title": "Scan from 198.51.100.3 detected on alpha",
            "body": "packets=3 ports=[22, 23, 80]",
            "node": "alpha", "event": {"node": "alpha", "seq": 9}, "source_ip": "198.51.100.3",
            "details": {"service": "ssh", "scan": {"ports": [22, 23, 80], "packets": 3}},
            "alert_id": None,
        }])
        # Another node seeing the same scanner is its own alert.
        a.on_event(event("scan_detected", node="beta", src="198.51.100.3", honeybee={}))
        self.assertEqual(len(c.records), 2)
        self.assertEqual(a.needs(), (["events:read"], {}))

    def test_login_success_only_on_success(self):
        a = alerter([{"type": "login_success", "severity": "critical"}])
        c = with_collector(a)
        a.on_event(auth("root"))
        a.on_event(event("connect"))
        self.assertEqual(c.records, [])
        a.on_event(auth("admin", success=True, seq=4, session={"id": "ab12"}))
        self.assertEqual(len(c.records), 1)
        r = c.records[0]
        self.assertEqual(r["title"], 'Successful login as "admin" on alpha (ssh) from 203.0.113.7')
        self.assertEqual(r["body"], "user=admin service=ssh method=password success=true session=ab12")
        self.assertEqual(r["event"], {"node": "alpha", "seq": 4})
        self.assertEqual(a.needs(), (["events:read"], {"kinds": ["auth_attempt"]}))

    def test_auth_username_with_cooldown(self):
        a = alerter([{"type": "auth_username", "usernames": ["root", "admin"], "cooldown_seconds": 60}])
        c = with_collector(a)
        rule = a.rules[0]
        self.assertIsNotNone(rule.on_event(auth("root"), now=100.0))
        self.assertIsNone(rule.on_event(auth("root"), now=130.0), "same source and user within the cooldown")
        self.assertIsNotNone(rule.on_event(auth("admin"), now=131.0), "another user")
        self.assertIsNotNone(rule.on_event(auth("root", src="192.0.2.1"), now=132.0), "another source")
        self.assertIsNotNone(rule.on_event(auth("root"), now=161.0), "after the cooldown")
        self.assertIsNone(rule.on_event(auth("guest"), now=200.0))
        a.on_event(auth("admin", src="192.0.2.99"))
        self.assertEqual(c.records[0]["title"], 'Login attempt as watched user "admin" on alpha (ssh) from 192.0.2.99')

    def test_source_on_nodes_fires_once(self):
        a = alerter([{"type": "source_on_nodes", "min_nodes": 3, "severity": "high"}])
        c = with_collector(a)
        a.on_event(event("connect", node="a"))
        a.on_event(event("connect", node="b"))
        a.on_event(event("data", node="b"))
        self.assertEqual(c.records, [])
        a.on_event(event("connect", node="c", seq=7))
        a.on_event(event("connect", node="d"))
        self.assertEqual(len(c.records), 1)
        self.assertEqual(c.records[0]["title"], "Source 203.0.113.7 seen on 3 nodes: a, b, c")
        self.assertEqual(c.records[0]["details"], {"nodes": ["a", "b", "c"]})
        self.assertEqual(c.records[0]["event"], {"node": "c", "seq": 7})
        a.on_event(event("connect", node="x", src=None))  # no source: ignored

    def test_source_tracking_is_bounded(self):
        rule = alerter([{"type": "source_on_nodes", "max_sources": 2}]).rules[0]
        rule.on_event(event("connect", node="a", src="192.0.2.1"))
        rule.on_event(event("connect", node="a", src="192.0.2.2"))
        rule.on_event(event("connect", node="a", src="192.0.2.3"))  # evicts .1
        self.assertIsNone(rule.on_event(event("connect", node="b", src="192.0.2.1")))
        self.assertIsNotNone(rule.on_event(event("connect", node="b", src="192.0.2.3")))

    def test_new_capture_baseline(self):
        a = alerter([{"type": "new_capture"}])
        c = with_collector(a)
        old = {"sha256": "aa" * 32, "size": 3, "kind": "upload", "node": "n", "service": "ssh",
               "session": None, "time": "2023-01-01T00:00:00.000Z"}
        a.on_captures([old])
        self.assertEqual(c.records, [], "captures stored before the module started are the baseline")
        new = dict(old, sha256="bb" * 32, size=10, time="2023-01-02T00:00:00.000Z")
        a.on_captures([new, old])
        a.on_captures([new, old])
        self.assertEqual(len(c.records), 1)
        self.assertEqual(c.records[0]["title"], f"New capture {'bb' * 8} (upload, 10 bytes) on n")
        self.assertEqual(c.records[0]["time"], "2023-01-02T00:00:00.000Z")
        self.assertIsNone(c.records[0]["event"])
        self.assertEqual(a.needs(), (["captures:read", "events:read"], None))
        b = alerter([{"type": "new_capture", "alert_existing": True}])
        cb = with_collector(b)
        b.on_captures([old])
        self.assertEqual(len(cb.records), 1)


class FormatTests(unittest.TestCase):
    RECORD = {
        "rule": "watched-root", "type": "auth_username", "severity": "medium",
        "time": "2023-11-14T22:13:20.123Z", "title": 'Login attempt as watched user "root"',
        "body": "user=root\nsecond line", "node": "alpha", "event": {"node": "alpha", "seq": 3},
        "source_ip": "203.0.113.7", "details": {}, "alert_id": 12,
    }

    def test_rfc5424(self):
        msg = alerts.syslog_message(self.RECORD, facility=10, hostname="hb host", app_name="honeybee-alerts",
                                    procid=4242)
        self.assertEqual(
            msg,
            '<84>1 2023-11-14T22:13:20.123Z hbhost honeybee-alerts 4242 watched-root '
            '[honeybee@32473 rule="watched-root" severity="medium" node="alpha" seq="3" src="203.0.113.7" alert="12"] '
            'Login attempt as watched user "root" | user=root second line')

    def test_sd_escaping_and_nil_values(self):
        rec = dict(self.RECORD, rule='a"b]c\\', node=None, event=None, source_ip=None, alert_id=None,
                   severity="critical", time=None, body="", title="é")
        msg = alerts.syslog_message(rec, facility=16, hostname="", app_name="x", procid=1)
        self.assertEqual(msg, '<130>1 - - x 1 a"b]c\\ [honeybee@32473 rule="a\\"b\\]c\\\\" severity="critical"] \ufeffé')

    def test_octet_counting(self):
        self.assertEqual(alerts.octet_frame("<14>1 - - - - - - hé"), b"21 <14>1 - - - - - - h\xc3\xa9")

    def test_slack(self):
        self.assertEqual(alerts.slack_payload(self.RECORD),
                         {"text": '[MEDIUM] Login attempt as watched user "root"\nuser=root\nsecond line'})

    def test_slack_escapes_attacker_text(self):
        # The attacker chooses the user name; the rule quotes it in the title and body.
        hostile = "<!channel> <https://evil.example/|bank login> &amp; <@U024BE7LH>\x1b[2J\u202eevil\u200b\u2028x"
        a = alerter([{"type": "login_success", "severity": "high"}])
        c = with_collector(a)
        a.on_event(auth(hostile, success=True))
        self.assertEqual(len(c.records), 1)
        self.assertIn(hostile, c.records[0]["title"], "the record itself stays exact")
        text = alerts.slack_payload(c.records[0])["text"]
        self.assertNotIn("<", text)
        self.assertNotIn(">", text)
        for ch in "\x1b\u202e\u200b\u2028":
            self.assertNotIn(ch, text)
        self.assertIn("&lt;!channel&gt; &lt;https://evil.example/|bank login&gt; &amp;amp; "
                      "&lt;@U024BE7LH&gt;[2Jevilx", text)
        # Every & in the text starts one of the three entities: nothing else is read as markup.
        self.assertEqual(text.count("&"), text.count("&amp;") + text.count("&lt;") + text.count("&gt;"))

    def test_slack_escape_classes(self):
        self.assertEqual(alerts.slack_escape("a<b>c&d"), "a&lt;b&gt;c&amp;d")
        self.assertEqual(alerts.slack_escape("line\nnext\ttab"), "line\nnext\ttab")
        self.assertEqual(alerts.slack_escape("\x00\x07\r\x7f\x85\x9b\u202a\u2066\u2069\ufeff\u2029ok"), "ok")
        self.assertEqual(alerts.slack_escape("ünïcødé 日本 *bold*"), "ünïcødé 日本 *bold*")

    def test_file_and_udp_outputs(self):
        with tempfile.TemporaryDirectory() as d, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
            rx.bind(("127.0.0.1", 0))
            rx.settimeout(5)
            path = os.path.join(d, "alerts.jsonl")
            a = alerts.Alerter({"hostname": "hb", "publish": False,
                                "rules": [{"type": "login_success"}],
                                "outputs": [{"type": "file", "path": path},
                                            {"type": "syslog", "port": rx.getsockname()[1], "facility": "auth"}]})
            a.on_event(auth("root", success=True))
            data, _ = rx.recvfrom(65536)
            self.assertTrue(data.startswith(b"<35>1 2023-11-14T22:13:20.123Z hb honeybee-alerts "), data)
            with open(path) as f:
                lines = [json.loads(line) for line in f]
            self.assertEqual(len(lines), 1)
            self.assertEqual(lines[0]["rule"], "login_success")

    def test_tcp_output_reconnects(self):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        srv.settimeout(5)
        got = []

        def serve(n):
            for _ in range(n):
                conn, _ = srv.accept()
                with conn:
                    conn.settimeout(5)
                    got.append(conn.recv(65536))

        t = threading.Thread(target=serve, args=(2,))
        t.start()
        out = alerts.SyslogOutput({"protocol": "tcp", "port": srv.getsockname()[1]}, "hb")
        out.send(self.RECORD)
        # The receiver closes after one read; the next send finds out and reconnects.
        import time
        deadline = time.monotonic() + 5
        while len(got) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        for _ in range(3):
            try:
                out.send(self.RECORD)
            except OSError:
                pass
            if len(got) == 2:
                break
            time.sleep(0.2)
        t.join(10)
        srv.close()
        out.close()
        self.assertEqual(len(got), 2)
        for frame in got:
            n, _, rest = frame.partition(b" ")
            self.assertEqual(int(n), len(rest))
            self.assertTrue(rest.startswith(b"<132>1 "))


class ConfigTests(unittest.TestCase):
    def test_errors(self):
        bad = [
            {"rules": []},
            {"rules": [{"type": "nope"}]},
            {"rules": [{"type": "auth_username"}]},
            {"rules": [{"type": "login_success", "severity": "urgent"}]},
            {"rules": [{"type": "login_success", "sevrity": "high"}]},
            {"rules": [{"type": "source_on_nodes", "min_nodes": 1}]},
            {"rules": [{"type": "login_success"}], "outputs": [{"type": "webhook", "url": "ftp://x"}]},
            {"rules": [{"type": "login_success"}], "outputs": [{"type": "syslog", "facility": "local9"}]},
            {"rules": [{"type": "login_success", "outputs": ["missing"]}]},
            {"rules": [{"type": "login_success"}, {"type": "login_success"}]},
            {"rules": [{"type": "login_success"}], "extra": 1},
        ]
        for cfg in bad:
            with self.assertRaises(alerts.ConfigError, msg=json.dumps(cfg)):
                alerts.Alerter(cfg)

    def test_example_configs_load(self):
        here = os.path.dirname(os.path.abspath(__file__))
        for name in ("alerts.example.toml", "alerts.example.json"):
            a = alerts.Alerter(alerts.load_config(os.path.join(here, name)))
            self.assertEqual({r.type for r in a.rules}, set(alerts.RULE_TYPES), name)

    def test_rule_output_routing(self):
        a = alerts.Alerter({"publish": False, "rules": [{"type": "login_success", "outputs": ["one"]}],
                            "outputs": [{"type": "file", "name": "one", "path": "/dev/null"},
                                        {"type": "file", "name": "two", "path": "/dev/null"}]})
        one, two = Collect(), Collect()
        a.outputs = {"one": one, "two": two}
        a.on_event(auth("x", success=True))
        self.assertEqual((len(one.records), len(two.records)), (1, 0))


if __name__ == "__main__":
    unittest.main()

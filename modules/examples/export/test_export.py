"""Unit tests of the export module: the ECS mapping of every event kind, size rotation of
the output file, and the hpfeeds client's bytes against a stdlib fake broker (the real
broker from PyPI is exercised by tests/modules_examples.rs). Run by tests/modules_examples.rs:
python3 -m unittest discover -s modules/examples/export"""

import hashlib
import json
import os
import socket
import struct
import sys
import tempfile
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export  # noqa: E402
import hpfeeds_client  # noqa: E402

AUTH = {
    "@timestamp": "2023-11-14T22:13:20.123Z",
    "event": {"action": "auth_attempt", "sequence": 3, "ingested": "2023-11-14T22:13:20.200Z"},
    "observer": {"name": "alpha"},
    "service": {"name": "ssh"},
    "session": {"id": "00112233445566778899aabbccddeeff"},
    "source": {"ip": "8.8.8.8", "port": 4444},
    "destination": None,
    "user": {"name": "root"},
    "honeybee": {"method": "password", "password": "123456", "success": False},
}


class EcsTests(unittest.TestCase):
    def test_auth_attempt(self):
        self.assertEqual(export.to_ecs(AUTH), {
            "@timestamp": "2023-11-14T22:13:20.123Z",
            "ecs": {"version": export.ECS_VERSION},
            "event": {"action": "auth_attempt", "sequence": 3, "ingested": "2023-11-14T22:13:20.200Z",
                      "kind": "event", "category": ["authentication"], "type": ["start"],
                      "outcome": "failure", "module": "honeybee", "dataset": "honeybee.events"},
            "observer": {"name": "alpha", "type": "honeypot", "vendor": "HoneyBee", "product": "HoneyBee"},
            "service": {"name": "ssh"},
            "session": {"id": "00112233445566778899aabbccddeeff"},
            "source": {"ip": "8.8.8.8", "port": 4444},
            "user": {"name": "root"},
            "honeybee": {"method": "password", "password": "123456", "success": False},
        })
        ok = dict(AUTH, honeybee={"success": True})
        self.assertEqual(export.to_ecs(ok)["event"]["outcome"], "success")
        self.assertNotIn("destination", export.to_ecs(AUTH), "absent addresses are dropped, not null")
        self.assertIsNone(AUTH["destination"], "the input is not modified")

    def test_every_kind_has_allowed_ecs_values(self):
        # ECS 8.x allowed values (event.kind, event.category, event.type).
        kinds = {"alert", "enrichment", "event", "metric", "state", "pipeline_error", "signal"}
        categories = {"authentication", "network", "process", "intrusion_detection", "host", "session"}
        types = {"access", "admin", "allowed", "change", "connection", "creation", "deletion", "denied", "end",
                 "error", "group", "indicator", "info", "installation", "protocol", "start", "user"}
        for action in list(export.ECS_EVENT) + ["something_new"]:
            ev = export.to_ecs(dict(AUTH, event={"action": action, "sequence": 1}))["event"]
            self.assertIn(ev["kind"], kinds, action)
            self.assertLessEqual(set(ev.get("category", [])), categories, action)
            self.assertLessEqual(set(ev.get("type", [])), types, action)
        line = export.ecs_line(dict(AUTH, user={"name": "rööt"}))
        self.assertEqual(json.loads(line)["user"]["name"], "rööt")
        self.assertNotIn("\n", line)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


class RotationTests(unittest.TestCase):
    def test_rotates_by_size_and_keeps_n_backups(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "events.json")
            f = export.RotatingFile(p, max_bytes=25, backups=2)
            for i in range(7):
                f.write_line(f"line-{i}-0123456789")  # 18 bytes with the newline: one per file
            f.close()
            self.assertEqual(read(p), ["line-6-0123456789"])
            self.assertEqual(read(p + ".1"), ["line-5-0123456789"])
            self.assertEqual(read(p + ".2"), ["line-4-0123456789"])
            self.assertFalse(os.path.exists(p + ".3"))

    def test_no_backups_truncates(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "e.json")
            f = export.RotatingFile(p, max_bytes=10, backups=0)
            f.write_line("aaaaaaa")
            f.write_line("bbbbbbb")
            f.close()
            self.assertEqual(read(p), ["bbbbbbb"])
            self.assertEqual(os.listdir(d), ["e.json"])


class FakeBroker:
    """Speaks just enough hpfeeds to check what the client sends."""

    def __init__(self, refuse=False):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen()
        self.srv.settimeout(5)
        self.port = self.srv.getsockname()[1]
        self.nonce = b"\x01\x02\x03\x04"
        self.refuse = refuse
        self.got = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _ = self.srv.accept()
        with conn:
            conn.settimeout(5)
            conn.sendall(hpfeeds_client.message(hpfeeds_client.OP_INFO, b"\x04fake" + self.nonce))
            buf = b""
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while len(buf) >= 5:
                    n, op = struct.unpack("!IB", buf[:5])
                    if len(buf) < n:
                        break
                    self.got.append((op, buf[5:n]))
                    buf = buf[n:]
                    if op == hpfeeds_client.OP_AUTH and self.refuse:
                        conn.sendall(hpfeeds_client.message(hpfeeds_client.OP_ERROR, b"authfail"))
                        return


class HpfeedsTests(unittest.TestCase):
    def test_auth_and_publish_bytes(self):
        b = FakeBroker()
        with hpfeeds_client.Client("127.0.0.1", b.port, "pub", "s3cret") as c:
            self.assertEqual(c.broker_name, "fake")
            c.publish("honeybee.events", '{"a":1}')
            c.check_errors()
        b.thread.join(5)
        auth, publish = b.got
        self.assertEqual(auth, (hpfeeds_client.OP_AUTH, b"\x03pub" + hashlib.sha1(b.nonce + b"s3cret").digest()))
        self.assertEqual(publish, (hpfeeds_client.OP_PUBLISH, b"\x03pub\x0fhoneybee.events" + b'{"a":1}'))
        self.assertEqual(hpfeeds_client.parse_publish(publish[1]), ("pub", "honeybee.events", b'{"a":1}'))
        self.assertEqual(hpfeeds_client.subscribe_message("sub", "ch"), b"\x00\x00\x00\x0b\x04\x03subch")

    def test_refusal_is_reported(self):
        b = FakeBroker(refuse=True)
        c = hpfeeds_client.Client("127.0.0.1", b.port, "pub", "wrong").connect()
        b.thread.join(5)
        with self.assertRaises((hpfeeds_client.HpfeedsError, ConnectionError)):
            c.check_errors()
        c.close()

    def test_publisher_keeps_a_backlog_while_the_broker_is_away(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        warnings = []
        p = export.HpfeedsPublisher("127.0.0.1", port, "pub", "x", "ch", backlog=2, warn=warnings.append)
        for i in range(3):
            p.publish(f"line{i}")
        self.assertEqual(list(p.backlog), [b"line1", b"line2"])
        self.assertTrue(warnings)


if __name__ == "__main__":
    unittest.main()

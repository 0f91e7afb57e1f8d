"""HoneyBee module SDK for Python: the TCP shim, with the standard library only.

A module connects to the core's shim (u32 big-endian length + JSON frames), says hello
with its credential, and then subscribes to events, queries, commands nodes and publishes
alerts and enrichments. The contract is modules/PROTOCOL.md.

    from honeybee_module import Module

    with Module("my-module", permissions=["events:read", "alerts:write"]) as m:
        m.subscribe({"kinds": ["auth_attempt"]})
        for sub, event in m.events():
            m.alert("medium", "login attempt", event=Module.ref(event))

Managed modules (started by the core) find their address, name and credential in the
environment: HONEYBEE_SHIM_ADDR, HONEYBEE_MODULE_NAME, HONEYBEE_MODULE_CREDENTIAL.
A shim bound beyond loopback speaks TLS: pass tls_ca= (or HONEYBEE_SHIM_CA) with the
deployment's CA certificate (pki/ca.crt); the core's certificate is verified against it.
"""

import collections
import json
import os
import socket
import ssl
import struct
import time

PROTOCOL = 1
MAX_FRAME = 1024 * 1024
PING_EVERY = 30.0


class ModuleError(Exception):
    """The core answered a request with an error frame."""

    def __init__(self, code, message, id=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.id = id


class Disconnected(Exception):
    """The core closed the connection (the last error frame, if any, is in .error)."""

    def __init__(self, error=None):
        super().__init__(f"disconnected by the core: {error}" if error else "disconnected by the core")
        self.error = error


class Module:
    def __init__(self, name=None, version="0.1.0", permissions=None, addr=None, credential=None, timeout=10.0,
                 tls_ca=None):
        self.name = name or os.environ.get("HONEYBEE_MODULE_NAME")
        if not self.name:
            raise ValueError("a module needs a name (or HONEYBEE_MODULE_NAME)")
        self.version = version
        self.permissions = list(permissions or [])
        self.addr = addr or os.environ.get("HONEYBEE_SHIM_ADDR", "127.0.0.1:7444")
        self.credential = credential or os.environ.get("HONEYBEE_MODULE_CREDENTIAL")
        if not self.credential:
            raise ValueError("a module needs a credential (`honeybee module token`) or HONEYBEE_MODULE_CREDENTIAL")
        self.timeout = timeout
        self.tls_ca = tls_ca or os.environ.get("HONEYBEE_SHIM_CA")
        self.sock = None
        self.granted = []
        self.missed = 0
        self._next_id = 1
        self._pending_events = collections.deque()
        self._last_sent = time.monotonic()
        self._buf = b""

    # -- connection ---------------------------------------------------------------------

    def connect(self):
        host, _, port = self.addr.rpartition(":")
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls_ca:
            ctx = ssl.create_default_context(cafile=self.tls_ca)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            # HoneyBee certificates name a SPIFFE URI, not a host: the chain to the
            # deployment's own CA is what identifies the core.
            ctx.check_hostname = False
            sock = ctx.wrap_socket(sock)
        self.sock = sock
        self._send({
            "type": "hello",
            "name": self.name,
            "version": self.version,
            "protocol": PROTOCOL,
            "credential": self.credential,
            "permissions": self.permissions,
        })
        msg = self._recv(self.timeout)
        if msg.get("type") == "error":
            raise ModuleError(msg.get("code"), msg.get("message"))
        if msg.get("type") != "welcome":
            raise ModuleError("bad_request", f"expected welcome, got {msg!r}")
        self.granted = msg.get("permissions", [])
        return msg

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    # -- framing ------------------------------------------------------------------------

    def _send(self, msg):
        body = json.dumps(msg, separators=(",", ":")).encode()
        if len(body) > MAX_FRAME:
            raise ValueError(f"frame of {len(body)} bytes exceeds {MAX_FRAME}")
        self.sock.sendall(struct.pack(">I", len(body)) + body)
        self._last_sent = time.monotonic()

    def _read_exact(self, n, deadline):
        while len(self._buf) < n:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if remaining == 0.0:
                raise socket.timeout()
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise Disconnected()
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _recv(self, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        (n,) = struct.unpack(">I", self._read_exact(4, deadline))
        if n > MAX_FRAME:
            raise Disconnected(f"frame of {n} bytes from the core exceeds {MAX_FRAME}")
        # Once a header is in, the body follows promptly.
        return json.loads(self._read_exact(n, time.monotonic() + self.timeout))

    # -- requests -----------------------------------------------------------------------

    def _id(self):
        i = self._next_id
        self._next_id += 1
        return i

    def request(self, msg):
        """Sends a request with a fresh id and waits for its result (events are queued)."""
        msg = dict(msg)
        msg["id"] = self._id()
        self._send(msg)
        deadline = time.monotonic() + self.timeout + 15
        while True:
            try:
                reply = self._recv(max(0.1, deadline - time.monotonic()))
            except socket.timeout:
                raise ModuleError("timeout", f"no answer to {msg['type']} {msg['id']}", msg["id"]) from None
            kind = reply.get("type")
            if kind == "event":
                self._pending_events.append((reply["sub"], reply["event"]))
            elif kind == "missed":
                self.missed += reply.get("count", 0)
            elif kind == "result" and reply.get("id") == msg["id"]:
                return reply.get("data")
            elif kind == "error" and reply.get("id") in (msg["id"], None):
                raise ModuleError(reply.get("code"), reply.get("message"), reply.get("id"))

    def subscribe(self, filter=None):
        sub = self._id()
        self._send({"type": "subscribe", "id": sub, "filter": filter or {}})
        while True:
            reply = self._recv(self.timeout)
            kind = reply.get("type")
            if kind == "event":
                self._pending_events.append((reply["sub"], reply["event"]))
            elif kind == "result" and reply.get("id") == sub:
                return sub
            elif kind == "error" and reply.get("id") in (sub, None):
                raise ModuleError(reply.get("code"), reply.get("message"), sub)

    def unsubscribe(self, sub):
        """Stops subscription `sub` (its id doubles as the request id)."""
        self._send({"type": "unsubscribe", "id": sub})

    def query(self, what, **params):
        return self.request({"type": "query", "what": what, "params": params})

    def command(self, node, command):
        return self.request({"type": "command", "node": node, "command": command})

    def alert(self, severity, title, body="", event=None):
        msg = {"type": "alert", "severity": severity, "title": title, "body": body}
        if event is not None:
            msg["event"] = event
        return self.request(msg)

    def enrich(self, event, data):
        return self.request({"type": "enrich", "event": event, "data": data})

    def annotate(self, event, text):
        return self.request({"type": "annotate", "event": event, "text": text})

    def log(self, level, message):
        self._send({"type": "log", "level": level, "message": message})

    def ping(self):
        return self.request({"type": "ping"})

    @staticmethod
    def ref(event):
        """The {node, seq} reference of a delivered event, for alert/enrich/annotate."""
        return {"node": event["observer"]["name"], "seq": event["event"]["sequence"]}

    # -- events -------------------------------------------------------------------------

    def events(self, timeout=None):
        """Yields (subscription id, event) forever (or until `timeout` seconds of silence),
        pinging the core so an idle subscriber is not taken for dead."""
        while True:
            while self._pending_events:
                yield self._pending_events.popleft()
            if time.monotonic() - self._last_sent > PING_EVERY:
                self._send({"type": "ping", "id": self._id()})
            try:
                msg = self._recv(min(PING_EVERY / 2, timeout) if timeout else PING_EVERY / 2)
            except socket.timeout:
                if timeout:
                    return
                continue
            kind = msg.get("type")
            if kind == "event":
                yield msg["sub"], msg["event"]
            elif kind == "missed":
                self.missed += msg.get("count", 0)
            elif kind == "error" and msg.get("id") is None:
                raise Disconnected(f"{msg.get('code')}: {msg.get('message')}")

"""A minimal hpfeeds client (publish and subscribe) with the Python standard library only.

The hpfeeds wire format: every message is a u32 big-endian total length (header included),
a one-byte opcode, then the payload. Strings inside a payload are a one-byte length and
the bytes. The broker opens with OP_INFO (broker name, 4-byte nonce); the client answers
OP_AUTH (ident, SHA1(nonce + secret)), then sends OP_PUBLISH (ident, channel, payload) or
OP_SUBSCRIBE (ident, channel as the rest of the payload). The broker reports refusals with
OP_ERROR (a text payload) and delivers subscribed messages as OP_PUBLISH.
"""

import hashlib
import select
import socket
import struct

OP_ERROR = 0
OP_INFO = 1
OP_AUTH = 2
OP_PUBLISH = 3
OP_SUBSCRIBE = 4
OP_UNSUBSCRIBE = 5
MAX_MESSAGE = 1024 * 1024 + 5  # the reference broker's cap for publish and error messages


class HpfeedsError(Exception):
    """The broker refused something (OP_ERROR), or the stream is not hpfeeds."""


def _str8(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    if len(b) > 255:
        raise ValueError("hpfeeds strings are at most 255 bytes")
    return struct.pack("!B", len(b)) + b


def message(op, payload):
    return struct.pack("!IB", 5 + len(payload), op) + payload


def auth_message(nonce, ident, secret):
    digest = hashlib.sha1(bytes(nonce) + secret.encode("utf-8")).digest()
    return message(OP_AUTH, _str8(ident) + digest)


def publish_message(ident, channel, payload):
    return message(OP_PUBLISH, _str8(ident) + _str8(channel) + payload)


def subscribe_message(ident, channel):
    return message(OP_SUBSCRIBE, _str8(ident) + channel.encode("utf-8"))


def parse_publish(payload):
    """(ident, channel, payload) of an OP_PUBLISH body."""
    n = payload[0]
    ident = payload[1:1 + n].decode("utf-8")
    rest = payload[1 + n:]
    m = rest[0]
    return ident, rest[1:1 + m].decode("utf-8"), bytes(rest[1 + m:])


class Client:
    """One authenticated connection to a broker."""

    def __init__(self, host, port, ident, secret, timeout=10.0):
        self.host, self.port, self.ident, self.secret = host, int(port), ident, secret
        self.timeout = timeout
        self.sock = None
        self.broker_name = None
        self._buf = b""

    def connect(self):
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        op, payload = self.read()
        if op == OP_ERROR:
            raise HpfeedsError(payload.decode("utf-8", "replace"))
        if op != OP_INFO:
            raise HpfeedsError(f"expected OP_INFO from the broker, got opcode {op}")
        n = payload[0]
        self.broker_name = payload[1:1 + n].decode("utf-8", "replace")
        nonce = payload[1 + n:1 + n + 4]
        self.sock.sendall(auth_message(nonce, self.ident, self.secret))
        return self

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc):
        self.close()

    def _fill(self, n, timeout):
        while len(self._buf) < n:
            self.sock.settimeout(timeout)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the hpfeeds broker closed the connection")
            self._buf += chunk

    def read(self, timeout=None):
        """The next (opcode, payload) from the broker."""
        timeout = self.timeout if timeout is None else timeout
        self._fill(5, timeout)
        length, op = struct.unpack("!IB", self._buf[:5])
        if length < 5 or length > MAX_MESSAGE:
            raise HpfeedsError(f"bad hpfeeds message length {length}")
        self._fill(length, timeout)
        payload, self._buf = self._buf[5:length], self._buf[length:]
        return op, payload

    def check_errors(self):
        """Raises if the broker has sent an error (a refused auth or publish) or closed."""
        while True:
            r, _, _ = select.select([self.sock], [], [], 0)
            if not r and len(self._buf) < 5:
                return
            op, payload = self.read()
            if op == OP_ERROR:
                raise HpfeedsError(payload.decode("utf-8", "replace"))

    def publish(self, channel, payload):
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        self.sock.sendall(publish_message(self.ident, channel, payload))

    def subscribe(self, channel):
        self.sock.sendall(subscribe_message(self.ident, channel))

    def messages(self, timeout=None):
        """Yields (ident, channel, payload) of published messages; raises on OP_ERROR."""
        while True:
            op, payload = self.read(timeout)
            if op == OP_PUBLISH:
                yield parse_publish(payload)
            elif op == OP_ERROR:
                raise HpfeedsError(payload.decode("utf-8", "replace"))

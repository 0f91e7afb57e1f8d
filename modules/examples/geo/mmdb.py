"""A small pure-Python reader for MaxMind DB (MMDB) files, standard library only.

Implements the public MaxMind DB format (version 2): the metadata section found after the
marker b"\\xab\\xcd\\xefMaxMind.com", the binary search tree (24-, 28- and 32-bit records,
IPv4 addresses looked up under ::/96 in IPv6 trees), and the data section decoder (pointers,
strings, doubles, bytes, unsigned and signed integers, maps, arrays, booleans, floats).

    with Reader("geo.mmdb") as db:
        db.get("8.8.8.8")        # -> {"country_code": "US"} or None
"""

import ipaddress
import mmap
import struct

METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"
# The metadata section is at most 128 KiB from the end of the file.
METADATA_MAX = 128 * 1024
DATA_SEPARATOR = 16


class InvalidDatabase(Exception):
    """The file is not a MaxMind DB, or is corrupt."""


class _Decoder:
    """Decodes values of the data section (or of the metadata section) of a buffer."""

    def __init__(self, buf, base, pointer_base):
        self.buf = buf
        self.base = base  # where offsets passed to decode() count from
        self.pointer_base = pointer_base  # where pointers count from

    def decode(self, offset):
        """The value at `offset` (relative to base) and the offset just after it."""
        buf = self.buf
        pos = self.base + offset
        try:
            ctrl = buf[pos]
        except IndexError:
            raise InvalidDatabase(f"data offset {offset} is past the end of the file") from None
        pos += 1
        kind = ctrl >> 5
        if kind == 1:  # pointer: its size bits are its own
            ss = (ctrl >> 3) & 3
            vvv = ctrl & 7
            if ss == 0:
                ptr = (vvv << 8) | buf[pos]
                pos += 1
            elif ss == 1:
                ptr = ((vvv << 16) | (buf[pos] << 8) | buf[pos + 1]) + 2048
                pos += 2
            elif ss == 2:
                ptr = ((vvv << 24) | (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]) + 526336
                pos += 3
            else:
                ptr = struct.unpack_from(">I", buf, pos)[0]
                pos += 4
            value, _ = self.decode(self.pointer_base + ptr - self.base)
            return value, pos - self.base
        if kind == 0:  # extended type
            kind = 7 + buf[pos]
            pos += 1
        size = ctrl & 0x1F
        if size >= 29:
            extra = size - 28
            n = int.from_bytes(buf[pos:pos + extra], "big")
            pos += extra
            size = (29, 285, 65821)[extra - 1] + n
        if kind == 2:  # UTF-8 string
            return bytes(buf[pos:pos + size]).decode("utf-8"), pos + size - self.base
        if kind == 3:  # double
            if size != 8:
                raise InvalidDatabase(f"double of {size} bytes")
            return struct.unpack_from(">d", buf, pos)[0], pos + 8 - self.base
        if kind == 4:  # bytes
            return bytes(buf[pos:pos + size]), pos + size - self.base
        if kind in (5, 6, 9, 10):  # uint16, uint32, uint64, uint128
            return int.from_bytes(buf[pos:pos + size], "big"), pos + size - self.base
        if kind == 7:  # map
            out = {}
            off = pos - self.base
            for _ in range(size):
                key, off = self.decode(off)
                value, off = self.decode(off)
                out[key] = value
            return out, off
        if kind == 8:  # int32
            if size > 4:
                raise InvalidDatabase(f"int32 of {size} bytes")
            n = int.from_bytes(buf[pos:pos + size], "big")
            if size == 4 and n & 0x80000000:
                n -= 1 << 32
            return n, pos + size - self.base
        if kind == 11:  # array
            out = []
            off = pos - self.base
            for _ in range(size):
                value, off = self.decode(off)
                out.append(value)
            return out, off
        if kind == 14:  # boolean: the size is the value
            return bool(size), pos - self.base
        if kind == 15:  # float
            if size != 4:
                raise InvalidDatabase(f"float of {size} bytes")
            return struct.unpack_from(">f", buf, pos)[0], pos + 4 - self.base
        raise InvalidDatabase(f"unknown or unexpected data type {kind} at offset {offset}")


class Reader:
    """An open MMDB file. Lookups are thread-safe (the file is mapped read-only)."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self._buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        buf = self._buf
        start = max(0, len(buf) - METADATA_MAX)
        at = buf.rfind(METADATA_MARKER, start)
        if at < 0:
            self.close()
            raise InvalidDatabase(f"{path}: no MaxMind DB metadata marker")
        meta_start = at + len(METADATA_MARKER)
        meta, _ = _Decoder(buf, meta_start, meta_start).decode(0)
        if not isinstance(meta, dict):
            raise InvalidDatabase(f"{path}: metadata is not a map")
        self.metadata = meta
        try:
            self.node_count = int(meta["node_count"])
            self.record_size = int(meta["record_size"])
            self.ip_version = int(meta["ip_version"])
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidDatabase(f"{path}: metadata lacks {e}") from None
        if self.record_size not in (24, 28, 32):
            raise InvalidDatabase(f"{path}: unsupported record size {self.record_size}")
        self._node_bytes = self.record_size * 2 // 8
        self._tree_size = self._node_bytes * self.node_count
        data_start = self._tree_size + DATA_SEPARATOR
        if data_start > meta_start:
            raise InvalidDatabase(f"{path}: search tree overlaps the metadata")
        self._data = _Decoder(buf, data_start, data_start)
        self._ipv4_start = None

    def close(self):
        if self._buf is not None:
            self._buf.close()
            self._buf = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _record(self, node, bit):
        buf = self._buf
        base = node * self._node_bytes
        if self.record_size == 24:
            off = base + bit * 3
            return (buf[off] << 16) | (buf[off + 1] << 8) | buf[off + 2]
        if self.record_size == 28:
            if bit == 0:
                return ((buf[base + 3] & 0xF0) << 20) | (buf[base] << 16) | (buf[base + 1] << 8) | buf[base + 2]
            return ((buf[base + 3] & 0x0F) << 24) | (buf[base + 4] << 16) | (buf[base + 5] << 8) | buf[base + 6]
        return struct.unpack_from(">I", buf, base + bit * 4)[0]

    def _start_node(self, bits):
        """Where an IPv4 lookup starts: the root for IPv4 trees, ::/96 for IPv6 ones."""
        if bits == 128 or self.ip_version == 4:
            return 0
        if self._ipv4_start is None:
            node = 0
            for _ in range(96):
                if node >= self.node_count:
                    break
                node = self._record(node, 0)
            self._ipv4_start = node
        return self._ipv4_start

    def get_with_prefix_len(self, ip):
        """(record, prefix length) for an address (str or ipaddress object); record is None
        when the database has no data for it."""
        addr = ipaddress.ip_address(ip) if not isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)) else ip
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        bits = 32 if addr.version == 4 else 128
        if bits == 128 and self.ip_version == 4:
            raise ValueError(f"{addr} is IPv6 but {self.path} holds IPv4 only")
        packed = int(addr)
        node = self._start_node(bits)
        depth = 0
        while depth < bits and node < self.node_count:
            bit = (packed >> (bits - 1 - depth)) & 1
            node = self._record(node, bit)
            depth += 1
        prefix = depth
        if node == self.node_count:
            return None, prefix
        if node < self.node_count:
            raise InvalidDatabase(f"{self.path}: search tree is deeper than the address")
        offset = node - self.node_count - DATA_SEPARATOR
        value, _ = self._data.decode(offset)
        return value, prefix

    def get(self, ip):
        """The record for an address, or None."""
        return self.get_with_prefix_len(ip)[0]

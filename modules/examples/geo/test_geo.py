"""Unit tests of the geo module: the pure-Python MMDB reader against databases this test
writes itself (every data type, pointers of three sizes, 24/28/32-bit records, IPv4 and
IPv6 trees), the ASN range table, the enrichment, and the shipped npm data (which `npm ci`
in modules/examples/geo installs). Run by tests/modules_examples.rs:
python3 -m unittest discover -s modules/examples/geo"""

import ipaddress
import os
import struct
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import geo  # noqa: E402
import mmdb  # noqa: E402

# -- a small MMDB writer, for tests only -----------------------------------------------


def _ctrl(kind, size):
    if size < 29:
        bits, extra = size, b""
    elif size < 285:
        bits, extra = 29, bytes([size - 29])
    elif size < 65821:
        bits, extra = 30, struct.pack(">H", size - 285)
    else:
        bits, extra = 31, (size - 65821).to_bytes(3, "big")
    if kind < 8:
        return bytes([(kind << 5) | bits]) + extra
    return bytes([bits, kind - 7]) + extra


def enc(v):
    """Encodes a value; tuples pick a type: ("uint32", n), ("int32", n), ("float", x),
    ("uint64", n), ("uint128", n), ("uint16", n), ("bytes", b), ("ptr", offset)."""
    if isinstance(v, tuple):
        t, x = v
        if t == "ptr":
            if x < 2048:
                return bytes([0x20 | (x >> 8), x & 0xFF])
            if x < 526336:
                y = x - 2048
                return bytes([0x28 | (y >> 16)]) + (y & 0xFFFF).to_bytes(2, "big")
            if x < 134744064:
                y = x - 526336
                return bytes([0x30 | (y >> 24)]) + (y & 0xFFFFFF).to_bytes(3, "big")
            return bytes([0x38]) + x.to_bytes(4, "big")
        if t == "bytes":
            return _ctrl(4, len(x)) + x
        if t == "float":
            return _ctrl(15, 4) + struct.pack(">f", x)
        if t == "int32":
            b = struct.pack(">i", x)
            return _ctrl(8, 4) + b
        kinds = {"uint16": 5, "uint32": 6, "uint64": 9, "uint128": 10}
        n = (x.bit_length() + 7) // 8
        return _ctrl(kinds[t], n) + (x.to_bytes(n, "big") if n else b"")
    if isinstance(v, bool):
        return _ctrl(14, int(v))
    if isinstance(v, str):
        b = v.encode()
        return _ctrl(2, len(b)) + b
    if isinstance(v, float):
        return _ctrl(3, 8) + struct.pack(">d", v)
    if isinstance(v, int):
        return enc(("uint32", v))
    if isinstance(v, dict):
        return _ctrl(7, len(v)) + b"".join(enc(k) + enc(x) for k, x in v.items())
    if isinstance(v, list):
        return _ctrl(11, len(v)) + b"".join(enc(x) for x in v)
    raise TypeError(v)


def write_mmdb(path, networks, ip_version=6, record_size=24, data_prefix=b""):
    """networks: [(cidr, encoded data offset)] with data already laid out in data_prefix."""
    root = {}
    for cidr, offset in networks:
        net = ipaddress.ip_network(cidr)
        n, plen = int(net.network_address), net.prefixlen
        width = 32 if net.version == 4 else 128
        if net.version == 4 and ip_version == 6:
            width, plen = 128, plen + 96  # IPv4 lives under ::/96
        node = root
        for i in range(plen):
            b = (n >> (width - 1 - i)) & 1
            if i == plen - 1:
                node[b] = ("data", offset)
            else:
                node = node.setdefault(b, {})
    order, queue = [], [root]
    while queue:
        n = queue.pop(0)
        order.append(n)
        for b in (0, 1):
            if isinstance(n.get(b), dict):
                queue.append(n[b])
    index = {id(n): i for i, n in enumerate(order)}
    count = len(order)
    tree = bytearray()
    for n in order:
        recs = []
        for b in (0, 1):
            c = n.get(b)
            if isinstance(c, dict):
                recs.append(index[id(c)])
            elif isinstance(c, tuple):
                recs.append(count + 16 + c[1])
            else:
                recs.append(count)
        l, r = recs
        if record_size == 24:
            tree += l.to_bytes(3, "big") + r.to_bytes(3, "big")
        elif record_size == 28:
            tree += (l & 0xFFFFFF).to_bytes(3, "big") + bytes([((l >> 24) << 4) | (r >> 24)]) + (r & 0xFFFFFF).to_bytes(3, "big")
        else:
            tree += l.to_bytes(4, "big") + r.to_bytes(4, "big")
    meta = {"node_count": ("uint32", count), "record_size": ("uint16", record_size),
            "ip_version": ("uint16", ip_version), "binary_format_major_version": ("uint16", 2),
            "binary_format_minor_version": ("uint16", 0), "database_type": "test", "languages": [],
            "description": {"en": "test"}, "build_epoch": ("uint64", 1)}
    with open(path, "wb") as f:
        f.write(bytes(tree) + b"\0" * 16 + data_prefix + mmdb.METADATA_MARKER + enc(meta))


class ReaderTests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def test_every_type_and_pointer_size(self):
        data = bytearray()
        shared_at = len(data)
        data += enc("shared string")
        pad1 = len(data)
        data += enc("x" * 3000)  # pushes later values past 2048: two-byte pointers
        mid_at = len(data)
        data += enc({"deep": [1, 2]})
        data += enc("y" * 600000)  # past 526336: three-byte pointers
        far_at = len(data)
        data += enc(("uint128", 2 ** 100))
        record = {
            "s": "héllo", "d": 1.5, "f": ("float", 0.25), "b": ("bytes", b"\x00\xff"),
            "u16": ("uint16", 65535), "u32": ("uint32", 4_000_000_000), "u64": ("uint64", 2 ** 40),
            "i32": ("int32", -5), "zero": ("uint32", 0), "t": True, "no": False,
            "arr": ["a", {"k": "v"}], "long": "z" * 300,
            "p1": ("ptr", shared_at), "p2": ("ptr", mid_at), "p3": ("ptr", far_at),
        }
        rec_at = len(data)
        data += enc(record)
        other_at = len(data)
        data += enc({"country_code": "FR"})
        p = self.path("t.mmdb")
        write_mmdb(p, [("192.0.2.0/24", rec_at), ("2001:db8::/32", other_at), ("198.51.100.128/25", other_at)],
                   data_prefix=bytes(data))
        with mmdb.Reader(p) as r:
            got, plen = r.get_with_prefix_len("192.0.2.77")
            self.assertEqual(plen, 24)
            self.assertEqual(got, {
                "s": "héllo", "d": 1.5, "f": 0.25, "b": b"\x00\xff", "u16": 65535, "u32": 4_000_000_000,
                "u64": 2 ** 40, "i32": -5, "zero": 0, "t": True, "no": False, "arr": ["a", {"k": "v"}],
                "long": "z" * 300, "p1": "shared string", "p2": {"deep": [1, 2]}, "p3": 2 ** 100,
            })
            self.assertEqual(r.get("2001:db8:1::5"), {"country_code": "FR"})
            self.assertEqual(r.get_with_prefix_len("198.51.100.200"), ({"country_code": "FR"}, 25))
            self.assertIsNone(r.get("198.51.100.1"))
            self.assertIsNone(r.get("2001:db9::1"))
            self.assertEqual(r.get("::ffff:192.0.2.1"), r.get("192.0.2.1"))
            self.assertEqual(r.metadata["description"], {"en": "test"})
        self.assertGreater(pad1, -1)

    def test_record_sizes(self):
        data = enc({"country_code": "DE"})
        for size in (24, 28, 32):
            for version, cidr, hit, miss in ((6, "203.0.113.0/24", "203.0.113.9", "203.0.114.9"),
                                             (4, "203.0.113.0/24", "203.0.113.9", "10.0.0.1")):
                p = self.path(f"r{size}-{version}.mmdb")
                write_mmdb(p, [(cidr, 0)], ip_version=version, record_size=size, data_prefix=data)
                with mmdb.Reader(p) as r:
                    self.assertEqual(r.get(hit), {"country_code": "DE"}, (size, version))
                    self.assertIsNone(r.get(miss))
                    if version == 4:
                        with self.assertRaises(ValueError):
                            r.get("2001:db8::1")

    def test_wide_records(self):
        # 28-bit records keep their top nibbles in the middle byte; 32-bit ones are plain.
        r = mmdb.Reader.__new__(mmdb.Reader)
        r.record_size, r._node_bytes = 28, 7
        r._buf = bytes([0x12, 0x34, 0x56, 0xAB, 0x65, 0x43, 0x21])
        self.assertEqual((r._record(0, 0), r._record(0, 1)), (0xA123456, 0xB654321))
        r.record_size, r._node_bytes = 32, 8
        r._buf = bytes([0xDE, 0xAD, 0xBE, 0xEF, 0x01, 0x02, 0x03, 0x04])
        self.assertEqual((r._record(0, 0), r._record(0, 1)), (0xDEADBEEF, 0x01020304))

    def test_not_a_database(self):
        p = self.path("bad.mmdb")
        with open(p, "wb") as f:
            f.write(b"not an mmdb" * 100)
        with self.assertRaises(mmdb.InvalidDatabase):
            mmdb.Reader(p)


class GeoTests(unittest.TestCase):
    def test_asn_table_and_lookup(self):
        t = geo.AsnTable()
        t.add(4, int(ipaddress.ip_address("8.8.8.0")), int(ipaddress.ip_address("8.8.8.255")), 15169, "Google LLC")
        t.add(4, int(ipaddress.ip_address("9.0.0.0")), int(ipaddress.ip_address("9.0.0.9")), 1, "")
        t.add(6, int(ipaddress.ip_address("2001:db8::")), int(ipaddress.ip_address("2001:db8::ffff")), 64500, "Doc")
        g = geo.Geo(None, None, t)
        self.assertEqual(g.lookup("8.8.8.8"), {"source.as.number": 15169, "source.as.organization.name": "Google LLC"})
        self.assertEqual(g.lookup("9.0.0.5"), {"source.as.number": 1})
        self.assertEqual(g.lookup("9.0.0.10"), {})
        self.assertEqual(g.lookup("::ffff:8.8.8.8")["source.as.number"], 15169)
        # Documentation, private and loopback ranges are not looked up at all.
        self.assertEqual(g.lookup("2001:db8::1"), {})
        for ip in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "::1", "fe80::1", "not an ip"):
            self.assertEqual(g.lookup(ip), {}, ip)

    def test_record_layouts(self):
        self.assertEqual(geo.country_of({"country_code": "FR"}), "FR")
        self.assertEqual(geo.country_of({"country": {"iso_code": "JP"}}), "JP")
        self.assertIsNone(geo.country_of(None))
        self.assertEqual(geo.asn_of({"autonomous_system_number": 3215, "autonomous_system_organization": "Orange"}),
                         (3215, "Orange"))
        self.assertEqual(geo.asn_of({"asn": "AS13335"}), (13335, None))
        self.assertIsNone(geo.asn_of({"x": 1}))


class ShippedDataTests(unittest.TestCase):
    """The npm packages' data, as the module reads it by default."""

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(geo.DEFAULT_COUNTRY_MMDB) or not os.path.isdir(geo.DEFAULT_ASN_CSV_DIR):
            raise AssertionError(f"the geo data is not installed: run `npm ci` in {HERE} (.ci/run does)")
        cls.geo = geo.open_geo(geo.parse_args([]))

    def test_known_addresses(self):
        self.assertEqual(self.geo.lookup("8.8.8.8"), {
            "source.geo.country_iso_code": "US", "source.as.number": 15169,
            "source.as.organization.name": "Google LLC"})
        one = self.geo.lookup("1.1.1.1")
        self.assertEqual(one["source.as.number"], 13335)
        self.assertEqual(one["source.as.organization.name"], "Cloudflare, Inc.")
        self.assertEqual(len(one["source.geo.country_iso_code"]), 2)
        v6 = self.geo.lookup("2001:4860:4860::8888")
        self.assertEqual((v6["source.geo.country_iso_code"], v6["source.as.number"]), ("US", 15169))
        self.assertEqual(self.geo.lookup("127.0.0.1"), {})


if __name__ == "__main__":
    unittest.main()

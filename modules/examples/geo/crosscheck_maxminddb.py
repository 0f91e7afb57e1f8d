"""Cross-checks the pure-Python MMDB reader (mmdb.py) against MaxMind's own `maxminddb`
package on the shipped databases: the same record and prefix length for 30,000 addresses.
Needs maxminddb (pinned in modules/examples/requirements-test.txt); run by
tests/modules_examples.rs with the test virtualenv's python."""

import ipaddress
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mmdb  # noqa: E402

try:
    import maxminddb
except ImportError:
    sys.exit("crosscheck: the maxminddb package is missing; install modules/examples/requirements-test.txt")

DIR = os.path.join(HERE, "node_modules", "@ip-location-db", "geo-whois-asn-country-mmdb")
total = 0
for name in ("geo-whois-asn-country.mmdb", "geo-whois-asn-country-ipv4.mmdb", "geo-whois-asn-country-ipv6.mmdb"):
    path = os.path.join(DIR, name)
    if not os.path.exists(path):
        sys.exit(f"crosscheck: {path} is missing; run `npm ci` in {HERE}")
    ours = mmdb.Reader(path)
    theirs = maxminddb.open_database(path, maxminddb.MODE_MMAP)
    assert ours.metadata["node_count"] == theirs.metadata().node_count
    rnd = random.Random(name)
    found = 0
    for i in range(10000):
        if ours.ip_version == 4 or i % 2:
            ip = str(ipaddress.IPv4Address(rnd.getrandbits(32)))
        else:
            ip = str(ipaddress.IPv6Address((0x2 << 124) | rnd.getrandbits(124)))
        a, b = ours.get_with_prefix_len(ip), theirs.get_with_prefix_len(ip)
        if a != b:
            sys.exit(f"crosscheck: {name} {ip}: mmdb.py says {a}, maxminddb says {b}")
        found += a[0] is not None
    if found == 0:
        sys.exit(f"crosscheck: no address found in {name}")
    total += found
print(f"crosscheck: 30000 lookups agree ({total} with data)")

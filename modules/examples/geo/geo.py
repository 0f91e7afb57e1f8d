"""HoneyBee example module "geo": enriches every event's source address with its country
and autonomous system, from offline data, with the Python standard library only.

Country: a MaxMind DB file (default: the one the npm package
@ip-location-db/geo-whois-asn-country-mmdb ships, installed by `npm ci` beside this file).
ASN: the CSV files of the npm package @ip-location-db/asn (default), or any MMDB with
GeoLite2-ASN-style records (--asn-mmdb). The enrichment uses Elastic Common Schema names:

    source.geo.country_iso_code   "US"
    source.as.number              15169
    source.as.organization.name   "Google LLC"

Run it as a managed module:

    honeybee module load geo --permissions events:read,enrich:write -- \\
        python3 modules/examples/geo/geo.py
"""

import argparse
import bisect
import collections
import csv
import ipaddress
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
import mmdb  # noqa: E402
from honeybee_module import Module, ModuleError  # noqa: E402

NODE_MODULES = os.path.join(HERE, "node_modules", "@ip-location-db")
DEFAULT_COUNTRY_MMDB = os.path.join(NODE_MODULES, "geo-whois-asn-country-mmdb", "geo-whois-asn-country.mmdb")
DEFAULT_ASN_CSV_DIR = os.path.join(NODE_MODULES, "asn")


class AsnTable:
    """Inclusive address ranges → (AS number, organisation), from the ip-location-db
    `asn-ipv4-num.csv` / `asn-ipv6-num.csv` files (start,end,asn,organisation)."""

    def __init__(self):
        self._tables = {4: ([], [], []), 6: ([], [], [])}

    @classmethod
    def from_dir(cls, directory):
        t = cls()
        found = False
        for version, name in ((4, "asn-ipv4-num.csv"), (6, "asn-ipv6-num.csv")):
            path = os.path.join(directory, name)
            if os.path.exists(path):
                t.load(version, path)
                found = True
        if not found:
            raise FileNotFoundError(f"no asn-ipv4-num.csv or asn-ipv6-num.csv in {directory}")
        return t

    def load(self, version, path):
        rows = []
        orgs = {}
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.reader(f):
                if len(row) < 4 or not row[0].isdigit():
                    continue
                org = orgs.setdefault(row[3], row[3])
                rows.append((int(row[0]), int(row[1]), (int(row[2]), org)))
        if any(rows[i][0] > rows[i + 1][0] for i in range(len(rows) - 1)):
            rows.sort(key=lambda r: r[0])
        starts, ends, values = self._tables[version]
        starts.extend(r[0] for r in rows)
        ends.extend(r[1] for r in rows)
        values.extend(r[2] for r in rows)

    def add(self, version, start, end, asn, org):
        """For tests: one range (call in ascending order)."""
        starts, ends, values = self._tables[version]
        starts.append(start)
        ends.append(end)
        values.append((asn, org))

    def get(self, addr):
        starts, ends, values = self._tables[addr.version]
        n = int(addr)
        i = bisect.bisect_right(starts, n) - 1
        if i >= 0 and n <= ends[i]:
            return values[i]
        return None


def country_of(record):
    """The ISO country code in a country record, whichever layout the database uses."""
    if not isinstance(record, dict):
        return None
    code = record.get("country_code")  # ip-location-db
    if code is None and isinstance(record.get("country"), dict):
        code = record["country"].get("iso_code")  # MaxMind GeoLite2/GeoIP2
    return code if isinstance(code, str) and code else None


def asn_of(record):
    """(number, organisation) from a GeoLite2-ASN-style record."""
    if not isinstance(record, dict):
        return None
    number = record.get("autonomous_system_number", record.get("asn"))
    org = record.get("autonomous_system_organization", record.get("as_organization"))
    if isinstance(number, str) and number.upper().startswith("AS"):
        number = number[2:]
    try:
        number = int(number)
    except (TypeError, ValueError):
        return None
    return number, org if isinstance(org, str) else None


def is_public(addr):
    return addr.is_global and not addr.is_multicast


class Geo:
    """Address → ECS enrichment, with an LRU cache."""

    def __init__(self, country_db=None, asn_db=None, asn_table=None, cache_size=65536):
        self.country_db = country_db
        self.asn_db = asn_db
        self.asn_table = asn_table
        self.cache = collections.OrderedDict()
        self.cache_size = cache_size

    def lookup(self, ip):
        """The enrichment for an address (a dict, empty when nothing is known)."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return {}
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if not is_public(addr):
            return {}
        key = str(addr)
        hit = self.cache.get(key)
        if hit is not None:
            self.cache.move_to_end(key)
            return hit
        out = {}
        if self.country_db is not None:
            code = country_of(self.country_db.get(addr) if addr.version == 4 or self.country_db.ip_version == 6 else None)
            if code:
                out["source.geo.country_iso_code"] = code
        asn = None
        if self.asn_db is not None and (addr.version == 4 or self.asn_db.ip_version == 6):
            asn = asn_of(self.asn_db.get(addr))
        if asn is None and self.asn_table is not None:
            asn = self.asn_table.get(addr)
        if asn is not None:
            out["source.as.number"] = asn[0]
            if asn[1]:
                out["source.as.organization.name"] = asn[1]
        self.cache[key] = out
        if len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return out


def parse_args(argv):
    p = argparse.ArgumentParser(description="HoneyBee geo enrichment module (country and ASN of source addresses)")
    p.add_argument("--name", default=None, help="module name (default: $HONEYBEE_MODULE_NAME or 'geo')")
    p.add_argument("--country-mmdb", default=DEFAULT_COUNTRY_MMDB, help="MMDB with country records")
    p.add_argument("--asn-mmdb", default=None, help="MMDB with GeoLite2-ASN-style records (optional)")
    p.add_argument("--asn-csv-dir", default=DEFAULT_ASN_CSV_DIR,
                   help="directory with ip-location-db asn-ipv4-num.csv / asn-ipv6-num.csv ('' to skip)")
    p.add_argument("--kinds", default="", help="comma-separated event kinds to enrich (default: all)")
    p.add_argument("--nodes", default="", help="comma-separated nodes to enrich (default: all)")
    p.add_argument("--cache", type=int, default=65536, help="addresses kept in the lookup cache")
    p.add_argument("--lookup", metavar="IP", action="append",
                   help="print the enrichment for IP and exit (no core needed)")
    return p.parse_args(argv)


def open_geo(args):
    def missing(what, path):
        sys.exit(f"geo: {what} not found at {path}; run `npm ci` in {HERE} or pass another path")

    if not os.path.exists(args.country_mmdb):
        missing("country MMDB", args.country_mmdb)
    country_db = mmdb.Reader(args.country_mmdb)
    asn_db = None
    if args.asn_mmdb:
        if not os.path.exists(args.asn_mmdb):
            missing("ASN MMDB", args.asn_mmdb)
        asn_db = mmdb.Reader(args.asn_mmdb)
    asn_table = None
    if args.asn_csv_dir:
        if not os.path.isdir(args.asn_csv_dir):
            missing("ASN CSV directory", args.asn_csv_dir)
        asn_table = AsnTable.from_dir(args.asn_csv_dir)
    return Geo(country_db, asn_db, asn_table, args.cache)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    geo = open_geo(args)
    if args.lookup:
        import json
        for ip in args.lookup:
            print(json.dumps({"ip": ip, **geo.lookup(ip)}))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    name = args.name or os.environ.get("HONEYBEE_MODULE_NAME") or "geo"
    flt = {}
    if args.kinds:
        flt["kinds"] = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if args.nodes:
        flt["nodes"] = [n.strip() for n in args.nodes.split(",") if n.strip()]
    with Module(name, version="1.0.0", permissions=["events:read", "enrich:write"]) as m:
        for need in ("events:read", "enrich:write"):
            if need not in m.granted:
                sys.exit(f"geo: this module needs the {need} permission (granted: {', '.join(m.granted) or 'none'})")
        m.subscribe(flt)
        m.log("info", "geo: subscribed; enriching source addresses")
        enriched = 0
        for _sub, event in m.events():
            ip = (event.get("source") or {}).get("ip")
            if not ip:
                continue
            data = geo.lookup(ip)
            if not data:
                continue
            try:
                m.enrich(Module.ref(event), data)
                enriched += 1
            except ModuleError as e:
                m.log("warn", f"geo: enrich {Module.ref(event)} failed: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

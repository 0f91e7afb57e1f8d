"""hpfeeds subscriber for tests/modules_examples.rs, built on the `hpfeeds` package from PyPI
(an implementation independent of the export module's own client): subscribes to one
channel and prints every message as a JSON line {"ident", "channel", "payload"}.
Usage: hpfeeds_subscriber.py HOST PORT IDENT CHANNEL (secret in $HPFEEDS_SECRET)."""

import json
import os
import sys

import hpfeeds

host, port, ident, channel = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
client = hpfeeds.new(host, port, ident, os.environ["HPFEEDS_SECRET"], reconnect=False)
client.s.settimeout(None)
client.subscribe(channel)
print(json.dumps({"connected": client.brokername}), flush=True)


def on_message(ident, chan, payload):
    print(json.dumps({"ident": ident, "channel": chan, "payload": payload.decode("utf-8")}), flush=True)


def on_error(error):
    print(json.dumps({"error": str(error)}), flush=True)
    client.stop()


client.run(on_message, on_error)

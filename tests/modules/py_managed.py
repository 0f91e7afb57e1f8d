"""Managed test module: started by the core with its credential in the environment;
subscribes to everything and logs a line per event until it is told to stop."""

import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "modules", "python"))
from honeybee_module import Module  # noqa: E402

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with Module(permissions=["events:read"]) as m:
    m.subscribe({})
    m.log("info", "managed test module subscribed")
    for sub, event in m.events():
        print("event", event["event"]["action"], flush=True)

"""Test module: subscribes with a filter, reports what it receives as JSON lines on
stdout, then commands a node and publishes an alert. Driven by tests/modules.rs."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "modules", "python"))
from honeybee_module import Module, ModuleError  # noqa: E402

want = int(os.environ["WANT_EVENTS"])
node = os.environ["NODE"]


def say(**kw):
    print(json.dumps(kw), flush=True)


with Module("pytest", permissions=["events:read", "nodes:command", "alerts:write", "enrich:write"]) as m:
    say(granted=m.granted)
    m.subscribe({"kinds": ["data"], "nodes": [node]})
    say(ready=True)
    got = 0
    for sub, event in m.events(timeout=60):
        say(sub=sub, event=event)
        if got == 0:
            m.enrich(Module.ref(event), {"source.geo.country_iso_code": "ZZ", "source.as.number": 64500})
        got += 1
        if got == want:
            break
    say(command=m.command(node, "ping"))
    say(alert=m.alert("high", "pytest saw probes", body=f"{got} probes", event=None))
    try:
        m.query("captures")
    except ModuleError as e:
        say(refused=e.code)
    say(done=True)

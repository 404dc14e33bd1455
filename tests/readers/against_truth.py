#!/usr/bin/env python3
"""Compares a risktail table with what the engine simulator knows it wrote
(tests/samples/autumn.py's truth.json), through the real polars reader.

Usage: against_truth.py TABLE TRUTH_JSON [--old-state-after-file-start]
                        [--storage-options JSON]

With --old-state-after-file-start, the first breaker row of each file is
left out of the old_state check: when files are backfilled one at a time
in any order, the state before a file's first transition is in the file
before it, which may not be in the table yet (nothing can know it then).

Prints one JSON object: rows, missing (truth lines not in the table), extra
(rows no truth line explains), doubled, shifted (rows whose timestamp is not
the engine's instant; the first five shown), old_state_wrong (breaker rows
whose old_state is not the state before them; where the truth knows it),
and per UTC hour the events the engine wrote and the rows the table holds.
"""
import json
import sys
from collections import Counter
from datetime import timezone

import polars as pl

def message(raw):
    """The message part of a raw line in any of the simulator's envelopes."""
    if raw.startswith("{"):
        try:
            return json.loads(raw).get("message")
        except ValueError:
            return None
    return next((m for m in (raw.split(" - ", 3)[-1], raw.split(": ", 1)[-1]) if m in by_msg), None)


table, truth_path = sys.argv[1], sys.argv[2]
after_file_start = "--old-state-after-file-start" in sys.argv[3:]
opts = {}
if "--storage-options" in sys.argv[3:]:
    opts = json.loads(sys.argv[sys.argv.index("--storage-options") + 1])
    if "AZURITE_BLOB_STORAGE_URL" in opts:  # the emulator's address, read from the environment
        import os
        os.environ["AZURITE_BLOB_STORAGE_URL"] = opts.pop("AZURITE_BLOB_STORAGE_URL")
truth = json.load(open(truth_path))["events"]
df = pl.read_delta(table, storage_options=opts or None)
first_breaker = set(
    df.filter(pl.col("component") == "circuit_breaker")
    .group_by("source_file")
    .agg(pl.col("source_offset").min())
    .select(pl.concat_str([pl.col("source_file"), pl.col("source_offset").cast(pl.Utf8)], separator="@"))
    .to_series()
    .to_list()
) if after_file_start else set()
df = df.select("raw_line", "timestamp", "old_state", "source_file", "source_offset")
by_msg = {e["msg"]: e for e in truth}
seen = Counter()
shifted, old_wrong, extra = [], [], 0
table_hours = Counter()
for raw, ts, old, file, offset in df.iter_rows():
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    ms = round(ts.timestamp() * 1000)
    table_hours[ms // 3_600_000 % 24] += 1
    msg = message(raw)
    if msg is None:
        extra += 1
        continue
    seen[msg] += 1
    e = by_msg[msg]
    if ms != e["utc_ms"]:
        shifted.append({"msg": msg[:60], "table_ms": ms, "engine_ms": e["utc_ms"], "off_s": (ms - e["utc_ms"]) / 1000})
    if e["old_state"] is not None and old != e["old_state"] and f"{file}@{offset}" not in first_breaker:
        old_wrong.append({"msg": msg[:60], "table": old, "engine": e["old_state"]})
engine_hours = Counter(e["utc_ms"] // 3_600_000 % 24 for e in truth)
print(json.dumps({
    "rows": df.height,
    "engine": len(truth),
    "missing": sum(1 for e in truth if seen[e["msg"]] == 0),
    "extra": extra,
    "doubled": sum(1 for m, n in seen.items() if n > 1),
    "shifted": len(shifted),
    "shifted_first": shifted[:5],
    "old_state_wrong": len(old_wrong),
    "old_state_wrong_first": old_wrong[:5],
    "per_utc_hour": {f"{h:02d}:00": [engine_hours[h], table_hours[h]] for h in sorted(set(engine_hours) | set(table_hours))},
}))

# polars', deltalake's and DuckDB's runtimes can abort at interpreter
# teardown, after the work is done: leave without it.
import os, sys  # noqa: E402
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)

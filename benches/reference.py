#!/usr/bin/env python3
"""The Python yardstick: the same job as `risktail backfill` the way a competent
engineer would write it in the engine's own stack, for the benchmark to compare
against (benches/run).

It reads a log written with the engine's default format
(`%(asctime)s - %(name)s - %(levelname)s - %(message)s`) line by line as bytes,
skips lines without a risk keyword with one compiled alternation (the cheap
test first), parses the envelope and the message with compiled regexes for
every row of the dialect page, converts numbers ($, thousands separators),
converts New York local time to UTC, and appends the events in batches of
100,000 rows to a Delta table with `deltalake.write_deltalake` (pyarrow
tables, partitioned by event_date). It keeps no offsets and no quarantine:
it does less than risktail, never more.

Usage: reference.py LOG TABLE [--tz America/New_York]
Prints one JSON line: lines, events, seconds.
"""
import json
import re
import sys
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pyarrow as pa
from deltalake import write_deltalake

log_path, table = sys.argv[1], sys.argv[2]
tz = ZoneInfo(sys.argv[sys.argv.index("--tz") + 1]) if "--tz" in sys.argv else timezone.utc

KEYWORDS = re.compile(rb"Circuit breaker|Trailing stop|portfolio limits|Portfolio health")
ENVELOPE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) - (\S+) - ([A-Z]+) - (.*)$")
CONTEXT = re.compile(r"^\[(?:exec=(\S+))?\s?(?:sym=(\S+))?\] ")
NUM = r"\$?-?[\d,]*\.?\d+(?:[eE][-+]?\d+)?"

PATTERNS = [
    ("circuit_breaker", "circuit_breaker_init", re.compile(r"^Circuit breaker initialized: state=(?P<new_state>[A-Z_]+), failure_threshold=(?P<m_threshold>\d+), window=(?P<m_window_s>\d+)s, cooldown=(?P<m_cooldown_s>\d+)s")),
    ("circuit_breaker", "circuit_breaker_state_change", re.compile(r"^Circuit breaker (?P<new_state>OPEN)ED: (?P<failure_count>\d+) failures")),
    ("circuit_breaker", "circuit_breaker_state_change", re.compile(r"^Circuit breaker (?P<new_state>HALF_OPEN): cooldown of (?P<m_cooldown_s>\d+)s elapsed")),
    ("circuit_breaker", "circuit_breaker_state_change", re.compile(r"^Circuit breaker (?P<new_state>CLOSED): (?P<m_successes>\d+) consecutive successes")),
    ("circuit_breaker", "circuit_breaker_state_change", re.compile(r"^Circuit breaker re-(?P<new_state>OPEN)ED: failure during HALF_OPEN(?: \((?P<m_reason>.*)\))?$")),
    ("circuit_breaker", "circuit_breaker_failure", re.compile(r"^Circuit breaker failure recorded: (?P<failure_count>\d+)/(?P<m_threshold>\d+) in (?P<m_window_s>\d+)s window(?: \(reason: (?P<m_reason>.*)\))?$")),
    ("circuit_breaker", "circuit_breaker_success", re.compile(r"^Circuit breaker success recorded: (?P<m_successes>\d+)/(?P<m_required>\d+) in HALF_OPEN")),
    ("trailing_stop", "trailing_stop_add", re.compile(rf"^Trailing stop added: execution_id=(?P<execution_id>\S+) symbol=(?P<symbol>\S+) entry=(?P<entry_premium>{NUM}) activation=(?P<m_activation_pct>{NUM})% trailing=(?P<m_trailing_pct>{NUM})%")),
    ("trailing_stop", "trailing_stop_activate", re.compile(rf"^Trailing stop ACTIVATED: entry=(?P<entry_premium>{NUM}), peak=(?P<highest_premium>{NUM}), stop=(?P<stop_premium>{NUM})")),
    ("trailing_stop", "trailing_stop_update", re.compile(rf"^Trailing stop UPDATED: peak=(?P<highest_premium>{NUM}), stop=(?P<stop_premium>{NUM}) \(was (?P<m_previous_stop>{NUM})\)")),
    ("trailing_stop", "trailing_stop_trigger", re.compile(rf"^Trailing stop TRIGGERED: current=(?P<current_premium>{NUM}), stop=(?P<stop_premium>{NUM}), peak=(?P<highest_premium>{NUM})")),
    ("portfolio_limits", "portfolio_limit_check", re.compile(rf"^Entry (?P<decision>REJECTED) by portfolio limits: (?P<rejection_reason>(?:Portfolio delta (?P<pd>{NUM}) would exceed limit (?P<pdl>{NUM})|Symbol (?P<sym2>\S+) delta (?P<sd>{NUM}) would exceed limit (?P<sdl>{NUM})|Position count (?P<pc>\d+) would exceed limit (?P<pcl>\d+)|Total exposure (?P<te>{NUM}) would exceed limit (?P<tel>{NUM})|.*))$")),
    ("portfolio_limits", "portfolio_limit_check", re.compile(rf"^Entry (?P<decision>allowed) by portfolio limits: (?P<symbol>\S+) delta=(?P<m_symbol_delta>{NUM}) \(portfolio (?P<current_value>{NUM})/(?P<limit_value>{NUM}), symbol {NUM}/(?P<m_symbol_limit>{NUM})\)")),
    ("portfolio_limits", "portfolio_health_warning", re.compile(rf"^Portfolio health warning: (?P<limit_type>\w+) at (?P<m_pct>{NUM})% of limit \((?P<current_value>{NUM})/(?P<limit_value>{NUM})\)")),
]
FLOATS = {"entry_premium", "current_premium", "highest_premium", "stop_premium", "current_value", "limit_value"}
LIMITS = [("pd", "pdl", "portfolio_delta"), ("sd", "sdl", "symbol_delta"), ("pc", "pcl", "position_count"), ("te", "tel", "total_exposure")]
COLUMNS = ["event_type", "component", "timestamp", "execution_id", "old_state", "new_state", "failure_count",
           "entry_premium", "current_premium", "highest_premium", "stop_premium", "action", "limit_type",
           "current_value", "limit_value", "allowed", "rejection_reason", "metadata", "symbol", "level", "logger",
           "source", "source_file", "source_offset", "raw_line", "event_date"]
ACTION = {"trailing_stop_add": "ADD", "trailing_stop_activate": "ACTIVATE", "trailing_stop_update": "UPDATE", "trailing_stop_trigger": "TRIGGER"}


def num(s):
    return float(s.replace("$", "").replace(",", ""))


SCHEMA = pa.schema([
    ("event_type", pa.string()), ("component", pa.string()), ("timestamp", pa.timestamp("us", tz="UTC")),
    ("execution_id", pa.string()), ("old_state", pa.string()), ("new_state", pa.string()), ("failure_count", pa.int32()),
    ("entry_premium", pa.float64()), ("current_premium", pa.float64()), ("highest_premium", pa.float64()),
    ("stop_premium", pa.float64()), ("action", pa.string()), ("limit_type", pa.string()), ("current_value", pa.float64()),
    ("limit_value", pa.float64()), ("allowed", pa.bool_()), ("rejection_reason", pa.string()), ("metadata", pa.string()),
    ("symbol", pa.string()), ("level", pa.string()), ("logger", pa.string()), ("source", pa.string()),
    ("source_file", pa.string()), ("source_offset", pa.int64()), ("raw_line", pa.string()), ("event_date", pa.date32()),
])


def flush(batch):
    if batch["event_type"]:
        write_deltalake(table, pa.table(batch, schema=SCHEMA), mode="append", partition_by=["event_date"])
    return {c: [] for c in COLUMNS}


def main():
    started = time.perf_counter()
    batch = {c: [] for c in COLUMNS}
    breaker = None
    lines = events = 0
    offset = 0
    with open(log_path, "rb") as f:
        for raw in f:
            lines += 1
            pos = offset
            offset += len(raw)
            if not KEYWORDS.search(raw):
                continue
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            env = ENVELOPE.match(text)
            if not env:
                continue
            when, ms, logger, level, msg = env.groups()
            ctx = CONTEXT.match(msg)
            exec_id = sym = None
            if ctx:
                exec_id, sym = ctx.groups()
                msg = msg[ctx.end():]
            for component, event_type, rx in PATTERNS:
                m = rx.match(msg)
                if m:
                    break
            else:
                continue
            g = {k: v for k, v in m.groupdict().items() if v is not None}
            row = dict.fromkeys(COLUMNS)
            meta = {}
            for k, v in g.items():
                if k.startswith("m_"):
                    meta[k[2:]] = v
                elif k in FLOATS:
                    row[k] = num(v)
                elif k in COLUMNS:
                    row[k] = v
            if "failure_count" in g:
                row["failure_count"] = int(g["failure_count"])
            if "decision" in g:
                row["allowed"] = g["decision"] == "allowed"
                for a, b, lt in LIMITS:
                    if a in g:
                        row["limit_type"], row["current_value"], row["limit_value"] = lt, num(g[a]), num(g[b])
                if "sym2" in g:
                    row["symbol"] = g["sym2"]
                if row["allowed"]:
                    row["limit_type"] = "portfolio_delta"
            if component == "circuit_breaker" and row["new_state"]:
                row["old_state"] = "HALF_OPEN" if "re-OPEN" in msg else breaker
                breaker = row["new_state"]
            local = datetime.strptime(when, "%Y-%m-%d %H:%M:%S").replace(microsecond=int(ms) * 1000, tzinfo=tz)
            ts = local.astimezone(timezone.utc)
            row.update(event_type=event_type, component=component, timestamp=ts, level=level, logger=logger,
                       source="engine", source_file=log_path, source_offset=pos, raw_line=text,
                       event_date=ts.date(), action=ACTION.get(event_type),
                       metadata=json.dumps(meta, sort_keys=True) if meta else None)
            row["execution_id"] = row["execution_id"] or exec_id
            row["symbol"] = row["symbol"] or sym
            for c in COLUMNS:
                batch[c].append(row[c])
            events += 1
            if len(batch["event_type"]) >= 100_000:
                batch = flush(batch)
    flush(batch)
    print(json.dumps({"lines": lines, "events": events, "seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()

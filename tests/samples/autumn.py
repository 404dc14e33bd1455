#!/usr/bin/env python3
"""The engine through a night the clocks change, with its own clock as the
oracle: every record is logged by Python's `logging` with `created` set to the
true instant, so the local time each line prints is what the engine's host
prints (TZ set, `time.localtime`, the repeated autumn hour included), and the
true UTC instant of every risk line is written beside the log.

Usage: autumn.py OUT_DIR [--night autumn|spring] [--events N] [--max-bytes B]
                 [--gzip] [--format python|dmy] [--out-of-order N] [--seed S]
                 [--rotate size|timed|logrotate-create|logrotate-copytruncate]

  --night        autumn: America/New_York 2026-11-01 00:00-04:00 local
                 (01:00-02:00 twice); spring: 2026-03-08 00:00-05:00 local
                 (02:00-03:00 skipped)
  --events       risk lines to write (default 3000), among about six times as
                 many noise lines
  --max-bytes    RotatingFileHandler's maxBytes (0: one file, no rotation)
  --gzip         each rotated file gzipped by the handler's rotator
  --format       python: "%(asctime)s - %(name)s - %(levelname)s - %(message)s";
                 dmy: "%(asctime)s.%(msecs)03d %(levelname).4s %(name)s: %(message)s"
                 with datefmt "%d/%m/%Y %H:%M:%S";
                 offset: datefmt "%Y-%m-%d %H:%M:%S%z", each line with its
                 own UTC offset;
                 json: python-json-logger's JsonFormatter with asctime (local,
                 no offset);
                 loguru: loguru's default format, its own size rotation
                 (--max-bytes) and gzip compression (--gzip)
  --out-of-order N  N risk lines inside the repeated hour are stamped up to 2 s
                 *before* the line above them, as two threads of one engine
                 produce
  --rotate       who rotates (python and json formats): size, RotatingFileHandler
                 at --max-bytes; timed, TimedRotatingFileHandler every 13 minutes
                 of the engine's clock (the simulated one: time.time is the
                 record's instant), names dated in local time, so the repeated
                 hour's names sort before the first pass's; logrotate-create and
                 logrotate-copytruncate, the real logrotate run whenever the file
                 passes --max-bytes (create: the engine's WatchedFileHandler
                 reopens the new file; copytruncate: FileHandler appending),
                 --gzip as logrotate's compress
  --pace S       sleep S seconds after every 100 lines (a live engine for a
                 daemon to follow; the simulated clock runs as fast as it may)

Writes OUT_DIR/engine.log (and rotated siblings) and OUT_DIR/truth.json:
{"format": ..., "datefmt": ..., "events": [{"msg", "utc_ms", "old_state",
"new_state" | "breaker"}]}, where old_state and new_state are the breaker's
state before and after a breaker line, and breaker the state in force when a
portfolio rejection was logged (null before the first transition).
Risk line i is a breaker transition in the cycle OPENED, HALF_OPEN, CLOSED
when i % 4 != 3, else a portfolio rejection; each carries i in its text.
"""
import argparse
import datetime as dt
import gzip
import json
import logging
import logging.handlers
import os
import random
import shutil
import subprocess
import time
from pathlib import Path
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")

NIGHTS = {
    "autumn": (dt.datetime(2026, 11, 1, 4, 0, tzinfo=dt.timezone.utc), 5),
    "spring": (dt.datetime(2026, 3, 8, 5, 0, tzinfo=dt.timezone.utc), 5),
}
FORMATS = {
    "python": ("%(asctime)s - %(name)s - %(levelname)s - %(message)s", None),
    "dmy": ("%(asctime)s.%(msecs)03d %(levelname).4s %(name)s: %(message)s", "%d/%m/%Y %H:%M:%S"),
    "offset": ("%(asctime)s.%(msecs)03d - %(name)s - %(levelname)s - %(message)s", "%Y-%m-%d %H:%M:%S%z"),
    "json": ("%(asctime)s %(name)s %(levelname)s %(message)s", None),
    "loguru": (None, None),
}


# The engine's clock: what time.time() returns in this process, so a timed
# rotation happens at the simulated instants.
CLOCK = [0.0]


class PythonWriter:
    """Records through a Python logging handler, `created` set to the instant."""

    def __init__(self, out, a):
        fmt, datefmt = FORMATS[a.format]
        self.out, self.a = out, a
        self.h = handler(out, a.max_bytes, a.gzip, a.rotate)
        if a.format == "json":
            from pythonjsonlogger.json import JsonFormatter
            self.h.setFormatter(JsonFormatter(fmt))
        else:
            self.h.setFormatter(logging.Formatter(fmt, datefmt))

    def write(self, name, level, msg, at):
        rec = logging.getLogger(name).makeRecord(name, level, "/opt/engine/v6/x.py", 1, msg, None, None)
        rec.created = at
        rec.msecs = int((at - int(at)) * 1000) + 0.0
        CLOCK[0] = max(CLOCK[0], at)
        self.h.handle(rec)
        if self.a.rotate.startswith("logrotate") and os.path.getsize(self.out / "engine.log") > self.a.max_bytes:
            logrotate(self.out, self.a.rotate, self.a.gzip)

    def close(self):
        self.h.close()


class LoguruWriter:
    """Records through loguru (its own rotation and compression), each
    record's time pinned to the instant in the host's zone."""

    def __init__(self, out, a):
        from loguru import logger
        from loguru._datetime import datetime as ldt
        self.at = 0.0
        logger.remove()
        opts = {}
        if a.max_bytes:
            opts["rotation"] = a.max_bytes
        if a.gzip:
            opts["compression"] = "gz"

        def pin(record):
            t = dt.datetime.fromtimestamp(self.at, NEW_YORK)
            record["time"] = ldt(t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond,
                                 tzinfo=t.tzinfo, fold=t.fold)
            record["name"], record["function"], record["line"] = record["extra"]["lg"], "check", 88

        self.id = logger.add(str(out / "engine.log"), colorize=False, enqueue=False, **opts)
        self.log = logger.patch(pin)
        self.logger = logger

    def write(self, name, level, msg, at):
        # Milliseconds, as the format prints them (the truth keeps ms too).
        self.at = int(at) + int((at - int(at)) * 1000) / 1000
        self.log.bind(lg=name).log(logging.getLevelName(level), msg)

    def close(self):
        self.logger.remove(self.id)
CYCLE = [
    ("OPEN", "Circuit breaker OPENED: %d failures in 300s window (threshold 5)"),
    ("HALF_OPEN", "Circuit breaker HALF_OPEN: cooldown of %ds elapsed, allowing test trades"),
    ("CLOSED", "Circuit breaker CLOSED: %d consecutive successes in HALF_OPEN"),
]


def logrotate(out, how, gz):
    """The real logrotate, forced, as cron would run it when the file grew."""
    conf = out.parent / (out.name + ".logrotate.conf")
    mode = "create" if how == "logrotate-create" else "copytruncate"
    conf.write_text(f"{out / 'engine.log'} {{\n  rotate 1000\n  {mode}\n  {'compress' if gz else 'nocompress'}\n  missingok\n}}\n")
    subprocess.run(["logrotate", "-f", "-s", str(out.parent / (out.name + ".logrotate.state")), str(conf)],
                   check=True, env=dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"))


def handler(out, max_bytes, gz, rotate="size"):
    path = str(out / "engine.log")
    if rotate == "logrotate-create":
        return logging.handlers.WatchedFileHandler(path)
    if max_bytes == 0 or rotate == "logrotate-copytruncate":
        return logging.FileHandler(path)
    if rotate == "timed":
        time.time = lambda: CLOCK[0]
        h = logging.handlers.TimedRotatingFileHandler(path, when="M", interval=13, backupCount=0)
        h.rolloverAt = h.computeRollover(int(CLOCK[0]))  # not the new file's real mtime
    else:
        h = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=100000)
    if gz:
        h.namer = lambda name: name + ".gz"

        def rotator(source, dest):
            with open(source, "rb") as src, gzip.open(dest, "wb") as o:
                shutil.copyfileobj(src, o)
            os.remove(source)

        h.rotator = rotator
    return h


def in_fold(t):
    """Whether instant t (epoch s) is inside a local hour that happens twice."""
    local = dt.datetime.fromtimestamp(t, NEW_YORK)
    return local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--night", choices=NIGHTS, default="autumn")
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--max-bytes", type=int, default=16000)
    ap.add_argument("--gzip", action="store_true")
    ap.add_argument("--format", choices=FORMATS, default="python")
    ap.add_argument("--out-of-order", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pace", type=float, default=0.0)
    ap.add_argument("--rotate", choices=["size", "timed", "logrotate-create", "logrotate-copytruncate"],
                    default="size")
    a = ap.parse_args()
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(a.seed)
    fmt, datefmt = FORMATS[a.format]
    start, hours = NIGHTS[a.night]
    t0 = start.timestamp()
    CLOCK[0] = t0
    w = LoguruWriter(out, a) if a.format == "loguru" else PythonWriter(out, a)
    span = hours * 3600.0
    steps = a.events * 6
    # Risk lines spread evenly over the night among noise.
    risk_at = set(rng.sample(range(steps), a.events))
    jitter_left = a.out_of_order
    # The breaker state risktail cannot know before the first transition.
    state, events, t, i = None, [], t0, 0
    for step in range(steps):
        t += span / steps * rng.uniform(0.5, 1.5)
        if step in risk_at:
            if i % 4 == 3:
                name, level = "v6.risk.portfolio_limits", logging.WARNING
                msg, old = "Entry REJECTED by portfolio limits: Position count %d would exceed limit 10" % i, None
                extra = {"breaker": state}
            else:
                new, text = CYCLE[(i - i // 4) % 3]
                name, level = "v6.risk.circuit_breaker", logging.WARNING
                msg, old, state = text % i, state, new
                extra = {"new_state": new}
            at = t
            if jitter_left and in_fold(t) and step % 2 == 0:
                at = t - rng.uniform(0.001, 2.0)
                jitter_left -= 1
            i += 1
        else:
            name, level, msg, old, at = "v6.feed", logging.DEBUG, "quote SPY bid=2.50 ask=2.55 seq=%d" % step, None, t
        w.write(name, level, msg, at)
        if a.pace and step % 100 == 99:
            time.sleep(a.pace)
        if name != "v6.feed":
            events.append({"msg": msg, "utc_ms": int(at) * 1000 + int((at - int(at)) * 1000), "old_state": old, **extra})
    w.close()
    envelope = {"json": "json", "loguru": "loguru"}.get(a.format, "python")
    (out / "truth.json").write_text(json.dumps({"envelope": envelope, "format": fmt, "datefmt": datefmt, "events": events}))
    print(json.dumps({"events": len(events), "files": len(list(out.glob("engine.*"))),
                      "out_of_order": a.out_of_order - jitter_left}))


if __name__ == "__main__":
    main()

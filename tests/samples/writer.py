#!/usr/bin/env python3
"""The engine for the daemon tests: writes risk lines (and noise) through a
chosen Python logging handler, at a steady pace.

Usage: writer.py MODE PATH START COUNT [PACE]
  MODE   rotating  RotatingFileHandler(maxBytes=6000, backupCount=200)
         rotating-delete  the same with backupCount=2 (old files are deleted)
         rotating-large   RotatingFileHandler(maxBytes=300000, backupCount=200)
         timed     TimedRotatingFileHandler(when="S", interval=1)
         watched   WatchedFileHandler (reopens after an external rename)
         plain     FileHandler, append (for logrotate copytruncate)
         rotating-gz  RotatingFileHandler(maxBytes=6000, backupCount=200),
                   each rotated file gzipped by a rotator (engine.log.N.gz)
         breaker-gz  RotatingFileHandler(maxBytes=40000, backupCount=2000),
                   rotated files gzipped by a rotator (a new file every ~0.1 s
                   at the default pace); risk line i is a circuit breaker
                   transition instead, in the cycle OPENED (i % 3 == 0),
                   HALF_OPEN (1), CLOSED (2), with i in its text, so the state
                   before line i is known: the one line i-1 entered
  Risk line i (START <= i < START+COUNT):
         "Entry REJECTED by portfolio limits: Position count <i> would exceed limit 10"
  PACE   seconds to sleep after every 10 risk lines (default 0.02)
  WRITER_QUARANTINE_EVERY=N (environment): after every Nth risk line, also a
         line risktail must quarantine (a breaker keyword no pattern knows):
         "Circuit breaker state unclear: probe <i> returned nothing"
"""
import gzip
import logging
import logging.handlers
import os
import shutil
import sys
import time

mode, path, start, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
pace = float(sys.argv[5]) if len(sys.argv) > 5 else 0.02
if mode == "rotating":
    h = logging.handlers.RotatingFileHandler(path, maxBytes=6000, backupCount=200)
elif mode == "rotating-large":
    h = logging.handlers.RotatingFileHandler(path, maxBytes=300000, backupCount=200)
elif mode == "rotating-delete":
    # backupCount=2: the oldest file is deleted at every rotation.
    h = logging.handlers.RotatingFileHandler(path, maxBytes=6000, backupCount=2)
elif mode == "timed":
    h = logging.handlers.TimedRotatingFileHandler(path, when="S", interval=1, backupCount=0)
elif mode in ("breaker-gz", "rotating-gz"):
    size, count_ = (40000, 2000) if mode == "breaker-gz" else (6000, 200)
    h = logging.handlers.RotatingFileHandler(path, maxBytes=size, backupCount=count_)
    h.namer = lambda name: name + ".gz"

    def rotator(source, dest):
        with open(source, "rb") as src, gzip.open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
        os.remove(source)

    h.rotator = rotator
elif mode == "watched":
    h = logging.handlers.WatchedFileHandler(path)
else:
    h = logging.FileHandler(path, mode="a")
h.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
risk = logging.getLogger("v6.risk.portfolio_limits")
noise = logging.getLogger("v6.feed")
for lg in (risk, noise):
    lg.addHandler(h)
    lg.setLevel(logging.DEBUG)
    lg.propagate = False
quarantine_every = int(os.environ.get("WRITER_QUARANTINE_EVERY", "0"))
breaker = logging.getLogger("v6.risk.circuit_breaker")
breaker.addHandler(h)
breaker.setLevel(logging.DEBUG)
breaker.propagate = False
cycle = [
    "Circuit breaker OPENED: %d failures in 300s window (threshold 5)",
    "Circuit breaker HALF_OPEN: cooldown of %ds elapsed, allowing test trades",
    "Circuit breaker CLOSED: %d consecutive successes in HALF_OPEN",
]
for i in range(start, start + count):
    noise.debug("quote SPY bid=2.50 ask=2.55 seq=%d", i)
    if mode == "breaker-gz":
        for k in range(3):
            noise.debug("quote QQQ bid=1.10 ask=1.12 seq=%d.%d", i, k)
        breaker.warning(cycle[i % 3], i)
    else:
        risk.warning("Entry REJECTED by portfolio limits: Position count %d would exceed limit 10", i)
    if quarantine_every and i % quarantine_every == 0:
        breaker.warning("Circuit breaker state unclear: probe %d returned nothing", i)
    if i % 10 == 9:
        time.sleep(pace)
h.close()

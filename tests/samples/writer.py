#!/usr/bin/env python3
"""The engine for the daemon tests: writes risk lines (and noise) through a
chosen Python logging handler, at a steady pace.

Usage: writer.py MODE PATH START COUNT [PACE]
  MODE   rotating  RotatingFileHandler(maxBytes=6000, backupCount=200)
         rotating-delete  the same with backupCount=2 (old files are deleted)
         timed     TimedRotatingFileHandler(when="S", interval=1)
         watched   WatchedFileHandler (reopens after an external rename)
         plain     FileHandler, append (for logrotate copytruncate)
  Risk line i (START <= i < START+COUNT):
         "Entry REJECTED by portfolio limits: Position count <i> would exceed limit 10"
  PACE   seconds to sleep after every 10 risk lines (default 0.02)
"""
import logging
import logging.handlers
import sys
import time

mode, path, start, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
pace = float(sys.argv[5]) if len(sys.argv) > 5 else 0.02
if mode == "rotating":
    h = logging.handlers.RotatingFileHandler(path, maxBytes=6000, backupCount=200)
elif mode == "rotating-delete":
    # backupCount=2: the oldest file is deleted at every rotation.
    h = logging.handlers.RotatingFileHandler(path, maxBytes=6000, backupCount=2)
elif mode == "timed":
    h = logging.handlers.TimedRotatingFileHandler(path, when="S", interval=1, backupCount=0)
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
for i in range(start, start + count):
    noise.debug("quote SPY bid=2.50 ask=2.55 seq=%d", i)
    risk.warning("Entry REJECTED by portfolio limits: Position count %d would exceed limit 10", i)
    if i % 10 == 9:
        time.sleep(pace)
h.close()

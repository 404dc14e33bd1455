#!/usr/bin/env python3
"""Writes a realistic multi-day engine log family for demos and tests.

Three trading days (New York time) of a 0DTE options engine: quotes, orders,
fills and heartbeats as noise, and the three risk layers at work — breaker
cycles (including a re-OPEN from HALF_OPEN and an engine restart while the
breaker was OPEN), trailing stops from add to trigger, limit checks allowed
and rejected, health warnings, and a traceback. Written by Python's own
RotatingFileHandler, then the older generations gzipped as logrotate's
`compress` + `delaycompress` leaves them (x.log, x.log.1, x.log.2.gz, ...).

Deterministic by seed. Prints the number of risk lines written per event type
as JSON, so tests can check a backfill against what the engine wrote.

Run: python3 tests/samples/generate.py [--out DIR] [--days N] [--max-bytes B]
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
import time
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")


class Engine:
    def __init__(self, handler, rng, counts):
        self.h, self.rng, self.counts = handler, rng, counts
        self.t = 0.0
        self.breaker = "CLOSED"
        self.failures = 0
        self.noise_scale = 1.0
        # What the engine did, for tests of `risktail state` and `report`:
        # times in UTC milliseconds, as the log lines print them.
        self.facts = {"transitions": [], "entries": [], "stops": [], "warnings": []}

    def ms(self):
        # Exactly as the line prints it (asctime seconds + truncated msecs).
        return int(self.t) * 1000 + int((self.t - int(self.t)) * 1000)

    def transition(self, to, restart=False):
        self.facts["transitions"].append({"ms": self.ms(), "from": self.breaker, "to": to, "restart_reset": restart and self.breaker in ("OPEN", "HALF_OPEN")})
        self.breaker = to

    def entry(self, allowed, limit_type=None, current=None, limit=None):
        self.facts["entries"].append({"ms": self.ms(), "breaker": self.breaker, "allowed": allowed, "limit_type": limit_type, "current": current, "limit": limit})

    def log(self, logger, level, msg, kind=None):
        rec = logging.getLogger(logger).makeRecord(logger, getattr(logging, level), "/opt/engine/v6/x.py", 1, msg, None, None)
        rec.created = self.t
        rec.msecs = int((self.t - int(self.t)) * 1000) + 0.0
        self.h.handle(rec)
        if kind:
            self.counts[kind] += 1
        self.t += self.rng.uniform(0.05, 2.0)

    def noise(self, n):
        for _ in range(round(n * self.noise_scale)):
            r = self.rng.random()
            sym = self.rng.choice(["SPY", "QQQ", "IWM"])
            if r < 0.6:
                self.log("v6.feed", "DEBUG", f"quote {sym} bid={self.rng.uniform(1, 5):.2f} ask={self.rng.uniform(1, 5):.2f}")
            elif r < 0.8:
                self.log("v6.orders", "INFO", f"order ack id={self.rng.randint(1000, 99999)} {sym} status=NEW")
            elif r < 0.95:
                self.log("v6.orders", "INFO", f"fill {sym} qty={self.rng.randint(1, 5)} @ {self.rng.uniform(1, 5):.2f}")
            else:
                self.log("v6.engine", "DEBUG", "heartbeat ok")

    def init(self, first=False):
        if first:
            self.breaker = None
        self.transition("CLOSED", restart=True)
        for st in self.facts["stops"]:
            if st["ended_ms"] is None:
                st["ended_ms"] = self.ms()
        self.log("v6.risk.circuit_breaker", "INFO", "Circuit breaker initialized: state=CLOSED, failure_threshold=5, window=300s, cooldown=60s", "circuit_breaker_init")
        self.failures = 0

    def failure_burst(self, reopen=False):
        for i in range(5):
            self.failures += 1
            self.log("v6.risk.circuit_breaker", "WARNING", f"Circuit breaker failure recorded: {i + 1}/5 in 300s window (reason: Order rejected: insufficient buying power)", "circuit_breaker_failure")
            self.noise(3)
        self.transition("OPEN")
        self.log("v6.risk.circuit_breaker", "ERROR", "Circuit breaker OPENED: 5 failures in 300s window (threshold 5)", "circuit_breaker_state_change")

    def recover(self, reopen_first=False):
        self.t += 61
        self.transition("HALF_OPEN")
        self.log("v6.risk.circuit_breaker", "INFO", "Circuit breaker HALF_OPEN: cooldown of 60s elapsed, allowing test trades", "circuit_breaker_state_change")
        if reopen_first:
            self.transition("OPEN")
            self.log("v6.risk.circuit_breaker", "WARNING", "Circuit breaker re-OPENED: failure during HALF_OPEN (Order rejected: price moved)", "circuit_breaker_state_change")
            self.t += 61
            self.transition("HALF_OPEN")
            self.log("v6.risk.circuit_breaker", "INFO", "Circuit breaker HALF_OPEN: cooldown of 60s elapsed, allowing test trades", "circuit_breaker_state_change")
        # A test trade: the limits check an entry while the breaker is HALF_OPEN.
        self.entry(True, "portfolio_delta", 2.0, 5.0)
        self.log("v6.risk.portfolio_limits", "INFO", "Entry allowed by portfolio limits: SPY delta=0.50 (portfolio 2.00/5.00, symbol 0.50/2.00)", "portfolio_limit_check")
        for i in range(2):
            self.log("v6.risk.circuit_breaker", "INFO", f"Circuit breaker success recorded: {i + 1}/3 in HALF_OPEN", "circuit_breaker_success")
        self.transition("CLOSED")
        self.log("v6.risk.circuit_breaker", "INFO", "Circuit breaker CLOSED: 3 consecutive successes in HALF_OPEN", "circuit_breaker_state_change")

    def trade(self, n):
        sym = self.rng.choice(["SPY", "QQQ", "IWM"])
        ex = f"{self.rng.getrandbits(32):08x}-{n:04d}"
        pd = self.rng.uniform(2.0, 5.5)
        if pd > 5.0:
            self.entry(False, "portfolio_delta", round(pd, 2), 5.0)
            self.log("v6.risk.portfolio_limits", "WARNING", f"Entry REJECTED by portfolio limits: Portfolio delta {pd:.2f} would exceed limit 5.00", "portfolio_limit_check")
            return
        if self.rng.random() < 0.1:
            exposure = self.rng.uniform(50000, 60000)
            self.entry(False, "total_exposure", round(exposure, 2), 50000.0)
            self.log("v6.risk.portfolio_limits", "WARNING", f"Entry REJECTED by portfolio limits: Total exposure ${exposure:,.2f} would exceed limit $50,000.00", "portfolio_limit_check")
            return
        sd = self.rng.uniform(0.2, 1.9)
        self.entry(True, "portfolio_delta", round(pd, 2), 5.0)
        self.log("v6.risk.portfolio_limits", "INFO", f"Entry allowed by portfolio limits: {sym} delta={sd:.2f} (portfolio {pd:.2f}/5.00, symbol {sd:.2f}/2.00)", "portfolio_limit_check")
        if pd > 4.5:
            self.facts["warnings"].append({"ms": self.ms(), "limit_type": "portfolio_delta"})
            self.log("v6.risk.portfolio_limits", "WARNING", f"Portfolio health warning: portfolio_delta at {pd / 5 * 100:.0f}% of limit ({pd:.2f}/5.00)", "portfolio_health_warning")
        entry = round(self.rng.uniform(1.0, 4.0), 2)
        stop_fact = {"exec": ex, "symbol": sym, "entry": entry, "added_ms": self.ms(), "activated_ms": None, "triggered_ms": None, "ended_ms": None, "exit": None, "peak": None, "stop": None,
                     "close_rule": None, "closed_ms": None}
        self.facts["stops"].append(stop_fact)
        self.log("v6.risk.trailing_stop", "INFO", f"Trailing stop added: execution_id={ex} symbol={sym} entry={entry:.2f} activation=2.0% trailing=1.5%", "trailing_stop_add")
        self.noise(self.rng.randint(5, 30))
        peak = entry * self.rng.uniform(0.97, 1.10)
        if peak < entry * 1.02:
            # The decision the engine's alerts table records (rule TimeExit).
            stop_fact.update(close_rule="TimeExit", closed_ms=self.ms())
            self.log("v6.decision", "INFO", f"Decision CLOSE for {sym}: time exit")
            return
        stop = peak * 0.985
        stop_fact.update(activated_ms=self.ms(), peak=round(peak, 2), stop=round(stop, 2))
        self.log("v6.risk.trailing_stop", "INFO", f"[exec={ex} sym={sym}] Trailing stop ACTIVATED: entry={entry:.2f}, peak={peak:.2f}, stop={stop:.2f}", "trailing_stop_activate")
        for _ in range(self.rng.randint(0, 3)):
            was = stop
            peak *= self.rng.uniform(1.005, 1.03)
            stop = peak * 0.985
            stop_fact.update(peak=round(peak, 2), stop=round(stop, 2))
            self.log("v6.risk.trailing_stop", "INFO", f"[exec={ex} sym={sym}] Trailing stop UPDATED: peak={peak:.2f}, stop={stop:.2f} (was {was:.2f})", "trailing_stop_update")
            self.noise(self.rng.randint(2, 10))
        cur = stop * 0.995
        stop_fact.update(triggered_ms=self.ms(), ended_ms=self.ms(), exit=round(cur, 2))
        self.log("v6.risk.trailing_stop", "WARNING", f"[exec={ex} sym={sym}] Trailing stop TRIGGERED: current={cur:.2f}, stop={stop:.2f}, peak={peak:.2f}", "trailing_stop_trigger")
        stop_fact.update(close_rule="TrailingStop", closed_ms=self.ms())
        self.log("v6.decision", "INFO", f"Decision CLOSE for {sym}: Trailing stop triggered at {stop:.2f} (peak {peak:.2f})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "engine"))
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--trades", type=int, default=40)
    ap.add_argument("--max-bytes", type=int, default=192 * 1024)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-gzip", action="store_true")
    ap.add_argument("--noise-scale", type=float, default=1.0, help="multiply the noise lines (0: risk lines only)")
    ap.add_argument("--facts", help="also write what the engine did (breaker transitions, entries, stops) as JSON here")
    a = ap.parse_args()
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    h = logging.handlers.RotatingFileHandler(out / "engine.log", maxBytes=a.max_bytes, backupCount=50)
    h.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
    rng = random.Random(a.seed)
    counts = Counter()
    eng = Engine(h, rng, counts)
    eng.noise_scale = a.noise_scale
    for day in range(a.days):
        eng.t = dt.datetime.combine(dt.date(2026, 1, 26) + dt.timedelta(days=day), dt.time(9, 25), tzinfo=NEW_YORK).timestamp()
        eng.log("v6.engine", "INFO", "engine starting")
        eng.log("v6.risk.trailing_stop", "INFO", "Trailing stop configuration loaded: activation=2.0%, trailing=1.5%")
        eng.init(first=(day == 0))
        for n in range(a.trades):
            eng.noise(rng.randint(20, 60))
            eng.trade(day * 100000 + n)
            if n == a.trades // 3:
                eng.failure_burst()
                eng.entry(False, "position_count", 11.0, 10.0)
                eng.log("v6.risk.portfolio_limits", "WARNING", "Entry REJECTED by portfolio limits: Position count 11 would exceed limit 10", "portfolio_limit_check")
                eng.recover(reopen_first=(day % 2 == 0))
            if day % 30 == 1 and n == 2 * a.trades // 3:
                # The breaker opens, the engine crashes and restarts: init says
                # CLOSED while the breaker was OPEN (the audit's worst case).
                eng.failure_burst()
                try:
                    raise RuntimeError("Circuit breaker OPENED: refusing order")
                except RuntimeError:
                    eng.log("v6.execution", "ERROR", "Order submission failed\nTraceback (most recent call last):\n  File \"/opt/engine/v6/execution.py\", line 41, in submit\nRuntimeError: Circuit breaker OPENED: refusing order")
                eng.t += 30
                eng.log("v6.engine", "INFO", "engine starting")
                eng.init()
        # A wording no pattern knows: quarantined with its reason, never dropped.
        eng.log("v6.risk.trailing_stop", "INFO", "Trailing stop parked: awaiting market open", "quarantine")
        eng.log("v6.engine", "INFO", "session closed")
    h.close()
    if not a.no_gzip:
        # logrotate compress + delaycompress: the newest rotated file stays plain.
        for p in sorted(out.glob("engine.log.*")):
            n = int(p.name.rsplit(".", 1)[1])
            if n >= 2:
                with open(p, "rb") as f, gzip.GzipFile(str(p) + ".gz", "wb", mtime=0) as g:
                    g.write(f.read())
                p.unlink()
    if a.facts:
        Path(a.facts).write_text(json.dumps(eng.facts, indent=1))
    print(json.dumps(dict(sorted(counts.items()))))


if __name__ == "__main__":
    main()

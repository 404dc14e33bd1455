#!/usr/bin/env python3
"""Writes the inputs of the test corpus with the engine's own tools.

Each case folder gets its log file(s) written by Python's `logging` handlers,
loguru or python-json-logger, with record times pinned so the bytes are the
same on every run. The envelope cases also get `oracle.jsonl`: what each risk
record means (event, UTC time, columns), from the dialect page and the
pinned times, which the golden test holds risktail's events to. The full
expected outputs (`expected.jsonl`) are not written here: they come from
`RISKTAIL_BLESS=1 cargo test --test integration golden`, once, and are then
read and checked by a person.

Run: python3 tests/corpus/generate.py [--out DIR]   (needs: loguru, python-json-logger)
"""
import datetime as dt
import gzip
import logging
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXEC = "8f14e45f-ceea-4c2a-9a8d-3b1f0c6f5e21"

# Every row of log-dialect.md §2, in a plausible order (logger, level, message).
DIALECT = [
    ("v6.risk.circuit_breaker", "INFO", "Circuit breaker initialized: state=CLOSED, failure_threshold=5, window=300s, cooldown=60s"),
    ("v6.risk.circuit_breaker", "WARNING", "Circuit breaker failure recorded: 3/5 in 300s window (reason: Order rejected: insufficient buying power)"),
    ("v6.risk.circuit_breaker", "ERROR", "Circuit breaker OPENED: 5 failures in 300s window (threshold 5)"),
    ("v6.risk.circuit_breaker", "INFO", "Circuit breaker HALF_OPEN: cooldown of 60s elapsed, allowing test trades"),
    ("v6.risk.circuit_breaker", "INFO", "Circuit breaker success recorded: 2/3 in HALF_OPEN"),
    ("v6.risk.circuit_breaker", "WARNING", "Circuit breaker re-OPENED: failure during HALF_OPEN (Order rejected: insufficient buying power)"),
    ("v6.risk.circuit_breaker", "INFO", "Circuit breaker HALF_OPEN: cooldown of 60s elapsed, allowing test trades"),
    ("v6.risk.circuit_breaker", "INFO", "Circuit breaker CLOSED: 3 consecutive successes in HALF_OPEN"),
    ("v6.risk.circuit_breaker", "ERROR", "Circuit breaker OPENED: 6 failures... trading halted"),
    ("v6.risk.trailing_stop", "INFO", f"Trailing stop added: execution_id={EXEC} symbol=SPY entry=2.50 activation=2.0% trailing=1.5%"),
    ("v6.risk.trailing_stop", "INFO", f"[exec={EXEC} sym=SPY] Trailing stop ACTIVATED: entry=2.50, peak=2.55, stop=2.51"),
    ("v6.risk.trailing_stop", "INFO", f"[exec={EXEC} sym=SPY] Trailing stop UPDATED: peak=2.80, stop=2.76 (was 2.71)"),
    ("v6.risk.trailing_stop", "WARNING", f"[exec={EXEC} sym=SPY] Trailing stop TRIGGERED: current=2.74, stop=2.76, peak=2.80"),
    ("v6.risk.trailing_stop", "INFO", "Trailing stop added: execution_id=0b9c-77 symbol=NDX entry=1e-05 activation=2.5% trailing=0.5%"),
    ("v6.risk.trailing_stop", "INFO", "[exec=0b9c-77] Trailing stop UPDATED: peak=1,234.50, stop=1,215.98 (was 1,200.00)"),
    ("v6.risk.portfolio_limits", "WARNING", "Entry REJECTED by portfolio limits: Portfolio delta 5.20 would exceed limit 5.00"),
    ("v6.risk.portfolio_limits", "WARNING", "[sym=SPY] Entry REJECTED by portfolio limits: Symbol SPY delta 2.10 would exceed limit 2.00"),
    ("v6.risk.portfolio_limits", "WARNING", "Entry REJECTED by portfolio limits: Position count 11 would exceed limit 10"),
    ("v6.risk.portfolio_limits", "WARNING", "Entry REJECTED by portfolio limits: Total exposure $52,300.00 would exceed limit $50,000.00"),
    ("v6.risk.portfolio_limits", "WARNING", "Entry REJECTED by portfolio limits: Market closed for SPY (halted)"),
    ("v6.risk.portfolio_limits", "INFO", "Entry allowed by portfolio limits: SPY delta=1.20 (portfolio 3.10/5.00, symbol 1.20/2.00)"),
    ("v6.risk.portfolio_limits", "INFO", "Entry allowed by portfolio limits: QQQ delta=-0.75 (portfolio -1.25/5.00, symbol -0.75/2.00)"),
    ("v6.risk.portfolio_limits", "WARNING", "Portfolio health warning: portfolio_delta at 92% of limit (4.60/5.00)"),
]

# What each row of DIALECT means, written from the dialect page, not from
# risktail's output: the event and the columns it must have. The breaker's
# old_state follows the order of DIALECT (the first breaker line sees none).
S = "circuit_breaker_state_change"
MEANING = [
    {"event_type": "circuit_breaker_init", "new_state": "CLOSED", "old_state": None},
    {"event_type": "circuit_breaker_failure", "failure_count": 3},
    {"event_type": S, "new_state": "OPEN", "old_state": "CLOSED", "failure_count": 5},
    {"event_type": S, "new_state": "HALF_OPEN", "old_state": "OPEN"},
    {"event_type": "circuit_breaker_success"},
    {"event_type": S, "new_state": "OPEN", "old_state": "HALF_OPEN"},
    {"event_type": S, "new_state": "HALF_OPEN", "old_state": "OPEN"},
    {"event_type": S, "new_state": "CLOSED", "old_state": "HALF_OPEN"},
    {"event_type": S, "new_state": "OPEN", "old_state": "CLOSED", "failure_count": 6},
    {"event_type": "trailing_stop_add", "action": "ADD", "execution_id": EXEC, "symbol": "SPY", "entry_premium": 2.5},
    {"event_type": "trailing_stop_activate", "action": "ACTIVATE", "execution_id": EXEC, "symbol": "SPY",
     "entry_premium": 2.5, "highest_premium": 2.55, "stop_premium": 2.51},
    {"event_type": "trailing_stop_update", "action": "UPDATE", "execution_id": EXEC, "symbol": "SPY",
     "highest_premium": 2.8, "stop_premium": 2.76},
    {"event_type": "trailing_stop_trigger", "action": "TRIGGER", "execution_id": EXEC, "symbol": "SPY",
     "current_premium": 2.74, "stop_premium": 2.76, "highest_premium": 2.8},
    {"event_type": "trailing_stop_add", "action": "ADD", "execution_id": "0b9c-77", "symbol": "NDX", "entry_premium": 1e-05},
    {"event_type": "trailing_stop_update", "action": "UPDATE", "execution_id": "0b9c-77",
     "highest_premium": 1234.5, "stop_premium": 1215.98},
    {"event_type": "portfolio_limit_check", "allowed": False, "limit_type": "portfolio_delta", "current_value": 5.2,
     "limit_value": 5.0, "rejection_reason": "Portfolio delta 5.20 would exceed limit 5.00"},
    {"event_type": "portfolio_limit_check", "allowed": False, "limit_type": "symbol_delta", "symbol": "SPY",
     "current_value": 2.1, "limit_value": 2.0},
    {"event_type": "portfolio_limit_check", "allowed": False, "limit_type": "position_count", "current_value": 11.0,
     "limit_value": 10.0},
    {"event_type": "portfolio_limit_check", "allowed": False, "limit_type": "total_exposure", "current_value": 52300.0,
     "limit_value": 50000.0},
    {"event_type": "portfolio_limit_check", "allowed": False, "limit_type": None,
     "rejection_reason": "Market closed for SPY (halted)"},
    {"event_type": "portfolio_limit_check", "allowed": True, "limit_type": "portfolio_delta", "symbol": "SPY",
     "current_value": 3.1, "limit_value": 5.0},
    {"event_type": "portfolio_limit_check", "allowed": True, "limit_type": "portfolio_delta", "symbol": "QQQ",
     "current_value": -1.25, "limit_value": 5.0},
    {"event_type": "portfolio_health_warning", "limit_type": "portfolio_delta", "current_value": 4.6, "limit_value": 5.0},
]
assert len(MEANING) == len(DIALECT)

# log-dialect.md §3: lines that must not become events.
NEAR_MISSES = [
    ("v6.market", "WARNING", "Market circuit breaker halt for SPY (LULD band breach)"),
    ("v6.risk.trailing_stop", "INFO", "Trailing stop configuration loaded: activation=2.0%, trailing=1.5%"),
    ("v6.decision", "INFO", "Decision CLOSE for SPY: Trailing stop triggered at 2.76 (peak 2.80)"),
    ("v6.feed", "DEBUG", "quote SPY 20260130C00600000 bid=2.50 ask=2.55 size=10x12"),
    ("v6.orders", "DEBUG", "order ack id=981 status=NEW"),
    ("v6.engine", "DEBUG", "heartbeat ok latency_ms=3"),
    ("v6.orders", "INFO", "fill SPY 20260130C00600000 qty=1 @ 2.52"),
]

# Raised and caught in code compiled under a fixed file name, so the traceback's
# text does not depend on where the repository is checked out.
TRACEBACK_SRC = '''
def submit(order):
    raise RuntimeError("Circuit breaker OPENED: refusing order " + order)

def run(log):
    try:
        submit("SPY-1")
    except RuntimeError:
        log.exception("Order submission failed for SPY")
'''


def traceback_runner():
    ns = {}
    exec(compile(TRACEBACK_SRC, "/opt/engine/v6/execution.py", "exec"), ns)
    return ns["run"]


def set_tz(name):
    os.environ["TZ"] = name
    time.tzset()


class PinnedClock:
    """Hands out record times: start + n * step seconds."""

    def __init__(self, start_utc, step=1.25):
        self.t = start_utc.timestamp()
        self.step = step

    def next(self):
        t = self.t
        self.t += self.step
        return t


def python_logger(path, fmt, datefmt=None, formatter=None, mode="w"):
    """A logger writing to `path` through a real FileHandler."""
    handler = logging.FileHandler(path, mode=mode, encoding="utf-8")
    handler.setFormatter(formatter or logging.Formatter(fmt, datefmt))
    return handler


def emit(handler, clock, logger, level, msg, lineno=88, exc_info=None, extra=None):
    lg = logging.getLogger(logger)
    rec = lg.makeRecord(logger, getattr(logging, level), "/opt/engine/v6/risk.py", lineno, msg, None, exc_info, "check", extra)
    created = clock.next()
    rec.created = created
    rec.msecs = int((created - int(created)) * 1000) + 0.0
    rec.relativeCreated = 0.0
    handler.handle(rec)
    return created


def write_oracle(d, rows):
    """`oracle.jsonl`: what each risk record of the case means, in order, with
    its UTC time in milliseconds, from what was logged (the golden test
    compares risktail's events with it)."""
    import json
    with open(d / "oracle.jsonl", "w") as f:
        for created, meaning in rows:
            # The millisecond as the line prints it: logging truncates
            # (`msecs = int((created - int(created)) * 1000)`).
            ms = int(created) * 1000 + int((created - int(created)) * 1000)
            f.write(json.dumps({"utc_ms": ms, **meaning}, sort_keys=True) + "\n")


class CaptureHandler(logging.Handler):
    """Routes `log.exception` inside the traceback runner to a real handler with a pinned time."""

    def __init__(self, target, clock):
        super().__init__()
        self.target, self.clock = target, clock

    def emit(self, record):
        created = self.clock.next()
        record.created = created
        record.msecs = int((created - int(created)) * 1000) + 0.0
        record.lineno, record.pathname, record.funcName = 9, "/opt/engine/v6/execution.py", "run"
        self.target.handle(record)


def write_all(handler, clock, rows):
    return [emit(handler, clock, logger, level, msg) for logger, level, msg in rows]


def with_traceback(handler, clock):
    lg = logging.getLogger("v6.execution")
    lg.propagate = False
    lg.handlers = [CaptureHandler(handler, clock)]
    traceback_runner()(lg)
    lg.handlers = []


def case(name):
    d = HERE / name
    d.mkdir(exist_ok=True)
    return d


def config(d, body):
    (d / "config.toml").write_text('[table]\nuri = "../../../data/corpus/risk_events"\n\n' + body)


def python_case(name, fmt, datefmt, tz, start):
    d = case(name)
    set_tz(tz)
    clock = PinnedClock(start)
    h = python_logger(d / "input.log", fmt, datefmt)
    times = write_all(h, clock, DIALECT[:5])
    write_all(h, clock, NEAR_MISSES)
    with_traceback(h, clock)
    times += write_all(h, clock, DIALECT[5:])
    h.close()
    write_oracle(d, zip(times, MEANING))
    lines = [f"name = \"engine\"", "paths = [\"input.log\"]", "envelope = \"python\"",
             f"format = {toml_str(fmt)}"]
    if datefmt:
        lines.append(f"datefmt = {toml_str(datefmt)}")
    lines.append(f"timezone = \"{tz}\"")
    config(d, "[[source]]\n" + "\n".join(lines) + "\n")


def toml_str(s):
    return "'" + s + "'"


def loguru_case(start):
    from loguru import logger
    from loguru._datetime import datetime as ldt

    d = case("loguru_default")
    tz = dt.timezone(dt.timedelta(hours=1))  # the host runs Europe/Berlin (CET) in January
    clock = PinnedClock(start)
    logger.remove()
    sink = d / "input.log"
    sink.unlink(missing_ok=True)

    times = []

    def pin(record):
        times.append(clock.next())
        t = dt.datetime.fromtimestamp(times[-1], tz)
        record["time"] = ldt(t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond, tzinfo=t.tzinfo)
        record["name"], record["function"], record["line"] = record["extra"].get("lg", "v6"), "check", 88

    hid = logger.add(sink, colorize=False, enqueue=False)
    log = logger.patch(pin)
    oracle = []
    for i, (lg, level, msg) in enumerate(DIALECT[:5] + NEAR_MISSES + DIALECT[5:]):
        log.bind(lg=lg).log(level, msg)
        if i < 5 or i >= 5 + len(NEAR_MISSES):
            oracle.append((times[-1], MEANING[i if i < 5 else i - len(NEAR_MISSES)]))
    write_oracle(d, oracle)
    try:
        exec(compile('raise RuntimeError("Circuit breaker OPENED: refusing order SPY-1")', "/opt/engine/v6/execution.py", "exec"))
    except RuntimeError:
        log.bind(lg="v6.execution").opt(exception=False).error("Order submission failed for SPY\nTraceback (most recent call last):\n  File \"/opt/engine/v6/execution.py\", line 1, in <module>\nRuntimeError: Circuit breaker OPENED: refusing order SPY-1")
    logger.remove(hid)
    config(d, '[[source]]\nname = "engine"\npaths = ["input.log"]\nenvelope = "loguru"\ntimezone = "Europe/Berlin"\n')


def json_case(start):
    from pythonjsonlogger.json import JsonFormatter

    d = case("json_python_json_logger")
    set_tz("UTC")
    clock = PinnedClock(start)
    fmt = JsonFormatter("%(asctime)s %(name)s %(levelname)s %(message)s")
    h = python_logger(d / "input.log", None, formatter=fmt)
    oracle = []
    for i, (lg, level, msg) in enumerate(DIALECT[:5] + NEAR_MISSES + DIALECT[5:]):
        extra = {"execution_id": None}
        if "SPY" in msg and i % 2 == 0:
            extra = {"execution_id": EXEC, "symbol": "SPY", "strategy": "0dte_momentum", "attempt": i}
        created = emit(h, clock, lg, level, msg, extra=extra)
        if i < 5 or i >= 5 + len(NEAR_MISSES):
            meaning = dict(MEANING[i if i < 5 else i - len(NEAR_MISSES)])
            if extra.get("execution_id"):
                # The record's extra keys fill the columns of their name.
                meaning.update(execution_id=EXEC, symbol="SPY")
            oracle.append((created, meaning))
    with_traceback(h, clock)
    h.close()
    write_oracle(d, oracle)
    config(d, '[[source]]\nname = "engine"\npaths = ["input.log"]\nenvelope = "json"\n')


def dst_autumn():
    """New York's repeated hour, 2026-11-01 01:00-02:00, split across a rotation."""
    d = case("dst_autumn_fold")
    set_tz("America/New_York")
    fmt = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
    # 04:40Z = 00:40 EDT ... 07:10Z = 02:10 EST, one line every 5 minutes.
    start = dt.datetime(2026, 11, 1, 4, 40, tzinfo=dt.timezone.utc)
    clock = PinnedClock(start, step=300)
    older = python_logger(d / "input.log.1", fmt)
    newer = python_logger(d / "input.log", fmt)
    for i in range(31):
        h = older if i < 16 else newer  # the rotation falls inside the repeated hour
        if i % 3 == 0:
            emit(h, clock, "v6.risk.circuit_breaker", "WARNING", f"Circuit breaker failure recorded: {i % 5 + 1}/5 in 300s window (reason: fold test {i})")
        else:
            emit(h, clock, "v6.engine", "DEBUG", f"heartbeat {i}")
    older.close()
    newer.close()
    config(d, '[[source]]\nname = "engine"\npaths = ["input.log.1", "input.log"]\nenvelope = "python"\ntimezone = "America/New_York"\n')


def raw_case(name, data, tz="America/New_York", gz=False):
    d = case(name)
    fname = "input.log.gz" if gz else "input.log"
    if gz:
        with gzip.GzipFile(d / fname, "wb", mtime=0) as f:
            f.write(data)
    else:
        (d / fname).write_bytes(data)
    config(d, f'[[source]]\nname = "engine"\npaths = ["{fname}"]\nenvelope = "python"\ntimezone = "{tz}"\n')


def main():
    global HERE
    if len(sys.argv) == 3 and sys.argv[1] == "--out":
        HERE = Path(sys.argv[2]).resolve()
        HERE.mkdir(parents=True, exist_ok=True)
    python_case("python_default", "%(asctime)s - %(name)s - %(levelname)s - %(message)s", None,
                "America/New_York", dt.datetime(2026, 1, 28, 15, 30, tzinfo=dt.timezone.utc))
    python_case("python_custom_format",
                "%(asctime)s.%(msecs)03d %(levelname)-8s %(name)s:%(lineno)d [%(threadName)s] %(message)s",
                "%Y-%m-%d %H:%M:%S", "America/Chicago", dt.datetime(2026, 1, 29, 14, 0, 0, 7000, tzinfo=dt.timezone.utc))
    loguru_case(dt.datetime(2026, 1, 30, 9, 0, tzinfo=dt.timezone.utc))
    json_case(dt.datetime(2026, 2, 2, 14, 30, tzinfo=dt.timezone.utc))
    dst_autumn()

    L = "2026-03-08 {t} - v6.risk.circuit_breaker - {lvl} - {msg}\n"
    raw_case("dst_spring_gap", "".join([
        L.format(t="01:59:59,000", lvl="WARNING", msg="Circuit breaker failure recorded: 1/5 in 300s window (reason: before the gap)"),
        # 02:30 does not exist in New York on this night: a host clock gone wrong.
        L.format(t="02:30:00,000", lvl="ERROR", msg="Circuit breaker OPENED: 5 failures in 300s window (threshold 5)"),
        L.format(t="02:45:00,000", lvl="DEBUG", msg="heartbeat in the gap"),
        L.format(t="03:00:01,000", lvl="INFO", msg="Circuit breaker HALF_OPEN: cooldown of 60s elapsed, allowing test trades"),
    ]).encode())

    P = "2026-01-28 10:{m:02d}:00,000 - v6.risk.{lg} - {lvl} - {msg}\n"
    raw_case("missing_final_newline", (
        P.format(m=1, lg="circuit_breaker", lvl="INFO", msg="Circuit breaker initialized: state=CLOSED, failure_threshold=5, window=300s, cooldown=60s")
        + P.format(m=2, lg="circuit_breaker", lvl="ERROR", msg="Circuit breaker OPENED: 5 failures in 300s window (threshold 5)")
        # The engine crashed while writing this line: no newline.
        + P.format(m=3, lg="circuit_breaker", lvl="INFO", msg="Circuit breaker HALF_OPEN: cooldown of 60s el").rstrip("\n")
    ).encode())

    big = "Entry REJECTED by portfolio limits: " + "order book snapshot " * 262144  # 5 MiB + change
    raw_case("five_mb_line", (
        P.format(m=1, lg="portfolio_limits", lvl="WARNING", msg="Entry REJECTED by portfolio limits: Position count 11 would exceed limit 10")
        + P.format(m=2, lg="portfolio_limits", lvl="WARNING", msg=big)
        + P.format(m=3, lg="portfolio_limits", lvl="WARNING", msg="Entry REJECTED by portfolio limits: Portfolio delta 5.20 would exceed limit 5.00")
    ).encode(), gz=True)

    raw_case("bytes_invalid_utf8_nul", b"".join([
        P.format(m=1, lg="portfolio_limits", lvl="WARNING", msg="Entry REJECTED by portfolio limits: broker said \xff\xfe\x80 (bad bytes)").encode("latin-1"),
        b"2026-01-28 10:02:00,000 - v6.feed - DEBUG - raw \x00\x00 frame \xc3\x28 ignored\n",
        # copytruncate with a writer that does not use O_APPEND leaves a run of NULs
        # in front of the next line; the line behind them is still a record.
        b"\x00" * 64 + P.format(m=3, lg="circuit_breaker", lvl="ERROR", msg="Circuit breaker OPENED: 5 failures in 300s window (threshold 5)").encode(),
        P.format(m=4, lg="trailing_stop", lvl="INFO", msg="[exec=é-1 sym=ÉTF] Trailing stop UPDATED: peak=2.80, stop=2.76 (was 2.71)").encode(),
        P.format(m=5, lg="portfolio_limits", lvl="WARNING", msg="Entry REJECTED by portfolio limits: margin call 🚨 on 日経225").encode(),
        b"\r\n",
        P.format(m=6, lg="portfolio_limits", lvl="WARNING", msg="Portfolio health warning: portfolio_delta at 92% of limit (4.60/5.00)").replace("\n", "\r\n").encode(),
    ]))

    raw_case("quarantine_reasons", "".join([
        P.format(m=1, lg="trailing_stop", lvl="INFO", msg="Trailing stop moved: nobody knows this wording"),
        P.format(m=2, lg="portfolio_limits", lvl="WARNING", msg="Entry REJECTED by portfolio limits: Position count 1,23 would exceed limit 10"),
        "2026-02-30 10:03:00,000 - v6.risk.circuit_breaker - ERROR - Circuit breaker OPENED: 5 failures in 300s window (threshold 5)\n",
        P.format(m=4, lg="circuit_breaker", lvl="WARNING", msg="Circuit breaker failure recorded: 9999999999/5 in 300s window"),
        P.format(m=5, lg="circuit_breaker", lvl="INFO", msg="Circuit breaker CLOSED: 3 consecutive successes in HALF_OPEN"),
    ]).encode())

    d = case("near_misses_only")
    set_tz("UTC")
    clock = PinnedClock(dt.datetime(2026, 1, 28, 15, 0, tzinfo=dt.timezone.utc))
    h = python_logger(d / "input.log", "%(asctime)s - %(name)s - %(levelname)s - %(message)s")
    write_all(h, clock, NEAR_MISSES)
    with_traceback(h, clock)
    h.close()
    config(d, '[[source]]\nname = "engine"\npaths = ["input.log"]\nenvelope = "python"\n')


if __name__ == "__main__":
    sys.exit(main())

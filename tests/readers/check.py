#!/usr/bin/env python3
"""Reads a risktail table with the real readers the team uses and prints what
each saw as one JSON object: polars.read_delta, deltalake's to_pyarrow_table,
and DuckDB (delta_scan through the PyPI delta extension, and over the
deltalake package's pyarrow dataset). No options are passed to any reader.

Usage: check.py EVENTS_TABLE [QUARANTINE_TABLE]
"""
import json
import os
import sys


def main():
    events = sys.argv[1]
    out = {}

    import polars as pl
    df = pl.read_delta(events)
    out["polars"] = {
        "rows": df.height,
        "schema": {k: str(v) for k, v in df.schema.items()},
        "distinct_event_ids": df["event_id"].n_unique(),
        "by_type": dict(sorted(df.group_by("event_type").len().iter_rows())),
    }

    from deltalake import DeltaTable
    dt = DeltaTable(events)
    t = dt.to_pyarrow_table()
    proto = dt.protocol()
    out["deltalake"] = {
        "rows": t.num_rows,
        "schema": [f"{f.name}:{f.type}:{'null' if f.nullable else 'not null'}" for f in t.schema],
        "protocol": [proto.min_reader_version, proto.min_writer_version],
        "partitions": dt.metadata().partition_columns,
        "version": dt.version(),
    }
    rows = t.to_pylist()
    # A stable fingerprint of the table's content, without the read clock.
    key = sorted(
        json.dumps({k: (str(v) if v is not None else None) for k, v in r.items() if k != "ingested_at"}, sort_keys=True)
        for r in rows
    )
    out["content"] = key

    import duckdb
    con = duckdb.connect()
    try:
        # The PyPI wheel ships the signed extension binary; load it by path
        # (signature checking stays on), since INSTALL would need the network.
        import duckdb_extension_delta
        from pathlib import Path
        ext = next(Path(duckdb_extension_delta.__file__).parent.glob("extensions/*/delta.duckdb_extension"))
        con.execute(f"LOAD '{ext}'")
        n, first, last = con.execute(
            f"select count(*), min(timestamp), max(timestamp) from delta_scan('{events}')"
        ).fetchone()
        types = con.execute(f"describe select * from delta_scan('{events}')").fetchall()
        out["duckdb_delta_scan"] = {
            "rows": n,
            "first": str(first),
            "last": str(last),
            "types": {c[0]: c[1] for c in types},
        }
    except Exception as e:  # reported, and the test decides
        out["duckdb_delta_scan"] = {"error": str(e)}
    ds = dt.to_pyarrow_dataset()
    n, opens = con.execute(
        "select count(*), count(*) filter (where event_type = 'circuit_breaker_state_change' and new_state = 'OPEN') from ds"
    ).fetchone()
    out["duckdb_dataset"] = {"rows": n, "breaker_opens": opens}

    if len(sys.argv) > 2:
        q = DeltaTable(sys.argv[2]).to_pyarrow_table()
        qrows = q.to_pylist()
        out["quarantine"] = {
            "rows": q.num_rows,
            "reasons": sorted(r["reason"] for r in qrows),
            "content": sorted(
                json.dumps({k: str(v) for k, v in r.items() if k not in ("ingested_at", "ingest_date")}, sort_keys=True)
                for r in qrows
            ),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
    # polars', deltalake's and DuckDB's runtimes can abort at interpreter
    # teardown, after the work is done: leave without it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

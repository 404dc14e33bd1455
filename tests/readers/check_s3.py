#!/usr/bin/env python3
"""Reads a risktail table on an S3-compatible server with the real readers
and prints what each saw as one JSON object: polars.read_delta and
deltalake's DeltaTable with storage options, DuckDB over the deltalake
package's pyarrow dataset, and DuckDB's own delta_scan through an S3 secret
(delta and httpfs extensions loaded from their PyPI wheels).

Usage: check_s3.py S3_URI ENDPOINT [QUARANTINE_URI]   (ENDPOINT http://127.0.0.1:PORT; key "test")
With QUARANTINE_URI, also "quarantine": its rows and distinct raw lines (polars).
"""
import json
import sys
from pathlib import Path

uri, endpoint = sys.argv[1], sys.argv[2]
opts = {
    "aws_endpoint_url": endpoint,
    "aws_access_key_id": "test",
    "aws_secret_access_key": "test",
    "aws_region": "us-east-1",
    "aws_allow_http": "true",
}
out = {}

import polars as pl
df = pl.read_delta(uri, storage_options=opts)
out["polars"] = {"rows": df.height, "distinct_event_ids": df["event_id"].n_unique()}

from deltalake import DeltaTable
dt = DeltaTable(uri, storage_options=opts)
t = dt.to_pyarrow_table()
out["deltalake"] = {"rows": t.num_rows, "version": dt.version()}

import duckdb
con = duckdb.connect()
ds = dt.to_pyarrow_dataset()
out["duckdb_dataset"] = {"rows": con.execute("select count(*) from ds").fetchone()[0]}

import duckdb_extension_delta
import duckdb_extension_httpfs
for mod in (duckdb_extension_httpfs, duckdb_extension_delta):
    ext = next(Path(mod.__file__).parent.glob("extensions/*/*.duckdb_extension"))
    con.execute(f"LOAD '{ext}'")
host = endpoint.split("://", 1)[1]
con.execute(
    f"CREATE SECRET s3 (TYPE S3, KEY_ID 'test', SECRET 'test', REGION 'us-east-1', "
    f"ENDPOINT '{host}', URL_STYLE 'path', USE_SSL false)"
)
n, ids = con.execute(f"select count(*), count(distinct event_id) from delta_scan('{uri}')").fetchone()
out["duckdb_delta_scan"] = {"rows": n, "distinct_event_ids": ids}
if len(sys.argv) > 3:
    q = pl.read_delta(sys.argv[3], storage_options=opts)
    out["quarantine"] = {"rows": q.height, "distinct_raw_lines": q["raw_line"].n_unique()}
print(json.dumps(out))

# polars', deltalake's and DuckDB's runtimes can abort at interpreter
# teardown, after the work is done: leave without it.
import os, sys  # noqa: E402
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)

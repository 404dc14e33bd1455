#!/usr/bin/env python3
"""Another tool writing to a risktail table while daemons write: what a team
does with the Python `deltalake` package.

Usage: foreign_writer.py TABLE OP
  compact      DeltaTable.optimize.compact() (rewrites small files)
  checkpoint   DeltaTable.create_checkpoint()
  properties   sets delta.logRetentionDuration = interval 60 days and
               delta.deletedFileRetentionDuration = interval 30 days
  deletion-vectors  enables the deletionVectors table feature (protocol
               reader 3 / writer 7) and delta.enableDeletionVectors
Prints the table's version afterwards as JSON.
"""
import json
import sys

from deltalake import DeltaTable
from deltalake.table import TableFeatures

table, op = sys.argv[1], sys.argv[2]
dt = DeltaTable(table)
if op == "compact":
    metrics = dt.optimize.compact()
elif op == "checkpoint":
    dt.create_checkpoint()
elif op == "properties":
    dt.alter.set_table_properties({
        "delta.logRetentionDuration": "interval 60 days",
        "delta.deletedFileRetentionDuration": "interval 30 days",
    })
elif op == "deletion-vectors":
    dt.alter.add_feature(TableFeatures.DeletionVectors, allow_protocol_versions_increase=True)
    dt.alter.set_table_properties({"delta.enableDeletionVectors": "true"})
else:
    sys.exit(f"unknown op {op}")
dt = DeltaTable(table)
print(json.dumps({"version": dt.version(), "protocol": str(dt.protocol())}))

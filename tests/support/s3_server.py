#!/usr/bin/env python3
"""A local S3-compatible server for the object-store tests: moto's server,
serving one request at a time on 127.0.0.1:PORT.

moto checks `If-None-Match: *` before it stores an object but not atomically;
one request at a time makes the check and the store one step, which is what
Delta's commits rely on (a real S3 bucket does the same server-side).

Usage: s3_server.py PORT BUCKET...   prints "ready" once the buckets exist;
runs until killed.
"""
import sys
import threading

import boto3
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

port = int(sys.argv[1])
app = DomainDispatcherApplication(create_backend_app)
server = make_server("127.0.0.1", port, app, threaded=False)
threading.Thread(target=server.serve_forever, daemon=True).start()
s3 = boto3.client(
    "s3",
    endpoint_url=f"http://127.0.0.1:{port}",
    aws_access_key_id="test",
    aws_secret_access_key="test",
    region_name="us-east-1",
)
for bucket in sys.argv[2:]:
    s3.create_bucket(Bucket=bucket)
print("ready", flush=True)
threading.Event().wait()

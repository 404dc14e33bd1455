#!/usr/bin/env python3
"""An HTTP proxy between risktail and the S3 server that makes the store
misbehave on purpose, for the fault tests.

Usage: fault_proxy.py LISTEN_PORT UPSTREAM_PORT CONTROL_FILE SEED

CONTROL_FILE is read before every request; its words (any order):
  down        every connection is closed at once (the store is unreachable)
  fail=P      a request fails with 503 before reaching the store, with
              probability P (0..1)
  lose=P      a request reaches the store, which stores and answers, but the
              answer is dropped and the connection closed, with probability P:
              the ambiguous outcome (did my commit land?)
  lose_commit=P  like lose, for the PUT of a Delta commit (_delta_log/*.json)
              only: the commit landed, the writer is not told
  down_after_lost=MS  after dropping an answer, the store is unreachable for
              MS milliseconds (so the writer cannot ask it at once what landed)
  delay=MS    every answer is delayed by MS milliseconds
  unconditional  conditional-write headers (If-None-Match, If-Match) are
              stripped before the store sees them: a store that ignores
              put-if-absent, as some self-hosted ones (or proxies) do
An empty or missing file means a well-behaved store. Prints "ready" once
listening, and on stderr one line per fault it caused.
"""
import http.client
import random
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

listen, upstream, control, seed = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
rng = random.Random(seed)
down_until = [0.0]  # time.monotonic() before which every connection is closed


def settings():
    try:
        words = open(control).read().split()
    except OSError:
        words = []
    out = {"down": "down" in words, "unconditional": "unconditional" in words, "fail": 0.0, "lose": 0.0, "lose_commit": 0.0, "delay": 0.0,
           "down_after_lost": 0.0}
    for w in words:
        if "=" in w:
            k, v = w.split("=", 1)
            out[k] = float(v)
    return out


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_one_request(self):
        if settings()["down"] or time.monotonic() < down_until[0]:
            self.close_connection = True
            return
        super().handle_one_request()

    def relay(self):
        s = settings()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if rng.random() < s["fail"]:
            sys.stderr.write(f"503 {self.command} {self.path}\n")
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=60)
        drop = {"host"} | ({"if-none-match", "if-match"} if s["unconditional"] else set())
        headers = {k: v for k, v in self.headers.items() if k.lower() not in drop}
        headers["Host"] = f"127.0.0.1:{upstream}"
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        commit = self.command == "PUT" and "_delta_log/" in self.path and self.path.endswith(".json")
        if rng.random() < s["lose"] or (commit and rng.random() < s["lose_commit"]):
            sys.stderr.write(f"lost answer {resp.status} {self.command} {self.path}\n")
            if s["down_after_lost"]:
                down_until[0] = time.monotonic() + s["down_after_lost"] / 1000
            self.close_connection = True
            return
        if s["delay"]:
            time.sleep(s["delay"] / 1000)
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                self.send_header(k, v)
        if self.command == "HEAD":
            self.send_header("Content-Length", resp.getheader("Content-Length") or "0")
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = relay


server = ThreadingHTTPServer(("127.0.0.1", listen), Proxy)
server.daemon_threads = True
print("ready", flush=True)
server.serve_forever()

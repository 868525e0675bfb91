#!/usr/bin/env python3
"""An OTLP/HTTP (protobuf) trace receiver for dockhand's tests, decoding with the official
definitions (the `opentelemetry-proto` package; scripts/install-deps installs it).

    otlp_receiver.py serve OUT.jsonl PORTFILE [LIFETIME_S]
        Listens on a free loopback port (written to PORTFILE once listening), answers
        POST /v1/traces with an empty ExportTraceServiceResponse and appends one JSON line
        per decoded span to OUT.jsonl. Exits by itself after LIFETIME_S (default 600).
    otlp_receiver.py decode FILE...
        Prints the spans of stored request bodies (e.g. the lab's Jaeger stand-in's) as
        JSON lines.

A span line: trace_id, span_id, parent_span_id (hex, "" for a root), name, kind,
start_ns, end_ns, status_code, status_message, attributes (key -> value), events
([{name, time_ns, attributes}]), resource (key -> value), scope.

Every body is hostile: at most 16 MiB is read, and a body that does not decode is a 400.
"""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

MAX_BODY = 16 << 20


def value(v):
    """An AnyValue as a plain JSON value."""
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind in ("array_value", "kvlist_value"):
        return MessageToDict(getattr(v, kind))
    return getattr(v, kind)


def attrs(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


def spans(body):
    """The spans of one ExportTraceServiceRequest body, as dicts."""
    req = ExportTraceServiceRequest()
    req.ParseFromString(body)
    out = []
    for rs in req.resource_spans:
        resource = attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append({
                    "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(),
                    "name": s.name,
                    "kind": s.kind,
                    "start_ns": s.start_time_unix_nano,
                    "end_ns": s.end_time_unix_nano,
                    "status_code": s.status.code,
                    "status_message": s.status.message,
                    "attributes": attrs(s.attributes),
                    "events": [{"name": e.name, "time_ns": e.time_unix_nano,
                                "attributes": attrs(e.attributes)} for e in s.events],
                    "resource": resource,
                    "scope": ss.scope.name,
                })
    return out


class Handler(BaseHTTPRequestHandler):
    out_path = None
    lock = threading.Lock()

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, ctype, body):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        if self.path.split("?")[0] != "/v1/traces":
            return self.reply(404, "text/plain", b"no such path\n")
        try:
            n = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self.reply(411, "text/plain", b"Content-Length required\n")
        if n < 0 or n > MAX_BODY:
            return self.reply(413, "text/plain", b"too large\n")
        body = self.rfile.read(n)
        try:
            got = spans(body)
        except Exception as e:  # a body that is not an ExportTraceServiceRequest
            return self.reply(400, "text/plain", f"not OTLP protobuf: {e}\n".encode())
        with self.lock, open(self.out_path, "a") as f:
            for s in got:
                f.write(json.dumps(s) + "\n")
        self.reply(200, "application/x-protobuf",
                   ExportTraceServiceResponse().SerializeToString())


def serve(out_path, port_file, lifetime):
    Handler.out_path = out_path
    open(out_path, "a").close()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, port_file)
    threading.Timer(lifetime, srv.shutdown).start()
    srv.serve_forever()


def main(argv):
    if len(argv) >= 3 and argv[1] == "serve":
        lifetime = float(argv[4]) if len(argv) > 4 else 600.0
        serve(argv[2], argv[3], lifetime)
    elif len(argv) >= 2 and argv[1] == "decode":
        for path in argv[2:]:
            with open(path, "rb") as f:
                for s in spans(f.read(MAX_BODY)):
                    print(json.dumps(s))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

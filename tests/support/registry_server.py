#!/usr/bin/python3
"""A stand-in for a Confluent Schema Registry, for evkit's tests.

Speaks the REST endpoints evkit uses, on 127.0.0.1 with an ephemeral port:
  POST /subjects/<subject>/versions  {"schema": "..."} -> {"id": N}
  POST /subjects/<subject>           {"schema": "..."} -> {"subject", "id", "version", "schema"}
  GET  /schemas/ids/<id>             -> {"schema": "..."}
with the registry's error bodies ({"error_code": 40401, "message": ...}).
Like the real one, a schema text gets one id across all subjects; with
--same-id, unlike it, every schema gets the first id.

Test-only endpoint (never counted): GET /__requests -> {"count": N,
"requests": ["POST /subjects/...", ...], "authorization": [header or null, ...],
"registered": [{"subject", "name" (record full name), "id"}, ...]}.

Broken answers, for the client's error paths: --answer ID=KIND makes
GET /schemas/ids/ID answer as KIND (see ANSWERS) instead; the test-only
POST /__answer {"id": ID, "kind": KIND} changes that while it runs (KIND
null: the registry's own answer again).

Usage: registry_server.py [--first-id N] [--same-id] [--auth user:pass] [--port-file F]
                          [--tls CERT KEY [--client-ca CA]] [--answer ID=KIND]...
Prints the port on stdout (one line), then serves until killed.
"""
import argparse
import base64
import json
import os
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


# KIND -> (status, content type, body): what --answer makes an id's GET say.
ANSWERS = {
    # A proxy's page, and answers that lack or garble the schema.
    "notjson": (200, "text/html", b"<html>maintenance</html>"),
    "noschema": (200, "application/json", json.dumps({"subject": "x", "version": 1}).encode()),
    "badschema": (200, "application/json", json.dumps({"schema": '{"type": "recrod"}'}).encode()),
    # The registry is away: wait for it.
    "unavailable": (503, "application/json", json.dumps(
        {"error_code": 50301, "message": "Service Unavailable"}).encode()),
    "missing": (404, "application/json", json.dumps(
        {"error_code": 40403, "message": "Schema not found"}).encode()),
    # Terminal escapes in an error's message (clear screen, red, C1 CSI)...
    "ansi-json": (500, "application/json", json.dumps(
        {"error_code": 50001, "message": "\x1b[2J\x1b[31mboom\u009b"}).encode()),
    # ...and in a raw body (set the window title, bell, clear screen).
    "ansi-raw": (502, "text/html", b"\x1b]0;owned\x07\x1b[2J<html>bad gateway</html>"),
}


def answer_arg(text):
    ident, _, kind = text.partition("=")
    if not ident.isdigit() or kind not in ANSWERS:
        raise argparse.ArgumentTypeError(f"expected ID=KIND, KIND one of {', '.join(ANSWERS)}")
    return int(ident), kind


def full_name(schema):
    try:
        doc = json.loads(schema)
        name, space = doc["name"], doc.get("namespace")
        return name if "." in name or not space else f"{space}.{name}"
    except (ValueError, KeyError, TypeError):
        return None


class Registry:
    def __init__(self, first_id, same_id):
        self.first_id, self.same_id = first_id, same_id
        self.next_id = first_id
        self.ids = {}  # schema text -> id
        self.subjects = {}  # subject -> [schema text, ...] (versions)
        self.requests = []
        self.authorization = []
        self.registered = []  # {"subject", "name", "id"} for tests to check ids

    def register(self, subject, schema):
        if schema not in self.ids:
            self.ids[schema] = self.first_id if self.same_id else self.next_id
            self.next_id += 1
        versions = self.subjects.setdefault(subject, [])
        if schema not in versions:
            versions.append(schema)
            self.registered.append({"subject": subject, "name": full_name(schema),
                                    "id": self.ids[schema]})
        return self.ids[schema]

    def by_id(self, wanted):
        for text, i in self.ids.items():
            if i == wanted:
                return text
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        self.send(status, "application/vnd.schemaregistry.v1+json", json.dumps(body).encode())

    def send(self, status, content_type, data):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, code, message):
        self.reply(status, {"error_code": code, "message": message})

    def authorized(self):
        reg = self.server.registry
        got = self.headers.get("Authorization")
        reg.authorization.append(got)
        want = self.server.auth
        if want is None:
            return True
        if got == "Basic " + base64.b64encode(want.encode()).decode():
            return True
        self.error(401, 401, "Unauthorized")
        return False

    def count(self):
        self.server.registry.requests.append(f"{self.command} {self.path}")

    def do_GET(self):
        with self.server.lock:
            self.get()

    def do_POST(self):
        with self.server.lock:
            self.post()

    def get(self):
        reg = self.server.registry
        if self.path == "/__requests":
            return self.reply(200, {"count": len(reg.requests), "requests": reg.requests,
                                    "authorization": reg.authorization,
                                    "registered": reg.registered})
        self.count()
        if not self.authorized():
            return
        parts = self.path.strip("/").split("/")
        if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
            kind = self.server.answers.get(int(parts[2]))
            if kind:
                return self.send(*ANSWERS[kind])
            text = reg.by_id(int(parts[2]))
            if text is None:
                return self.error(404, 40403, f"Schema {parts[2]} not found")
            return self.reply(200, {"schema": text})
        self.error(404, 404, "HTTP 404 Not Found")

    def read_schema(self, raw):
        try:
            return json.loads(raw)["schema"]
        except (ValueError, KeyError, TypeError):
            self.error(422, 42201, "Invalid schema")
            return None

    def post(self):
        reg = self.server.registry
        if self.path == "/__answer":
            change = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            if change["kind"] is None:
                self.server.answers.pop(change["id"], None)
            else:
                self.server.answers[change["id"]] = change["kind"]
            return self.reply(200, {})
        self.count()
        # The body is read even when refused, or it would be taken for the
        # next request on this keep-alive connection.
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not self.authorized():
            return
        schema = self.read_schema(raw)
        if schema is None:
            return
        parts = [unquote(p) for p in self.path.strip("/").split("/")]
        if len(parts) == 3 and parts[0] == "subjects" and parts[2] == "versions":
            return self.reply(200, {"id": reg.register(parts[1], schema)})
        if len(parts) == 2 and parts[0] == "subjects":
            versions = reg.subjects.get(parts[1])
            if versions is None:
                return self.error(404, 40401, f"Subject '{parts[1]}' not found.")
            if schema not in versions:
                return self.error(404, 40403, "Schema not found")
            return self.reply(200, {"subject": parts[1], "id": reg.ids[schema],
                                    "version": versions.index(schema) + 1, "schema": schema})
        self.error(404, 404, "HTTP 404 Not Found")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--first-id", type=int, default=1000)
    ap.add_argument("--same-id", action="store_true",
                    help="a broken registry: the first id for every schema")
    ap.add_argument("--auth", help="user:pass required as HTTP basic auth")
    ap.add_argument("--port-file")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve HTTPS")
    ap.add_argument("--client-ca", help="with --tls: require a client certificate from this CA")
    ap.add_argument("--answer", type=answer_arg, action="append", default=[], metavar="ID=KIND",
                    help="GET /schemas/ids/ID answers as KIND: " + ", ".join(ANSWERS))
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*args.tls)
        if args.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(args.client_ca)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.registry = Registry(args.first_id, args.same_id)
    server.auth = args.auth or None
    server.answers = dict(args.answer)
    server.lock = threading.Lock()  # handler threads share the registry
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.rename(args.port_file + ".tmp", args.port_file)
    print(port, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())

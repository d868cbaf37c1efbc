"""regauth.py: a registry that wants a bearer token, for the tests, on
127.0.0.1, in front of a docker-registry without authentication.

Usage: regauth.py PORT UPSTREAM_URL USER PASSWORD [SWAP_TAG]. /v2/... answers 401 with
a Bearer challenge (realm http://127.0.0.1:PORT/token, the service and the
repository's pull scope) unless the request carries a token it issued;
/token issues one only for HTTP basic credentials USER:PASSWORD and the
scope asked. Everything else is passed to UPSTREAM_URL as it came. Each
request's path and the Authorization scheme it carried are printed, so a
test can see what was sent where. With SWAP_TAG it lies: every manifest
asked for is answered with the manifest of that tag instead, as a
tampering registry or mirror would."""
import base64
import http.server
import json
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request

PORT = int(sys.argv[1])
UPSTREAM = sys.argv[2].rstrip("/")
USER, PASSWORD = sys.argv[3], sys.argv[4]
SWAP = sys.argv[5] if len(sys.argv) > 5 else ""
TOKENS = set()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s auth=%s\n" % (self.command, self.path,
                                              self.headers.get("Authorization", "").split(" ")[0] or "none"))
        sys.stdout.flush()

    def _send(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _token(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        want = "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
        if self.headers.get("Authorization", "") != want:
            return self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
        if q.get("service") != ["kiln-test"] or not q.get("scope", [""])[0].startswith("repository:"):
            return self._send(400, b'{"errors":[{"code":"BAD_SCOPE"}]}')
        tok = secrets.token_hex(16)
        TOKENS.add(tok)
        self._send(200, json.dumps({"token": tok}).encode(), [("Content-Type", "application/json")])

    def do_GET(self):
        if self.path.startswith("/token"):
            return self._token()
        auth = self.headers.get("Authorization", "")
        if not (auth.startswith("Bearer ") and auth[7:] in TOKENS):
            parts = self.path.split("/")
            repo = "/".join(parts[2:-2]) if len(parts) > 4 else ""
            challenge = 'Bearer realm="http://127.0.0.1:%d/token",service="kiln-test",scope="repository:%s:pull"' % (PORT, repo)
            return self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', [("WWW-Authenticate", challenge)])
        path = self.path
        if SWAP and "/manifests/" in path:
            path = path[: path.index("/manifests/") + len("/manifests/")] + SWAP
        req = urllib.request.Request(UPSTREAM + path, method=self.command)
        if self.headers.get("Accept"):
            req.add_header("Accept", self.headers["Accept"])
        try:
            with urllib.request.urlopen(req) as r:
                body = r.read()
                hdrs = [(k, v) for k, v in r.getheaders() if k.lower() in ("content-type", "docker-content-digest")]
                self._send(r.status, body, hdrs)
        except urllib.error.HTTPError as e:
            self._send(e.code, e.read())

    do_HEAD = do_GET


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()

"""githttp.py: git's smart HTTP for the tests, on 127.0.0.1.

`git http-backend` is a CGI program; this is the small HTTP server in front
of it: each request becomes one run of the backend with the CGI variables
set, and its answer (CGI headers, then the body) becomes the response.
Usage: githttp.py ROOT PORT (serves every repository under ROOT). With
GITHTTP_TOKEN set, repositories under ROOT/private/ need HTTP basic auth
whose password is that token, as a forge's private repositories do."""
import base64
import http.server
import os
import subprocess
import sys
import urllib.parse

ROOT = sys.argv[1]
PORT = int(sys.argv[2])
TOKEN = os.environ.get("GITHTTP_TOKEN", "")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def _authorized(self, path):
        if not TOKEN or not path.startswith("/private/"):
            return True
        auth = self.headers.get("Authorization", "")
        # The scheme is case-insensitive (RFC 9110): git sends what
        # http.extraheader says, "basic" as actions/checkout writes it.
        if auth[:6].lower() != "basic ":
            return False
        try:
            _, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return False
        return password == TOKEN

    def _backend(self):
        url = urllib.parse.urlsplit(self.path)
        if not self._authorized(urllib.parse.unquote(url.path)):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="private"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": ROOT,
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": urllib.parse.unquote(url.path),
            "QUERY_STRING": url.query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
        }
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True, check=False).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = out.partition(b"\n\n")
        status = 200
        headers = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _backend
    do_POST = _backend

    def log_message(self, fmt, *args):
        sys.stderr.write("githttp: " + (fmt % args) + "\n")


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()

#!/usr/bin/env python3
"""A local HTTP server for the fetcher tests (tests/test_fetch.cpp); never reachable off-host.

    python3 tests/http_fixture.py IMAGE_DIR LOG_FILE [ROBOTS]

Binds 127.0.0.1 on a free port, prints the port on stdout, then serves until killed. Every request
is appended to LOG_FILE as "PATH<TAB>USER-AGENT<TAB>SECONDS" (time.monotonic()). Request paths are
percent-decoded before routing, as real servers do (/%70rivate/ is /private/). Routes:
  /robots.txt           by ROBOTS (default "plain"):
                          plain  User-agent: * / Disallow: /private/
                          big    the same rules, then comments up to 600 KiB (over RFC 9309's
                                 500 KiB), served with its Content-Length
                          bom    the same rules after a UTF-8 byte-order mark
                          404    HTTP 404 (no robots.txt: everything allowed)
                          503    HTTP 503 (server error: everything disallowed)
  /img/NAME, /private/NAME, /noindex/NAME   images from IMAGE_DIR (image/jpeg); /noindex/ adds
                        "X-Robots-Tag: noimageindex"
  /missing.jpg          404
  /loop                 302 to itself (a redirect loop)
  /moved.jpg            301 to /img/biden.jpg
  /slow.jpg             sleeps 8 s before answering (a timeout)
  /big.jpg              3 MiB of image/jpeg bytes (over a 1 MiB limit), no Content-Length
  /page.html            text/html
  /flaky.jpg            503 on the first request, then /img/obama2.jpg
"""
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

IMAGES = sys.argv[1]
LOG = sys.argv[2]
ROBOTS = sys.argv[3] if len(sys.argv) > 3 else "plain"
RULES = b"User-agent: *\nDisallow: /private/\n"
lock = threading.Lock()
flaky_hits = [0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def send(self, status, body=b"", ctype="image/jpeg", headers=(), length=True):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def image(self, name, headers=()):
        path = os.path.join(IMAGES, os.path.basename(name))
        if not os.path.isfile(path):
            return self.send(404, b"not found", "text/plain")
        with open(path, "rb") as f:
            self.send(200, f.read(), "image/jpeg", headers)

    def robots(self):
        if ROBOTS in ("404", "503"):
            return self.send(int(ROBOTS), b"robots.txt unavailable", "text/plain")
        body = RULES
        if ROBOTS == "big":
            filler = b"# " + b"x" * 97 + b"\n"
            body += filler * ((600 << 10) // len(filler))
        elif ROBOTS == "bom":
            body = b"\xef\xbb\xbf" + body
        return self.send(200, body, "text/plain")

    def do_GET(self):
        with lock, open(LOG, "a") as log:
            log.write("%s\t%s\t%.4f\n" % (self.path, self.headers.get("User-Agent", ""), time.monotonic()))
        p = urllib.parse.unquote(self.path)
        if p == "/robots.txt":
            return self.robots()
        if p.startswith("/img/") or p.startswith("/private/"):
            return self.image(p.split("/")[-1])
        if p.startswith("/noindex/"):
            return self.image(p.split("/")[-1], [("X-Robots-Tag", "noimageindex")])
        if p == "/loop":
            return self.send(302, b"", "text/plain", [("Location", "/loop")])
        if p == "/moved.jpg":
            return self.send(301, b"", "text/plain", [("Location", "/img/biden.jpg")])
        if p == "/slow.jpg":
            time.sleep(8)
            return self.image("obama.jpg")
        if p == "/big.jpg":
            return self.send(200, b"\xff\xd8\xff" + b"\0" * (3 << 20), "image/jpeg", length=False)
        if p == "/page.html":
            return self.send(200, b"<html><body>hello</body></html>", "text/html; charset=utf-8")
        if p == "/flaky.jpg":
            with lock:
                flaky_hits[0] += 1
                first = flaky_hits[0] == 1
            if first:
                return self.send(503, b"try later", "text/plain")
            return self.image("obama2.jpg")
        return self.send(404, b"not found", "text/plain")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()

"""The resident `facesearch serve` of one shard replica (docs/scale.md): started on loopback the
first time the replica is asked a query, with a searcher token made for it (`facesearch user add`),
and asked over HTTP with the probe's embed file instead of one `facesearch query` process per
request. No Ray here.

Why a token rather than `serve --allow-anonymous`: anonymous loopback access would let any local
user of the node search the corpus. The token lives only in the actor's memory; each start revokes
the tokens of the shard's earlier servers held in this corpus (an actor that Ray restarted after a
crash, or the sibling's, copied in by a rebuild) and adds a new user, so at most one is live. The
server dies with its actor (PR_SET_PDEATHSIG), and the actor stops it after every erasure, so no
process keeps erased vectors in memory. Its log is `<corpus>.serve.log`, beside the corpus (one
file per replica, truncated at each start).
"""

import ctypes
import http.client
import json
import os
import secrets
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request

PR_SET_PDEATHSIG = 1
START_TIMEOUT_S = 120  # the server loads the models before it listens


class ServerError(RuntimeError):
    """The resident server could not start or answer; the message says why."""


def _die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _run(argv):
    p = subprocess.run(argv, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise ServerError(f"{' '.join(argv[-4:])} exited {p.returncode}: {p.stderr.strip()[-1000:]}")
    return p.stdout


class ResidentServer:
    def __init__(self, argv_base, user_prefix, revoke_prefix, log_path):
        self.argv = list(argv_base)  # facesearch [--models M] --corpus C
        self.prefix = user_prefix    # e.g. "cluster-shard0-r1-"
        self.revoke = revoke_prefix  # e.g. "cluster-shard0-r": a rebuilt replica holds its sibling's users too
        self.proc = self.url = self.token = None
        self.log_path = log_path     # one per replica, beside its corpus (not in it: import wants it clean)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _new_token(self):
        for line in _run(self.argv + ["user", "list", "--json"]).splitlines():
            user = json.loads(line)
            if user["name"].startswith(self.revoke) and not user["revoked_at"]:
                _run(self.argv + ["user", "revoke", user["name"]])
        return _run(self.argv + ["user", "add", self.prefix + secrets.token_hex(4), "--role", "searcher"]).strip()

    def start(self):
        self.token = self._new_token()
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # truncated at each start
        with os.fdopen(fd, "w") as log:  # the server's log, for the node's owner only
            self.proc = subprocess.Popen(self.argv + ["serve", "--port", "0", "--rate-limit", "0"],
                                         stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True,
                                         preexec_fn=_die_with_parent)
        line = self.proc.stdout.readline()  # "listening on http://127.0.0.1:PORT", once the models are loaded
        if not line.startswith("listening on "):
            self.stop()
            with open(self.log_path, errors="replace") as f:
                raise ServerError(f"facesearch serve did not start: {f.read().strip()[-1500:]}")
        self.url = line.split()[-1]

    def stop(self):
        if self.running():
            self.proc.terminate()  # finishes the requests under way, then exits
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def query(self, embed_text, params, timeout_s):
        """The server's JSON answer to the embed file (as `query --embedded - --format json`)."""
        if not self.running():
            self.start()
        request = urllib.request.Request(
            f"{self.url}/v1/query?{urllib.parse.urlencode(params)}", data=embed_text.encode(), method="POST",
            headers={"Content-Type": "application/x-ndjson", "Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as e:
            body = e.read().decode(errors="replace")
            try:
                message = json.loads(body)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = body[:500]
            raise ServerError(f"the shard's server answered {e.code}: {message}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:  # killed mid-answer too
            self.stop()  # a dead or hung server is started afresh by the next query
            raise ServerError(f"the shard's server did not answer: {e}") from None

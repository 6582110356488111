"""A Bearer-token gate in front of a real registry, for testing the token flow end to end.

distribution can only do token auth with a JWT issuer and certificates; this gate is the part
of Docker Hub's setup that matters to a client: `/v2/...` answers 401 with
`WWW-Authenticate: Bearer realm=".../token",service="...",scope="repository:<repo>:pull"`
until the request carries a token from `/token`, and then proxies to the registry behind it.

    with TokenGate(registry.url, users={"alice": "pw"}) as gate:
        gate.host    # "127.0.0.1:PORT", pull from here
        gate.token_requests  # what clients asked /token for
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

SERVICE = "token-gate"
_REPO_RE = re.compile(r"^/v2/(.+?)/(?:manifests|blobs)/")


class TokenGate:
    def __init__(self, upstream: str, *, users: Mapping[str, str] | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.users = dict(users or {})
        self.tokens: dict[str, str] = {}  # token -> scope it grants
        self.token_requests: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> TokenGate:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _handler(gate: TokenGate) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            url = urlsplit(self.path)
            if url.path == "/token":
                self._token(parse_qs(url.query))
            else:
                self._proxy(url.path, url.query)

        def _token(self, query: dict[str, list[str]]) -> None:
            user = self._basic_user()
            gate.token_requests.append({"user": user, **{k: v[0] for k, v in query.items()}})
            if user is None and gate.users:
                self._send(401, b'{"details":"credentials required"}')
                return
            if query.get("service") != [SERVICE] or "scope" not in query:
                self._send(400, b'{"details":"bad token request"}')
                return
            token = secrets.token_hex(16)
            gate.tokens[token] = query["scope"][0]
            self._send(200, f'{{"token":"{token}","expires_in":300}}'.encode())

        def _basic_user(self) -> str | None:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return None
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return user if gate.users.get(user) == password else None

        def _proxy(self, path: str, query: str) -> None:
            m = _REPO_RE.match(path)
            scope = f"repository:{m.group(1)}:pull" if m else ""
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if path != "/v2/" and gate.tokens.get(token) != scope:
                challenge = (
                    f'Bearer realm="http://{gate.host}/token",service="{SERVICE}",scope="{scope}"'
                )
                self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', challenge)
                return
            upstream = requests.get(
                f"{gate.upstream}{path}" + (f"?{query}" if query else ""),
                headers={"Accept": self.headers.get("Accept", "*/*")},
                timeout=30,
            )
            self.send_response(upstream.status_code)
            for name in ("Content-Type", "Docker-Content-Digest"):
                if name in upstream.headers:
                    self.send_header(name, upstream.headers[name])
            self.send_header("Content-Length", str(len(upstream.content)))
            self.end_headers()
            self.wfile.write(upstream.content)

        def _send(self, status: int, body: bytes, challenge: str = "") -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if challenge:
                self.send_header("WWW-Authenticate", challenge)
            self.end_headers()
            self.wfile.write(body)

    return Handler

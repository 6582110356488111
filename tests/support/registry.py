"""A throw-away Docker registry on 127.0.0.1, from Debian's `docker-registry` (distribution 2.8).

    with LocalRegistry() as reg:
        reg.host   # "127.0.0.1:PORT"
        reg.url    # "http://127.0.0.1:PORT"

Each instance gets its own port, config and storage in a temporary directory, removed on stop.
With `htpasswd={"user": "password"}` the registry demands HTTP Basic auth.
"""

from __future__ import annotations

import ctypes
import logging
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import requests

log = logging.getLogger(__name__)

REGISTRY_BINARY = Path("/usr/bin/docker-registry")
_START_TIMEOUT_S = 15.0
_START_ATTEMPTS = 3
_PR_SET_PDEATHSIG = 1


class LocalRegistry:
    def __init__(self, *, htpasswd: Mapping[str, str] | None = None) -> None:
        self._htpasswd = dict(htpasswd or {})
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def storage(self) -> Path:
        """The registry's storage root (tests corrupt blobs here)."""
        assert self._dir is not None, "registry not started"
        return self._dir / "data"

    def __enter__(self) -> LocalRegistry:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if not REGISTRY_BINARY.exists():
            raise RuntimeError(f"{REGISTRY_BINARY} is missing: apt-get install docker-registry")
        self._dir = Path(tempfile.mkdtemp(prefix="cri-test-registry-"))
        (self._dir / "data").mkdir()
        try:
            # The port is picked by binding to port 0 and closing; another process could take it
            # before the registry binds, so a failed start is retried on a fresh port.
            for _ in range(_START_ATTEMPTS):
                self.port = _free_port()
                self._write_config()
                if self._launch():
                    return
            raise RuntimeError(f"docker-registry did not start; see {self._dir / 'registry.log'}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _write_config(self) -> None:
        assert self._dir is not None
        auth = ""
        if self._htpasswd:
            path = self._dir / "htpasswd"
            path.write_text("".join(f"{u}:{_bcrypt(p)}\n" for u, p in self._htpasswd.items()))
            auth = f"auth:\n  htpasswd:\n    realm: test-registry\n    path: {path}\n"
        (self._dir / "config.yml").write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self._dir / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n" + auth
        )

    def _launch(self) -> bool:
        assert self._dir is not None
        with open(self._dir / "registry.log", "ab") as logfile:
            self._proc = subprocess.Popen(
                [str(REGISTRY_BINARY), "serve", str(self._dir / "config.yml")],
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                return False
            try:
                # 200 when open, 401 when htpasswd is on: either way it is serving.
                if requests.get(f"{self.url}/v2/", timeout=1).status_code in (200, 401):
                    log.debug("registry up on %s", self.host)
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self._proc.kill()
        self._proc.wait()
        self._proc = None
        return False


def _die_with_parent() -> None:
    # If the test process is killed outright, the registry must not outlive it.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _bcrypt(password: str) -> str:
    # distribution's htpasswd backend accepts bcrypt only; glibc's libxcrypt provides it.
    # `crypt` warns that it is deprecated when imported, hence the lazy import (Python 3.11).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))

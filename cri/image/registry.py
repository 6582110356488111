"""A client for the OCI distribution (Docker registry v2) API, read side only.

One `RegistrySession` serves one pull: it resolves a reference to a platform manifest and then
streams that image's blobs from the endpoint that answered. Callers verify blob digests (the
content store does, while it writes).

Where requests go (containerd's hosts.toml model, reduced to what we need):
* `mirrors` maps a registry host as written in references (`docker.io`, `registry.k8s.io`,
  `127.0.0.1:5000`) to an ordered list of endpoint URLs. Each is tried in turn, then the upstream.
  A mirror that does not have the image (or fails) passes the turn to the next endpoint.
* The upstream of `docker.io` is `registry-1.docker.io`. Loopback registries (127.0.0.0/8,
  localhost, ::1) are spoken to over plain HTTP, every other one over HTTPS.

Authentication: the per-pull credentials (CRI AuthConfig) are offered to whichever endpoint asks
for them, as containerd does when AuthConfig has no server address. A 401 with a Bearer challenge
runs the token flow (anonymous, Basic-authenticated, OAuth2 refresh token, or a ready registry
token); a Basic challenge gets the username and password directly.

Every request has a timeout: `timeout` is (connect, read) seconds, the read timeout applying to
each socket read, so a stalled download fails while a slow but moving one does not.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from cri.errors import (
    CriError,
    FailedPrecondition,
    Internal,
    NotFound,
    Unavailable,
)
from cri.image import manifest as mf
from cri.image.digest import digest_of
from cri.image.mirrors import is_loopback_host, normalize_mirrors
from cri.image.platform import Platform, host_platform
from cri.image.reference import DEFAULT_DOMAIN, Reference

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)
DOCKER_HUB_UPSTREAM = "https://registry-1.docker.io"
CHUNK_SIZE = 1 << 20
USER_AGENT = "cri-python/0.1"
_OAUTH_CLIENT_ID = "cri-python"
_MAX_INDEX_DEPTH = 2


@dataclass(frozen=True, slots=True)
class Credentials:
    """Per-pull credentials, already decoded from the CRI AuthConfig."""

    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth2 refresh token
    registry_token: str = ""  # a bearer token to send as is

    def __bool__(self) -> bool:
        return bool(self.username or self.identity_token or self.registry_token)


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str  # scheme://host[:port][/prefix], without the trailing /v2
    mirror: bool

    def v2(self, suffix: str) -> str:
        return f"{self.url}/v2/{suffix}"


@dataclass(frozen=True, slots=True)
class ResolvedImage:
    reference: Reference
    digest: str  # what the reference resolved to: the index's digest for a multi-platform image
    manifest_digest: str  # the platform manifest's digest (== digest for single-platform images)
    manifest: bytes
    index: bytes | None
    config: mf.Descriptor
    layers: tuple[mf.Descriptor, ...]
    endpoint: Endpoint


class RegistryClient:
    def __init__(
        self,
        mirrors: Mapping[str, Sequence[str]] | None = None,
        *,
        platform: Platform | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        self.mirrors = normalize_mirrors(mirrors or {})
        self.platform = platform or host_platform()
        self.timeout = timeout

    def endpoints(self, domain: str) -> list[Endpoint]:
        eps = [Endpoint(url, mirror=True) for url in self.mirrors.get(domain, ())]
        if domain == DEFAULT_DOMAIN:
            upstream = DOCKER_HUB_UPSTREAM
        else:
            upstream = ("http://" if is_loopback_host(domain) else "https://") + domain
        if upstream not in (e.url for e in eps):
            eps.append(Endpoint(upstream, mirror=False))
        return eps

    def session(self, ref: Reference, credentials: Credentials | None = None) -> RegistrySession:
        return RegistrySession(self, ref, credentials or Credentials())


class RegistrySession:
    """One pull's conversation with a registry: its HTTP connections and auth tokens."""

    def __init__(self, client: RegistryClient, ref: Reference, credentials: Credentials) -> None:
        self._client = client
        self._ref = ref
        self._creds = credentials
        self._http = requests.Session()
        self._http.headers["User-Agent"] = USER_AGENT
        # We hash what we read off the wire, so ask servers not to add a transfer encoding.
        self._http.headers["Accept-Encoding"] = "identity"
        self._authorization: dict[str, str] = {}  # endpoint url -> Authorization header

    def __enter__(self) -> RegistrySession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- resolving -------------------------------------------------------------------------

    def resolve(self) -> ResolvedImage:
        """Find the reference's platform manifest on the first endpoint that has it."""
        failures: list[tuple[Endpoint, CriError]] = []
        for ep in self._client.endpoints(self._ref.domain):
            try:
                resolved = self._resolve_at(ep)
            except CriError as e:
                log.info("resolving %s at %s failed: %s", self._ref, ep.url, e.message)
                failures.append((ep, e))
                continue
            log.debug("resolved %s at %s to %s", self._ref, ep.url, resolved.digest)
            return resolved
        detail = "; ".join(f"{ep.url}: {e.message}" for ep, e in failures)
        # A definite answer (not found, access denied, corrupt data) beats "could not connect":
        # when a mirror says the image is absent and the offline upstream cannot be reached,
        # the caller learns the image is missing, with both reasons in the message.
        decisive = [e for _, e in failures if not isinstance(e, Unavailable)]
        kind = type(decisive[0]) if decisive else Unavailable
        if kind is NotFound:
            raise NotFound(f"image {self._ref} not found ({detail})")
        raise kind(f"pulling {self._ref} failed ({detail})")

    def _resolve_at(self, ep: Endpoint) -> ResolvedImage:
        locator = self._ref.locator
        data, content_type, digest = self._get_manifest(ep, locator)
        what = f"{self._ref.repository}@{digest}"
        doc = mf.parse(data, content_type, what)
        top_digest, index_bytes = digest, None
        depth = 0
        while isinstance(doc, mf.Index):
            depth += 1
            if depth > _MAX_INDEX_DEPTH:
                raise Internal(f"{what}: image indexes nested too deep")
            if index_bytes is None:
                index_bytes = data
            entry = mf.select_platform(doc, self._client.platform, what)
            data, content_type, digest = self._get_manifest(ep, entry.digest)
            what = f"{self._ref.repository}@{digest}"
            doc = mf.parse(data, content_type or entry.media_type, what)
        return ResolvedImage(
            reference=self._ref,
            digest=top_digest,
            manifest_digest=digest,
            manifest=data,
            index=index_bytes,
            config=doc.config,
            layers=doc.layers,
            endpoint=ep,
        )

    def _get_manifest(self, ep: Endpoint, locator: str) -> tuple[bytes, str, str]:
        url = ep.v2(f"{self._ref.path}/manifests/{locator}")
        with self._request(ep, url, {"Accept": mf.ACCEPT}, stream=True) as resp:
            if resp.status_code == 404:
                raise NotFound(f"manifest {locator} not found{_registry_message(resp)}")
            _raise_for_status(resp, f"manifest {locator}")
            data = _read_limited(resp, mf.MAX_MANIFEST_BYTES, f"manifest {locator}")
            content_type = resp.headers.get("Content-Type", "")
            claimed = resp.headers.get("Docker-Content-Digest", "")
        digest = digest_of(data)
        if locator.startswith("sha256:") and digest != locator:
            raise Internal(
                f"manifest {locator} from {ep.url} has digest {digest}: content mismatch"
            )
        if claimed.startswith("sha256:") and claimed != digest:
            raise Internal(
                f"manifest {locator} from {ep.url} has digest {digest} but the registry "
                f"claims {claimed}"
            )
        return data, content_type, digest

    # --- blobs ------------------------------------------------------------------------------

    @contextmanager
    def blob(self, ep: Endpoint, desc: mf.Descriptor) -> Iterator[Iterator[bytes]]:
        """Stream a blob's bytes as sent (no content decoding); the caller verifies them."""
        url = ep.v2(f"{self._ref.path}/blobs/{desc.digest}")
        with self._request(ep, url, {}, stream=True) as resp:
            if resp.status_code == 404:
                raise NotFound(f"blob {desc.digest} of {self._ref} not found at {ep.url}")
            _raise_for_status(resp, f"blob {desc.digest}")
            yield _raw_chunks(resp, f"blob {desc.digest} from {ep.url}")

    # --- HTTP and auth ---------------------------------------------------------------------

    @contextmanager
    def _request(
        self, ep: Endpoint, url: str, headers: Mapping[str, str], *, stream: bool
    ) -> Iterator[requests.Response]:
        resp = self._send(ep, url, headers, stream)
        if resp.status_code == 401:
            # The first 401 (or one after a token expired mid-pull) starts the auth dance;
            # a second one in a row means the credentials do not grant access.
            challenges = parse_challenges(resp.headers.get("WWW-Authenticate", ""))
            resp.close()
            self._authorization[ep.url] = self._authorize(ep, challenges)
            resp = self._send(ep, url, headers, stream)
            if resp.status_code == 401:
                resp.close()
                raise self._denied(ep)
        try:
            yield resp
        finally:
            resp.close()

    def _send(
        self, ep: Endpoint, url: str, headers: Mapping[str, str], stream: bool
    ) -> requests.Response:
        all_headers = dict(headers)
        if ep.url in self._authorization:
            all_headers["Authorization"] = self._authorization[ep.url]
        try:
            # NOTE: requests drops Authorization when a redirect leaves the host, which is
            # what blob redirects to object storage (pre-signed URLs) need.
            return self._http.get(
                url, headers=all_headers, stream=stream, timeout=self._client.timeout
            )
        except requests.RequestException as e:
            raise Unavailable(f"cannot reach {ep.url}: {e}") from None

    def _authorize(self, ep: Endpoint, challenges: list[tuple[str, dict[str, str]]]) -> str:
        schemes = {scheme.lower(): params for scheme, params in challenges}
        if "bearer" in schemes:
            return "Bearer " + self._bearer_token(ep, schemes["bearer"])
        if "basic" in schemes:
            if not self._creds.username:
                raise self._denied(ep)
            pair = f"{self._creds.username}:{self._creds.password}".encode()
            return "Basic " + base64.b64encode(pair).decode("ascii")
        raise Internal(f"{ep.url} asked for authentication without a usable challenge")

    def _bearer_token(self, ep: Endpoint, params: Mapping[str, str]) -> str:
        if self._creds.registry_token:
            return self._creds.registry_token
        realm = params.get("realm", "")
        if urlsplit(realm).scheme not in ("http", "https"):
            raise Internal(f"{ep.url} sent a Bearer challenge with realm {realm!r}")
        form = {"scope": params.get("scope") or f"repository:{self._ref.path}:pull"}
        if params.get("service"):
            form["service"] = params["service"]
        timeout = self._client.timeout
        try:
            if self._creds.identity_token:
                resp = self._http.post(
                    realm,
                    data={
                        **form,
                        "grant_type": "refresh_token",
                        "refresh_token": self._creds.identity_token,
                        "client_id": _OAUTH_CLIENT_ID,
                    },
                    timeout=timeout,
                )
            else:
                basic = (
                    (self._creds.username, self._creds.password) if self._creds.username else None
                )
                resp = self._http.get(realm, params=form, auth=basic, timeout=timeout)
        except requests.RequestException as e:
            raise Unavailable(f"cannot reach the token service {realm}: {e}") from None
        with resp:
            if resp.status_code in (401, 403):
                if self._creds:
                    raise FailedPrecondition(
                        f"the token service {realm} refused the credentials for {self._ref}"
                    )
                raise self._denied(ep)
            _raise_for_status(resp, f"token from {realm}")
            try:
                body: Any = resp.json()
            except ValueError:
                body = None
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise Internal(f"the token service {realm} answered without a token")
        return token

    def _denied(self, ep: Endpoint) -> CriError:
        if self._creds:
            return FailedPrecondition(f"{ep.url} refused the given credentials for {self._ref}")
        # Registries answer 401 for repositories that do not exist as well as for private
        # ones, so without credentials this is as much "not found" as "forbidden".
        return NotFound(
            f"pull access denied for {self._ref} at {ep.url}: the repository does not exist "
            "or requires authorization"
        )


def parse_challenges(header: str) -> list[tuple[str, dict[str, str]]]:
    """Parse `WWW-Authenticate` (RFC 7235): `Bearer realm="..",service="..", Basic realm=".."`.

    Quoted values may contain commas (`scope="repository:a:pull,push"`), so this walks the
    header token by token instead of splitting on commas.
    """
    challenges: list[tuple[str, dict[str, str]]] = []
    i, n = 0, len(header)
    while i < n:
        while i < n and header[i] in " \t,":
            i += 1
        start = i
        while i < n and header[i] not in " \t,=":
            i += 1
        token = header[start:i]
        if not token:
            i += 1
            continue
        j = i
        while j < n and header[j] in " \t":
            j += 1
        if j < n and header[j] == "=" and challenges:
            value, i = _challenge_value(header, j + 1)
            challenges[-1][1][token.lower()] = value
        else:
            challenges.append((token, {}))
    return challenges


def _challenge_value(header: str, i: int) -> tuple[str, int]:
    n = len(header)
    while i < n and header[i] in " \t":
        i += 1
    if i < n and header[i] == '"':
        out: list[str] = []
        i += 1
        while i < n and header[i] != '"':
            if header[i] == "\\" and i + 1 < n:
                i += 1
            out.append(header[i])
            i += 1
        return "".join(out), i + 1
    start = i
    while i < n and header[i] not in ", \t":
        i += 1
    return header[start:i], i


def _registry_message(resp: requests.Response) -> str:
    """The registry's own error text (`{"errors":[{"code":..,"message":..}]}`), if any."""
    try:
        body = resp.json()
    except ValueError:
        return ""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return ""
    parts = [
        f"{e.get('code', '')}: {e.get('message', '')}".strip(": ")
        for e in errors
        if isinstance(e, dict)
    ]
    return f" ({'; '.join(parts)})" if parts else ""


def _raise_for_status(resp: requests.Response, what: str) -> None:
    if resp.status_code == 200:
        return
    message = f"{what}: HTTP {resp.status_code} from {resp.url}{_registry_message(resp)}"
    if resp.status_code in (403,):
        raise NotFound(f"access denied to {message}")
    if resp.status_code == 429 or resp.status_code >= 500:
        raise Unavailable(message)
    raise Internal(message)


def _read_limited(resp: requests.Response, limit: int, what: str) -> bytes:
    buf = bytearray()
    for chunk in _raw_chunks(resp, what):
        buf += chunk
        if len(buf) > limit:
            raise Internal(f"{what} is larger than {limit} bytes")
    return bytes(buf)


def _raw_chunks(resp: requests.Response, what: str) -> Iterator[bytes]:
    # Raw bytes: we asked for identity encoding, and some object stores wrongly label gzip
    # layers `Content-Encoding: gzip`; decoding those would break the blob's digest.
    try:
        yield from resp.raw.stream(CHUNK_SIZE, decode_content=False)
    except (urllib3.exceptions.HTTPError, OSError, requests.RequestException) as e:
        raise Unavailable(f"reading {what} failed: {e}") from None


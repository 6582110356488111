"""Image references, parsed and normalised the way Docker and containerd do it.

    busybox                      -> docker.io/library/busybox:latest
    foo/bar                      -> docker.io/foo/bar:latest
    index.docker.io/foo/bar      -> docker.io/foo/bar:latest
    127.0.0.1:5000/busybox:1.0   -> 127.0.0.1:5000/busybox:1.0
    localhost/x                  -> localhost/x:latest
    repo@sha256:<hex>            -> docker.io/library/repo@sha256:<hex>   (no tag is added)
    repo:tag@sha256:<hex>        -> docker.io/library/repo:tag@sha256:<hex>

The grammar is distribution/reference's (`reference.go`, `normalize.go`): the first path
component is a registry host only if it contains a '.' or a ':', is `localhost`, or has an
upper-case letter; otherwise the reference is on Docker Hub, and a one-component Hub path gets
the `library/` prefix. Repository paths are lower case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cri.errors import InvalidArgument
from cri.image.digest import DigestError, check_digest

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
MAX_NAME_LENGTH = 255

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
)
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_BARE_ID_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Reference:
    """A normalised reference. `tag` is None only when a digest pins the reference."""

    domain: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        """`domain/path`, the name registries and repo tags are keyed by."""
        return f"{self.domain}/{self.path}"

    @property
    def repo_tag(self) -> str | None:
        """`repository:tag`, or None for a reference pinned by digest alone."""
        return f"{self.repository}:{self.tag}" if self.tag is not None else None

    @property
    def repo_digest(self) -> str | None:
        return f"{self.repository}@{self.digest}" if self.digest is not None else None

    @property
    def locator(self) -> str:
        """What to ask the registry for: the digest when there is one (it wins over a tag)."""
        return self.digest if self.digest is not None else (self.tag or DEFAULT_TAG)

    def with_digest(self, digest: str) -> Reference:
        """The same repository pinned to `digest`, without a tag."""
        return Reference(self.domain, self.path, None, digest)

    def familiar(self) -> str:
        """The short form people type: `busybox:latest`, `foo/bar:1`, `quay.io/x/y:z`."""
        name = self.repository
        if self.domain == DEFAULT_DOMAIN:
            name = self.path
            rest = name.removeprefix(OFFICIAL_REPO_PREFIX)
            if rest != name and "/" not in rest:
                name = rest
        return _with_suffixes(name, self.tag, self.digest)

    def __str__(self) -> str:
        return _with_suffixes(self.repository, self.tag, self.digest)


def _with_suffixes(name: str, tag: str | None, digest: str | None) -> str:
    if tag is not None:
        name = f"{name}:{tag}"
    if digest is not None:
        name = f"{name}@{digest}"
    return name


def parse_reference(text: str) -> Reference:
    """Parse and normalise `text`, or raise InvalidArgument saying what is wrong with it."""
    if not text:
        raise InvalidArgument("image reference is empty")
    if text != text.strip() or any(c.isspace() for c in text):
        raise InvalidArgument(f"invalid image reference {text!r}: contains whitespace")

    name, at, digest = text.partition("@")
    if at:
        try:
            check_digest(digest)
        except DigestError as e:
            raise InvalidArgument(f"invalid image reference {text!r}: {e}") from None

    domain, remainder = _split_domain(name)
    # A ':' after the last '/' separates the tag; one before it would be a port, but the
    # domain has already been split off, so any ':' left in the path is a tag separator.
    path, colon, tag = remainder.rpartition(":") if ":" in remainder else (remainder, "", "")
    if colon and not _TAG_RE.fullmatch(tag):
        raise InvalidArgument(
            f"invalid image reference {text!r}: tag {tag!r} must match [A-Za-z0-9_][A-Za-z0-9_.-]"
            "{0,127}"
        )

    if not path:
        raise InvalidArgument(f"invalid image reference {text!r}: repository name is empty")
    if path.lower() != path:
        raise InvalidArgument(
            f"invalid image reference {text!r}: repository name {path!r} must be lowercase"
        )
    if not _DOMAIN_RE.fullmatch(domain):
        raise InvalidArgument(f"invalid image reference {text!r}: bad registry host {domain!r}")
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    if not _PATH_RE.fullmatch(path):
        raise InvalidArgument(
            f"invalid image reference {text!r}: repository path {path!r} must be "
            "'/'-separated lowercase components of [a-z0-9] joined by '.', '_', '__' or '-'"
        )
    if domain == DEFAULT_DOMAIN and _BARE_ID_RE.fullmatch(path.removeprefix(OFFICIAL_REPO_PREFIX)):
        # As Docker does: a 64-hex "name" is almost certainly an image id given to the wrong API.
        raise InvalidArgument(
            f"invalid image reference {text!r}: a 64-hex-digit string is an image id, not a name"
        )
    if len(domain) + 1 + len(path) > MAX_NAME_LENGTH:
        raise InvalidArgument(
            f"invalid image reference {text!r}: repository name longer than {MAX_NAME_LENGTH}"
        )

    return Reference(
        domain=domain,
        path=path,
        tag=tag if colon else (None if at else DEFAULT_TAG),
        digest=digest if at else None,
    )


def _split_domain(name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if not slash or (
        "." not in first and ":" not in first and first != "localhost" and first.lower() == first
    ):
        return DEFAULT_DOMAIN, name
    if first == LEGACY_DEFAULT_DOMAIN:
        first = DEFAULT_DOMAIN
    return first, rest

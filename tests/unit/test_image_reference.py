"""Image reference parsing and normalisation (cri.image.reference)."""

from __future__ import annotations

import pytest

from cri.errors import InvalidArgument
from cri.image import parse_reference
from cri.image.reference import Reference

D = "sha256:" + "ab" * 32

NORMALISED = [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest"),
    ("foo/bar", "docker.io/foo/bar:latest"),
    ("foo/bar/baz:v1", "docker.io/foo/bar/baz:v1"),
    ("127.0.0.1:5000/busybox:1.0", "127.0.0.1:5000/busybox:1.0"),
    ("localhost/x", "localhost/x:latest"),
    ("localhost:5000/x/y", "localhost:5000/x/y:latest"),
    ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
    (
        "gcr.io/k8s-staging-cri-tools/test-image-1",
        "gcr.io/k8s-staging-cri-tools/test-image-1:latest",
    ),
    ("[::1]:5000/img", "[::1]:5000/img:latest"),
    ("Registry.Example.com/app", "Registry.Example.com/app:latest"),
    ("a.b/c__d-e.f_g", "a.b/c__d-e.f_g:latest"),
    (f"busybox@{D}", f"docker.io/library/busybox@{D}"),
    (f"busybox:1.0@{D}", f"docker.io/library/busybox:1.0@{D}"),
    (f"127.0.0.1:5000/x@{D}", f"127.0.0.1:5000/x@{D}"),
    ("localhost", "docker.io/library/localhost:latest"),  # no '/': a Hub name, as in Docker
    ("localhost:5000", "docker.io/library/localhost:5000"),  # ...and ":5000" is a tag
]


@pytest.mark.parametrize(("text", "canonical"), NORMALISED)
def test_normalisation(text: str, canonical: str) -> None:
    ref = parse_reference(text)
    assert str(ref) == canonical
    assert parse_reference(canonical) == ref  # canonical form is a fixed point


def test_fields() -> None:
    ref = parse_reference(f"127.0.0.1:5000/a/b:1.0@{D}")
    assert ref == Reference("127.0.0.1:5000", "a/b", "1.0", D)
    assert ref.repository == "127.0.0.1:5000/a/b"
    assert ref.repo_tag == "127.0.0.1:5000/a/b:1.0"
    assert ref.repo_digest == f"127.0.0.1:5000/a/b@{D}"
    assert ref.locator == D  # the digest wins over the tag
    assert ref.with_digest("sha256:" + "cd" * 32).tag is None


def test_digest_only_has_no_tag() -> None:
    ref = parse_reference(f"busybox@{D}")
    assert ref.tag is None and ref.repo_tag is None
    assert ref.locator == D


@pytest.mark.parametrize(
    ("text", "familiar"),
    [
        ("busybox", "busybox:latest"),
        ("foo/bar:1", "foo/bar:1"),
        ("library/a/b", "library/a/b:latest"),
        ("quay.io/x/y:z", "quay.io/x/y:z"),
        (f"busybox@{D}", f"busybox@{D}"),
    ],
)
def test_familiar(text: str, familiar: str) -> None:
    assert parse_reference(text).familiar() == familiar


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("Busybox", "lowercase"),
        ("foo/Bar", "lowercase"),
        ("busybox:", "tag"),
        ("busybox:-x", "tag"),
        ("busybox:" + "t" * 129, "tag"),
        ("busybox@sha256:abc", "digest"),
        ("busybox@sha256:" + "AB" * 32, "digest"),
        ("busybox@sha512:" + "ab" * 64, "only sha256"),
        ("busybox@", "digest"),
        ("bus box", "whitespace"),
        (" busybox", "whitespace"),
        ("foo//bar", "repository path"),
        ("foo/bar/", "repository path"),
        ("foo/-bar", "repository path"),
        ("foo/bar..baz", "repository path"),
        ("host:port/x", "registry host"),
        ("-bad.host/x", "registry host"),
        ("127.0.0.1:5000/", "empty"),
        ("ab" * 32, "image id"),
        ("a.io/" + "x" * 260, "longer than"),
    ],
)
def test_invalid(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_reference(text)
    assert message in info.value.message

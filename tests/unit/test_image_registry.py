"""The registry client's pure parts: challenges, endpoints and mirrors, manifests, platforms.

The HTTP side is tested against a real registry in tests/integration/test_image_pull.py.
"""

from __future__ import annotations

import json

import pytest

from cri.errors import Internal, InvalidArgument, NotFound, Unimplemented
from cri.image import manifest as mf
from cri.image.platform import Platform, match_rank, normalize
from cri.image.registry import (
    DOCKER_HUB_UPSTREAM,
    RegistryClient,
    is_loopback_host,
    normalize_mirrors,
    parse_challenges,
)

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


def test_bearer_challenge() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull,push"'
    )
    assert parse_challenges(header) == [
        (
            "Bearer",
            {
                "realm": "https://auth.docker.io/token",
                "service": "registry.docker.io",
                "scope": "repository:library/busybox:pull,push",
            },
        )
    ]


def test_several_challenges_and_escapes() -> None:
    header = r'Basic realm="a \"quoted\" realm", Bearer realm=https://x/token , service=svc'
    assert parse_challenges(header) == [
        ("Basic", {"realm": 'a "quoted" realm'}),
        ("Bearer", {"realm": "https://x/token", "service": "svc"}),
    ]
    assert parse_challenges("") == []


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1", True),
        ("127.1.2.3:80", True),
        ("[::1]:5000", True),
        ("::1", True),
        ("10.0.0.1:5000", False),
        ("registry.k8s.io", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_endpoints_mirrors_then_upstream() -> None:
    client = RegistryClient(
        {
            "docker.io": ["http://127.0.0.1:5000", "https://mirror.example/v2/"],
            "registry.k8s.io": ["127.0.0.1:5000"],
        }
    )
    hub = client.endpoints("docker.io")
    assert [(e.url, e.mirror) for e in hub] == [
        ("http://127.0.0.1:5000", True),
        ("https://mirror.example", True),
        (DOCKER_HUB_UPSTREAM, False),
    ]
    assert [e.url for e in client.endpoints("registry.k8s.io")] == [
        "http://127.0.0.1:5000",
        "https://registry.k8s.io",
    ]
    assert [e.url for e in client.endpoints("localhost:5000")] == ["http://localhost:5000"]
    assert hub[0].v2("library/busybox/manifests/1.0") == (
        "http://127.0.0.1:5000/v2/library/busybox/manifests/1.0"
    )


def test_mirror_config_is_checked() -> None:
    assert normalize_mirrors({"index.docker.io": ["https://m"]}) == {"docker.io": ("https://m",)}
    with pytest.raises(InvalidArgument):
        normalize_mirrors({"docker.io": "http://127.0.0.1:5000"})
    with pytest.raises(InvalidArgument):
        normalize_mirrors({"docker.io": ["ftp://x"]})


def _index(*platforms: tuple[str, str, str], media_type: str = mf.OCI_INDEX) -> mf.Index:
    entries = []
    for i, (os_name, arch, variant) in enumerate(platforms):
        p = {"os": os_name, "architecture": arch}
        if variant:
            p["variant"] = variant
        entries.append(
            {"mediaType": mf.OCI_MANIFEST, "digest": f"sha256:{i:064x}", "size": 1, "platform": p}
        )
    doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
    parsed = mf.parse(json.dumps(doc).encode(), "", "test index")
    assert isinstance(parsed, mf.Index)
    return parsed


def test_select_platform() -> None:
    index = _index(
        ("unknown", "unknown", ""),  # a BuildKit attestation entry
        ("linux", "arm64", "v8"),
        ("linux", "amd64", ""),
        ("linux", "arm", "v6"),
        ("linux", "arm", "v7"),
    )
    assert mf.select_platform(index, Platform("linux", "amd64"), "t").digest.endswith("02")
    assert mf.select_platform(index, Platform("linux", "arm64", "v8"), "t").digest.endswith("01")
    assert mf.select_platform(index, Platform("linux", "arm", "v7"), "t").digest.endswith("04")
    assert mf.select_platform(index, Platform("linux", "arm", "v6"), "t").digest.endswith("03")
    with pytest.raises(NotFound, match="no manifest for platform linux/s390x"):
        mf.select_platform(index, Platform("linux", "s390x"), "t")


def test_platform_rules() -> None:
    host = Platform("linux", "arm64", "v8")
    assert match_rank(host, Platform("linux", "arm64")) == 0  # v8 is implied
    assert match_rank(host, Platform("linux", "aarch64")) == 0
    assert match_rank(Platform("linux", "arm", "v7"), Platform("linux", "arm", "v5")) == 2
    assert match_rank(Platform("linux", "arm", "v6"), Platform("linux", "arm", "v7")) is None
    assert match_rank(Platform("linux", "amd64"), Platform("linux", "amd64", "v3")) is None
    assert match_rank(Platform("linux", "amd64"), Platform("windows", "amd64")) is None
    assert normalize(Platform("Linux", "x86_64")) == Platform("linux", "amd64", "v1")


def test_parse_manifest_kinds() -> None:
    manifest = {
        "schemaVersion": 2,
        "config": {"mediaType": mf.OCI_CONFIG, "digest": D1, "size": 10},
        "layers": [{"mediaType": mf.DOCKER_LAYER_GZIP, "digest": D2, "size": 20}],
    }
    # No mediaType field and a generic Content-Type: recognised by shape, as OCI allows.
    parsed = mf.parse(json.dumps(manifest).encode(), "application/json", "m")
    assert isinstance(parsed, mf.Manifest)
    assert parsed.config == mf.Descriptor(mf.OCI_CONFIG, D1, 10)
    assert parsed.layers == (mf.Descriptor(mf.DOCKER_LAYER_GZIP, D2, 20),)

    zstd = dict(manifest, layers=[{"mediaType": mf.OCI_LAYER_ZSTD, "digest": D3, "size": 1}])
    with pytest.raises(Unimplemented, match="zstd"):
        mf.parse(json.dumps(zstd).encode(), mf.OCI_MANIFEST, "m")
    with pytest.raises(Unimplemented, match="schema 1"):
        mf.parse(b'{"schemaVersion": 1, "fsLayers": []}', "", "m")
    with pytest.raises(Internal, match="not valid JSON"):
        mf.parse(b"<html>", "", "m")
    bad_digest = dict(manifest, config={"mediaType": mf.OCI_CONFIG, "digest": "md5:x", "size": 1})
    with pytest.raises((Internal, Unimplemented)):
        mf.parse(json.dumps(bad_digest).encode(), mf.OCI_MANIFEST, "m")
    assert isinstance(_index(media_type=mf.DOCKER_LIST), mf.Index)

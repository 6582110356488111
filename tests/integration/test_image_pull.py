"""The images domain against a real registry (Debian's docker-registry on 127.0.0.1).

Every test gets its own ImageService root and database, removed afterwards; repositories pushed
here live in the session's registry, which is removed at the end of the session.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from cri.errors import FailedPrecondition, Internal, InvalidArgument, NotFound, Unavailable
from cri.image import ImageConfig, ImageService, RegistryAuth
from cri.image.platform import host_platform
from cri.image.unpack import OPAQUE_XATTR
from cri.store.db import Database
from tests.support.daemon import CriClient, running_daemon
from tests.support.leaks import processes_mentioning
from tests.support.oci_build import (
    PATH_ENV,
    BuiltImage,
    Layer,
    build_image,
    busybox_base_layer,
    busybox_config,
    busybox_image,
    push_image,
    push_index,
)
from tests.support.registry import LocalRegistry, _free_port
from tests.support.token_gate import SERVICE, TokenGate

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root")

_repo_numbers = itertools.count()


def unique_repo(prefix: str = "test/img") -> str:
    """A repository no other test touches (the registry lives for the whole session)."""
    return f"{prefix}{os.getpid()}-{next(_repo_numbers)}"


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cri-image-test-"))
    yield path
    shutil.rmtree(path)


ServiceFactory = Callable[..., ImageService]


@pytest.fixture
def make_service(root: Path) -> Iterator[ServiceFactory]:
    dbs: list[Database] = []

    def make(**kwargs: object) -> ImageService:
        db = Database(root / "cri.db")
        dbs.append(db)
        return ImageService(root, db, **kwargs)  # type: ignore[arg-type]

    yield make
    for db in dbs:
        db.close()


@pytest.fixture
def service(make_service: ServiceFactory) -> ImageService:
    return make_service()


def content_files(root: Path) -> list[str]:
    return sorted(os.listdir(root / "images" / "content" / "sha256"))


def layer_entries(root: Path) -> list[str]:
    return sorted(os.listdir(root / "images" / "layers"))


def distinct_busybox(name: str, **config: object) -> BuiltImage:
    """Busybox plus a small top layer of its own, so its id and top layer are unique."""
    top = Layer().file(f"etc/{name}", f"{name}\n").build()
    return build_image([busybox_base_layer(), top], busybox_config(Labels={"name": name}, **config))


# --- pulling -------------------------------------------------------------------------------


def test_pull_by_tag(service: ImageService, registry: LocalRegistry, busybox_ref: str) -> None:
    expected = busybox_image()
    image = service.pull(busybox_ref)

    assert image.id == expected.id
    assert image.repo_tags == (busybox_ref,)
    assert image.repo_digests == (f"{registry.host}/test/busybox@{expected.digest}",)
    assert image.size == expected.size
    assert image.config == ImageConfig(env=(PATH_ENV,), cmd=("sh",))
    assert not image.pinned
    assert image.chain_ids == (expected.layers[0].diff_id,)

    [rootfs] = service.layer_dirs(image)
    assert os.lstat(rootfs / "bin/sh").st_ino == os.lstat(rootfs / "bin/busybox").st_ino
    assert stat.S_IMODE(os.lstat(rootfs / "tmp").st_mode) == 0o1777
    assert os.lstat(rootfs / "home/app").st_uid == 1000
    assert "app:x:1000:1000" in (rootfs / "etc/passwd").read_text()
    # The unpacked tree is a working root filesystem.
    ran = subprocess.run(
        ["chroot", str(rootfs), "/bin/sh", "-c", "echo hi from $(id -u)"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ran.stdout == "hi from 0\n", ran.stderr


def test_pull_is_idempotent_and_concurrent_pulls_share_one_download(
    service: ImageService, root: Path, busybox_ref: str
) -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def pull() -> None:
        try:
            results.append(service.pull(busybox_ref).id)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=pull) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    before = (content_files(root), layer_entries(root))

    again = service.pull(busybox_ref, pinned=True)
    assert again.id == results[0] and again.pinned
    assert (content_files(root), layer_entries(root)) == before
    assert len(service.list()) == 1
    assert service.pull(busybox_ref).pinned  # pinned stays pinned


def test_pull_by_digest(service: ImageService, registry: LocalRegistry, busybox_ref: str) -> None:
    expected = busybox_image()
    by_digest = f"{registry.host}/test/busybox@{expected.digest}"
    image = service.pull(by_digest)
    assert image.id == expected.id
    assert image.repo_tags == ()
    assert image.repo_digests == (by_digest,)
    # tag@digest pulls by digest and records only the digest name, as containerd does.
    assert service.pull(f"{registry.host}/test/busybox:whatever@{expected.digest}").repo_tags == ()
    # A later pull by tag adds the tag to the same image.
    assert service.pull(busybox_ref).repo_tags == (busybox_ref,)


@pytest.mark.parametrize("docker", [False, True], ids=["oci-index", "docker-list"])
def test_pull_index_picks_this_platform(
    service: ImageService, registry: LocalRegistry, docker: bool
) -> None:
    amd64 = busybox_image(docker=docker, Labels={"arch": "amd64"})
    arm64 = busybox_image(docker=docker, architecture="arm64", Labels={"arch": "arm64"})
    platforms = {
        "amd64": (amd64, {"os": "linux", "architecture": "amd64"}),
        "arm64": (arm64, {"os": "linux", "architecture": "arm64", "variant": "v8"}),
    }
    host = host_platform().architecture
    if host not in platforms:
        pytest.skip(f"no test image for {host}")
    repo = unique_repo()
    # arm64 listed first, so picking the first entry would be caught.
    index_digest = push_index(
        registry.host, repo, "multi", [platforms["arm64"], platforms["amd64"]], docker=docker
    )

    image = service.pull(f"{registry.host}/{repo}:multi")
    assert image.id == platforms[host][0].id
    assert image.config.labels == {"arch": host}
    # The repo digest names what the tag points at: the index, as in containerd.
    assert image.repo_digests == (f"{registry.host}/{repo}@{index_digest}",)
    assert service.get(f"{registry.host}/{repo}@{index_digest}") == image


def test_index_without_this_platform_is_not_found(
    service: ImageService, registry: LocalRegistry
) -> None:
    other = busybox_image(architecture="s390x", Labels={"arch": "s390x"})
    repo = unique_repo()
    push_index(registry.host, repo, "1", [(other, {"os": "linux", "architecture": "s390x"})])
    with pytest.raises(NotFound, match="no manifest for platform linux/"):
        service.pull(f"{registry.host}/{repo}:1")


def test_pull_docker_schema2(service: ImageService, registry: LocalRegistry) -> None:
    built = busybox_image(docker=True, Labels={"format": "docker"})
    repo = unique_repo()
    push_image(registry.host, repo, "v2", built)
    image = service.pull(f"{registry.host}/{repo}:v2")
    assert image.id == built.id
    assert image.repo_digests == (f"{registry.host}/{repo}@{built.digest}",)
    assert (service.layer_dirs(image)[0] / "bin/busybox").is_file()


def test_whiteouts_hide_lower_files_in_an_overlay_mount(
    service: ImageService, registry: LocalRegistry, root: Path
) -> None:
    built = busybox_image(with_whiteouts=True)
    repo = unique_repo()
    push_image(registry.host, repo, "wh", built)
    image = service.pull(f"{registry.host}/{repo}:wh")
    top, base = service.layer_dirs(image)
    assert stat.S_ISCHR(os.lstat(top / "etc/motd").st_mode)
    assert os.getxattr(top / "opt/data", OPAQUE_XATTR) == b"y"
    assert (base / "etc/motd").is_file()

    merged = root / "merged"
    merged.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={top}:{base}", str(merged)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount overlayfs here: {mounted.stderr.strip()}")
    try:
        assert not (merged / "etc/motd").exists()
        assert sorted(os.listdir(merged / "opt/data")) == ["new.txt"]
        assert (merged / "etc/passwd").is_file()
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def test_corrupted_blob_is_refused_and_leaves_nothing(
    service: ImageService, registry: LocalRegistry, root: Path
) -> None:
    built = distinct_busybox("corrupt")
    repo = unique_repo()
    push_image(registry.host, repo, "1", built)
    bad = built.layers[1].blob
    stored = registry.storage / "docker/registry/v2/blobs/sha256" / bad.digest[7:9]
    stored = stored / bad.digest[7:] / "data"
    stored.write_bytes(b"\0" * bad.size)  # same size, wrong bytes: only the digest can tell

    ref = f"{registry.host}/{repo}:1"
    with pytest.raises(Internal, match="digest mismatch"):
        service.pull(ref)
    assert service.get(ref) is None and service.list() == []
    assert bad.digest[7:] not in content_files(root)
    assert not [f for f in content_files(root) if f.startswith(".")]  # no half-written blob
    assert not [d for d in layer_entries(root) if d.startswith(".")]
    # Verified blobs and layers fetched before the failure stay for a retry, and go at the
    # next collection since no image refers to them.
    service.remove("nothing-to-remove")
    assert content_files(root) == [] and layer_entries(root) == []


def test_missing_image_is_not_found(service: ImageService, busybox_ref: str) -> None:
    missing_tag = busybox_ref.rsplit(":", 1)[0] + ":no-such-tag"
    with pytest.raises(NotFound, match="no-such-tag"):
        service.pull(missing_tag)
    missing_repo = busybox_ref.replace("test/busybox", "test/no-such-repo")
    with pytest.raises(NotFound, match="no-such-repo"):
        service.pull(missing_repo)


def test_unreachable_registry_is_unavailable(service: ImageService) -> None:
    with pytest.raises(Unavailable, match="cannot reach"):
        service.pull(f"127.0.0.1:{_free_port()}/test/busybox:1.0")


def test_invalid_reference(service: ImageService) -> None:
    with pytest.raises(InvalidArgument, match="lowercase"):
        service.pull("Busybox")


# --- mirrors ---------------------------------------------------------------------------------


def test_mirror_serves_docker_hub_names(
    make_service: ServiceFactory, registry: LocalRegistry
) -> None:
    built = busybox_image()
    push_image(registry.host, "library/busybox", "1.0", built)
    dead = f"http://127.0.0.1:{_free_port()}"
    service = make_service(mirrors={"docker.io": [dead, registry.url]})

    image = service.pull("docker.io/library/busybox:1.0")
    assert image.id == built.id
    assert image.repo_tags == ("docker.io/library/busybox:1.0",)
    assert image.repo_digests == (f"docker.io/library/busybox@{built.digest}",)
    assert service.get("busybox:1.0") == image  # short names normalise to the same name
    assert service.pull("busybox:1.0") == image


def test_mirror_without_the_image_gives_not_found(
    make_service: ServiceFactory, registry: LocalRegistry
) -> None:
    # The upstream is a closed port: the mirror's definite "not found" wins over "unreachable".
    upstream = f"127.0.0.1:{_free_port()}"
    service = make_service(mirrors={upstream: [registry.url]})
    with pytest.raises(NotFound, match="not found") as info:
        service.pull(f"{upstream}/test/absent:1")
    assert "cannot reach" in info.value.message


# --- authentication ----------------------------------------------------------------------------


def test_basic_auth(make_service: ServiceFactory) -> None:
    built = busybox_image()
    with LocalRegistry(htpasswd={"alice": "s3cret"}) as private:
        push_image(private.host, "team/busybox", "1", built, auth=("alice", "s3cret"))
        ref = f"{private.host}/team/busybox:1"
        service = make_service()
        with pytest.raises(NotFound, match="pull access denied"):
            service.pull(ref)
        with pytest.raises(FailedPrecondition, match="refused the given credentials"):
            service.pull(ref, RegistryAuth(username="alice", password="wrong"))
        assert service.pull(ref, RegistryAuth(username="alice", password="s3cret")).id == built.id
        encoded = base64.b64encode(b"alice:s3cret").decode()
        assert service.pull(ref, RegistryAuth(auth=encoded)).id == built.id


def test_bearer_token_flow(
    service: ImageService, registry: LocalRegistry, busybox_ref: str
) -> None:
    with TokenGate(registry.url) as gate:
        image = service.pull(f"{gate.host}/test/busybox:1.0")
        assert image.id == busybox_image().id
        assert gate.token_requests == [
            {"user": None, "service": SERVICE, "scope": "repository:test/busybox:pull"}
        ]


def test_bearer_token_with_credentials_and_ready_tokens(
    service: ImageService, registry: LocalRegistry, busybox_ref: str
) -> None:
    with TokenGate(registry.url, users={"bob": "pw"}) as gate:
        ref = f"{gate.host}/test/busybox:1.0"
        with pytest.raises(NotFound, match="pull access denied"):
            service.pull(ref)
        with pytest.raises(FailedPrecondition, match="refused the credentials"):
            service.pull(ref, RegistryAuth(username="bob", password="nope"))
        service.pull(ref, RegistryAuth(username="bob", password="pw"))
        assert gate.token_requests[-1]["user"] == "bob"

        asked = len(gate.token_requests)
        gate.tokens["ready-made"] = "repository:test/busybox:pull"
        service.pull(ref, RegistryAuth(registry_token="ready-made"))
        assert len(gate.token_requests) == asked  # used as is, no token request


# --- get, list, remove -------------------------------------------------------------------------


def test_get_by_every_kind_of_reference(
    service: ImageService, registry: LocalRegistry, busybox_ref: str
) -> None:
    image = service.pull(busybox_ref)
    hexid = image.id.removeprefix("sha256:")
    for ref in (
        busybox_ref,
        image.id,
        hexid,
        hexid[:12],
        "sha256:" + hexid[:13],
        image.repo_digests[0],
    ):
        assert service.get(ref) == image, ref
    for ref in ("", "busybox", "sha256:" + "0" * 64, "0" * 12, "abc", "NOT A REF", hexid[:11]):
        assert service.get(ref) is None, ref
    assert service.list() == [image]
    assert service.list(busybox_ref) == [image]
    assert service.list("absent:1") == []


def test_remove_drops_every_name_and_unreferenced_data(
    service: ImageService, registry: LocalRegistry, root: Path, busybox_ref: str
) -> None:
    repo = unique_repo()
    push_image(registry.host, repo, "alias", busybox_image())
    image = service.pull(busybox_ref)
    alias = service.pull(f"{registry.host}/{repo}:alias")
    assert alias.id == image.id
    assert set(alias.repo_tags) == {busybox_ref, f"{registry.host}/{repo}:alias"}
    assert len(alias.repo_digests) == 2

    service.remove(f"{registry.host}/{repo}:alias")
    for name in (*alias.repo_tags, *alias.repo_digests, image.id):
        assert service.get(name) is None
    assert service.list() == []
    assert content_files(root) == [] and layer_entries(root) == []
    service.remove(f"{registry.host}/{repo}:alias")  # idempotent
    service.remove(image.id)


def test_remove_keeps_shared_and_in_use_layers(
    make_service: ServiceFactory, registry: LocalRegistry, root: Path, busybox_ref: str
) -> None:
    in_use: set[str] = set()
    service = make_service(layers_in_use=lambda: set(in_use))
    repo = unique_repo()
    push_image(registry.host, repo, "wh", busybox_image(with_whiteouts=True))
    base = service.pull(busybox_ref)
    upper = service.pull(f"{registry.host}/{repo}:wh")
    assert upper.chain_ids[0] == base.chain_ids[0]

    service.remove(upper.id)
    assert [p.exists() for p in service.layer_dirs(upper)] == [False, True]
    assert service.get(busybox_ref) == base

    in_use.update(base.chain_ids)  # a container's rootfs stacks the base layer
    service.remove(base.id)
    assert service.get(base.id) is None
    assert all(p.exists() for p in service.layer_dirs(base))
    in_use.clear()  # the container is gone
    service.remove(base.id)
    assert layer_entries(root) == [] and content_files(root) == []


def test_tag_moves_and_unnamed_images_stay_listed(
    service: ImageService, registry: LocalRegistry
) -> None:
    repo = unique_repo()
    ref = f"{registry.host}/{repo}:1"
    push_image(registry.host, repo, "1", first := distinct_busybox("first"))
    old = service.pull(ref)
    push_image(registry.host, repo, "1", distinct_busybox("second"))
    new = service.pull(ref)
    assert new.id != old.id and new.repo_tags == (ref,)
    moved = service.get(old.id)
    assert moved is not None
    assert moved.repo_tags == () and moved.repo_digests == (
        f"{registry.host}/{repo}@{first.digest}",
    )
    assert {i.id for i in service.list()} == {old.id, new.id}


# --- import ------------------------------------------------------------------------------------


def test_import_image(service: ImageService, root: Path) -> None:
    tar = root / "pause.tar"
    tar.write_bytes(Layer().file("pause", b"\x7fELF fake pause", 0o755).build(compress=False).tar)
    config = {"config": {"Entrypoint": ["/pause"], "User": "65535:65535"}}

    image = service.import_image("registry.k8s.io/pause:3.10", tar, config, pinned=True)
    assert image.repo_tags == ("registry.k8s.io/pause:3.10",)
    assert image.repo_digests == ()
    assert image.pinned
    assert image.config.entrypoint == ("/pause",) and image.config.user == "65535:65535"
    assert image.size > tar.stat().st_size
    [diff] = service.layer_dirs(image)
    assert stat.S_IMODE(os.lstat(diff / "pause").st_mode) == 0o755

    again = service.import_image("registry.k8s.io/pause:3.10", tar, config, pinned=True)
    assert again == image  # same inputs, same id, nothing new
    assert service.get("registry.k8s.io/pause:3.10") == image

    # A second build under the same tag takes the tag; the first stays listed, unnamed.
    two = [root / "a.tar", root / "b.tar"]
    two[0].write_bytes(Layer().file("a", "a").build().blob.data)  # gzip works too
    two[1].write_bytes(Layer().file("b", "b").build(compress=False).tar)
    multi = service.import_image("registry.k8s.io/pause:3.10", two, config, pinned=False)
    assert len(multi.chain_ids) == 2 and multi.id != image.id
    unnamed = service.get(image.id)
    assert unnamed is not None and unnamed.repo_tags == () and unnamed.repo_digests == ()
    assert {i.id for i in service.list()} == {image.id, multi.id}

    with pytest.raises(InvalidArgument):
        service.import_image(f"x@sha256:{'a' * 64}", tar, config, pinned=False)


# --- durability and accounting -------------------------------------------------------------------


def test_restart_keeps_images_and_drops_temporaries(
    make_service: ServiceFactory, root: Path, busybox_ref: str
) -> None:
    image = make_service().pull(busybox_ref)
    (root / "images/content/sha256/.ingest-crashed").write_bytes(b"half a blob")
    (root / "images/layers/.unpack-crashed/diff").mkdir(parents=True)

    restarted = make_service()
    assert restarted.get(busybox_ref) == image
    assert not [f for f in content_files(root) if f.startswith(".")]
    assert not [d for d in layer_entries(root) if d.startswith(".")]


def test_fs_usage(service: ImageService, busybox_ref: str, monkeypatch: pytest.MonkeyPatch
                  ) -> None:
    empty_bytes, empty_inodes = service.fs_usage()
    service.pull(busybox_ref)
    used, inodes = service.fs_usage()
    # busybox is ~2 MB unpacked (its 22 names are one inode) plus ~1 MB compressed.
    assert used - empty_bytes > 2_500_000
    assert inodes - empty_inodes > 20
    # answered from the last walk until we change the tree, or the walk is too old
    stray = service._root / "stray"
    stray.write_bytes(b"x" * 100_000)
    assert service.fs_usage() == (used, inodes)
    monkeypatch.setattr("cri.image.service.USAGE_MAX_AGE_S", 0.0)
    assert service.fs_usage()[1] == inodes + 1
    monkeypatch.undo()
    stray.unlink()
    service.remove(busybox_ref)
    assert service.fs_usage() == (empty_bytes, empty_inodes)


# --- the pull helper -----------------------------------------------------------------------------


def test_the_daemon_pulls_through_its_helper_and_maps_no_openssl(
    pause_binary: Path, busybox_ref: str
) -> None:
    """The daemon marks ssl and OpenSSL's hashlib absent (cri/__main__.py): pulls and the
    built-in pause import run in the helper, which ends with each of them."""
    with running_daemon(pause_binary) as daemon:
        client = CriClient(daemon.socket)
        try:
            api = client.api
            reply = client.images.PullImage(api.PullImageRequest(
                image=api.ImageSpec(image=busybox_ref)))
            assert reply.image_ref.startswith("sha256:")
            status = client.images.ImageStatus(api.ImageStatusRequest(
                image=api.ImageSpec(image=busybox_ref)))
            assert status.image.id == reply.image_ref
            with pytest.raises(grpc.RpcError) as info:
                client.images.PullImage(api.PullImageRequest(
                    image=api.ImageSpec(image=busybox_ref + "-absent")))
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
        finally:
            client.close()
        assert daemon.proc is not None
        maps = Path(f"/proc/{daemon.proc.pid}/maps").read_text()
        assert "libcrypto" not in maps and "libssl" not in maps and "_ssl" not in maps
        assert processes_mentioning("cri.image.puller") == []


def test_a_refusal_by_the_daemon_stops_the_helper(root: Path, busybox_ref: str) -> None:
    """If the daemon's side fails (here: recording the image), the pull fails with that error,
    nothing is recorded, and the helper is gone."""
    from cri.image.pull_process import run_puller

    def refuse(record: object, names: object) -> None:
        raise Internal("the database is full")

    request = {"ref": busybox_ref, "pinned": False, "images_root": str(root / "images"),
               "mirrors": {}, "credentials": {}}
    with pytest.raises(Internal, match="the database is full"):
        run_puller(request, digest_lock=lambda digest: contextlib.nullcontext(),
                   lease=lambda keys: None, record=refuse)
    assert processes_mentioning("cri.image.puller") == []

"""Mount plans through the recording fake: the calls runc would make, in order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cri.oci import rootfs
from cri.oci import syscalls as sc
from cri.oci.devices import create_devices, create_symlinks
from cri.oci.mounts import MountContext, mask_paths, mount_one, parse_options, readonly_paths
from cri.oci.paths import secure_join
from cri.oci.rootfs import _parent_mount, pivot, set_root_propagation
from cri.oci.spec import Device, Mount
from cri.oci.syscalls import RecordingSyscalls


def ctx(rootfs: Path, **kw: object) -> MountContext:
    base = dict(
        rootfs=str(rootfs), host_network=False, new_cgroupns=False, cgroup_v1=[], cgroup_v2=None
    )
    base.update(kw)
    return MountContext(**base)  # type: ignore[arg-type]


def test_parse_options() -> None:
    o = parse_options(["nosuid", "strictatime", "mode=755", "size=65536k", "rprivate", "ro"])
    assert o.flags == sc.MS_NOSUID | sc.MS_STRICTATIME | sc.MS_RDONLY
    assert o.data == "mode=755,size=65536k"
    assert o.propagation == (sc.MS_PRIVATE | sc.MS_REC,)
    assert parse_options(["ro", "rw"]).flags == 0
    assert parse_options(["rbind"]).recursive and parse_options(["bind"]).is_bind


def test_standard_mounts(tmp_path: Path) -> None:
    fake = RecordingSyscalls()
    c = ctx(tmp_path)
    mount_one(fake, Mount("/proc", "proc", "proc", ()), c)
    mount_one(
        fake,
        Mount("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
        c,
    )
    mount_one(
        fake,
        Mount(
            "/dev/pts",
            "devpts",
            "devpts",
            ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"),
        ),
        c,
    )
    assert fake.mounts() == [
        ("proc", f"{tmp_path}/proc", "proc", 0, None),
        (
            "tmpfs",
            f"{tmp_path}/dev",
            "tmpfs",
            sc.MS_NOSUID | sc.MS_STRICTATIME,
            "mode=755,size=65536k",
        ),
        (
            "devpts",
            f"{tmp_path}/dev/pts",
            "devpts",
            sc.MS_NOSUID | sc.MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620,gid=5",
        ),
    ]
    assert (tmp_path / "dev" / "pts").is_dir()


def test_bind_readonly_file_with_propagation(tmp_path: Path) -> None:
    src = tmp_path / "hosts"
    src.write_text("x")
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    fake = RecordingSyscalls()
    mount_one(
        fake,
        Mount("/etc/hosts", "bind", str(src), ("rbind", "ro", "nosuid", "rslave")),
        ctx(rootfs),
    )
    dest = f"{rootfs}/etc/hosts"
    assert fake.mounts() == [
        (str(src), dest, "bind", sc.MS_BIND | sc.MS_REC, None),
        (str(src), dest, None, sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_BIND | sc.MS_REMOUNT, None),
        (None, dest, None, sc.MS_SLAVE | sc.MS_REC, None),
    ]
    assert (rootfs / "etc" / "hosts").is_file()  # a file destination for a file source


def test_sysfs_in_host_network_is_a_bind(tmp_path: Path) -> None:
    fake = RecordingSyscalls()
    mount_one(
        fake, Mount("/sys", "sysfs", "sysfs", ("ro", "nosuid")), ctx(tmp_path, host_network=True)
    )
    assert fake.mounts()[0] == ("/sys", f"{tmp_path}/sys", "bind", sc.MS_BIND | sc.MS_REC, None)
    assert fake.mounts()[1][3] & sc.MS_RDONLY


def test_cgroup_v1_mount_binds_each_hierarchy(tmp_path: Path) -> None:
    fake = RecordingSyscalls()
    c = ctx(
        tmp_path,
        cgroup_v1=[
            ("/sys/fs/cgroup/memory/cri/x", "memory"),
            ("/sys/fs/cgroup/cpu,cpuacct/cri/x", "cpu,cpuacct"),
        ],
    )
    mount_one(fake, Mount("/sys/fs/cgroup", "cgroup", "cgroup", ("nosuid", "ro")), c)
    dest = f"{tmp_path}/sys/fs/cgroup"
    assert fake.mounts() == [
        ("tmpfs", dest, "tmpfs", sc.MS_NOSUID, "mode=755"),
        ("/sys/fs/cgroup/memory/cri/x", f"{dest}/memory", "bind", sc.MS_BIND | sc.MS_REC, None),
        (
            "/sys/fs/cgroup/memory/cri/x",
            f"{dest}/memory",
            None,
            sc.MS_NOSUID | sc.MS_RDONLY | sc.MS_BIND | sc.MS_REMOUNT,
            None,
        ),
        (
            "/sys/fs/cgroup/cpu,cpuacct/cri/x",
            f"{dest}/cpu,cpuacct",
            "bind",
            sc.MS_BIND | sc.MS_REC,
            None,
        ),
        (
            "/sys/fs/cgroup/cpu,cpuacct/cri/x",
            f"{dest}/cpu,cpuacct",
            None,
            sc.MS_NOSUID | sc.MS_RDONLY | sc.MS_BIND | sc.MS_REMOUNT,
            None,
        ),
    ]
    assert os.readlink(f"{dest}/cpu") == "cpu,cpuacct"


def test_cgroup_v2_mount(tmp_path: Path) -> None:
    fake = RecordingSyscalls()
    mount_one(
        fake,
        Mount("/sys/fs/cgroup", "cgroup", "cgroup", ("ro",)),
        ctx(tmp_path, cgroup_v2="/sys/fs/cgroup/x", new_cgroupns=True),
    )
    assert fake.mounts() == [
        ("cgroup2", f"{tmp_path}/sys/fs/cgroup", "cgroup2", sc.MS_RDONLY, None)
    ]


def test_symlinked_destination_stays_inside_rootfs(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    os.symlink("/../../../../", rootfs / "evil")
    os.symlink("../../..", rootfs / "etc" / "up")
    assert secure_join(str(rootfs), "/evil/etc") == f"{rootfs}/etc"
    assert secure_join(str(rootfs), "/etc/up/x") == f"{rootfs}/x"
    assert secure_join(str(rootfs), "/../../a/./b") == f"{rootfs}/a/b"
    fake = RecordingSyscalls()
    mount_one(fake, Mount("/evil/tmp", "tmpfs", "tmpfs", ()), ctx(rootfs))
    assert fake.mounts()[0][1] == f"{rootfs}/tmp"


def test_masked_and_readonly_paths(tmp_path: Path) -> None:
    (tmp_path / "proc" / "acpi").mkdir(parents=True)
    (tmp_path / "proc" / "kcore").write_text("")
    (tmp_path / "proc" / "sys").mkdir()
    fake = RecordingSyscalls()
    mask_paths(fake, ["/proc/acpi", "/proc/kcore", "/proc/missing"], root=str(tmp_path))
    readonly_paths(fake, ["/proc/sys"], root=str(tmp_path))
    m = fake.mounts()
    assert m[0] == ("tmpfs", f"{tmp_path}/proc/acpi", "tmpfs", sc.MS_RDONLY, None)
    assert m[1] == (f"{tmp_path}/dev/null", f"{tmp_path}/proc/kcore", None, sc.MS_BIND, None)
    assert m[2] == (f"{tmp_path}/proc/sys",) * 2 + (None, sc.MS_BIND | sc.MS_REC, None)
    assert (
        m[3][3] & (sc.MS_RDONLY | sc.MS_REMOUNT | sc.MS_BIND)
        == sc.MS_RDONLY | sc.MS_REMOUNT | sc.MS_BIND
    )
    assert len(m) == 4


def test_devices_mknod_then_bind_fallback(tmp_path: Path) -> None:
    fake = RecordingSyscalls()
    create_devices(fake, str(tmp_path), [Device("/dev/fuse", "c", 10, 229, 0o600, 0, 0)])
    nodes = [c for c in fake.calls if c[0] == "mknod"]
    assert [c[1].rsplit("/", 1)[1] for c in nodes] == [
        "null",
        "random",
        "full",
        "tty",
        "zero",
        "urandom",
        "fuse",
    ]
    assert nodes[-1][2] == 0o020600 and nodes[-1][3] == os.makedev(10, 229)
    denied = RecordingSyscalls(fail={"mknod": 1})
    create_devices(denied, str(tmp_path), [], with_defaults=True)
    assert ("mount", "/dev/null", f"{tmp_path}/dev/null", "bind", sc.MS_BIND, None) in denied.calls
    create_symlinks(str(tmp_path))
    assert os.readlink(tmp_path / "dev" / "ptmx") == "pts/ptmx"
    assert os.readlink(tmp_path / "dev" / "stderr") == "/proc/self/fd/2"


def test_rootfs_propagation_and_pivot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    fake = RecordingSyscalls()
    set_root_propagation(fake, None)
    set_root_propagation(fake, "rshared")
    pivot(fake, str(tmp_path))
    assert fake.calls == [
        ("mount", None, "/", None, sc.MS_SLAVE | sc.MS_REC, None),
        ("mount", None, "/", None, sc.MS_SHARED | sc.MS_REC, None),
        ("pivot_root", ".", "."),
        ("mount", None, ".", None, sc.MS_SLAVE | sc.MS_REC, None),
        ("umount2", ".", sc.MNT_DETACH),
    ]


def test_parent_mount_detection() -> None:
    info = (
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "30 22 0:5 / /var/lib rw shared:7 - ext4 /dev/vdb rw\n"
        "31 22 0:6 / /var/lib/x rw - tmpfs tmpfs rw\n"
    )
    assert _parent_mount("/var/lib/c/rootfs", info) == ("/var/lib", True)
    assert _parent_mount("/var/lib/x/rootfs", info) == ("/var/lib/x", False)
    assert _parent_mount("/tmp/r", info) == ("/", True)


def test_top_mount_id_at_a_path() -> None:
    info = (
        "22 1 8:1 / / rw shared:1 - ext4 /dev/vda rw\n"
        "40 22 0:40 / /b/rootfs rw - overlay overlay rw\n"
        "41 40 0:40 / /b/rootfs rw - overlay overlay rw\n"
        "42 41 0:41 / /b/rootfs/proc rw - proc proc rw\n"
        "50 22 8:1 /x\\040y /x\\040y rw - ext4 /dev/vda rw\n"
    )
    assert rootfs.top_mount_id("/b/rootfs", info) == 41
    assert rootfs.top_mount_id("/x y", info) == 50
    assert rootfs.top_mount_id("/b", info) is None


def test_detach_shared_rootfs_stops_when_its_mount_is_gone() -> None:
    """Mounts stacked on ours go first; once ours (id 41) is gone, nothing more is detached:
    the overlay underneath (id 40) is not ours."""
    tables = iter(
        [
            "40 22 0:40 / /r rw - overlay o rw\n41 40 0:40 / /r rw - overlay o rw\n"
            "43 41 0:9 / /r rw - tmpfs t rw\n",
            "40 22 0:40 / /r rw - overlay o rw\n41 40 0:40 / /r rw - overlay o rw\n",
            "40 22 0:40 / /r rw - overlay o rw\n",
        ]
    )
    fake = RecordingSyscalls()
    rootfs.detach_shared_rootfs(fake, "/r", 41, lambda: next(tables))
    assert fake.calls == [("umount2", "/r", sc.MNT_DETACH)] * 2


def test_recursive_attributes_go_through_mount_setattr(tmp_path: Path) -> None:
    opts = parse_options(["rbind", "ro", "rro", "rnosuid", "rnoexec", "rexec"])
    assert opts.recursive_set == sc.MOUNT_ATTR_RDONLY | sc.MOUNT_ATTR_NOSUID
    assert opts.recursive_clear == sc.MOUNT_ATTR_NOEXEC
    assert parse_options(["rrw"]).recursive_clear == sc.MOUNT_ATTR_RDONLY

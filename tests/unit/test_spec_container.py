"""CRI ContainerConfig to OCI spec: the rules kubelet users rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

from cri.api.runtime.v1 import api_pb2 as v1
from cri.errors import InvalidArgument
from cri.image import ImageConfig
from cri.spec import ContainerSpecInput, container_spec
from cri.spec.container import PodEnvironment, merge_args, merge_env, stop_signal
from cri.spec.users import resolve_user, secure_join

IMAGE = ImageConfig(user="", env=("PATH=/bin", "A=image"), entrypoint=("/entry",),
                    cmd=("default",), working_dir="/work", labels={}, stop_signal="SIGQUIT",
                    volumes=())


@pytest.mark.parametrize(("command", "args", "expected"), [
    ((), (), ["/entry", "default"]),
    (("/bin/sh",), (), ["/bin/sh"]),
    ((), ("x", "y"), ["/entry", "x", "y"]),
    (("/bin/sh",), ("-c", "true"), ["/bin/sh", "-c", "true"]),
])
def test_command_and_args_merge_the_kubernetes_way(command: tuple[str, ...],
                                                    args: tuple[str, ...],
                                                    expected: list[str]) -> None:
    assert merge_args(IMAGE, command, args) == expected


def test_env_overrides_image_and_keeps_order() -> None:
    assert merge_env(("PATH=/bin", "A=1"), {"A": "2", "B": "3"}) == ["PATH=/bin", "A=2", "B=3"]
    assert merge_env((), {})[0].startswith("PATH=/usr/local/sbin")


def test_stop_signal_precedence() -> None:
    assert stop_signal(v1.ContainerConfig(), IMAGE) == 3
    assert stop_signal(v1.ContainerConfig(stop_signal=v1.SIGUSR1), IMAGE) == 10
    plain = ImageConfig(user="", env=(), entrypoint=(), cmd=(), working_dir="", labels={},
                        stop_signal="", volumes=())
    assert stop_signal(v1.ContainerConfig(), plain) == 15


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    etc = tmp_path / "rootfs" / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                "app:x:1000:1000::/home/app:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\napp:x:1000:\nextra:x:2000:app,other\n")
    return tmp_path / "rootfs"


def test_users_resolve_from_the_image(rootfs: Path) -> None:
    def resolve(**kw: object) -> tuple[int, int, tuple[int, ...]]:
        args: dict[str, object] = {"image_user": "", "run_as_user": None, "run_as_username": "",
                                   "run_as_group": None}
        args.update(kw)
        user = resolve_user(rootfs, **args)  # type: ignore[arg-type]
        return user.uid, user.gid, user.additional_gids

    assert resolve() == (0, 0, (0,))
    assert resolve(image_user="app") == (1000, 1000, (1000, 2000))
    assert resolve(image_user="1000:2000") == (1000, 2000, (2000,))
    assert resolve(image_user="app:extra") == (1000, 2000, (2000,))
    assert resolve(run_as_user=1000) == (1000, 1000, (1000, 2000))
    assert resolve(run_as_user=4242) == (4242, 0, (0,))
    assert resolve(run_as_username="app", run_as_group=7, supplemental_groups=(9,)) == \
        (1000, 7, (7, 2000, 9))
    assert resolve(image_user="app", strict_groups=True) == (1000, 1000, (1000,))
    with pytest.raises(InvalidArgument, match="run_as_group"):
        resolve(run_as_group=5)
    with pytest.raises(InvalidArgument):
        resolve(image_user="nobody-here")


def test_secure_join_stays_inside_the_root(rootfs: Path) -> None:
    (rootfs / "escape").symlink_to("/../../etc")
    assert secure_join(rootfs, "/escape/passwd") == rootfs / "etc" / "passwd"
    assert secure_join(rootfs, "../../etc/group") == rootfs / "etc" / "group"


def _input(rootfs: Path, config: v1.ContainerConfig) -> ContainerSpecInput:
    pod = PodEnvironment(pause_pid=42, netns_path="/run/netns/x", host_network=False,
                         host_ipc=False, host_pid=False, hostname_file=rootfs / "h",
                         hosts_file=rootfs / "hosts", resolv_conf=rootfs / "r",
                         shm_dir=rootfs / "shm")
    sandbox = v1.PodSandboxConfig(metadata=v1.PodSandboxMetadata(name="p", namespace="n",
                                                                 uid="u"), hostname="pod-host")
    return ContainerSpecInput(container_id="c" * 64, config=config, sandbox_config=sandbox,
                              image=IMAGE, rootfs=rootfs, pod=pod, cgroups_path="/cri/c")


def test_spec_joins_the_pod_and_applies_the_config(rootfs: Path) -> None:
    config = v1.ContainerConfig(
        metadata=v1.ContainerMetadata(name="c"), image=v1.ImageSpec(image="busybox"),
        args=["x"], envs=[v1.KeyValue(key="A", value=b"env")], working_dir="/here",
        mounts=[v1.Mount(container_path="/data", host_path=str(rootfs), readonly=True,
                         propagation=v1.PROPAGATION_HOST_TO_CONTAINER)],
        linux=v1.LinuxContainerConfig(
            resources=v1.LinuxContainerResources(cpu_shares=512, memory_limit_in_bytes=1 << 26),
            security_context=v1.LinuxContainerSecurityContext(
                capabilities=v1.Capability(add_capabilities=["SYS_ADMIN"],
                                           drop_capabilities=["KILL"]),
                namespace_options=v1.NamespaceOption(pid=v1.POD),
                readonly_rootfs=True)))
    spec = container_spec(_input(rootfs, config))
    process = spec["process"]
    assert process["args"] == ["/entry", "x"]
    assert "A=env" in process["env"] and "HOSTNAME=pod-host" in process["env"]
    assert process["cwd"] == "/here"
    caps = process["capabilities"]["bounding"]
    assert "CAP_SYS_ADMIN" in caps and "CAP_KILL" not in caps and "CAP_CHOWN" in caps
    namespaces = {ns["type"]: ns.get("path") for ns in spec["linux"]["namespaces"]}
    assert namespaces == {"mount": None, "network": "/run/netns/x", "uts": "/proc/42/ns/uts",
                          "ipc": "/proc/42/ns/ipc", "pid": "/proc/42/ns/pid"}
    assert spec["root"]["readonly"] is True
    data = next(m for m in spec["mounts"] if m["destination"] == "/data")
    assert data["options"] == ["rbind", "rslave", "ro"]
    assert spec["linux"]["resources"]["memory"] == {"limit": 1 << 26}
    assert spec["linux"]["resources"]["cpu"] == {"shares": 512}
    assert spec["linux"]["cgroupsPath"] == "/cri/c"


def test_spec_rejects_bad_config(rootfs: Path) -> None:
    relative = v1.ContainerConfig(metadata=v1.ContainerMetadata(name="c"), command=["x"],
                                  mounts=[v1.Mount(container_path="rel", host_path="/")])
    with pytest.raises(InvalidArgument):
        container_spec(_input(rootfs, relative))
    unknown_cap = v1.ContainerConfig(
        metadata=v1.ContainerMetadata(name="c"), command=["x"],
        linux=v1.LinuxContainerConfig(security_context=v1.LinuxContainerSecurityContext(
            capabilities=v1.Capability(add_capabilities=["NOT_A_CAP"]))))
    with pytest.raises(InvalidArgument):
        container_spec(_input(rootfs, unknown_cap))

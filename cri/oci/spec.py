"""Load and validate a bundle's config.json into a typed, read-only view.

Validation happens before anything is created, so a bad spec fails with `InvalidSpec` and a clear
message instead of half-way through the init. The raw dicts stay available (`Spec.raw`) for parts
this view does not model (seccomp is parsed by its own module).
"""

from __future__ import annotations

import os
from _collections_abc import Mapping  # collections.abc's home: collections itself costs 2 ms

from . import lazylog
from .errors import InvalidSpec
from .jsonio import loads
from .records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .statefile import StrPath

log = lazylog.getLogger(__name__)

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")


@record
class Mount:
    destination: str
    type: str
    source: str
    options: tuple[str, ...]


@record
class Namespace:
    type: str
    path: str | None


@record
class IDMapping:
    """One line of /proc/PID/uid_map or gid_map: ids container_id.. are host_id.. outside."""

    container_id: int
    host_id: int
    size: int


@record
class Rlimit:
    type: str
    soft: int
    hard: int


@record
class User:
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    umask: int | None


@record
class Capabilities:
    bounding: tuple[str, ...]
    effective: tuple[str, ...]
    permitted: tuple[str, ...]
    inheritable: tuple[str, ...]
    ambient: tuple[str, ...]


@record
class ConsoleSize:
    height: int
    width: int


@record
class IOPriority:
    """process.ioPriority (runtime-spec 1.1): an ioprio_set(2) class and level."""

    ioprio_class: int  # IOPRIO_CLASS_RT 1, _BE 2, _IDLE 3
    priority: int


@record
class Scheduler:
    """process.scheduler (runtime-spec 1.1): the sched_setattr(2) arguments."""

    policy: int
    nice: int
    priority: int
    flags: int
    runtime: int
    deadline: int
    period: int


@record
class Process:
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    user: User
    capabilities: Capabilities | None
    rlimits: tuple[Rlimit, ...]
    no_new_privileges: bool
    oom_score_adj: int | None
    terminal: bool
    console_size: ConsoleSize | None = None
    io_priority: IOPriority | None = None
    scheduler: Scheduler | None = None
    #: the AppArmor profile for the execve (None: the caller's, unconfined or inherited)
    apparmor_profile: str | None = None


#: hook kinds in the order of the lifecycle (runtime-spec config.md#posix-platform-hooks)
HOOK_KINDS = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)


@record
class Hook:
    path: str
    args: tuple[str, ...]
    #: None: the hook inherits the runtime's environment (Go's exec.Cmd with a nil Env, as runc)
    env: tuple[str, ...] | None
    timeout: int | None


@record
class Device:
    path: str
    type: str
    major: int
    minor: int
    file_mode: int
    uid: int
    gid: int


@record
class Spec:
    raw: Mapping[str, Any]
    #: absolute or as given; root is the bundle's root.path joined to it
    bundle: str
    oci_version: str
    root: str
    root_readonly: bool
    process: Process
    hostname: str | None
    domainname: str | None
    mounts: tuple[Mount, ...]
    namespaces: tuple[Namespace, ...]
    cgroups_path: str | None
    resources: Mapping[str, Any]
    devices: tuple[Device, ...]
    masked_paths: tuple[str, ...]
    readonly_paths: tuple[str, ...]
    rootfs_propagation: str | None
    sysctl: Mapping[str, str]
    time_offsets: Mapping[str, Any]
    annotations: Mapping[str, str]
    hooks: Mapping[str, tuple[Hook, ...]] = field(default_factory=dict)
    #: linux.personality domain for personality(2) (PER_LINUX 0, PER_LINUX32 8), or None
    personality: int | None = None
    #: linux.uidMappings / gidMappings, written for a new user namespace
    uid_mappings: tuple[IDMapping, ...] = ()
    gid_mappings: tuple[IDMapping, ...] = ()

    def namespace(self, ns_type: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == ns_type:
                return ns
        return None

    def new_namespace(self, ns_type: str) -> bool:
        ns = self.namespace(ns_type)
        return ns is not None and ns.path is None


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidSpec(f"{what} must be an object, got {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidSpec(f"{what} must be an array, got {type(value).__name__}")
    return value


def _strs(value: Any, what: str) -> tuple[str, ...]:
    items = _list(value, what)
    for item in items:
        if not isinstance(item, str):
            raise InvalidSpec(f"{what} must hold strings, got {item!r}")
    return tuple(items)


def _int(value: Any, what: str, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpec(f"{what} must be an integer, got {value!r}")
    return value


def parse_process(raw: Any, *, require_args: bool = True) -> Process:
    """Validate an OCI "process" object (also what `exec --process` passes)."""
    proc = _obj(raw, "process")
    args = _strs(proc.get("args"), "process.args")
    if require_args and not args:
        raise InvalidSpec("process.args must not be empty")
    cwd = proc.get("cwd", "/")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise InvalidSpec(f"process.cwd must be an absolute path, got {cwd!r}")
    env = _strs(proc.get("env"), "process.env")
    for entry in env:
        if "=" not in entry:
            raise InvalidSpec(f"process.env entry {entry!r} is not KEY=VALUE")
    user_raw = _obj(proc.get("user"), "process.user")
    if "username" in user_raw and user_raw.get("username"):
        raise InvalidSpec("process.user.username is Windows-only")
    umask = user_raw.get("umask")
    user = User(
        uid=_int(user_raw.get("uid"), "process.user.uid", 0),
        gid=_int(user_raw.get("gid"), "process.user.gid", 0),
        additional_gids=tuple(
            _int(g, "process.user.additionalGids[]")
            for g in _list(user_raw.get("additionalGids"), "process.user.additionalGids")
        ),
        umask=None if umask is None else _int(umask, "process.user.umask"),
    )
    caps: Capabilities | None = None
    if proc.get("capabilities") is not None:
        c = _obj(proc.get("capabilities"), "process.capabilities")
        caps = Capabilities(
            *(
                _strs(c.get(k), f"process.capabilities.{k}")
                for k in ("bounding", "effective", "permitted", "inheritable", "ambient")
            )
        )
        from .capabilities import parse_names

        for names in (
            caps.bounding,
            caps.effective,
            caps.permitted,
            caps.inheritable,
            caps.ambient,
        ):
            parse_names(names)  # raises InvalidSpec on unknown names
    rlimits = []
    for i, r in enumerate(_list(proc.get("rlimits"), "process.rlimits")):
        r = _obj(r, f"process.rlimits[{i}]")
        from .rlimits import RLIMITS

        rtype = r.get("type")
        if rtype not in RLIMITS:
            raise InvalidSpec(f"process.rlimits[{i}].type: unknown rlimit {rtype!r}")
        rlimits.append(
            Rlimit(
                rtype, _int(r.get("soft"), f"{rtype}.soft"), _int(r.get("hard"), f"{rtype}.hard")
            )
        )
    apparmor_profile = _security_labels(proc)
    oom = proc.get("oomScoreAdj")
    terminal = proc.get("terminal") or False
    if not isinstance(terminal, bool):
        raise InvalidSpec(f"process.terminal must be a boolean, got {terminal!r}")
    console_size = None
    if proc.get("consoleSize") is not None:
        size = _obj(proc.get("consoleSize"), "process.consoleSize")
        console_size = ConsoleSize(
            height=_int(size.get("height"), "process.consoleSize.height", 0),
            width=_int(size.get("width"), "process.consoleSize.width", 0),
        )
        if not terminal:
            log.debug("process.consoleSize ignored without a terminal")
    return Process(
        args=args,
        env=env,
        cwd=cwd,
        user=user,
        capabilities=caps,
        rlimits=tuple(rlimits),
        no_new_privileges=bool(proc.get("noNewPrivileges", False)),
        oom_score_adj=None if oom is None else _int(oom, "process.oomScoreAdj"),
        terminal=terminal,
        console_size=console_size,
        io_priority=_io_priority(proc.get("ioPriority")),
        scheduler=_scheduler(proc.get("scheduler")),
        apparmor_profile=apparmor_profile,
    )


def _security_labels(proc: Mapping[str, Any]) -> str | None:
    """The AppArmor profile to apply, where the host has AppArmor. A label the executor cannot
    apply fails the container rather than run it unconfined: an AppArmor profile on a host
    without AppArmor, and any SELinux label (runc fails too when the LSM is off: "selinux label
    is specified in config, but selinux is disabled or not supported")."""
    from .errors import Unsupported

    profile = proc.get("apparmorProfile")
    if profile is not None and not isinstance(profile, str):
        raise InvalidSpec(f"process.apparmorProfile must be a string, got {profile!r}")
    if profile:
        from . import apparmor

        if not apparmor.is_enabled():
            raise Unsupported(
                "process.apparmorProfile is specified in config, but AppArmor is disabled or "
                "not supported"
            )
    if proc.get("selinuxLabel"):
        try:
            with open("/sys/fs/selinux/enforce") as f:
                enabled = f.read().strip() in ("0", "1")
        except OSError:
            enabled = False
        if not enabled:
            raise Unsupported(
                "process.selinuxLabel is specified in config, but SELinux is disabled or not "
                "supported"
            )
        raise Unsupported("process.selinuxLabel: SELinux labels are not applied by this executor")
    return profile or None


_IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}


def _io_priority(raw: Any) -> IOPriority | None:
    if raw is None:
        return None
    io = _obj(raw, "process.ioPriority")
    cls = io.get("class")
    if cls not in _IOPRIO_CLASSES:
        raise InvalidSpec(
            f"process.ioPriority.class must be one of {', '.join(_IOPRIO_CLASSES)}, got {cls!r}"
        )
    priority = _int(io.get("priority"), "process.ioPriority.priority", 0)
    if not 0 <= priority <= 7:
        raise InvalidSpec(f"process.ioPriority.priority must be 0..7, got {priority}")
    return IOPriority(_IOPRIO_CLASSES[cls], priority)


SCHED_POLICIES = {
    "SCHED_OTHER": 0,
    "SCHED_FIFO": 1,
    "SCHED_RR": 2,
    "SCHED_BATCH": 3,
    "SCHED_ISO": 4,
    "SCHED_IDLE": 5,
    "SCHED_DEADLINE": 6,
}
SCHED_FLAGS = {
    "SCHED_FLAG_RESET_ON_FORK": 0x01,
    "SCHED_FLAG_RECLAIM": 0x02,
    "SCHED_FLAG_DL_OVERRUN": 0x04,
    "SCHED_FLAG_KEEP_POLICY": 0x08,
    "SCHED_FLAG_KEEP_PARAMS": 0x10,
    "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
    "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40,
}


def _scheduler(raw: Any) -> Scheduler | None:
    if raw is None:
        return None
    sched = _obj(raw, "process.scheduler")
    policy = sched.get("policy")
    if policy not in SCHED_POLICIES:
        raise InvalidSpec(f"process.scheduler.policy: unknown policy {policy!r}")
    flags = 0
    for name in _strs(sched.get("flags"), "process.scheduler.flags"):
        if name not in SCHED_FLAGS:
            raise InvalidSpec(f"process.scheduler.flags: unknown flag {name!r}")
        flags |= SCHED_FLAGS[name]
    nice = _int(sched.get("nice"), "process.scheduler.nice", 0)
    if not -20 <= nice <= 19:
        raise InvalidSpec(f"process.scheduler.nice must be -20..19, got {nice}")
    fields = {
        k: _int(sched.get(k), f"process.scheduler.{k}", 0)
        for k in ("priority", "runtime", "deadline", "period")
    }
    if policy in ("SCHED_FIFO", "SCHED_RR") and not 1 <= fields["priority"] <= 99:
        raise InvalidSpec(f"process.scheduler.priority must be 1..99 for {policy}")
    if policy not in ("SCHED_FIFO", "SCHED_RR") and fields["priority"] != 0:
        raise InvalidSpec(f"process.scheduler.priority must be 0 for {policy}")
    return Scheduler(policy=SCHED_POLICIES[policy], nice=nice, flags=flags, **fields)


def parse_hooks(raw: Any) -> dict[str, tuple[Hook, ...]]:
    """The `hooks` object; also re-read from state.json by start and delete."""
    hooks = _obj(raw, "hooks")
    result: dict[str, tuple[Hook, ...]] = {}
    for kind, entries in hooks.items():
        if kind not in HOOK_KINDS:
            log.debug("unknown hook kind %r ignored", kind)
            continue
        parsed = []
        for i, h in enumerate(_list(entries, f"hooks.{kind}")):
            where = f"hooks.{kind}[{i}]"
            h = _obj(h, where)
            path = h.get("path")
            if not isinstance(path, str) or not path.startswith("/"):
                raise InvalidSpec(f"{where}.path must be an absolute path, got {path!r}")
            timeout = h.get("timeout")
            if timeout is not None and _int(timeout, f"{where}.timeout") <= 0:
                raise InvalidSpec(f"{where}.timeout must be greater than zero, got {timeout}")
            env = None if h.get("env") is None else _strs(h.get("env"), f"{where}.env")
            parsed.append(Hook(path, _strs(h.get("args"), f"{where}.args"), env, timeout))
        if parsed:
            result[kind] = tuple(parsed)
    return result


_PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}


def _personality(raw: Any) -> int | None:
    if raw is None:
        return None
    pers = _obj(raw, "linux.personality")
    domain = pers.get("domain")
    if domain not in _PERSONALITY_DOMAINS:
        raise InvalidSpec(f"linux.personality.domain must be LINUX or LINUX32, got {domain!r}")
    if _strs(pers.get("flags"), "linux.personality.flags"):
        from .errors import Unsupported

        raise Unsupported("linux.personality.flags: no flags are supported")
    return _PERSONALITY_DOMAINS[domain]


def _id_mappings(raw: Any, what: str) -> tuple[IDMapping, ...]:
    result = []
    for i, m in enumerate(_list(raw, what)):
        m = _obj(m, f"{what}[{i}]")
        mapping = IDMapping(
            container_id=_int(m.get("containerID"), f"{what}[{i}].containerID"),
            host_id=_int(m.get("hostID"), f"{what}[{i}].hostID"),
            size=_int(m.get("size"), f"{what}[{i}].size"),
        )
        if min(mapping.container_id, mapping.host_id) < 0 or mapping.size <= 0:
            raise InvalidSpec(f"{what}[{i}]: ids must be >= 0 and size > 0, got {mapping}")
        result.append(mapping)
    return tuple(result)


def _check_user_namespace(
    namespaces: list[Namespace],
    uid_mappings: tuple[IDMapping, ...],
    gid_mappings: tuple[IDMapping, ...],
) -> None:
    """runc's rules: mappings need a user namespace; a new one needs both kinds of mappings, and
    they must map the container's root (the init becomes uid/gid 0 in it before anything else).
    Mappings next to a user namespace joined by path are not written (that one has its own)."""
    user = next((n for n in namespaces if n.type == "user"), None)
    if user is None:
        if uid_mappings or gid_mappings:
            raise InvalidSpec("linux.uidMappings/gidMappings need a user namespace")
        return
    if user.path is not None:
        return
    for what, mappings in (("uidMappings", uid_mappings), ("gidMappings", gid_mappings)):
        if not mappings:
            raise InvalidSpec(f"a new user namespace needs linux.{what}")
        if not any(m.container_id == 0 for m in mappings):
            raise InvalidSpec(f"linux.{what} must map the container's root (0)")


def _clean(path: str) -> str:
    """The path as pathlib prints it: no empty or "." components, no trailing slash."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return ("/" if path.startswith("/") else "") + "/".join(parts) or "."


def parse_spec(raw: Mapping[str, Any], bundle: StrPath) -> Spec:
    """Validate a parsed config.json; `bundle` anchors a relative root.path."""
    if not isinstance(raw, Mapping):
        raise InvalidSpec("config.json must hold a JSON object")
    oci_version = raw.get("ociVersion")
    if not isinstance(oci_version, str) or not oci_version.startswith("1."):
        raise InvalidSpec(f"ociVersion must be a 1.x version, got {oci_version!r}")
    root_raw = _obj(raw.get("root"), "root")
    root_path = root_raw.get("path")
    if not isinstance(root_path, str) or not root_path:
        raise InvalidSpec("root.path is required")
    bundle_dir = os.fspath(bundle)
    root = _clean(os.path.join(bundle_dir, root_path))
    if not os.path.isdir(root):
        raise InvalidSpec(f"root.path {root!r} does not exist or is not a directory")
    process = parse_process(raw.get("process"))

    mounts = []
    for i, m in enumerate(_list(raw.get("mounts"), "mounts")):
        m = _obj(m, f"mounts[{i}]")
        dest = m.get("destination")
        if not isinstance(dest, str) or not dest.startswith("/"):
            raise InvalidSpec(f"mounts[{i}].destination must be an absolute path, got {dest!r}")
        options = _strs(m.get("options"), f"mounts[{i}].options")
        mtype = m.get("type") or ("bind" if ("bind" in options or "rbind" in options) else None)
        if not isinstance(mtype, str):
            raise InvalidSpec(
                f"mounts[{i}] ({dest}): type is required unless options hold bind or rbind"
            )
        source = m.get("source") or mtype
        if not isinstance(source, str):
            raise InvalidSpec(f"mounts[{i}] ({dest}): source must be a string")
        from .mounts import parse_options

        parsed = parse_options(options, where=f"mounts[{i}] ({dest})")
        if parsed.is_bind and not os.path.exists(source):
            raise InvalidSpec(f"mounts[{i}] ({dest}): bind source {source!r} does not exist")
        mounts.append(Mount(dest, mtype, source, options))

    linux = _obj(raw.get("linux"), "linux")
    namespaces = []
    seen: set[str] = set()
    for i, ns in enumerate(_list(linux.get("namespaces"), "linux.namespaces")):
        ns = _obj(ns, f"linux.namespaces[{i}]")
        ns_type = ns.get("type")
        if ns_type not in NAMESPACE_TYPES:
            raise InvalidSpec(
                f"linux.namespaces[{i}]: unknown namespace type {ns_type!r} "
                f"(known: {', '.join(NAMESPACE_TYPES)})"
            )
        if ns_type in seen:
            raise InvalidSpec(f"linux.namespaces: {ns_type} given twice")
        seen.add(ns_type)
        path = ns.get("path") or None
        if path is not None and (not isinstance(path, str) or not os.path.exists(path)):
            raise InvalidSpec(f"linux.namespaces[{i}] ({ns_type}): path {path!r} does not exist")
        namespaces.append(Namespace(ns_type, path))
    uid_mappings = _id_mappings(linux.get("uidMappings"), "linux.uidMappings")
    gid_mappings = _id_mappings(linux.get("gidMappings"), "linux.gidMappings")
    _check_user_namespace(namespaces, uid_mappings, gid_mappings)

    hostname = raw.get("hostname") or None
    domainname = raw.get("domainname") or None
    # NOTE: a UTS namespace joined by path will do: its names are set (runc and crun; the spec:
    # "depending on your namespace configuration, the container UTS namespace may be the runtime
    # UTS namespace"). Without one they would be the host's.
    if (hostname or domainname) and "uts" not in seen:
        raise InvalidSpec("hostname/domainname need a private UTS namespace (new or joined)")

    devices = []
    for i, d in enumerate(_list(linux.get("devices"), "linux.devices")):
        d = _obj(d, f"linux.devices[{i}]")
        path = d.get("path")
        if not isinstance(path, str) or not path.startswith("/dev/"):
            raise InvalidSpec(f"linux.devices[{i}].path must be under /dev, got {path!r}")
        dtype = d.get("type")
        if dtype not in ("c", "b", "u", "p"):
            raise InvalidSpec(
                f"linux.devices[{i}] ({path}): type must be c, b, u or p, got {dtype!r}"
            )
        devices.append(
            Device(
                path=path,
                type=dtype,
                major=_int(d.get("major"), f"{path}.major", 0),
                minor=_int(d.get("minor"), f"{path}.minor", 0),
                file_mode=_int(d.get("fileMode"), f"{path}.fileMode", 0o666),
                uid=_int(d.get("uid"), f"{path}.uid", 0),
                gid=_int(d.get("gid"), f"{path}.gid", 0),
            )
        )

    propagation = linux.get("rootfsPropagation") or None
    if propagation is not None and propagation not in (
        "private",
        "rprivate",
        "slave",
        "rslave",
        "shared",
        "rshared",
        "unbindable",
        "runbindable",
    ):
        raise InvalidSpec(f"linux.rootfsPropagation: unknown value {propagation!r}")
    sysctl = _obj(linux.get("sysctl"), "linux.sysctl")
    for key, value in sysctl.items():
        if not isinstance(value, str):
            raise InvalidSpec(f"linux.sysctl[{key}] must be a string")
    cgroups_path = linux.get("cgroupsPath") or None
    if cgroups_path is not None and not isinstance(cgroups_path, str):
        raise InvalidSpec("linux.cgroupsPath must be a string")
    if cgroups_path is not None and ":" in cgroups_path:
        raise InvalidSpec(
            f"linux.cgroupsPath {cgroups_path!r}: the systemd cgroup driver is not supported"
        )
    annotations = _obj(raw.get("annotations"), "annotations")
    if linux.get("intelRdt") is not None:
        from .errors import Unsupported

        raise Unsupported("linux.intelRdt: Intel RDT is not supported")

    return Spec(
        raw=raw,
        bundle=bundle_dir,
        oci_version=oci_version,
        root=root,
        root_readonly=bool(root_raw.get("readonly", False)),
        process=process,
        hostname=hostname,
        domainname=domainname,
        mounts=tuple(mounts),
        namespaces=tuple(namespaces),
        cgroups_path=cgroups_path,
        resources=_obj(linux.get("resources"), "linux.resources"),
        devices=tuple(devices),
        masked_paths=_strs(linux.get("maskedPaths"), "linux.maskedPaths"),
        readonly_paths=_strs(linux.get("readonlyPaths"), "linux.readonlyPaths"),
        rootfs_propagation=propagation,
        sysctl=dict(sysctl),
        time_offsets=_obj(linux.get("timeOffsets"), "linux.timeOffsets"),
        annotations={str(k): str(v) for k, v in annotations.items()},
        hooks=parse_hooks(raw.get("hooks")),
        personality=_personality(linux.get("personality")),
        uid_mappings=uid_mappings,
        gid_mappings=gid_mappings,
    )


def load_spec(bundle: StrPath) -> Spec:
    """Read and validate `bundle/config.json`."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path) as f:
            raw = loads(f.read())
    except FileNotFoundError:
        raise InvalidSpec(f"{path} does not exist") from None
    except (OSError, ValueError) as e:
        raise InvalidSpec(f"cannot read {path}: {e}") from None
    return parse_spec(raw, bundle)

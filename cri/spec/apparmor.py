"""The CRI AppArmor settings of a container, turned into the spec's `process.apparmorProfile`.

Which profile (containerd's rules, so kubelet sees the same behaviour):
- `security_context.apparmor` (a SecurityProfile) when the kubelet sets it; otherwise the
  deprecated `apparmor_profile` string: "runtime/default" means RuntimeDefault, "unconfined"
  Unconfined, "localhost/<name>" Localhost, "" nothing asked for.
- Where the node has no AppArmor: nothing asked for, or Unconfined, runs without a profile;
  anything else fails CreateContainer (FAILED_PRECONDITION) rather than run unconfined.
- Where it has: nothing asked for means RuntimeDefault (kubernetes#51746). RuntimeDefault is our
  default profile, `cri-py-default`, loaded with apparmor_parser the first time it is needed;
  privileged containers get none. Localhost names a profile that must be loaded on the node.

The executor applies the profile at the container process's execve (cri/oci/apparmor.py).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading

from cri.api.runtime.v1 import api_pb2 as v1
from cri.errors import FailedPrecondition, InvalidArgument
from cri.spec.profiles import RUNTIME_DEFAULT, UNCONFINED, requested_profile

log = logging.getLogger(__name__)

DEFAULT_PROFILE = "cri-py-default"

#: the kernel's list of loaded profiles, one "name (mode)" a line
PROFILES_FILE = "/sys/kernel/security/apparmor/profiles"

# NOTE: the rules of Docker's and containerd's default profile (docker-default), which every
# container image in use has been tested against: everything allowed but mounts, writes to most
# of /proc and /sys, the kernel's security and firmware interfaces, and signals or ptrace across
# the profile boundary.
DEFAULT_PROFILE_TEXT = """\
#include <tunables/global>

profile {name} flags=(attach_disconnected,mediate_deleted) {{
  #include <abstractions/base>

  network,
  capability,
  file,
  umount,

  # signals: from the host's unconfined processes, and among the containers' own
  signal (receive) peer=unconfined,
  signal (send,receive) peer={name},
  ptrace (trace,read,tracedby,readby) peer={name},

  deny mount,

  # /proc: writes only to /proc/<pid>/** and /proc/sys/kernel/shm*
  deny @{{PROC}}/* w,
  deny @{{PROC}}/{{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9/]*}}/** w,
  deny @{{PROC}}/sys/[^k]** w,
  deny @{{PROC}}/sys/kernel/{{?,??,[^s][^h][^m]**}} w,
  deny @{{PROC}}/sysrq-trigger rwklx,
  deny @{{PROC}}/kcore rwklx,

  # /sys: writes only to the cgroup filesystem; no firmware, powercap or LSM interfaces
  deny /sys/[^f]*/** wklx,
  deny /sys/f[^s]*/** wklx,
  deny /sys/fs/[^c]*/** wklx,
  deny /sys/fs/c[^g]*/** wklx,
  deny /sys/fs/cg[^r]*/** wklx,
  deny /sys/firmware/** rwklx,
  deny /sys/devices/virtual/powercap/** rwklx,
  deny /sys/kernel/security/** rwklx,
}}
"""


def default_profile_text(name: str = DEFAULT_PROFILE) -> str:
    return DEFAULT_PROFILE_TEXT.format(name=name)


def profile_loaded(name: str, profiles_file: str | None = None) -> bool:
    try:
        with open(profiles_file or PROFILES_FILE) as f:
            return any(line.startswith(f"{name} (") for line in f)
    except OSError as e:
        raise FailedPrecondition(f"apparmor: cannot list the loaded profiles: {e}") from None


class DefaultProfileLoader:
    """Loads `cri-py-default` into the kernel once per daemon (it stays loaded after us, as
    containerd's does, for the containers that run under it)."""

    def __init__(self, parser: str = "apparmor_parser", profiles_file: str | None = None) -> None:
        self.parser = parser
        self.profiles_file = profiles_file
        self._loaded = False
        self._lock = threading.Lock()

    def ensure_loaded(self, name: str = DEFAULT_PROFILE) -> None:
        with self._lock:
            if self._loaded or profile_loaded(name, self.profiles_file):
                self._loaded = True
                return
            binary = shutil.which(self.parser)
            if binary is None:
                raise FailedPrecondition(
                    f"apparmor: {self.parser} is not installed, so the default profile {name!r} "
                    "cannot be loaded (Debian: apt-get install apparmor)"
                )
            # -K: no cache files on the node; -r: replace, should another copy be loaded
            result = subprocess.run(
                [binary, "-Kr"], input=default_profile_text(name), text=True,
                capture_output=True, timeout=60, check=False,
            )
            if result.returncode != 0:
                raise FailedPrecondition(
                    f"apparmor: loading {name!r} failed: {result.stderr.strip()}"
                )
            log.info("loaded AppArmor profile %s", name)
            self._loaded = True


_default_loader = DefaultProfileLoader()


def apparmor_for(
    profile: v1.SecurityProfile | None,
    legacy: str,
    privileged: bool,
    *,
    enabled: bool | None = None,
    loader: DefaultProfileLoader | None = None,
    profiles_file: str | None = None,
) -> str | None:
    """The profile for `process.apparmorProfile`, or None for none. `enabled`: whether the node
    has AppArmor (default: ask the kernel)."""
    kind, name = requested_profile("apparmor", profile, legacy, ("runtime/default",))
    if enabled is None:
        from cri.oci.apparmor import is_enabled

        enabled = is_enabled()
    if not enabled:
        if kind in ("", UNCONFINED):
            return None
        raise FailedPrecondition("apparmor is not supported: AppArmor is not enabled on this node")
    if kind == UNCONFINED:
        return None
    if kind in ("", RUNTIME_DEFAULT):
        if privileged:
            return None
        (loader or _default_loader).ensure_loaded(DEFAULT_PROFILE)
        return DEFAULT_PROFILE
    if not name:
        raise InvalidArgument("apparmor: a Localhost profile needs a profile name")
    if not profile_loaded(name, profiles_file):
        raise FailedPrecondition(f"apparmor profile not found: {name!r} is not loaded on this node")
    return name

"""Process resource limits (setrlimit), clamped when the host forbids raising a hard limit."""

from __future__ import annotations

import resource

from . import lazylog
from .spec import Rlimit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

log = lazylog.getLogger(__name__)

RLIMITS = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}
_INFINITY = 2**64 - 1


def _py(value: int) -> int:
    return resource.RLIM_INFINITY if value >= _INFINITY or value < 0 else value


def apply(rlimits: Iterable[Rlimit]) -> None:
    """Set each limit; a hard limit above ours without CAP_SYS_RESOURCE (this host) is clamped.

    runc fails the create instead; we clamp and log because kubelet's defaults
    (RLIMIT_NOFILE 1048576) would otherwise make every container fail on such hosts.
    """
    for r in rlimits:
        which = RLIMITS[r.type]
        soft, hard = _py(r.soft), _py(r.hard)
        try:
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError) as e:
            _, cur_hard = resource.getrlimit(which)
            new_hard = (
                hard
                if cur_hard == resource.RLIM_INFINITY
                else (cur_hard if hard == resource.RLIM_INFINITY else min(hard, cur_hard))
            )
            new_soft = (
                soft
                if new_hard == resource.RLIM_INFINITY
                else (new_hard if soft == resource.RLIM_INFINITY else min(soft, new_hard))
            )
            log.warning(
                "%s: cannot set soft=%s hard=%s (%s); clamped to soft=%s hard=%s",
                r.type,
                r.soft,
                r.hard,
                e,
                new_soft,
                new_hard,
            )
            resource.setrlimit(which, (new_soft, new_hard))

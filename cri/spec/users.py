"""Who a container process runs as: CRI security context + image USER, resolved against the
image's own /etc/passwd and /etc/group (never the host's)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cri.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    username: str


@dataclass(frozen=True, slots=True)
class _PasswdEntry:
    name: str
    uid: int
    gid: int


def secure_join(root: Path, path: str) -> Path:
    """Resolve `path` inside `root`, following symlinks as if `root` were `/`."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    current = root
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = current.parent if current != root else root
            continue
        candidate = current / part
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                raise InvalidArgument(f"too many symlinks resolving {path!r} in the image")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = root
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        current = candidate
    return current


def _read_lines(rootfs: Path, name: str) -> list[list[str]]:
    try:
        text = secure_join(rootfs, name).read_text(errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _passwd(rootfs: Path) -> list[_PasswdEntry]:
    entries = []
    for fields in _read_lines(rootfs, "/etc/passwd"):
        if len(fields) >= 4 and fields[2].isdigit() and fields[3].isdigit():
            entries.append(_PasswdEntry(fields[0], int(fields[2]), int(fields[3])))
    return entries


def _group_id(rootfs: Path, group: str) -> int:
    if group.isdigit():
        return int(group)
    for fields in _read_lines(rootfs, "/etc/group"):
        if len(fields) >= 3 and fields[0] == group and fields[2].isdigit():
            return int(fields[2])
    raise InvalidArgument(f"group {group!r} not found in the image's /etc/group")


def _member_gids(rootfs: Path, username: str) -> list[int]:
    gids = []
    for fields in _read_lines(rootfs, "/etc/group"):
        if len(fields) >= 4 and fields[2].isdigit() and username in fields[3].split(","):
            gids.append(int(fields[2]))
    return gids


def resolve_user(
    rootfs: Path,
    *,
    image_user: str,
    run_as_user: int | None,
    run_as_username: str,
    run_as_group: int | None,
    supplemental_groups: tuple[int, ...] = (),
    strict_groups: bool = False,
) -> ResolvedUser:
    """`strict_groups` is SupplementalGroupsPolicy Strict: the image's /etc/group adds nothing."""
    if run_as_group is not None and run_as_user is None and not run_as_username:
        raise InvalidArgument("run_as_group needs run_as_user or run_as_username")
    entries = _passwd(rootfs)
    by_uid = {e.uid: e for e in reversed(entries)}
    by_name = {e.name: e for e in entries}

    group_spec = ""
    if run_as_user is not None:
        entry = by_uid.get(run_as_user)
        uid, gid, name = run_as_user, entry.gid if entry else 0, entry.name if entry else ""
    elif run_as_username:
        if run_as_username not in by_name:
            raise InvalidArgument(f"user {run_as_username!r} not found in the image's /etc/passwd")
        entry = by_name[run_as_username]
        uid, gid, name = entry.uid, entry.gid, entry.name
    else:
        user, _, group_spec = image_user.partition(":")
        if user == "":
            uid, gid, name = 0, 0, by_uid[0].name if 0 in by_uid else "root"
        elif user.isdigit():
            entry = by_uid.get(int(user))
            uid, gid, name = int(user), entry.gid if entry else 0, entry.name if entry else ""
        elif user in by_name:
            entry = by_name[user]
            uid, gid, name = entry.uid, entry.gid, entry.name
        else:
            raise InvalidArgument(f"image user {user!r} not found in the image's /etc/passwd")
    if group_spec:
        gid = _group_id(rootfs, group_spec)
    if run_as_group is not None:
        gid = run_as_group

    additional: list[int] = [gid]
    if name and not strict_groups:
        additional += _member_gids(rootfs, name)
    additional += list(supplemental_groups)
    seen: dict[int, None] = dict.fromkeys(additional)
    return ResolvedUser(uid=uid, gid=gid, additional_gids=tuple(seen), username=name)

"""Parse signal names and numbers the way runc's `kill` does (TERM, SIGTERM, 15)."""

from __future__ import annotations

import signal

from .errors import OciError


def parse_signal(text: str | int) -> int:
    if isinstance(text, int):
        return text
    raw = text.strip()
    if raw.isdigit():
        number = int(raw)
        if not 0 < number < signal.NSIG:
            raise OciError(f"invalid signal number {number}")
        return number
    name = raw.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    # SIGRTMIN+n / SIGRTMAX-n as in kill(1)
    for base, sign in (("SIGRTMIN", 1), ("SIGRTMAX", -1)):
        if name.startswith(base):
            rest = name[len(base) :]
            offset = int(rest[1:]) if rest[:1] in "+-" and rest[1:].isdigit() else 0
            if rest and not (rest[:1] in "+-" and rest[1:].isdigit()):
                break
            return int(getattr(signal, base)) + sign * offset
    try:
        sig = signal.Signals[name]
    except KeyError:
        raise OciError(f"unknown signal {text!r}") from None
    return int(sig)

from __future__ import annotations

import signal

import pytest

from cri.oci.capabilities import mask_names, parse_names
from cri.oci.errors import InvalidSpec, OciError
from cri.oci.signals import parse_signal


def test_capability_names() -> None:
    assert parse_names(["CAP_CHOWN"]) == 1
    assert parse_names(["CAP_SYS_ADMIN", "net_raw"]) == (1 << 21) | (1 << 13)
    assert mask_names(parse_names(["CAP_KILL", "CAP_BPF"])) == ["CAP_KILL", "CAP_BPF"]
    with pytest.raises(InvalidSpec, match="CAP_NOPE"):
        parse_names(["CAP_NOPE"])


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("9", 9),
        ("KILL", 9),
        ("SIGKILL", 9),
        ("term", 15),
        ("SIGTERM", 15),
        ("HUP", 1),
        ("SIGRTMIN", signal.SIGRTMIN),
        ("RTMIN+2", signal.SIGRTMIN + 2),
        ("SIGRTMAX-1", signal.SIGRTMAX - 1),
    ],
)
def test_signal_parsing(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["SIGNOPE", "0", "999", "RTMIN+x"])
def test_bad_signals(text: str) -> None:
    with pytest.raises(OciError):
        parse_signal(text)

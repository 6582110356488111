from __future__ import annotations

from pathlib import Path

import pytest

from cri.config import BUILTIN_PAUSE_IMAGE, load, parse_args


def test_defaults() -> None:
    config = parse_args([])
    assert config.socket_path == Path("/run/cri/cri.sock")
    assert config.root == Path("/var/lib/cri") and config.state == Path("/run/cri")
    assert config.sandbox_image == BUILTIN_PAUSE_IMAGE
    assert config.handler("").binary == ""


def test_file_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('root = "/srv/cri"\nlog-level = "debug"\n'
                    '[runtimes.runc]\nbinary = "/usr/sbin/runc"\n'
                    '[registry.mirrors."docker.io"]\nendpoints = ["http://127.0.0.1:5000"]\n')
    config = parse_args(["--config", str(path), "--root", "/other"])
    assert config.root == Path("/other") and config.log_level == "debug"
    assert config.handler("runc").binary == "/usr/sbin/runc"
    assert config.registry_mirrors == {"docker.io": ("http://127.0.0.1:5000",)}
    with pytest.raises(KeyError):
        config.handler("kata")


def test_unknown_keys_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('roots = "/typo"\n')
    with pytest.raises(ValueError, match="roots"):
        load(path)

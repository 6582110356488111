"""lazylog: the CLI's log lines without logging, as its logging handler wrote them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

# One process logs through the CLI's own logging set-up (what --debug still uses), the other
# through lazylog.emit_to; both at WARNING, so info is dropped by both.
_PROGRAM = """
import os, sys
sys.path.insert(0, {repo!r})
from cri.oci import cli, lazylog
log = lazylog.getLogger("cri.oci.test")
if {use_logging}:
    cli._setup_logging({path!r}, {fmt!r}, False)
    import logging
    log = logging.getLogger("cri.oci.test")
else:
    fd = os.open({path!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    lazylog.emit_to(fd, lazylog.JSON if {fmt!r} == "json" else lazylog.TEXT)
log.info("dropped %s", 1)
log.warning("a %s, %d: \\"quoted\\"", "warning", 2)
log.error("an error")
"""

_STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}")


def _lines(tmp_path: Path, fmt: str, use_logging: bool) -> list[str]:
    path = tmp_path / f"{fmt}-{use_logging}.log"
    program = _PROGRAM.format(repo=str(REPO), use_logging=use_logging, path=str(path), fmt=fmt)
    subprocess.run([sys.executable, "-SE", "-c", program], check=True)
    text = path.read_text()
    assert len(_STAMP.findall(text)) == 2, text
    return _STAMP.sub("TIME", text).splitlines()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_emitted_lines_match_the_logging_handler(tmp_path: Path, fmt: str) -> None:
    assert _lines(tmp_path, fmt, use_logging=False) == _lines(tmp_path, fmt, use_logging=True)


def test_last_resort_is_the_bare_message_on_stderr() -> None:
    program = (
        f"import sys; sys.path.insert(0, {str(REPO)!r}); from cri.oci import lazylog; "
        "log = lazylog.getLogger('x'); log.info('no'); log.warning('yes %s', 1); "
        "print('logging' in sys.modules)"
    )
    for setup in ("", "lazylog.emit_to(-1); "):
        p = subprocess.run(
            [sys.executable, "-SE", "-c", program.replace("log = ", setup + "log = ")],
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ),
        )
        assert (p.stdout, p.stderr) == ("False\n", "yes 1\n")
    # and logging's own last resort, for comparison
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            "import logging; l = logging.getLogger('x'); l.info('no'); l.warning('yes %s', 1)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert p.stderr == "yes 1\n"

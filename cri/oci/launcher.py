"""The Python CLI's launcher: what the compiled front end (front/front.c) execs as
`PYTHON -SE <package>/cri/oci/launcher.py ARGS` for every command it does not do itself.

-S -E: no `site` (its scan of site-packages and .pth files costs 3 ms in a bare venv, more with
every .pth file) and no PYTHON* variables. Nothing outside the standard library is needed: the
package root, this file's grandparent, is put on sys.path by hand.
"""

import sys

# sys.path[0] is this file's directory, cri/oci/, whose modules (errors.py, spec.py...) must not
# be importable as top-level names: the package root replaces it.
_here = sys.path.pop(0)
sys.path.insert(0, _here.rpartition("/")[0].rpartition("/")[0] or "/")

from cri.oci.cli import run_and_exit  # noqa: E402

run_and_exit()

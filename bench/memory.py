"""What the benches read of a process's memory."""

from __future__ import annotations


def smaps_rollup_kib(pid: int) -> dict[str, int]:
    """/proc/PID/smaps_rollup's kB fields (Rss, Pss, Pss_Anon...); empty if the process is gone."""
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                fields = rest.split()
                if len(fields) == 2 and fields[1] == "kB":
                    values[key] = int(fields[0])
    except OSError:
        return {}
    return values

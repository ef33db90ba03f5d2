"""The open-files limit a run needs: every request in flight holds a socket.

Most systems start a process with a soft ``RLIMIT_NOFILE`` of 1024 and a much higher hard
limit; a run with thousands of requests in flight fails on the soft one. ``raise_open_files``
lifts the soft limit to the hard one (any process may), before the workers are spawned, so
they inherit it. Only the hard limit needs an administrator (``ulimit -Hn``, systemd's
``LimitNOFILE=``, a container runtime's ``nofile`` ulimit); when it is below what
``--max-inflight`` needs, the returned line says so and the run goes on.

In the worst case one process holds every in-flight socket (the embedded sandbox answers
all of them; one worker with ``--workers 1``), plus files, pipes and the listening sockets:
``RESERVE`` more.
"""

from __future__ import annotations

RESERVE = 64
"""Descriptors beyond one per in-flight request: stdio, pipes, corpus, spool, listeners."""


def needed(max_inflight: int) -> int:
    """Open files one process may hold for a run with ``--max-inflight`` requests."""
    return max_inflight + RESERVE


def raise_open_files(max_inflight: int) -> str | None:
    """Raise the soft open-files limit to the hard one; a warning when that is too low."""
    try:
        import resource
    except ImportError:  # not a POSIX system: nothing to raise
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # macOS refuses an unlimited soft limit: keep it
            pass
    if soft == resource.RLIM_INFINITY or soft >= needed(max_inflight):
        return None
    hard_text = "unlimited" if hard == resource.RLIM_INFINITY else f"{hard:,}"
    return (
        f"replay run: warning: the open-files limit is {soft:,} (hard limit {hard_text}) but "
        f"--max-inflight {max_inflight:,} needs about {needed(max_inflight):,}: requests "
        "beyond it fail with 'too many open files'; raise the hard limit (ulimit -Hn, "
        "LimitNOFILE=, the container runtime's nofile ulimit) or lower --max-inflight"
    )


def warn_open_files(max_inflight: int) -> None:
    """``raise_open_files``, its warning (if any) on stderr: the hook ``replay run`` calls."""
    import sys

    line = raise_open_files(max_inflight)
    if line:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

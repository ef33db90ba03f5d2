"""Entry point of the sandbox's child processes: ``python -m sandbox.child ROLE ...``.

The supervisor starts each pod and the worker as a fresh interpreter, so that the
Prometheus multiprocess directory is in the environment before prometheus_client is
imported and no state leaks from the parent. Arguments: role (``pod`` or ``worker``), the
config file, the process index, the file descriptor on which to report readiness, and the
supervisor's pid (a child whose supervisor disappears drains and exits on its own).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

from sandbox.config import SandboxConfig


def run_worker(config: SandboxConfig, ready_fd: int, parent: int) -> int:
    """The ingestion worker process: serve the queue until SIGTERM, then drain."""
    from sandbox.metrics import Metrics
    from sandbox.pipeline import Worker

    metrics = Metrics()
    worker = Worker(
        config.db_path,
        config.queue_socket,
        ingest_delay=config.ingest_delay,
        on_batch=metrics.on_batch,
        max_db_bytes=config.max_db_size,
    )
    signal.signal(signal.SIGTERM, lambda _sig, _frame: worker.stop())

    def watch_parent() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        logging.getLogger("sandbox.worker").warning("supervisor gone; draining")
        # Pods notice too and close their connections; the worker then drains and exits.
        worker.stop()

    threading.Thread(target=watch_parent, daemon=True).start()
    os.write(ready_fd, b"ready\n")
    os.close(ready_fd)
    worker.run()
    stats = worker.stats()
    logging.getLogger("sandbox.worker").info(
        "worker drained: %d records received, %d written", stats.received, stats.written
    )
    return 0


def main(argv: list[str]) -> int:
    role, config_path, index, ready_fd, parent = argv
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    config = SandboxConfig.load(config_path)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s sandbox {role}-{index} %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if role == "worker":
        return run_worker(config, int(ready_fd), int(parent))
    if role == "pod":
        from sandbox.pod import run_pod

        return run_pod(config, int(index), int(ready_fd), int(parent))
    raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

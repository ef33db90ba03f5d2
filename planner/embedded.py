"""`planner sweep --sandbox`: the embedded sandbox with emulated capacity, as a sweep target.

The sandbox (`sandbox.process.start_sandbox`) is started on a free port of 127.0.0.1 with
emulated capacity: N virtual pods whose throughput follows the USL,

    X(N) = L·N / (1 + σ(N−1) + κN(N−1))        L = pod rate

and scaled between pod counts through its admin API (``POST /admin/pods {"pods": N}``, the
admin token never leaves this process). It is stopped when the sweep ends, however it ends.

The defaults were chosen for a 2-core machine where the load generator and the sandbox
share the cores: with L = 100/s, X(8) = 569/s, and the ladder's steps past saturation
(up to about 1.25 × X) stay well inside what the machine drives without the generator
becoming the limit (measured: 900/s offered against X = 569/s, send-lag p99 < 10 ms). The
queue is shallow (16 requests per pod) so that overload is shed at once with 503 instead of
piling up hundreds of requests in flight; a deep queue made the generator the bottleneck
(drops at 650/s offered with 64 per pod).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

DEFAULT_POD_RATE = 100.0
DEFAULT_SIGMA = 0.05
DEFAULT_KAPPA = 0.001
DEFAULT_QUEUE_DEPTH = 16
DEFAULT_SERVICE_CV = 0.5


@dataclass(frozen=True)
class SandboxModel:
    """The emulated deployment's law; ``throughput(n)`` is what the sweep should measure."""

    pod_rate: float = DEFAULT_POD_RATE
    sigma: float = DEFAULT_SIGMA
    kappa: float = DEFAULT_KAPPA
    queue_depth: int = DEFAULT_QUEUE_DEPTH
    service_cv: float = DEFAULT_SERVICE_CV

    def throughput(self, pods: int) -> float:
        from sandbox.capacity import usl_throughput  # the law the sandbox itself emulates

        return float(usl_throughput(pods, self.pod_rate, self.sigma, self.kappa))

    def emulation(self, pods: int) -> Any:
        """The sandbox's `Emulation` at ``pods`` (ValueError for values it refuses)."""
        from sandbox.capacity import Emulation

        return Emulation(
            pods=pods,
            pod_rate=self.pod_rate,
            sigma=self.sigma,
            kappa=self.kappa,
            service_cv=self.service_cv,
            queue_depth=self.queue_depth,
        )

    def as_extra(self) -> dict[str, Any]:
        """Recorded in the sweep file's ``extra.sandbox``: what a reader needs to check X(N)."""
        return {
            "pod_rate": self.pod_rate,
            "sigma": self.sigma,
            "kappa": self.kappa,
            "queue_depth": self.queue_depth,
            "service_cv": self.service_cv,
        }


@dataclass
class EmbeddedSandbox:
    """A started sandbox: ``target`` for replay, ``scale(pods)`` for the sweep, ``stop()``."""

    model: SandboxModel
    process: Any  # sandbox.process.SandboxProcess
    target: Any = field(init=False)  # replay.target.RunTarget

    def __post_init__(self) -> None:
        from replay.target import RunTarget

        self.target = RunTarget(
            self.process.url, self.process.api_key, self.process.project_id, embedded=True
        )

    @classmethod
    def start(cls, model: SandboxModel, first_pods: int) -> EmbeddedSandbox:
        """Start it at ``first_pods``; RuntimeError (with the sandbox's reason) if it cannot."""
        from sandbox.process import start_sandbox

        emulation = model.emulation(first_pods)
        try:
            process = start_sandbox(emulate=emulation)
        except Exception as exc:  # the sandbox's failure to start is this sweep's
            raise RuntimeError(f"the embedded sandbox did not start: {exc}") from None
        return cls(model, process)

    @property
    def url(self) -> str:
        return str(self.process.url)

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def scale(self, pods: int) -> None:
        """Set the emulated pod count (the admin API answers once it holds)."""
        from planner.sweep import ScaleError
        from sandbox.process import SandboxError

        try:
            answer = self.process.set_pods(pods)
        except (SandboxError, OSError) as exc:
            raise ScaleError(f"the embedded sandbox refused {pods} pods: {exc}") from None
        if answer.get("pods") != pods:
            raise ScaleError(f"the embedded sandbox answered {answer} to {pods} pods")

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> EmbeddedSandbox:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()

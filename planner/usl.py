"""The Universal Scalability Law and its estimator.

    X(N) = λN / (1 + σ(N−1) + κN(N−1))

N is the number of pods (or the concurrency), X(N) the throughput. λ is the throughput of
one pod; σ (contention) is the fraction of work that serialises; κ (coherency) the cost of
keeping every pair of pods consistent. With κ > 0 the curve peaks at
N* = sqrt((1−σ)/κ) and falls after it ("retrograde" scaling); with κ = 0 it rises towards
λ/σ without reaching it; with σ = κ = 0 it is linear.

`USLRegressor` finds (σ, κ, λ) by bounded nonlinear least squares on the throughput itself
(absolute residuals, the way Gunther's and Schwartz's worked examples do it), with
scipy.optimize.least_squares, an analytic Jacobian, bounds σ, κ ≥ 0 and λ > 0, and starting
values from the linearised form of the law: with C(N) = X(N)/λ,

    N/C(N) − 1 = σ(N−1) + κN(N−1)

which is linear in σ and κ, so an ordinary least-squares solve gives a starting point once λ
is guessed from the N = 1 measurement (or from max X/N when N = 1 was not measured). Two more
starts (σ only, κ only) guard against a local minimum; the lowest cost wins. Standard errors
come from the Jacobian at the solution: cov = s²(JᵀJ)⁻¹ with s² = RSS/(n−3). They are
asymptotic, and mean little for a coefficient sitting on its bound (see `on_bound_`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import least_squares
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

PARAMETERS = ("sigma", "kappa", "lambda")

_TOL = 1e-15  # ftol/xtol/gtol: the book's figures are reproduced to ~1e-6, so stop late
REACH_RTOL = 1e-9  # X(N) "reaches" a rate within this: a fit of exactly linear data gives
# X(10) = 9999.999999999987 for 1000/s per pod, which must still count as 10,000


def usl_throughput(
    n: ArrayLike, sigma: ArrayLike, kappa: ArrayLike, lam: ArrayLike
) -> NDArray[np.float64]:
    """X(N) = λN / (1 + σ(N−1) + κN(N−1)), elementwise (and broadcast over the coefficients)."""
    nn = np.asarray(n, dtype=float)
    s, k, la = (np.asarray(v, dtype=float) for v in (sigma, kappa, lam))
    return np.asarray(la * nn / (1.0 + s * (nn - 1.0) + k * nn * (nn - 1.0)), dtype=float)


@dataclass(frozen=True)
class USLParams:
    """A fitted (or given) law. Everything derived from the three coefficients lives here."""

    sigma: float
    kappa: float
    lam: float

    def __post_init__(self) -> None:
        # plain floats: numpy scalars would warn (and tests fail) where Python gives inf
        for name in ("sigma", "kappa", "lam"):
            object.__setattr__(self, name, float(getattr(self, name)))

    def throughput(self, n: ArrayLike) -> NDArray[np.float64]:
        return usl_throughput(n, self.sigma, self.kappa, self.lam)

    def at(self, n: float) -> float:
        """X(n) as a plain float."""
        return float(self.throughput(n))

    @property
    def n_star(self) -> float:
        """The continuous peak sqrt((1−σ)/κ); inf when κ = 0 and σ < 1 (no peak)."""
        if self.sigma >= 1.0:
            return 1.0  # X falls from N = 1 on
        try:
            return math.sqrt((1.0 - self.sigma) / self.kappa)
        except (ZeroDivisionError, OverflowError):
            return math.inf

    @property
    def n_peak(self) -> int | None:
        """floor(N*), at least 1 (the book's convention); None when the curve never peaks."""
        n_star = self.n_star
        if math.isinf(n_star):
            return None
        return max(1, math.floor(n_star))

    @property
    def x_peak(self) -> float:
        """X(n_peak); without a peak, the supremum the curve approaches: λ/σ, or inf."""
        n_peak = self.n_peak
        if n_peak is not None:
            return self.at(n_peak)
        return self.lam / self.sigma if self.sigma > 0 else math.inf

    @property
    def n_best(self) -> int | None:
        """The whole N with the highest X: floor or ceil of N*; None without a peak.

        X(ceil N*) can exceed X(floor N*) by a hair (Cisco: 12342.3 at 36 against 12341.7 at
        35), so whether a rate is reachable is decided against `x_best`, not `x_peak`.
        """
        n_peak = self.n_peak
        if n_peak is None:
            return None
        return n_peak + 1 if self.at(n_peak + 1) > self.at(n_peak) else n_peak

    @property
    def x_best(self) -> float:
        """X(n_best): the most any whole number of pods delivers; without a peak, the supremum."""
        n_best = self.n_best
        return self.x_peak if n_best is None else self.at(n_best)

    def pods_for_rate(self, rate: float) -> int | None:
        """The smallest whole N ≥ 1 with X(N) ≥ rate, or None when no N reaches it; X(N)
        within REACH_RTOL (1e-9) below the rate counts as reaching it.

        X(N) ≥ r  ⇔  rκN² + (r(σ−κ) − λ)N + r(1−σ) ≤ 0, so the answer is the ceiling of the
        smaller root (computed in the cancellation-free form 2c / (−b + √disc)), checked and
        nudged against the law itself so that rounding never moves it by one.
        """
        if not rate > 0:
            raise ValueError("the rate must be positive")
        need = rate * (1.0 - REACH_RTOL)
        if self.at(1) >= need:
            return 1
        if need > self.x_best:
            return None
        a = rate * self.kappa
        b = rate * (self.sigma - self.kappa) - self.lam
        c = rate * (1.0 - self.sigma)
        if a > 0:
            disc = b * b - 4.0 * a * c
            if disc < 0:
                disc = 0.0  # the rate is the peak itself, give or take rounding
            root = 2.0 * c / (-b + math.sqrt(disc)) if b < 0 else (-b - math.sqrt(disc)) / (2 * a)
        else:  # linear in N: N(λ − rσ) ≥ r(1 − σ)
            if self.lam - rate * self.sigma <= 0:
                return None
            root = c / (self.lam - rate * self.sigma)
        n = max(1, math.ceil(root))
        while n > 1 and self.at(n - 1) >= need:
            n -= 1
        while self.at(n) < need:
            n += 1
            if self.n_peak is not None and n > self.n_peak + 1:
                return None
        return n


def efficiency(n: ArrayLike, x: ArrayLike, lam: float) -> NDArray[np.float64]:
    """X(N) / (N·λ): 1 is linear scaling; above 1 is superlinear, which the USL cannot model."""
    return np.asarray(x, dtype=float) / (np.asarray(n, dtype=float) * lam)


def starting_values(n: ArrayLike, x: ArrayLike) -> tuple[float, float, float]:
    """(σ0, κ0, λ0) from the linearised law; σ0 and κ0 clipped at zero."""
    nn = np.asarray(n, dtype=float)
    xx = np.asarray(x, dtype=float)
    ones = nn == 1.0
    lam0 = float(np.mean(xx[ones])) if ones.any() else float(np.max(xx / nn))
    design = np.column_stack([nn - 1.0, nn * (nn - 1.0)])
    target = lam0 * nn / xx - 1.0
    (sigma0, kappa0), *_ = np.linalg.lstsq(design, target, rcond=None)
    return max(float(sigma0), 0.0), max(float(kappa0), 0.0), lam0


def _residuals(p: NDArray[np.float64], n: NDArray[np.float64], x: NDArray[np.float64]) -> Any:
    return usl_throughput(n, p[0], p[1], p[2]) - x


def jacobian(p: NDArray[np.float64], n: NDArray[np.float64], x: NDArray[np.float64]) -> Any:
    """∂X/∂(σ, κ, λ) at each N (x is unused: least_squares passes it along)."""
    sigma, kappa, lam = p
    denom = 1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0)
    return np.column_stack(
        [
            -lam * n * (n - 1.0) / denom**2,
            -lam * n * n * (n - 1.0) / denom**2,
            n / denom,
        ]
    )


def solve(
    n: NDArray[np.float64], x: NDArray[np.float64], start: Sequence[float] | None = None
) -> Any:
    """The bounded least-squares solve behind `USLRegressor.fit`, without its checks.

    Tries ``start`` first if given, and stops there when it converges (a warm start from a
    nearby solution, as the bootstrap's refits are, needs no second opinion); otherwise the
    linearised start and the σ-only and κ-only starts, keeping the lowest cost. Returns
    scipy's OptimizeResult. ``n`` and ``x`` must already be valid (positive, 3+ distinct N).
    """
    sigma0, kappa0, lam0 = starting_values(n, x)
    starts = [(sigma0, kappa0, lam0), (sigma0 + kappa0, 0.0, lam0), (0.0, kappa0, lam0)]
    if start is not None:
        starts.insert(0, (float(start[0]), float(start[1]), float(start[2])))
    best = None
    for i, guess in enumerate(starts):
        result = least_squares(
            _residuals,
            np.array(guess, dtype=float),
            jac=jacobian,
            bounds=([0.0, 0.0, 0.0], [np.inf, np.inf, np.inf]),
            method="trf",
            x_scale="jac",
            ftol=_TOL,
            xtol=_TOL,
            gtol=_TOL,
            args=(n, x),
        )
        if best is None or result.cost < best.cost:
            best = result
        if start is not None and i == 0 and result.success:
            break
    return best


class USLRegressor(RegressorMixin, BaseEstimator):
    """The Universal Scalability Law as a scikit-learn regressor.

    ``X`` has one column, N (pods or concurrency, > 0); ``y`` is the throughput (> 0). At least
    three distinct values of N are needed: three coefficients cannot come from fewer.

    Fitted attributes: ``sigma_``, ``kappa_``, ``lambda_``; their standard errors
    ``sigma_se_``, ``kappa_se_``, ``lambda_se_`` (nan without residual degrees of freedom);
    ``params_`` (a `USLParams`); ``on_bound_``, the names of coefficients held at zero by their
    bound; ``cost_`` (half the residual sum of squares); ``n_features_in_``.

    ``start`` (optional (σ, κ, λ)) is tried before the usual starting values; the bootstrap
    passes the full-data estimate here, which makes its refits quick.
    """

    def __init__(self, start: tuple[float, float, float] | None = None) -> None:
        self.start = start

    def fit(self, X: ArrayLike, y: ArrayLike) -> USLRegressor:
        X_arr, y_arr = validate_data(self, X, y, y_numeric=True)
        if X_arr.shape[1] != 1:
            raise ValueError(f"USLRegressor takes one feature (N), got {X_arr.shape[1]}")
        n = X_arr[:, 0].astype(float)
        x = np.asarray(y_arr, dtype=float)
        if np.any(n <= 0) or np.any(x <= 0):
            raise ValueError("N and the throughput must be positive")
        if np.unique(n).size < 3:
            raise ValueError(
                f"{np.unique(n).size} distinct value(s) of N: the USL's three coefficients "
                "need at least three"
            )
        best = solve(n, x, self.start)
        self.on_bound_ = tuple(
            name
            for name, value, active in zip(
                PARAMETERS[:2], best.x[:2], best.active_mask[:2], strict=True
            )
            if active != 0 or value <= 1e-12
        )
        # A coefficient held by its bound is zero, not the solver's 1e-33: left as it was,
        # κ = 2e-33 put the peak at 10^16 pods in the report.
        self.sigma_, self.kappa_, self.lambda_ = (
            0.0 if name in self.on_bound_ else float(value)
            for name, value in zip(PARAMETERS, best.x, strict=True)
        )
        self.params_ = USLParams(self.sigma_, self.kappa_, self.lambda_)
        self.cost_ = float(best.cost)
        self.sigma_se_, self.kappa_se_, self.lambda_se_ = _standard_errors(
            jacobian(best.x, n, x), best.fun
        )
        return self

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        check_is_fitted(self, "params_")
        X_arr = validate_data(self, X, reset=False)
        return self.params_.throughput(X_arr[:, 0])


def _standard_errors(jac: NDArray[np.float64], residuals: NDArray[np.float64]) -> list[float]:
    """sqrt(diag(s²(JᵀJ)⁻¹)), s² = RSS/(n − 3); nan where undefined."""
    dof = residuals.size - jac.shape[1]
    if dof <= 0:
        return [math.nan] * jac.shape[1]
    s2 = float(residuals @ residuals) / dof
    cov = s2 * np.linalg.pinv(jac.T @ jac)
    return [math.sqrt(v) if v >= 0 else math.nan for v in np.diag(cov)]

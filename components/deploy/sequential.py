"""Always-valid confidence bounds: a rollout looks at its evidence every interval, for weeks.

A fixed-sample test read at every look promotes a worse candidate far more often than its
alpha says (each look is another chance to cross by luck). The bounds here hold at every
look at once: they are the one-sided normal-mixture confidence sequences of Robbins, in the
asymptotic form of Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas ("Time-uniform central
limit theory and asymptotic confidence sequences", 2023), the method online-experimentation
platforms use for peeking-safe results.

An estimate with standard error `se` carries information I = 1/se^2; the boundary on the
sum S = (estimate - truth) * I is crossed with probability at most alpha over all I (Ville's
inequality on the mixture martingale). The mixture's spread rho is tuned so the bound is
tightest where the power calculation expects the decision (`planned_se`); the bound stays
valid elsewhere, only wider.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from scipy.optimize import brentq
from scipy.stats import norm


@lru_cache(maxsize=64)
def mixture_spread(alpha: float) -> float:
    """rho^2 * I at the tuned information: the value that minimises the bound's width there."""
    level = 2 * math.log(1 / alpha)
    return level + math.log(1 + level)


def _one_sided_log_mixture(s: float, info: float, rho2: float) -> float:
    """log of the one-sided (half-normal) mixture martingale at sum s and information info."""
    v = 1 + rho2 * info
    return (
        math.log(2)
        - 0.5 * math.log(v)
        + rho2 * s * s / (2 * v)
        + norm.logcdf(math.sqrt(rho2) * s / math.sqrt(v))
    )


@lru_cache(maxsize=4096)
def _boundary(info: float, rho2: float, alpha: float) -> float:
    """The smallest sum at which the one-sided mixture reaches 1/alpha."""
    target = math.log(1 / alpha)
    high = math.sqrt((1 + rho2 * info) / rho2 * (2 * target + math.log(1 + rho2 * info))) + 1.0
    while _one_sided_log_mixture(high, info, rho2) < target:
        high *= 2
    return float(
        brentq(lambda s: _one_sided_log_mixture(s, info, rho2) - target, 0.0, high, xtol=1e-9 * high)
    )


def halfwidth(se: float, alpha: float, planned_se: float) -> float:
    """How far the truth can be on one side of an estimate with standard error `se`, at every
    look at once (one-sided level alpha), with the bound tuned at `planned_se`."""
    if not se > 0 or not math.isfinite(se):
        return math.inf if not se == 0 else 0.0
    info, planned = 1 / se**2, 1 / max(planned_se, 1e-12) ** 2
    rho2 = mixture_spread(alpha) / planned
    # Rounded so repeated looks at similar information share the cached root.
    key = float(f"{info / planned:.4g}") * planned
    return _boundary(key, rho2, alpha) / info


@lru_cache(maxsize=64)
def width_factor(alpha: float) -> float:
    """The always-valid bound at the tuned information, in standard errors (about 2.8 at
    alpha 0.05, against 1.645 for a single look)."""
    return halfwidth(1.0, alpha, 1.0)


def planned_se(margin: float, alpha: float, power: float) -> float:
    """The standard error at which an equal candidate clears a non-inferiority margin with
    probability `power`: the margin spans the bound's width plus the power quantile."""
    return margin / (width_factor(alpha) + float(norm.ppf(power)))


@dataclass(frozen=True)
class Bounds:
    """An estimate of a difference (candidate - main) and its always-valid one-sided bounds."""

    estimate: float
    se: float
    lower: float
    upper: float


def bounds(estimate: float, se: float, alpha: float, planned: float) -> Bounds:
    """Lower and upper always-valid bounds, each one-sided at level alpha."""
    width = halfwidth(se, alpha, planned)
    return Bounds(estimate, se, estimate - width, estimate + width)

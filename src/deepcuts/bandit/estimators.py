"""Off-policy estimators of a policy's value from logged feedback, with 95% intervals.

The value estimated is the expected reward per shown card (the stream rate) if the target
policy had served the logged pages' slots. Each logged row i has the logging propensity
p_i = pi_0(a_i at slot_i | x_i) and the target's probability t_i = pi_e(a_i at slot_i | x_i) of
the same card at the same slot; w_i = t_i / p_i. Position-wise weighting is unbiased when a
slot's reward depends on the context, the card and the slot, not on the rest of the page (see
Li et al., "Counterfactual estimation and optimization of click metrics for search engines",
2015, and the Open Bandit Pipeline's IIPS).

- `InverseProbabilityWeighting` (IPS): mean(w r). Unbiased when p_i > 0 wherever t_i > 0.
- `SelfNormalizedInverseProbabilityWeighting` (SNIPS): sum(w r) / sum(w). Slightly biased,
  usually much less variable (Swaminathan & Joachims, NeurIPS 2015).
- `DoublyRobust` (DR): mean(q_target + w (r - q_logged)), with q_logged = q(x_i, a_i, slot_i)
  and q_target = sum_a pi_e(a at slot_i | x_i) q(x_i, a, slot_i) from a reward model q.
  Unbiased if the propensities are right, whatever q (Dudik, Langford & Li, ICML 2011).

Intervals: ``method="normal"`` is the normal approximation with a variance that treats each
page as one independent unit (rows of a page share a context): for mean-type estimators with
per-row terms z_i and estimate V, SE^2 = G / (G - 1) * sum_g (sum_{i in g} (z_i - V))^2 / n^2
over G pages; for SNIPS the terms are the linearisation w_i (r_i - V) / mean(w). With one row
per page this is the usual s^2 / n (with n - 1). ``method="bootstrap"`` resamples pages.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, ClassVar

import numpy as np

from deepcuts.bandit.feedback import LoggedFeedback
from deepcuts.bandit.types import BanditInputError


@dataclass(frozen=True)
class Interval:
    """An estimate with its (1 - alpha) confidence interval."""

    estimator: str
    estimate: float
    low: float
    high: float
    alpha: float
    std_error: float
    n_rows: int
    n_pages: int
    method: str

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _vector(name: str, value: Any, n: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BanditInputError(f"{name}: must be numeric ({exc})") from exc
    if arr.shape != (n,):
        raise BanditInputError(
            f"{name}: has shape {arr.shape}, expected ({n},), one per logged row"
        )
    if not np.all(np.isfinite(arr)):
        raise BanditInputError(f"{name}: has missing or non-finite values")
    return arr


def page_codes(page: np.ndarray) -> tuple[np.ndarray, int]:
    """Pages as codes 0..G-1, and G."""
    _, codes = np.unique(page, return_inverse=True)
    return codes, int(codes.max()) + 1


def clustered_se(terms: np.ndarray, page: np.ndarray) -> float:
    """Standard error of mean(terms), treating pages as independent units (nan if G < 2)."""
    n = len(terms)
    codes, g = page_codes(page)
    if g < 2:
        return float("nan")
    sums = np.bincount(codes, weights=terms - terms.mean(), minlength=g)
    return float(np.sqrt(g / (g - 1) * float(np.sum(sums**2)) / n**2))


@dataclass(frozen=True)
class OffPolicyEstimator(ABC):
    """Base class: `estimate_policy_value` and `estimate_interval` from logged feedback.

    Parameters
    ----------
    max_weight : clip importance weights at this value (biased, less variable); None (the
        default) for no clipping.
    """

    estimator_name: ClassVar[str] = "base"
    extra_arguments: ClassVar[tuple[str, ...]] = ()
    max_weight: float | None = None

    def __post_init__(self) -> None:
        if self.max_weight is not None and not (
            isinstance(self.max_weight, int | float)
            and not isinstance(self.max_weight, bool)
            and self.max_weight > 0
        ):
            raise BanditInputError(
                f"max_weight: must be a positive number or None, not {self.max_weight!r}"
            )

    # -- on arrays (validated) -------------------------------------------------------------
    @abstractmethod
    def _terms(
        self, reward: np.ndarray, weight: np.ndarray, extra: dict[str, np.ndarray]
    ) -> tuple[float, np.ndarray]:
        """(estimate, per-row terms whose clustered mean SE is the estimate's SE)."""

    def _arrays(
        self, feedback: LoggedFeedback, target_propensity: Any, kwargs: dict[str, Any]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if not isinstance(feedback, LoggedFeedback):
            raise BanditInputError(
                f"feedback: must be LoggedFeedback, not {type(feedback).__name__}"
            )
        n = len(feedback)
        t = _vector("target_propensity", target_propensity, n)
        if np.any((t < 0) | (t > 1 + 1e-9)):
            raise BanditInputError("target_propensity: must be probabilities in [0, 1]")
        unknown = set(kwargs) - set(self.extra_arguments)
        if unknown:
            raise BanditInputError(
                f"{sorted(unknown)[0]}: not an argument of the {self.estimator_name} estimator"
            )
        extra = {}
        for name in self.extra_arguments:
            if kwargs.get(name) is None:
                raise BanditInputError(
                    f"{name}: the {self.estimator_name} estimator needs it (one value per logged row)"
                )
            extra[name] = _vector(name, kwargs[name], n)
        w = t / feedback.propensity
        if self.max_weight is not None:
            w = np.minimum(w, self.max_weight)
        return w, extra

    # -- public ----------------------------------------------------------------------------
    def estimate_policy_value(
        self, feedback: LoggedFeedback, target_propensity: np.ndarray, **kwargs: Any
    ) -> float:
        """The estimated value (expected reward per shown card) of the target policy.

        Parameters
        ----------
        feedback : the log, n rows.
        target_propensity : (n,) pi_e(logged card at logged slot | context), in [0, 1].
        **kwargs : estimator-specific arrays of shape (n,) (see `DoublyRobust`).
        """
        w, extra = self._arrays(feedback, target_propensity, kwargs)
        return self._terms(feedback.reward, w, extra)[0]

    def estimate_interval(
        self,
        feedback: LoggedFeedback,
        target_propensity: np.ndarray,
        alpha: float = 0.05,
        method: str = "normal",
        n_bootstrap: int = 1000,
        random_state: int | None = None,
        **kwargs: Any,
    ) -> Interval:
        """The estimate with its (1 - alpha) interval: normal with pages as units, or a
        percentile bootstrap over pages."""
        if not (isinstance(alpha, float | int) and 0 < alpha < 1):
            raise BanditInputError(f"alpha: must be in (0, 1), not {alpha!r}")
        if method not in ("normal", "bootstrap"):
            raise BanditInputError(f"method: must be 'normal' or 'bootstrap', not {method!r}")
        if method == "bootstrap" and (not isinstance(n_bootstrap, int) or n_bootstrap < 10):
            raise BanditInputError(f"n_bootstrap: must be an integer >= 10, not {n_bootstrap!r}")
        w, extra = self._arrays(feedback, target_propensity, kwargs)
        estimate, terms = self._terms(feedback.reward, w, extra)
        se = clustered_se(terms, feedback.page)
        if method == "normal":
            z = NormalDist().inv_cdf(1 - alpha / 2)
            low, high = estimate - z * se, estimate + z * se
        else:
            rng = np.random.default_rng(random_state)
            codes, g = page_codes(feedback.page)
            order = np.argsort(codes, kind="stable")
            starts = np.r_[0, np.cumsum(np.bincount(codes, minlength=g))]
            stats = np.empty(n_bootstrap)
            for b in range(n_bootstrap):
                pick = rng.integers(0, g, g)
                rows = np.concatenate([order[starts[p] : starts[p + 1]] for p in pick])
                stats[b] = self._terms(
                    feedback.reward[rows], w[rows], {k: v[rows] for k, v in extra.items()}
                )[0]
            low, high = (float(q) for q in np.quantile(stats, [alpha / 2, 1 - alpha / 2]))
            se = float(stats.std(ddof=1))
        return Interval(
            self.estimator_name,
            float(estimate),
            float(low),
            float(high),
            float(alpha),
            float(se),
            len(feedback),
            feedback.n_pages,
            method,
        )


@dataclass(frozen=True)
class InverseProbabilityWeighting(OffPolicyEstimator):
    """IPS: mean(w * r) with w = target / logging propensity."""

    estimator_name: ClassVar[str] = "ips"

    def _terms(self, reward, weight, extra):  # type: ignore[no-untyped-def]
        terms = weight * reward
        return float(terms.mean()), terms


@dataclass(frozen=True)
class SelfNormalizedInverseProbabilityWeighting(OffPolicyEstimator):
    """SNIPS: sum(w * r) / sum(w)."""

    estimator_name: ClassVar[str] = "snips"

    def _terms(self, reward, weight, extra):  # type: ignore[no-untyped-def]
        total = weight.sum()
        if total <= 0:
            raise BanditInputError(
                "target_propensity: the target gives probability 0 to every logged row"
            )
        value = float(np.sum(weight * reward) / total)
        return value, value + weight * (reward - value) / weight.mean()


@dataclass(frozen=True)
class DoublyRobust(OffPolicyEstimator):
    """DR: mean(q_target + w * (r - q_logged)).

    Extra arguments of `estimate_policy_value` and `estimate_interval`:
    ``expected_reward`` (n,): q(x_i, a_i, slot_i), the reward model at the logged card;
    ``expected_reward_target`` (n,): sum_a pi_e(a at slot_i | x_i) q(x_i, a, slot_i).
    """

    estimator_name: ClassVar[str] = "dr"
    extra_arguments: ClassVar[tuple[str, ...]] = ("expected_reward", "expected_reward_target")

    def _terms(self, reward, weight, extra):  # type: ignore[no-untyped-def]
        terms = extra["expected_reward_target"] + weight * (reward - extra["expected_reward"])
        return float(terms.mean()), terms


ESTIMATORS: dict[str, type[OffPolicyEstimator]] = {
    e.estimator_name: e
    for e in (InverseProbabilityWeighting, SelfNormalizedInverseProbabilityWeighting, DoublyRobust)
}

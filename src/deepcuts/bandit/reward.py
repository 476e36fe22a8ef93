"""The reward model: P(a shown card is streamed for 30 s or more), as in BaRT.

`FactorizationMachine` is an order-2 factorization machine (Rendle, "Factorization Machines",
ICDM 2010) with a logistic loss, trained online by AdaGrad on micro-batches with per-row
weights. `RewardModel` puts it over the features of (user and context, shelf, card):

    logit P(stream | looked at) = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j

and says how the slot (shelf position j, card position l) enters, by ``position_model``:

- ``"examination"`` (the default): a position-based click model, as used for carousels
  (Rahdari, Kveton and Brusilovsky, "From Ranked Lists to Carousels: A Carousel Click Model",
  WSDM 2023): P(stream at (j, l)) = examine_shelf(j) * examine_card(l) * P(stream | looked at),
  with the top slot always looked at. `Examination` learns the two examination curves with
  the FM, by gradient on the same likelihood. A listener who never scrolls to a shelf says
  nothing about it, so a good shelf shown low is not mistaken for a bad one;
- ``"logit"``: slot features are linear-only FM features, an additive position bias on the
  logit (BaRT's form). It multiplies the odds, not the probability, so it over-penalises
  cards likely to stream when they are shown low.

Either way the slot-free logit ranks cards, the same at every position. Rows are weighted by
their inverse propensity (clipped, then scaled to mean 1 within each batch) so the model is
fitted as if actions had been chosen uniformly, not by the logging policy (BaRT, McInerney et
al., RecSys 2018, section 4).

`SuccessRule` says what counts as a success: a stream of at least 30 s by default, with a
threshold per content type (a sleep playlist may need longer).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepcuts.bandit.features import CardTable, FeatureRows, FeatureSpace, Featurizer, PageBlocks
from deepcuts.bandit.types import BanditInputError, Card, Context, Impression, Shelf

FORMAT_VERSION = 1


@dataclass(frozen=True)
class SuccessRule:
    """When a play of a card counts as a success (reward 1).

    Parameters
    ----------
    seconds : the default threshold, 30 s as in BaRT.
    by_content_type : thresholds in seconds for particular content types
        (``{"sleep": 120}``); a card's ``content_type`` picks one.
    """

    seconds: float = 30.0
    by_content_type: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (
            isinstance(self.seconds, int | float)
            and math.isfinite(self.seconds)
            and self.seconds >= 0
        ):
            raise BanditInputError(f"seconds: must be a non-negative number, not {self.seconds!r}")
        for kind, value in self.by_content_type.items():
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise BanditInputError(
                    f"by_content_type: threshold for {kind!r} must be a non-negative number, not {value!r}"
                )

    def threshold_ms(self, content_type: str) -> int:
        return int(round(1000 * self.by_content_type.get(content_type, self.seconds)))

    def reward(self, ms_played: float | None, content_type: str = "track") -> float:
        """1.0 if a play of ``ms_played`` milliseconds is a success for this content type."""
        if ms_played is None:
            return 0.0
        return float(ms_played >= self.threshold_ms(content_type))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


class FactorizationMachine:
    """Order-2 factorization machine for binary outcomes, trained online with AdaGrad.

    Parameters
    ----------
    n_factors : k, the size of each feature's interaction vector.
    learning_rate : AdaGrad step size.
    reg_linear, reg_factors : L2 penalty on w and V, applied to the features a batch touches.
    init_std : standard deviation of the initial V.
    prior_rate : the initial predicted probability (sets w0 = logit(prior_rate)), so unseen
        features start at a sensible rate rather than 0.5.
    random_state : seed of the initialisation.
    initial_accumulator : where AdaGrad's sums of squared gradients start (libffm starts them
        at 1 too), so a feature's first steps are in proportion to its gradient. From 0, each
        feature's first step is a full ``learning_rate`` in the sign of its gradient: from a
        model that has learnt nothing, one batch moved every factor of the some 80 features of
        a row (the listener's and the card's vectors among them) by the full step at once, all
        the same way, and every card's logit rose whatever the rewards.

    Attributes (fitted)
    -------------------
    w0_ : float; w_ : (n_features,); V_ : (n_features, k); linear_only_ : (n_features,) bool,
    features without interactions (their V rows stay 0); n_updates_ : batches seen.

    Features are the indices of `FeatureRows`; the arrays grow when a row uses a new index.

    Example
    -------
    >>> fm = FactorizationMachine(n_factors=4, random_state=0)
    >>> X = FeatureRows(np.array([[1, 2], [1, 3]]), np.ones((2, 2)))
    >>> _ = fm.partial_fit(X, np.array([1.0, 0.0]))
    >>> fm.predict_proba(X).shape
    (2,)
    """

    def __init__(
        self,
        n_factors: int = 8,
        learning_rate: float = 0.05,
        reg_linear: float = 1e-4,
        reg_factors: float = 1e-4,
        init_std: float = 0.05,
        prior_rate: float = 0.2,
        random_state: int | None = None,
        initial_accumulator: float = 1.0,
    ):
        self.n_factors = n_factors
        self.learning_rate = learning_rate
        self.reg_linear = reg_linear
        self.reg_factors = reg_factors
        self.init_std = init_std
        self.prior_rate = prior_rate
        self.random_state = random_state
        self.initial_accumulator = initial_accumulator

    def _validate(self) -> None:
        if not isinstance(self.n_factors, int) or self.n_factors < 1:
            raise BanditInputError(f"n_factors: must be a positive integer, not {self.n_factors!r}")
        for name in ("learning_rate", "init_std"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise BanditInputError(f"{name}: must be a positive number, not {v!r}")
        for name in ("reg_linear", "reg_factors", "initial_accumulator"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise BanditInputError(f"{name}: must be a non-negative number, not {v!r}")
        if not (isinstance(self.prior_rate, int | float) and 0 < self.prior_rate < 1):
            raise BanditInputError(f"prior_rate: must be in (0, 1), not {self.prior_rate!r}")

    # -- state --------------------------------------------------------------------------
    def _init(self) -> None:
        self._validate()
        self._rng = np.random.default_rng(self.random_state)
        self.w0_ = float(math.log(self.prior_rate / (1 - self.prior_rate)))
        self.w_ = np.zeros(0)
        self.V_ = np.zeros((0, self.n_factors))
        self.linear_only_ = np.zeros(0, dtype=bool)
        self._g0 = 0.0
        self._gw = np.zeros(0)
        self._gV = np.zeros((0, self.n_factors))
        self.n_updates_ = 0
        self.generation_ = 0  # bumped whenever an existing feature's w or V changes

    def _grow(self, n: int, linear_only: np.ndarray | None) -> None:
        if not hasattr(self, "w0_"):
            self._init()
        have = len(self.w_)
        if n > have:
            cap = max(n, 2 * have, 64)
            extra = cap - have
            self.w_ = np.concatenate([self.w_, np.zeros(extra)])
            self.V_ = np.vstack(
                [self.V_, self._rng.normal(0.0, self.init_std, (extra, self.n_factors))]
            )
            self.linear_only_ = np.concatenate([self.linear_only_, np.zeros(extra, dtype=bool)])
            self._gw = np.concatenate([self._gw, np.zeros(extra)])
            self._gV = np.vstack([self._gV, np.zeros((extra, self.n_factors))])
            self.V_[0] = 0.0
            self.linear_only_[0] = True
        if linear_only is not None and len(linear_only):
            m = min(len(linear_only), len(self.linear_only_))
            newly = linear_only[:m] & ~self.linear_only_[:m]
            if newly.any():
                self.linear_only_[:m] |= linear_only[:m]
                self.V_[:m][newly] = 0.0
                self.generation_ = getattr(self, "generation_", 0) + 1

    @property
    def n_features_(self) -> int:
        return len(self.w_)

    # -- prediction -----------------------------------------------------------------------
    def _forward(self, X: FeatureRows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx, val = X.indices, X.values
        Vx = self.V_[idx] * val[..., None]  # (B, F, k)
        s = Vx.sum(axis=1)  # (B, k)
        inter = 0.5 * (s * s - (Vx * Vx).sum(axis=1)).sum(axis=1)
        z = self.w0_ + (self.w_[idx] * val).sum(axis=1) + inter
        return z, s, Vx

    def decision_function(
        self, X: FeatureRows, linear_only: np.ndarray | None = None
    ) -> np.ndarray:
        """The logit of each row, shape (B,)."""
        self._grow(int(X.indices.max(initial=0)) + 1, linear_only)
        return self._forward(X)[0]

    def block_terms(self, X: FeatureRows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each row's share of the logit, for rows that are one block of wider rows: its linear
        term ``sum_i w_i x_i`` (B,), ``sum_i v_i x_i`` (B, k) and ``sum_i |v_i x_i|^2`` (B,)
        (see `page_logits`). The model must already cover the rows' features (`_grow`)."""
        Vx = self.V_[X.indices] * X.values[..., None]  # (B, F, k)
        lin = (self.w_[X.indices] * X.values).sum(axis=1)
        return lin, Vx.sum(axis=1), (Vx * Vx).sum(axis=(1, 2))

    def page_logits(
        self,
        blocks: PageBlocks,
        linear_only: np.ndarray | None = None,
        card_terms: tuple[np.ndarray, np.ndarray, np.ndarray, int] | None = None,
    ) -> np.ndarray:
        """The logit of each row of ``blocks`` (``decision_function(blocks.rows())``, computed
        block by block), shape (n,).

        The blocks hold disjoint features, so with ``s_b = sum_{i in b} v_i x_i``,
        ``q_b = sum_{i in b} |v_i x_i|^2`` and ``l_b = sum_{i in b} w_i x_i`` the logit is
        ``w0 + sum_b l_b + (|sum_b s_b|^2 - sum_b q_b) / 2``: the context's terms are computed
        once per page and each shelf's once, not once per card. ``card_terms`` (the card
        block's `block_terms` and its largest feature index), where given, are used instead
        of computing the card block's."""
        if card_terms is None:
            self._grow(blocks.max_index() + 1, linear_only)
            l_k, s_k, q_k = self.block_terms(blocks.card_rows())
        else:
            l_k, s_k, q_k, card_max = card_terms
            self._grow(blocks.max_index(card_max) + 1, linear_only)
        l_c, s_c, q_c = self.block_terms(blocks.context)
        l_s, s_s, q_s = self.block_terms(blocks.shelves)
        l_f, s_f, q_f = self.block_terms(blocks.cf)
        of = blocks.shelf_of
        s = s_c + s_s[of] + s_k + s_f
        inter = 0.5 * ((s * s).sum(axis=1) - (q_c + q_s[of] + q_k + q_f))
        return self.w0_ + l_c + l_s[of] + l_k + l_f + inter

    def predict_proba(self, X: FeatureRows, linear_only: np.ndarray | None = None) -> np.ndarray:
        """P(success) of each row, shape (B,)."""
        return _sigmoid(self.decision_function(X, linear_only))

    # -- learning -------------------------------------------------------------------------
    def partial_fit(
        self,
        X: FeatureRows,
        y: np.ndarray,
        sample_weight: np.ndarray | None = None,
        linear_only: np.ndarray | None = None,
    ) -> FactorizationMachine:
        """One AdaGrad step on the weighted logistic loss of a batch. Returns self.

        ``y`` (B,) in [0, 1]; ``sample_weight`` (B,) non-negative, default 1.
        """
        y = np.asarray(y, dtype=np.float64)
        if y.shape != (len(X),):
            raise BanditInputError(f"y: shape {y.shape} does not match {len(X)} rows")
        if not np.all((y >= 0) & (y <= 1)):
            raise BanditInputError("y: rewards must be in [0, 1]")
        if sample_weight is None:
            weight = np.ones(len(X))
        else:
            weight = np.asarray(sample_weight, dtype=np.float64)
            if weight.shape != (len(X),) or not np.all(np.isfinite(weight)) or np.any(weight < 0):
                raise BanditInputError("sample_weight: must be finite, non-negative, one per row")
        if len(X) == 0:
            return self
        self._grow(int(X.indices.max(initial=0)) + 1, linear_only)
        z, s, Vx = self._forward(X)
        self._apply(X, weight * (_sigmoid(z) - y), s, Vx)
        return self

    def step(
        self, X: FeatureRows, grad: np.ndarray, linear_only: np.ndarray | None = None
    ) -> FactorizationMachine:
        """One AdaGrad step given the gradient of the loss with respect to each row's logit,
        shape (B,): for losses other than the logistic one (`RewardModel`'s examination)."""
        grad = np.asarray(grad, dtype=np.float64)
        if grad.shape != (len(X),) or not np.all(np.isfinite(grad)):
            raise BanditInputError(f"grad: must be finite, one per row ({len(X)} rows)")
        if len(X) == 0:
            return self
        self._grow(int(X.indices.max(initial=0)) + 1, linear_only)
        _, s, Vx = self._forward(X)
        self._apply(X, grad, s, Vx)
        return self

    def _apply(self, X: FeatureRows, g: np.ndarray, s: np.ndarray, Vx: np.ndarray) -> None:
        """The AdaGrad update for dL/dz = ``g`` (B,), given the forward pass's s and Vx."""
        self.generation_ = getattr(self, "generation_", 0) + 1
        idx, val = X.indices, X.values
        lr, start = self.learning_rate, self.initial_accumulator
        # bias
        g0 = g.sum()
        self._g0 += g0 * g0
        self.w0_ -= lr * g0 / (math.sqrt(self._g0 + start) + 1e-8)
        # linear and factors, summed per feature over the batch
        flat = idx.ravel()
        touched, inv = np.unique(flat, return_inverse=True)
        gx = (g[:, None] * val).ravel()
        gw = np.bincount(inv, weights=gx, minlength=len(touched))
        gw += self.reg_linear * self.w_[touched]
        contrib = (g[:, None, None] * val[..., None] * (s[:, None, :] - Vx)).reshape(
            -1, self.n_factors
        )
        gV = np.zeros((len(touched), self.n_factors))
        np.add.at(gV, inv, contrib)
        gV += self.reg_factors * self.V_[touched]
        gV[self.linear_only_[touched]] = 0.0
        self._gw[touched] += gw * gw
        self.w_[touched] -= lr * gw / (np.sqrt(self._gw[touched] + start) + 1e-8)
        self._gV[touched] += gV * gV
        self.V_[touched] -= lr * gV / (np.sqrt(self._gV[touched] + start) + 1e-8)
        self.w_[0] = 0.0
        self.V_[0] = 0.0
        self.n_updates_ += 1

    def fit(
        self,
        X: FeatureRows,
        y: np.ndarray,
        sample_weight: np.ndarray | None = None,
        linear_only: np.ndarray | None = None,
        n_epochs: int = 5,
        batch_size: int = 256,
    ) -> FactorizationMachine:
        """Several shuffled passes of `partial_fit` over the rows, from a fresh start."""
        if not isinstance(n_epochs, int) or n_epochs < 1:
            raise BanditInputError(f"n_epochs: must be a positive integer, not {n_epochs!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise BanditInputError(f"batch_size: must be a positive integer, not {batch_size!r}")
        self._init()
        y = np.asarray(y, dtype=np.float64)
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        for _ in range(n_epochs):
            order = self._rng.permutation(len(X))
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                self.partial_fit(X.take(rows), y[rows], None if w is None else w[rows], linear_only)
        return self

    # -- saving ---------------------------------------------------------------------------
    def get_params(self) -> dict:
        return {
            k: getattr(self, k)
            for k in (
                "n_factors",
                "learning_rate",
                "reg_linear",
                "reg_factors",
                "init_std",
                "prior_rate",
                "random_state",
                "initial_accumulator",
            )
        }

    def arrays(self) -> dict[str, np.ndarray]:
        n = self.n_features_
        return {
            "w0": np.array([self.w0_]),
            "w": self.w_[:n],
            "V": self.V_[:n],
            "linear_only": self.linear_only_[:n],
            "g0": np.array([self._g0]),
            "gw": self._gw[:n],
            "gV": self._gV[:n],
            "n_updates": np.array([self.n_updates_]),
        }

    @classmethod
    def from_arrays(cls, params: dict, arrays: Mapping[str, np.ndarray]) -> FactorizationMachine:
        fm = cls(**params)
        fm._init()
        fm.w0_ = float(arrays["w0"][0])
        fm.w_ = np.array(arrays["w"], dtype=np.float64)
        fm.V_ = np.array(arrays["V"], dtype=np.float64).reshape(len(fm.w_), fm.n_factors)
        fm.linear_only_ = np.array(arrays["linear_only"], dtype=bool)
        fm._g0 = float(arrays["g0"][0])
        fm._gw = np.array(arrays["gw"], dtype=np.float64)
        fm._gV = np.array(arrays["gV"], dtype=np.float64).reshape(fm.V_.shape)
        fm.n_updates_ = int(arrays["n_updates"][0])
        return fm


POSITION_MODELS = ("examination", "logit")


class Examination:
    """P(a listener looks at slot (j, l)) = shelf(j) * card(l), with shelf(0) = card(0) = 1.

    The examination half of a position-based click model, learned by projected AdaGrad on
    ``-log`` examination (kept >= 0, so no slot is looked at more than the top one; 0 at the
    top, which fixes the scale against the FM's P(stream | looked at)). Positions grow as
    they are seen; an unseen one starts as fully examined.

    Parameters
    ----------
    learning_rate : AdaGrad step size.
    """

    def __init__(self, learning_rate: float = 0.2):
        if not (
            isinstance(learning_rate, int | float)
            and math.isfinite(learning_rate)
            and learning_rate > 0
        ):
            raise BanditInputError(
                f"learning_rate: must be a positive number, not {learning_rate!r}"
            )
        self.learning_rate = float(learning_rate)
        # -log examination of each shelf position and each card position, and AdaGrad sums
        self.shelf_ = np.zeros(0)
        self.card_ = np.zeros(0)
        self._g_shelf = np.zeros(0)
        self._g_card = np.zeros(0)

    def _grow(self, n_shelf: int, n_card: int) -> None:
        for name, n in (("shelf_", n_shelf), ("card_", n_card)):
            have = len(getattr(self, name))
            if n > have:
                setattr(self, name, np.concatenate([getattr(self, name), np.zeros(n - have)]))
                g = f"_g_{name[:-1]}"
                setattr(self, g, np.concatenate([getattr(self, g), np.zeros(n - have)]))

    @staticmethod
    def _positions(shelf_position: np.ndarray, card_position: np.ndarray) -> tuple:
        j = np.asarray(shelf_position, dtype=np.int64)
        l_ = np.asarray(card_position, dtype=np.int64)
        if j.shape != l_.shape or (j.size and (j.min() < 0 or l_.min() < 0)):
            raise BanditInputError("positions: need one non-negative shelf and card position each")
        return j, l_

    def log_probability(self, shelf_position: np.ndarray, card_position: np.ndarray) -> np.ndarray:
        """log P(looked at) of each (shelf position, card position) pair."""
        j, l_ = self._positions(shelf_position, card_position)
        if j.size:
            self._grow(int(j.max()) + 1, int(l_.max()) + 1)
        return -(self.shelf_[j] + self.card_[l_])

    def step(self, shelf_position: np.ndarray, card_position: np.ndarray, grad: np.ndarray) -> None:
        """One step given dL/d(log P(looked at)) of each row."""
        j, l_ = self._positions(shelf_position, card_position)
        if not j.size:
            return
        self._grow(int(j.max()) + 1, int(l_.max()) + 1)
        for values, sums, pos in ((self.shelf_, self._g_shelf, j), (self.card_, self._g_card, l_)):
            g = -np.bincount(pos, weights=grad, minlength=len(values))  # d/d(-log examination)
            g[0] = 0.0
            sums += g * g
            values -= self.learning_rate * g / (np.sqrt(sums) + 1e-8)
            np.maximum(values, 0.0, out=values)
            values[0] = 0.0

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "exam_shelf": self.shelf_,
            "exam_card": self.card_,
            "exam_g_shelf": self._g_shelf,
            "exam_g_card": self._g_card,
        }

    @classmethod
    def from_arrays(cls, learning_rate: float, arrays: Mapping[str, np.ndarray]) -> Examination:
        e = cls(learning_rate)
        e.shelf_ = np.array(arrays["exam_shelf"], dtype=np.float64)
        e.card_ = np.array(arrays["exam_card"], dtype=np.float64)
        e._g_shelf = np.array(arrays["exam_g_shelf"], dtype=np.float64)
        e._g_card = np.array(arrays["exam_g_card"], dtype=np.float64)
        return e


@dataclass(frozen=True)
class TrainingRows:
    """What a reward model learns from: the rows of impressions with rewards, in order."""

    rows: FeatureRows
    reward: np.ndarray
    propensity: np.ndarray
    shelf_position: np.ndarray
    card_position: np.ndarray


class _CardTerms:
    """Cards' `FactorizationMachine.block_terms` for one model state, by row of one
    featurizer's card table (``known`` says which rows have been computed)."""

    def __init__(self, fm: FactorizationMachine, generation: int, table: CardTable):
        self.fm, self.generation, self.table = fm, generation, table
        self.known = np.zeros(0, dtype=bool)
        self.lin, self.s, self.q = np.zeros(0), np.zeros((0, fm.n_factors)), np.zeros(0)
        self.max = np.zeros(0, dtype=np.int64)

    def reserve(self, n: int) -> None:
        """Room for the table's first ``n`` cards (grown by doubling)."""
        have = len(self.known)
        if n > have:
            cap = max(2 * have, n, 256)
            self.known = np.concatenate([self.known, np.zeros(cap - have, dtype=bool)])
            self.lin = np.concatenate([self.lin, np.zeros(cap - have)])
            self.s = np.concatenate([self.s, np.zeros((cap - have, self.s.shape[1]))])
            self.q = np.concatenate([self.q, np.zeros(cap - have)])
            self.max = np.concatenate([self.max, np.zeros(cap - have, dtype=np.int64)])


@dataclass(eq=False)
class _ListenerTerms:
    """The part of a listener's card logits that no visit changes: for their candidate shelves
    and taste vector, every row's terms but the context block's (see `RewardModel.card_logits`)."""

    shelves: tuple[Shelf, ...]  # the candidates these terms are for (kept: ids stay unique)
    user_vector: np.ndarray | None
    base: np.ndarray  # (n,) w0 + the shelf, card and CF blocks' own terms
    rest: np.ndarray  # (n, k) the sum of those blocks' interaction vectors
    offsets: np.ndarray  # (n_shelves + 1,) each shelf's first row

    def matches(self, shelves: Sequence[Shelf], user_vector: np.ndarray | None) -> bool:
        if len(shelves) != len(self.shelves) or (user_vector is None) != (self.user_vector is None):
            return False
        if not all(a is b for a, b in zip(shelves, self.shelves, strict=True)):
            return False
        return user_vector is None or np.array_equal(user_vector, self.user_vector)


class RewardModel:
    """P(stream) of a card of a shelf in a slot for a context: BaRT's reward model.

    Parameters
    ----------
    featurizer : turns (context, shelf, card, slot) into features; a new one by default.
    propensity_weighting : weight each logged impression by 1 / propensity.
    max_weight : clip inverse-propensity weights at this value. The default, 2, keeps
        epsilon-greedy's rare exploratory rows (propensity ~0.01) from carrying half the
        weight of a batch: on the simulated home screen a clip of 10 cost epsilon-greedy's
        model and its stream rate on every world and seed measured (see the README).
    position_model : how the slot enters (see the module docstring): ``"examination"`` (a
        position-based click model, the default) or ``"logit"`` (an additive logit bias).
    examination_rate : AdaGrad step size of the examination curves (a few parameters that
        every row informs, so they need a larger step than the FM's many).
    **fm_params : passed to `FactorizationMachine`.
    """

    def __init__(
        self,
        featurizer: Featurizer | None = None,
        propensity_weighting: bool = True,
        max_weight: float = 2.0,
        position_model: str = "examination",
        examination_rate: float = 0.2,
        **fm_params: object,
    ):
        if not (isinstance(max_weight, int | float) and max_weight >= 1):
            raise BanditInputError(f"max_weight: must be a number >= 1, not {max_weight!r}")
        if position_model not in POSITION_MODELS:
            raise BanditInputError(
                f"position_model: must be one of {', '.join(POSITION_MODELS)}, not {position_model!r}"
            )
        self.featurizer = featurizer or Featurizer()
        self.propensity_weighting = bool(propensity_weighting)
        self.max_weight = float(max_weight)
        self.position_model = position_model
        self.fm = FactorizationMachine(**fm_params)  # type: ignore[arg-type]
        self.fm._init()
        self.examination = Examination(examination_rate)
        self.extra: dict[str, object] = {}  # metadata saved with the model (see `save`)
        self._terms: dict | None = None  # cards' logit terms kept between pages (`_card_terms`)
        # each listener's visit-free logit terms (`card_logits`), for one model generation
        self._listeners: dict[str, _ListenerTerms] = {}
        self._kept_rows = 0
        self._listeners_state: tuple[object, int] = (None, -1)

    @property
    def space(self) -> FeatureSpace:
        return self.featurizer.space

    def _linear_only(self) -> np.ndarray:
        return self.space.linear_only_mask()

    # -- scoring --------------------------------------------------------------------------
    def page_rows(
        self, context: Context, shelves: Sequence[Shelf]
    ) -> tuple[FeatureRows, np.ndarray]:
        """Slot-free rows for every card of every shelf, stacked, and each shelf's row offset."""
        parts = [self.featurizer.rows(context, s, s.cards) for s in shelves]
        offsets = np.cumsum([0] + [len(s.cards) for s in shelves])
        return FeatureRows.stack(parts), offsets

    def logits_from_rows(self, rows: FeatureRows) -> np.ndarray:
        return self.fm.decision_function(rows, self._linear_only())

    def page_blocks(self, context: Context, shelves: Sequence[Shelf]) -> PageBlocks:
        """`page_rows` as blocks (context and shelves once each), for `logits_from_blocks`."""
        return self.featurizer.page_blocks(context, shelves)

    def logits_from_blocks(self, blocks: PageBlocks) -> np.ndarray:
        return self.fm.page_logits(blocks, self._linear_only(), self._card_terms(blocks))

    def _card_terms(self, blocks: PageBlocks) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """The card block's `FactorizationMachine.block_terms` and its largest feature index,
        kept per card between pages for as long as the model's weights do not change (a
        served snapshot's model changes only by growing; a learning step drops what was kept)."""
        fm, lin = self.fm, self._linear_only()
        kept = self._terms
        if (kept is None or kept.fm is not fm or kept.generation != fm.generation_
                or kept.table is not blocks.table):  # fmt: skip
            kept = self._terms = _CardTerms(fm, fm.generation_, blocks.table)
        cards = blocks.cards
        kept.reserve(len(blocks.table))
        known = kept.known[cards]
        card_max = int(kept.max[cards[known]].max(initial=0))
        new = np.unique(cards[~known])
        new_rows = blocks.table.rows(new) if len(new) else None
        if new_rows is not None:
            card_max = max(card_max, int(new_rows.indices.max(initial=0)))
        fm._grow(blocks.max_index(card_max) + 1, lin)
        if kept.generation != fm.generation_:  # growing changed weights: start again
            self._terms = None
            return self._card_terms(blocks)
        if new_rows is not None:
            kept.lin[new], kept.s[new], kept.q[new] = fm.block_terms(new_rows)
            kept.max[new] = new_rows.indices.max(axis=1, initial=0)
            kept.known[new] = True
        return kept.lin[cards], kept.s[cards], kept.q[cards], card_max

    def card_logits(self, context: Context, shelves: Sequence[Shelf]) -> list[np.ndarray]:
        """Slot-free logits of each shelf's cards (one array per shelf): the ranking score.
        The same as `logits_from_rows` of `page_rows`, computed block by block.

        Only the context block changes between a listener's visits (the hour, the device),
        and with ``s`` the sum of the other blocks' interaction vectors a row's logit is
        ``base + l_c + (|s_c|^2 - q_c) / 2 + <s_c, s>`` (`FactorizationMachine.page_logits`
        with the square expanded). So ``base`` and ``s`` are kept per listener for as long
        as the model's weights and the listener's shelves do not change (a served snapshot:
        a learning step drops them all), and a page costs one context encoding and one
        (cards x factors) product instead of gathering and scoring every card."""
        fm = self.fm
        if self._listeners_state != (fm, fm.generation_):
            self._forget_listeners()
        kept = self._listeners.get(context.user_id)
        if kept is None or not kept.matches(shelves, context.user_vector):
            kept = self._keep_listener(context, shelves)
        ci, cv = self.featurizer.encode_context(context)
        fm._grow(int(ci.max(initial=0)) + 1, self._linear_only())  # a device never seen
        if self._listeners_state != (fm, fm.generation_):  # growing changed weights
            return self.card_logits(context, shelves)
        l_c, s_c, q_c = fm.block_terms(FeatureRows(ci[None, :], cv[None, :]))
        z = kept.base + (l_c[0] + 0.5 * (s_c[0] @ s_c[0] - q_c[0])) + kept.rest @ s_c[0]
        o = kept.offsets
        return [z[o[i] : o[i + 1]] for i in range(len(shelves))]

    # Listeners whose terms are kept at most (their cards' rows in all: 2 million rows of 8
    # factors is some 150 MB); the longest kept make way first.
    MAX_KEPT_ROWS = 2_000_000

    def _keep_listener(self, context: Context, shelves: Sequence[Shelf]) -> _ListenerTerms:
        blocks = self.page_blocks(context, shelves)
        fm = self.fm
        l_k, s_k, q_k, _ = self._card_terms(blocks)  # grows the model to cover every block
        l_s, s_s, q_s = fm.block_terms(blocks.shelves)
        l_f, s_f, q_f = fm.block_terms(blocks.cf)
        of = blocks.shelf_of
        rest = s_s[of] + s_k + s_f
        base = (
            fm.w0_ + l_s[of] + l_k + l_f + 0.5 * ((rest * rest).sum(axis=1) - q_s[of] - q_k - q_f)
        )
        uv = context.user_vector
        kept = _ListenerTerms(
            tuple(shelves), None if uv is None else uv.copy(), base, rest, blocks.offsets
        )
        if self._listeners_state != (fm, fm.generation_):
            self._forget_listeners()
        listeners = self._listeners
        old = listeners.pop(context.user_id, None)
        self._kept_rows -= 0 if old is None else len(old.base)
        while listeners and self._kept_rows + len(base) > self.MAX_KEPT_ROWS:
            self._kept_rows -= len(listeners.pop(next(iter(listeners))).base)
        listeners[context.user_id] = kept
        self._kept_rows += len(base)
        return kept

    def _forget_listeners(self) -> None:
        self._listeners.clear()
        self._kept_rows = 0
        # the model they were computed with (a loaded model replaces `fm`) and its generation
        self._listeners_state = (self.fm, self.fm.generation_)

    def at_slot(self, logits: np.ndarray, shelf_position: int, card_position: int) -> np.ndarray:
        """P(stream) of cards with these slot-free ``logits`` shown at one slot."""
        z = np.asarray(logits, dtype=np.float64)
        if self.position_model == "logit":
            rows = self.featurizer.slot_rows([(shelf_position, card_position)])
            self.fm._grow(int(rows.indices.max(initial=0)) + 1, self._linear_only())
            return _sigmoid(z + float(self.fm.w_[rows.indices[0]].sum()))
        log_e = self.examination.log_probability(
            np.array([shelf_position]), np.array([card_position])
        )
        return np.exp(log_e[0]) * _sigmoid(z)

    def predict_proba(
        self,
        context: Context,
        shelf: Shelf,
        cards: Sequence[Card],
        slots: Sequence[tuple[int, int]],
    ) -> np.ndarray:
        """P(stream) of each card shown at its slot, shape (len(cards),)."""
        if self.position_model == "logit":
            rows = self.featurizer.rows(context, shelf, cards, slots)
            return self.fm.predict_proba(rows, self._linear_only())
        if len(slots) != len(cards):
            raise BanditInputError(f"slots: {len(slots)} given for {len(cards)} cards")
        z = self.fm.decision_function(
            self.featurizer.rows(context, shelf, cards), self._linear_only()
        )
        j, l_ = (np.array([s[k] for s in slots], dtype=np.int64) for k in (0, 1))
        return np.exp(self.examination.log_probability(j, l_)) * _sigmoid(z)

    # -- learning -------------------------------------------------------------------------
    def training_rows(self, impressions: Sequence[Impression]) -> TrainingRows:
        """The impressions that have a reward, in order: their rows (with slot features under
        the ``logit`` position model, slot-free under ``examination``), rewards, propensities
        and slots."""
        done = [im for im in impressions if im.reward is not None]
        with_slots = self.position_model == "logit"
        groups: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(done):  # one featurizer call per (context, shelf)
            groups.setdefault((id(im.context), id(im.shelf)), []).append(i)
        parts, order = [], []
        for members in groups.values():
            first = done[members[0]]
            parts.append(
                self.featurizer.rows(
                    first.context,
                    first.shelf,
                    [done[i].card for i in members],
                    [(done[i].shelf_position, done[i].card_position) for i in members]
                    if with_slots
                    else None,
                )
            )
            order.extend(members)
        rows = (
            FeatureRows.stack(parts).take(np.argsort(order))
            if parts
            else FeatureRows(np.zeros((0, 1), dtype=np.int64), np.zeros((0, 1)))
        )
        return TrainingRows(
            rows,
            np.array([float(im.reward) for im in done]),  # type: ignore[arg-type]
            np.array([im.propensity for im in done]),
            np.array([im.shelf_position for im in done], dtype=np.int64),
            np.array([im.card_position for im in done], dtype=np.int64),
        )

    def weights(self, propensity: np.ndarray) -> np.ndarray:
        if not self.propensity_weighting or len(propensity) == 0:
            return np.ones(len(propensity))
        w = np.minimum(1.0 / propensity, self.max_weight)
        return w / w.mean()

    def update(
        self, impressions: Sequence[Impression], extra_weight: np.ndarray | None = None
    ) -> RewardModel:
        """One online step on impressions with rewards (a micro-batch). Returns self.

        ``extra_weight`` (one per rewarded impression) multiplies the inverse-propensity
        weights (Thompson sampling's bootstrap weights).
        """
        t = self.training_rows(impressions)
        if len(t.reward) == 0:
            return self
        w = self.weights(t.propensity)
        if extra_weight is not None:
            w = w * extra_weight[: len(w)]
        y = np.clip(t.reward, 0.0, 1.0)
        if self.position_model == "logit":
            self.fm.partial_fit(t.rows, y, w, self._linear_only())
            return self
        # P(stream) = e * sigmoid(z); L = -w [y log p + (1 - y) log(1 - p)]
        z = self.fm.decision_function(t.rows, self._linear_only())
        log_e = self.examination.log_probability(t.shelf_position, t.card_position)
        looked = _sigmoid(z)
        p = np.minimum(np.exp(log_e) * looked, 1.0 - 1e-6)
        d_log_p = w * ((1.0 - y) * p / (1.0 - p) - y)
        self.examination.step(t.shelf_position, t.card_position, d_log_p)
        self.fm.step(t.rows, d_log_p * (1.0 - looked), self._linear_only())
        return self

    # -- saving ---------------------------------------------------------------------------
    def save(self, path: str | Path, extra: Mapping[str, object] | None = None) -> None:
        """Save as ``.npz`` (arrays) with JSON metadata inside; loads without pickle.

        ``extra`` (JSON values) is kept in the metadata and comes back as ``extra`` on `load`
        (e.g. the serving policy's version). The file is replaced atomically: a reader never
        sees half a model.
        """
        write_npz(path, *self.state(extra))

    def state(
        self, extra: Mapping[str, object] | None = None
    ) -> tuple[dict[str, object], dict[str, np.ndarray]]:
        """What `save` writes: the JSON metadata and the arrays (see `from_state`)."""
        meta = {
            "format_version": FORMAT_VERSION,
            "kind": "deepcuts.bandit.RewardModel",
            "fm_params": self.fm.get_params(),
            "propensity_weighting": self.propensity_weighting,
            "max_weight": self.max_weight,
            "position_model": self.position_model,
            "examination_rate": self.examination.learning_rate,
            "featurizer": {
                "user_ids": self.featurizer.user_ids,
                "item_ids": self.featurizer.item_ids,
                "vectors": self.featurizer.vectors,
                "hour_bucket": self.featurizer.hour_bucket,
            },
            "names": self.space.names,
            "linear_only": self.space.linear_only,
            "extra": dict(extra if extra is not None else self.extra),
        }
        return meta, {**self.fm.arrays(), **self.examination.arrays()}

    @classmethod
    def load(cls, path: str | Path) -> RewardModel:
        with np.load(Path(path), allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {k: data[k] for k in data.files if k != "meta"}
        return cls.from_state(meta, arrays, where=str(path))

    @classmethod
    def from_state(
        cls,
        meta: Mapping[str, object],
        arrays: Mapping[str, np.ndarray],
        featurizer: Featurizer | None = None,
        where: str = "state",
    ) -> RewardModel:
        """The model `state` describes. ``featurizer``, where given, is used (shared) instead
        of a new one from the metadata: it must have the feature space the model was saved
        with (models saved together from one shared featurizer)."""
        if (
            meta.get("format_version") != FORMAT_VERSION
            or meta.get("kind") != "deepcuts.bandit.RewardModel"
        ):
            raise BanditInputError(
                f"path: {where} is not a deepcuts reward model of format {FORMAT_VERSION}"
            )
        if featurizer is None:
            space = FeatureSpace(meta["names"][1:], meta["linear_only"][1:])  # type: ignore[index]
            featurizer = Featurizer(space=space, **meta["featurizer"])  # type: ignore[arg-type]
        model = cls(
            featurizer,
            propensity_weighting=meta["propensity_weighting"],  # type: ignore[arg-type]
            max_weight=meta["max_weight"],  # type: ignore[arg-type]
            # models saved before the examination model had an additive logit bias
            position_model=meta.get("position_model", "logit"),  # type: ignore[arg-type]
            examination_rate=meta.get("examination_rate", 0.2),  # type: ignore[arg-type]
            **meta["fm_params"],  # type: ignore[arg-type]
        )
        model.fm = FactorizationMachine.from_arrays(meta["fm_params"], arrays)  # type: ignore[arg-type]
        if "exam_shelf" in arrays:
            model.examination = Examination.from_arrays(model.examination.learning_rate, arrays)
        model.extra = dict(meta.get("extra") or {})  # type: ignore[call-overload]
        return model


def write_npz(
    path: str | Path, meta: Mapping[str, object], arrays: Mapping[str, np.ndarray]
) -> None:
    """Write JSON ``meta`` and ``arrays`` as one ``.npz``, replacing ``path`` atomically (a
    reader sees the old file or the new one, never half of one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, meta=np.array(json.dumps(meta)), **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

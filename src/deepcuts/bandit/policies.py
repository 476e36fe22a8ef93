"""Policies that assemble a home page: which shelves, in which order, and each shelf's cards.

Every policy keeps one interface (in the manner of the Open Bandit Pipeline):

- `Policy.select_page(context, shelves, layout)` serves a page and returns it with one
  `Impression` per shown card, each with exact propensities (see ``types``);
  `Policy.serve_page` serves the same page without making its impressions (a `ServedPage`:
  the draw and an impression id per card), which is all the live service logs and answers;
- `Policy.page_probabilities(context, shelves, layout)` gives the probability of every
  candidate at every position without drawing: what off-policy evaluation needs of a target;
- `Policy.select_action(context, actions)` chooses one (shelf, card) pair for a single slot;
- `Policy.update_params(impressions)` learns from impressions whose rewards are known (a
  micro-batch); a page served afterwards reflects it.

A page is built by two rankings with independent randomness: the shelves, scored by the mean
slot-free score of the cards each would show, then the cards of each shown shelf. Each ranking
fills its positions one at a time without replacement.

The policies:

- `EpsilonGreedy` (the default, as in BaRT: McInerney et al., "Explore, Exploit, and Explain:
  Personalizing Explainable Recommendations with Bandits", RecSys 2018): at each position the
  best remaining candidate by the factorization-machine reward model with probability
  1 - epsilon, a uniformly random remaining one otherwise; propensities are exact.
- `Greedy`: epsilon = 0, a baseline without exploration.
- `UniformRandom`: random shelf and card order, the logging policy for unbiased evaluation.
- `ThompsonSampling`: bootstrap Thompson sampling (Eckles & Kaptein, "Thompson sampling with the
  online bootstrap", 2014): M reward models each trained on Poisson(1)-reweighted feedback;
  each ranking follows one member drawn uniformly, so propensities are exact averages over M.
- `LinUCB`: disjoint-free (shared) LinUCB (Li et al., "A contextual-bandit approach to
  personalized news article recommendation", WWW 2010) over hashed features and the outer
  product of user and card vectors; deterministic, so every propensity is 1.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np

from deepcuts.bandit import ranking
from deepcuts.bandit.features import Featurizer
from deepcuts.bandit.reward import RewardModel
from deepcuts.bandit.types import (
    BanditInputError,
    Card,
    Context,
    Impression,
    Page,
    PageDraw,
    PageLayout,
    ServedPage,
    Shelf,
    check_propensities,
    new_id,
    new_ids,
)

Scores = np.ndarray  # (n,) for single-model policies, (M, n) for ensembles


@dataclass(frozen=True)
class PageProbabilities:
    """Position probabilities of a page's candidates under a policy.

    ``shelves`` has shape (K_s, n_shelves): P(shelf s at shelf position j). ``cards[s]`` has
    shape (K_c(s), len(shelves[s].cards)): P(card c at card position l | shelf s is shown).
    A slot's joint probability is their product (the two rankings are independent).
    """

    shelves: np.ndarray
    cards: tuple[np.ndarray, ...]

    def slot(self, shelf: int, card: int, shelf_position: int, card_position: int) -> float:
        ps = self.shelves[shelf_position, shelf] if shelf_position < self.shelves.shape[0] else 0.0
        pc = self.cards[shelf]
        pcl = pc[card_position, card] if card_position < pc.shape[0] else 0.0
        return float(ps * pcl)


def _check_shelves(shelves: Sequence[Shelf]) -> None:
    if len(shelves) == 0:
        raise BanditInputError("shelves: a page needs at least one candidate shelf")
    if not all(isinstance(s, Shelf) for s in shelves):
        raise BanditInputError("shelves: must all be Shelf objects")
    ids = [s.shelf_id for s in shelves]
    if len(set(ids)) != len(ids):
        raise BanditInputError("shelves: two candidate shelves have the same shelf_id")


def _check_context(context: Context) -> None:
    if not isinstance(context, Context):
        raise BanditInputError(f"context: must be a Context, not {type(context).__name__}")


@dataclass(eq=False)
class Policy(ABC):
    """Base class: page assembly and logging; subclasses say how to score and randomise.

    Parameters
    ----------
    random_state : seed of the policy's own random draws (and of its models).
    """

    policy_id: ClassVar[str] = "policy"
    random_state: int | None = None
    n_updates_: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.random_state is not None and not isinstance(self.random_state, int | np.integer):
            raise BanditInputError(
                f"random_state: must be an integer or None, not {self.random_state!r}"
            )
        self._rng = np.random.default_rng(self.random_state)

    @property
    def version(self) -> str:
        """How many feedback batches this policy has learned from."""
        return str(self.n_updates_)

    # -- what subclasses provide ---------------------------------------------------------
    @abstractmethod
    def card_scores(self, context: Context, shelves: Sequence[Shelf]) -> list[Scores]:
        """Slot-free scores of each shelf's cards: (n_cards,) or (M, n_cards) per shelf."""

    @abstractmethod
    def marginals(self, scores: Scores, n_positions: int) -> np.ndarray:
        """P(candidate a at position k), shape (n_positions, n), for one ranking."""

    @abstractmethod
    def sample(
        self, scores: Scores, n_positions: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw one ranking: (chosen indices (K,), P(each draw | earlier ones) (K,))."""

    def update_params(self, impressions: Sequence[Impression]) -> Policy:
        """Learn from impressions with known rewards (others are ignored). Returns self."""
        self.n_updates_ += 1
        return self

    def rank(
        self, scores: Scores, n_positions: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`marginals` and a `sample` of one ranking: (marginals, chosen, conditional)."""
        return self.marginals(scores, n_positions), *self.sample(scores, n_positions, rng)

    # -- shared ---------------------------------------------------------------------------
    @staticmethod
    def shelf_scores(card_scores: list[Scores], n_cards: int) -> Scores:
        """A shelf's score: the mean score of the (up to) n_cards best cards it would show."""
        # One sort for every shelf: the scores side by side, padded below any real score.
        sizes = np.array([s.shape[-1] for s in card_scores])
        lead = card_scores[0].shape[:-1]  # (M,) for an ensemble's members
        side = np.full((*lead, len(card_scores), int(sizes.max())), -np.inf)
        for j, s in enumerate(card_scores):
            side[..., j, : s.shape[-1]] = s
        top = -np.sort(-side, axis=-1)[..., :n_cards]
        k = np.minimum(n_cards, sizes)
        shown = np.arange(top.shape[-1]) < k[:, None]  # each shelf's k best, pads left out
        return np.where(shown, top, 0.0).sum(axis=-1) / k

    def page_probabilities(
        self, context: Context, shelves: Sequence[Shelf], layout: PageLayout
    ) -> PageProbabilities:
        """Exact position probabilities of every candidate shelf and card (no draw)."""
        _check_context(context)
        _check_shelves(shelves)
        cs = self.card_scores(context, shelves)
        p_shelves = self.marginals(
            self.shelf_scores(cs, layout.n_cards), min(layout.n_shelves, len(shelves))
        )
        p_cards = tuple(self.marginals(s, min(layout.n_cards, s.shape[-1])) for s in cs)
        return PageProbabilities(p_shelves, p_cards)

    def draw_page(self, card_scores: list[Scores], layout: PageLayout) -> PageDraw:
        """Rank the shelves by `shelf_scores`, then each shown shelf's cards, each ranking
        with the policy's own randomness; every number as a Python number (a served page
        makes its twenty impressions from them, in the request)."""
        shelf_scores = self.shelf_scores(card_scores, layout.n_cards)
        k_s = min(layout.n_shelves, len(card_scores))
        p_sh, chosen_sh, cond_sh = self.rank(shelf_scores, k_s, self._rng)
        cards, card_propensity, card_given_earlier = [], [], []
        for s_idx in chosen_sh.tolist():
            scores = card_scores[s_idx]
            k_c = min(layout.n_cards, scores.shape[-1])
            p_c, chosen_c, cond_c = self.rank(scores, k_c, self._rng)
            cards.append(chosen_c.tolist())
            card_propensity.append(p_c[np.arange(k_c), chosen_c].tolist())
            card_given_earlier.append(cond_c.tolist())
        return PageDraw(
            chosen_sh.tolist(), p_sh[np.arange(k_s), chosen_sh].tolist(), cond_sh.tolist(),
            cards, card_propensity, card_given_earlier,
        )  # fmt: skip

    def serve_page(
        self,
        context: Context,
        shelves: Sequence[Shelf],
        layout: PageLayout | None = None,
        *,
        page_id: str | None = None,
        served_at: datetime | None = None,
    ) -> ServedPage:
        """Serve a page: rank the shelves, then each shown shelf's cards (`draw_page`), and
        give every card shown an impression id. What the service logs and answers is made
        from this directly; `select_page` makes its impressions."""
        _check_context(context)
        _check_shelves(shelves)
        layout = layout or PageLayout()
        drawn = self.draw_page(self.card_scores(context, shelves), layout)
        # every propensity in (0, 1], as `Impression` requires (products of these are too)
        check_propensities("shelf_propensity", drawn.shelf_propensity)
        check_propensities("propensity_given_earlier", drawn.shelf_given_earlier)
        for p_cards, p_given in zip(drawn.card_propensity, drawn.card_given_earlier, strict=True):
            check_propensities("card_propensity", p_cards)
            check_propensities("propensity_given_earlier", p_given)
        return ServedPage(
            page_id or new_id(), context, served_at or datetime.now(UTC), self.policy_id,
            self.version, shelves, drawn, new_ids(sum(len(order) for order in drawn.cards)),
        )  # fmt: skip

    def select_page(
        self,
        context: Context,
        shelves: Sequence[Shelf],
        layout: PageLayout | None = None,
        *,
        page_id: str | None = None,
        served_at: datetime | None = None,
    ) -> Page:
        """Serve a page (`serve_page`) with one `Impression` per card shown."""
        return self.serve_page(
            context, shelves, layout, page_id=page_id, served_at=served_at
        ).page()

    def action_probabilities(
        self, context: Context, actions: Sequence[tuple[Shelf, Card]]
    ) -> np.ndarray:
        """P(choosing each (shelf, card) pair for a single slot), shape (len(actions),)."""
        _check_context(context)
        scores = self._action_scores(context, actions)
        return self.marginals(scores, 1)[0]

    def select_action(
        self, context: Context, actions: Sequence[tuple[Shelf, Card]]
    ) -> tuple[int, float]:
        """Choose one (shelf, card) pair for a single slot: (its index, its propensity)."""
        _check_context(context)
        scores = self._action_scores(context, actions)
        chosen, cond = self.sample(scores, 1, self._rng)
        return int(chosen[0]), float(cond[0])

    def _action_scores(self, context: Context, actions: Sequence[tuple[Shelf, Card]]) -> Scores:
        if len(actions) == 0:
            raise BanditInputError("actions: need at least one (shelf, card) pair")
        singles = []
        for i, pair in enumerate(actions):
            if not (
                isinstance(pair, tuple)
                and len(pair) == 2
                and isinstance(pair[0], Shelf)
                and isinstance(pair[1], Card)
            ):
                raise BanditInputError(f"actions: item {i} is not a (Shelf, Card) pair")
            shelf, card = pair
            singles.append(Shelf(f"{shelf.shelf_id}#{i}", shelf.shelf_type, shelf.title, (card,)))
        return np.concatenate(self.card_scores(context, singles), axis=-1)

    def describe(self) -> dict[str, Any]:
        return {"policy_id": self.policy_id, "version": self.version}


# -- epsilon-greedy family ------------------------------------------------------------------
def _new_reward_model(
    random_state: int | None, featurizer: Featurizer | None = None, **params: Any
) -> RewardModel:
    return RewardModel(featurizer, random_state=random_state, **params)


@dataclass(eq=False)
class EpsilonGreedy(Policy):
    """BaRT's epsilon-greedy over a factorization-machine reward model.

    Parameters
    ----------
    epsilon : exploration probability at each position, in [0, 1].
    reward_model : the model whose slot-free logit ranks cards; a new `RewardModel` by default.
    reward_params : arguments for the default reward model (n_factors, learning_rate, ...).
    epsilon_decay : None (the default) for a constant epsilon; otherwise a number of feedback
        batches h: after n batches the policy explores with epsilon / (1 + n / h), so it
        halves after h batches (a page each in the simulator). Propensities use the epsilon
        in force when the page is served (`current_epsilon`).
    """

    policy_id: ClassVar[str] = "epsilon-greedy"
    epsilon: float = 0.1
    reward_model: RewardModel | None = None
    reward_params: dict = field(default_factory=dict)
    epsilon_decay: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.epsilon, int | float) and 0.0 <= self.epsilon <= 1.0):
            raise BanditInputError(f"epsilon: must be in [0, 1], not {self.epsilon!r}")
        if self.epsilon_decay is not None and not (
            isinstance(self.epsilon_decay, int | float) and self.epsilon_decay > 0
        ):
            raise BanditInputError(
                f"epsilon_decay: must be a positive number of batches or None, not {self.epsilon_decay!r}"
            )
        if self.reward_model is None:
            self.reward_model = _new_reward_model(self.random_state, **self.reward_params)
        elif not isinstance(self.reward_model, RewardModel):
            raise BanditInputError(
                f"reward_model: must be a RewardModel, not {type(self.reward_model).__name__}"
            )

    def card_scores(self, context: Context, shelves: Sequence[Shelf]) -> list[Scores]:
        return self.reward_model.card_logits(context, shelves)  # type: ignore[union-attr]

    @property
    def current_epsilon(self) -> float:
        """The exploration probability now (``epsilon``, decayed if ``epsilon_decay`` is set)."""
        if self.epsilon_decay is None:
            return self.epsilon
        return self.epsilon / (1.0 + self.n_updates_ / self.epsilon_decay)

    def marginals(self, scores: Scores, n_positions: int) -> np.ndarray:
        return ranking.epsilon_greedy_marginals(scores, n_positions, self.current_epsilon)

    def sample(
        self, scores: Scores, n_positions: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        return ranking.sample_epsilon_greedy(scores, n_positions, self.current_epsilon, rng)

    def rank(
        self, scores: Scores, n_positions: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        order = ranking.greedy_order(scores)  # once for both (a served page ranks five times)
        eps = self.current_epsilon
        marginals = ranking.epsilon_greedy_marginals(scores, n_positions, eps, order)
        return marginals, *ranking.sample_epsilon_greedy(scores, n_positions, eps, rng, order)

    def draw_page(self, card_scores: list[Scores], layout: PageLayout) -> PageDraw:
        """`Policy.draw_page` in plain Python (`ranking.draw_epsilon_greedy`): the same draws
        and the same numbers at about half the cost (53 against 96 us a page of bench_serve's
        world), a page's rankings being a dozen shelves and a few cards each, where NumPy's
        cost a call is most of the work."""
        eps, rng, n_cards = self.current_epsilon, self._rng, layout.n_cards
        lists = [scores.tolist() for scores in card_scores]
        if not all(map(math.isfinite, itertools.chain.from_iterable(lists))):
            raise BanditInputError("scores: has non-finite values")  # as `greedy_order` says
        # `shelf_scores`: the mean of each shelf's n_cards best, summed in the same order
        tops = [sorted(scores, reverse=True)[:n_cards] for scores in lists]
        shelf_scores = [sum(top) / len(top) for top in tops]
        k_s = min(layout.n_shelves, len(lists))
        shelves, p_sh, cond_sh = ranking.draw_epsilon_greedy(shelf_scores, k_s, eps, rng)
        cards, card_propensity, card_given_earlier = [], [], []
        for s_idx in shelves:
            scores = lists[s_idx]
            chosen, p_c, cond_c = ranking.draw_epsilon_greedy(
                scores, min(n_cards, len(scores)), eps, rng
            )
            cards.append(chosen)
            card_propensity.append(p_c)
            card_given_earlier.append(cond_c)
        return PageDraw(shelves, p_sh, cond_sh, cards, card_propensity, card_given_earlier)

    def update_params(self, impressions: Sequence[Impression]) -> Policy:
        self.reward_model.update(impressions)  # type: ignore[union-attr]
        return super().update_params(impressions)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "epsilon": self.epsilon,
            **(
                {"epsilon_decay": self.epsilon_decay, "current_epsilon": self.current_epsilon}
                if self.epsilon_decay is not None
                else {}
            ),
            "position_model": self.reward_model.position_model,  # type: ignore[union-attr]
        }


@dataclass(eq=False)
class Greedy(EpsilonGreedy):
    """Always the best remaining candidate by the reward model: no exploration (a baseline)."""

    policy_id: ClassVar[str] = "greedy"
    epsilon: float = 0.0

    def __post_init__(self) -> None:
        if self.epsilon != 0.0:
            raise BanditInputError(
                f"epsilon: Greedy never explores, epsilon must be 0, not {self.epsilon!r}"
            )
        super().__post_init__()


@dataclass(eq=False)
class UniformRandom(Policy):
    """Shelves and cards in uniformly random order (every ranking equally likely)."""

    policy_id: ClassVar[str] = "uniform"

    def card_scores(self, context: Context, shelves: Sequence[Shelf]) -> list[Scores]:
        return [np.zeros(len(s.cards)) for s in shelves]

    def marginals(self, scores: Scores, n_positions: int) -> np.ndarray:
        n = scores.shape[-1]
        if not 1 <= n_positions <= n:
            raise BanditInputError(
                f"n_positions: must be between 1 and the {n} candidates, not {n_positions!r}"
            )
        return np.full((n_positions, n), 1.0 / n)

    def sample(
        self, scores: Scores, n_positions: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        n = scores.shape[-1]
        chosen = rng.permutation(n)[:n_positions]
        return chosen, 1.0 / (n - np.arange(n_positions))


# -- Thompson sampling ----------------------------------------------------------------------
@dataclass(eq=False)
class ThompsonSampling(Policy):
    """Bootstrap Thompson sampling over an ensemble of factorization-machine reward models.

    Parameters
    ----------
    n_members : M, the ensemble size; each ranking follows one member drawn uniformly.
    reward_params : arguments for each member's `RewardModel`.
    """

    policy_id: ClassVar[str] = "thompson"
    n_members: int = 8
    reward_params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.n_members, int) or self.n_members < 1:
            raise BanditInputError(f"n_members: must be a positive integer, not {self.n_members!r}")
        featurizer = Featurizer()
        seeds = np.random.SeedSequence(self.random_state).spawn(self.n_members)
        self.members = [
            _new_reward_model(int(s.generate_state(1)[0]), featurizer, **self.reward_params)
            for s in seeds
        ]

    def card_scores(self, context: Context, shelves: Sequence[Shelf]) -> list[Scores]:
        blocks = self.members[0].page_blocks(context, shelves)
        z = np.stack([m.logits_from_blocks(blocks) for m in self.members])  # (M, N)
        o = blocks.offsets
        return [z[:, o[i] : o[i + 1]] for i in range(len(shelves))]

    def marginals(self, scores: Scores, n_positions: int) -> np.ndarray:
        return ranking.ensemble_marginals(scores, n_positions)

    def sample(
        self, scores: Scores, n_positions: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        return ranking.sample_ensemble(scores, n_positions, rng)

    def update_params(self, impressions: Sequence[Impression]) -> Policy:
        n = sum(im.reward is not None for im in impressions)
        for m in self.members:
            m.update(impressions, extra_weight=self._rng.poisson(1.0, n).astype(np.float64))
        return super().update_params(impressions)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "n_members": self.n_members,
            "position_model": self.members[0].position_model,
        }


# -- LinUCB ---------------------------------------------------------------------------------
@dataclass(eq=False)
class LinUCB(Policy):
    """LinUCB with one shared linear model over fixed-size features of (context, shelf, card).

    Parameters
    ----------
    alpha : width of the upper confidence bound.
    ridge : the ridge penalty (A starts as ridge * I).
    n_buckets : hashed categorical features (shelf type, device, ... and ids).
    """

    policy_id: ClassVar[str] = "linucb"
    alpha: float = 0.5
    ridge: float = 1.0
    n_buckets: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (
            isinstance(self.alpha, int | float) and math.isfinite(self.alpha) and self.alpha >= 0
        ):
            raise BanditInputError(f"alpha: must be a non-negative number, not {self.alpha!r}")
        if not (isinstance(self.ridge, int | float) and self.ridge > 0):
            raise BanditInputError(f"ridge: must be a positive number, not {self.ridge!r}")
        if not isinstance(self.n_buckets, int) or self.n_buckets < 1:
            raise BanditInputError(f"n_buckets: must be a positive integer, not {self.n_buckets!r}")
        self.featurizer = Featurizer()
        self.A_inv_: np.ndarray | None = None
        self.b_: np.ndarray | None = None

    def _phi(self, context: Context, shelf: Shelf, cards: Sequence[Card]) -> np.ndarray:
        rows = self.featurizer.rows(context, shelf, cards)
        phi = self.featurizer.dense(rows, context, cards, self.n_buckets)
        if self.A_inv_ is None:
            d = phi.shape[1]
            self.A_inv_ = np.eye(d) / self.ridge
            self.b_ = np.zeros(d)
        d = self.A_inv_.shape[0]
        if phi.shape[1] != d:  # vectors missing on some cards: pad or cut to the model's size
            phi = np.pad(phi, ((0, 0), (0, max(0, d - phi.shape[1]))))[:, :d]
        return phi

    def card_scores(self, context: Context, shelves: Sequence[Shelf]) -> list[Scores]:
        out = []
        for s in shelves:
            phi = self._phi(context, s, s.cards)
            theta = self.A_inv_ @ self.b_  # type: ignore[operator]
            width = np.sqrt(np.maximum(np.einsum("nd,de,ne->n", phi, self.A_inv_, phi), 0.0))
            out.append(phi @ theta + self.alpha * width)
        return out

    def marginals(self, scores: Scores, n_positions: int) -> np.ndarray:
        return ranking.epsilon_greedy_marginals(scores, n_positions, 0.0)

    def sample(
        self, scores: Scores, n_positions: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        return ranking.sample_epsilon_greedy(scores, n_positions, 0.0, rng)

    def update_params(self, impressions: Sequence[Impression]) -> Policy:
        for im in impressions:
            if im.reward is None:
                continue
            x = self._phi(im.context, im.shelf, [im.card])[0]
            Ax = self.A_inv_ @ x  # type: ignore[operator]
            self.A_inv_ -= np.outer(Ax, Ax) / (1.0 + x @ Ax)  # Sherman-Morrison
            self.b_ += float(im.reward) * x  # type: ignore[operator]
        return super().update_params(impressions)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "alpha": self.alpha}


POLICIES: dict[str, type[Policy]] = {
    p.policy_id: p for p in (EpsilonGreedy, Greedy, UniformRandom, ThompsonSampling, LinUCB)
}


def make_policy(name: str, random_state: int | None = None, **params: Any) -> Policy:
    """A policy by its id (``epsilon-greedy``, ``greedy``, ``uniform``, ``thompson``, ``linucb``)."""
    cls = POLICIES.get(name)
    if cls is None:
        raise BanditInputError(f"policy: unknown policy {name!r}; known: {', '.join(POLICIES)}")
    try:
        return cls(random_state=random_state, **params)
    except TypeError as exc:
        raise BanditInputError(f"policy: {name} does not take these parameters ({exc})") from exc

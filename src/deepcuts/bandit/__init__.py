"""The home screen's contextual bandit, as Spotify's BaRT: explore, exploit, explain.

Siblings joined by one logged-feedback record (`Impression`, columnar `LoggedFeedback`):

- ``types``: contexts, cards, shelves (a shelf's title is the explanation), pages, impressions,
  and `ShelfSource`, the interface a shelf generator implements;
- ``reward``: the factorization-machine reward model and the success rule (a stream >= 30 s);
- ``policies``: epsilon-greedy (default), greedy, uniform random, Thompson sampling, LinUCB;
  each serves pages with exact propensities and learns from rewards;
- ``estimators``: IPS, SNIPS and doubly robust off-policy estimates with 95% intervals;
- ``feedback`` / ``impressions``: logged tables (Parquet, CSV) and the store's impressions;
- ``ope``: evaluating a named policy or a target column on a log (``deepcuts ope``);
The simulated home screen and the policy runs against it (``deepcuts simulate-home``) live beside
the other simulators, in ``deepcuts.simulate.home``: it imports this package, never the reverse.
"""

from deepcuts.bandit.estimators import (
    ESTIMATORS,
    DoublyRobust,
    Interval,
    InverseProbabilityWeighting,
    OffPolicyEstimator,
    SelfNormalizedInverseProbabilityWeighting,
)
from deepcuts.bandit.feedback import LogColumns, LoggedFeedback, from_impressions, read_logged_table
from deepcuts.bandit.policies import (
    POLICIES,
    EpsilonGreedy,
    Greedy,
    LinUCB,
    PageProbabilities,
    Policy,
    ThompsonSampling,
    UniformRandom,
    make_policy,
)
from deepcuts.bandit.reward import FactorizationMachine, RewardModel, SuccessRule
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
    ShelfSource,
    gather_shelves,
)

__all__ = [
    "ESTIMATORS",
    "POLICIES",
    "BanditInputError",
    "Card",
    "Context",
    "DoublyRobust",
    "EpsilonGreedy",
    "FactorizationMachine",
    "Greedy",
    "Impression",
    "InverseProbabilityWeighting",
    "Interval",
    "LinUCB",
    "LogColumns",
    "LoggedFeedback",
    "OffPolicyEstimator",
    "Page",
    "PageDraw",
    "PageLayout",
    "PageProbabilities",
    "Policy",
    "RewardModel",
    "SelfNormalizedInverseProbabilityWeighting",
    "ServedPage",
    "Shelf",
    "ShelfSource",
    "SuccessRule",
    "ThompsonSampling",
    "UniformRandom",
    "from_impressions",
    "gather_shelves",
    "make_policy",
    "read_logged_table",
]

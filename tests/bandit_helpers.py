"""Small hand-built home pages for the bandit tests."""

from __future__ import annotations

import zlib
from collections import Counter

import numpy as np

from deepcuts.bandit import Card, Context, Shelf


def context(user: str = "u1", **kw) -> Context:
    rng = np.random.default_rng(zlib.crc32(user.encode()))
    return Context(
        user, hour=20, weekday=4, device="ios", country="SE", user_vector=rng.normal(size=4), **kw
    )


def shelves(n_shelves: int = 3, n_cards: int = 4, seed: int = 0) -> list[Shelf]:
    """``n_shelves`` shelves of ``n_cards`` distinct track cards with 4-d vectors."""
    rng = np.random.default_rng(seed)
    types = [
        "genre_mix",
        "fresh_finds",
        "jump_back_in",
        "popular_in_region",
        "new_releases",
        "discover_weekly",
    ]
    out = []
    for s in range(n_shelves):
        cards = tuple(
            Card(
                f"t{s}-{c}",
                "track",
                features={"genre": ["jazz", "rock"][c % 2]},
                vector=rng.normal(size=4),
            )
            for c in range(n_cards)
        )
        st = types[s % len(types)]
        out.append(Shelf(f"{st}:{s}", st, f"Shelf {s}", cards))
    return out


def choice_frequencies(policy, ctx, candidates, layout, n: int):
    """Serve the same page n times; return counts of (shelf, card, j, l) and their logged
    propensities (each must be the same every time the same choice is made)."""
    counts: Counter = Counter()
    logged: dict = {}
    for _ in range(n):
        page = policy.select_page(ctx, candidates, layout)
        for im in page.impressions:
            key = (im.shelf.shelf_id, im.card.item_id, im.shelf_position, im.card_position)
            counts[key] += 1
            prev = logged.setdefault(key, im.propensity)
            assert abs(prev - im.propensity) < 1e-12, "the same choice logged two propensities"
    return counts, logged

"""The operator page's figures: rewards joined as the learn job joins them, and which cards
exploration chose (the browser tests in tests/test_web.py check the page itself)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from deepcuts.serving.admin import exploited, rewarded

T0 = datetime(2026, 11, 2, 18, 0)


def shown(*cards: tuple[str, str, int]) -> pd.DataFrame:
    """Impressions (user, item, minutes after T0 it was served)."""
    return pd.DataFrame(
        {
            "impression_id": [f"i{n}" for n in range(len(cards))],
            "user_id": [u for u, _, _ in cards],
            "item_id": [i for _, i, _ in cards],
            "served_at": [T0 + timedelta(minutes=m) for _, _, m in cards],
            "content_type": ["track"] * len(cards),
        }
    )


def test_a_stream_of_30_s_within_the_hour_is_a_success_and_the_rest_waits_for_the_window():
    frame = shown(
        ("u1", "t1", 0), ("u1", "t2", 0), ("u1", "t3", 0), ("u2", "t1", 0), ("u1", "t4", 50)
    )
    plays = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u1", "u2"],
            "item_id": ["t1", "t2", "t3", "t1"],
            "at": [T0 + timedelta(minutes=m) for m in (10, 20, 70, -5)],
            "ms_played": [30_000, 29_999, 120_000, 60_000],
        }
    )
    # t1: 30 s at +10 min: success. t2: 29.999 s: not a stream. t3: after the hour. u2's play
    # came before the page. t4 (served at +50 min) is still inside its hour at +90 min.
    at_90 = rewarded(frame, plays, (T0 + timedelta(minutes=90)).replace(tzinfo=UTC))
    assert at_90.tolist()[:4] == [1.0, 0.0, 0.0, 0.0] and pd.isna(at_90.iloc[4])
    at_30 = rewarded(frame, plays, (T0 + timedelta(minutes=30)).replace(tzinfo=UTC))
    assert at_30.iloc[0] == 1.0 and at_30.iloc[1:].isna().all()


def test_exploration_is_any_draw_that_did_not_take_the_best_candidate():
    eps = 0.1
    frame = pd.DataFrame(
        {
            "policy_id": ["epsilon-greedy"] * 4 + ["greedy", "uniform"],
            # both draws best (m = 5, 4), shelf best card explored, shelf explored, last left
            "propensity_given_earlier": [
                (0.9 + eps / 5) * (0.9 + eps / 4), (0.9 + eps / 5) * (eps / 4),
                (eps / 5) * (0.9 + eps / 4), 1.0, 1.0, 1 / 20,
            ],
        }
    )  # fmt: skip
    assert exploited(frame, eps).tolist() == [True, False, False, True, True, False]

"""The second stage of playlist continuation: gradient-boosted trees that rerank the blend's best.

`fit_trees` trains LightGBM with the listwise ``rank_xendcg`` objective (each held-out
playlist's candidates are one list, its hidden tracks label 1: a cross-entropy between the
list's softmax and its hidden tracks, a listwise stand-in for NDCG) and keeps only its trees,
as flat arrays (`TREE_COLUMNS`, converted from `Booster.dump_model()` by `lightgbm_trees`), so
that the model saves with the rest of the continuation model without pickle and predicts through a
compiled loop (`predict_trees`). Few, shallow trees (120, depth 6, 31 leaves, learning rate
0.1): a continuation reranks 600 candidates, and each tree costs each of them a few
mispredicted branches instead of a library's per-call overhead. 120 trees at 0.1 were chosen
over 60 at 0.15 on playlists held out of the training playlists of seeds 0-2 (each cut as first
25, 1,500 cuts: NDCG@500 0.2600 -> 0.2614, R-precision 0.1369 -> 0.1373); deeper trees (63
leaves, depth 8), smaller leaves (30) and 1,000 candidates did no better there.

The objective was chosen on playlists held out of the training playlists too: per seed 0-2, 500
long training playlists (>= 40 tracks) left out of the fit, each cut as "title + first 1",
"first 5", "first 25" and "25 at random" (2,000 cuts a seed, 6,000 in all; the same training data
for every objective). Mean R-precision / NDCG@500 over the three seeds: scikit-learn's
`HistGradientBoostingClassifier` with log loss (before) 0.1407 / 0.2582, ``rank_xendcg``
0.1417 / 0.2593, better on each seed (paired over the 1,500 playlists, +0.0010 +- 0.0003 and
+0.0012 +- 0.0003); on seed 0 alone (0.1414 / 0.2578 with log loss):
LightGBM's log loss 0.1409 / 0.2575, ``lambdarank`` with pairs truncated at 30, 100 and 600
0.1404 / 0.2575, 0.1418 / 0.2583 and 0.1427 / 0.2579 (100 was 0.1404 / 0.2601 against 0.1406 /
0.2593 on seed 1; 600 fits 10x slower), ``rank_xendcg`` with 63 leaves 0.1419 / 0.2578, with
240 trees at 0.05 0.1428 / 0.2595 (twice the trees to run for +0.0002). ``log_loss`` still
gives the classifier (`fit_trees`'s ``objective``). The ranking objectives' raw scores are not
log-odds: `PlaylistContinuation.rank` scores a candidate ``exp(raw - best raw)`` (its softmax
share over the best candidate's; with log loss, nearly its odds over the best one's), so that
a cold track that borrows ``cold_weight`` times its warm neighbours' score sits where a share
that much smaller would (a sigmoid, right for log-odds, maps raw ranking scores near 0 to about
0.5 each, and half of that would put a cold track below nearly every warm candidate).
"""

from __future__ import annotations

import numba
import numpy as np

TREE_COLUMNS = ("feature", "threshold", "left", "right", "value")  # feature -1: a leaf
OBJECTIVES = ("rank_xendcg", "lambdarank", "log_loss")


def fit_trees(
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    objective: str = "rank_xendcg",
    iterations: int = 120,
    learning_rate: float = 0.1,
    leaves: int = 31,
    depth: int = 6,
    min_leaf: int = 100,
    threads: int = 2,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(nodes, roots): float64 (n_nodes, 5) in `TREE_COLUMNS` order (children as global node
    numbers) and int64 (n_trees,) each tree's root; `predict_trees` (after `unpack_trees`) gives
    the model's raw score. ``groups``: the number of consecutive rows of each list (playlist),
    needed by the ranking objectives (``rank_xendcg``, ``lambdarank``: LightGBM);
    ``log_loss``: scikit-learn's `HistGradientBoostingClassifier` (its baseline added to the
    first tree's leaves: the raw score is the log-odds)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r}; known: {', '.join(OBJECTIVES)}")
    if objective == "log_loss":
        return _sklearn_trees(
            features, labels, iterations, learning_rate, leaves, depth, min_leaf, random_state
        )
    if groups is None or int(np.sum(groups)) != len(labels):
        raise ValueError("a ranking objective needs groups that add up to the rows")
    import lightgbm as lgb

    params = {
        "objective": objective,
        "learning_rate": learning_rate,
        "num_leaves": leaves,
        "max_depth": depth,
        "min_data_in_leaf": min_leaf,
        "lambda_l2": 1.0,
        "lambdarank_truncation_level": 100,  # lambdarank: pairs within a playlist's first 100
        "use_missing": False,  # every split is `x <= threshold`, as `predict_trees` reads it
        "num_threads": threads,
        "deterministic": True,
        "force_row_wise": True,
        "seed": random_state,
        "verbose": -1,
    }
    data = lgb.Dataset(
        np.asarray(features, np.float32),
        np.asarray(labels, np.float32),
        group=np.asarray(groups, np.int64)[np.asarray(groups) > 0],
        free_raw_data=True,
    )
    booster = lgb.train(params, data, num_boost_round=iterations)
    return lightgbm_trees(booster.dump_model())


def lightgbm_trees(dump: dict) -> tuple[np.ndarray, np.ndarray]:
    """`fit_trees`'s (nodes, roots) of a LightGBM model (`Booster.dump_model()`): numerical
    splits ``<=`` only, without missing-value handling (trained with ``use_missing=False``);
    leaf values as dumped (learning rate included)."""
    blocks, roots, offset = [], [], 0
    for info in dump["tree_info"]:
        rows: list[tuple[float, float, float, float, float]] = []
        stack = [(info["tree_structure"], -1, 0)]  # (node, parent row, 0 left / 1 right)
        while stack:
            node, parent, side = stack.pop()
            at = len(rows)
            if parent >= 0:
                row = list(rows[parent])
                row[2 + side] = at + offset
                rows[parent] = tuple(row)  # type: ignore[assignment]
            if "split_feature" not in node:
                rows.append((-1, 0.0, -1, -1, float(node["leaf_value"])))
                continue
            if node.get("decision_type") != "<=" or node.get("missing_type", "None") != "None":
                raise ValueError(
                    f"unsupported split: {node.get('decision_type')}, missing "
                    f"{node.get('missing_type')}"
                )
            rows.append((node["split_feature"], float(node["threshold"]), -1, -1, 0.0))
            stack.append((node["right_child"], at, 1))
            stack.append((node["left_child"], at, 0))
        blocks.append(np.asarray(rows, np.float64))
        roots.append(offset)
        offset += len(rows)
    return np.vstack(blocks), np.asarray(roots, np.int64)


def _sklearn_trees(
    features, labels, iterations, learning_rate, leaves, depth, min_leaf, random_state
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        max_iter=iterations,
        learning_rate=learning_rate,
        max_leaf_nodes=leaves,
        max_depth=depth,
        min_samples_leaf=min_leaf,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=random_state,
    ).fit(features, labels)
    blocks, roots, offset = [], [], 0
    baseline = float(np.ravel(model._baseline_prediction)[0])
    for n, (tree,) in enumerate(model._predictors):
        nodes = tree.nodes
        block = np.zeros((len(nodes), len(TREE_COLUMNS)), np.float64)
        leaf = nodes["is_leaf"].astype(bool)
        block[:, 0] = np.where(leaf, -1, nodes["feature_idx"])
        block[:, 1] = nodes["num_threshold"]
        block[:, 2] = nodes["left"] + offset
        block[:, 3] = nodes["right"] + offset
        block[:, 4] = np.where(leaf, nodes["value"] + (baseline if n == 0 else 0.0), 0.0)
        blocks.append(block)
        roots.append(offset)
        offset += len(nodes)
    return np.vstack(blocks), np.asarray(roots, np.int64)


def unpack_trees(nodes: np.ndarray, roots: np.ndarray) -> tuple[np.ndarray, ...]:
    """The flat trees as the contiguous typed columns `predict_trees` reads."""
    return (
        np.ascontiguousarray(nodes[:, 0], np.int64),
        np.ascontiguousarray(nodes[:, 1], np.float64),
        np.ascontiguousarray(nodes[:, 2], np.int64),
        np.ascontiguousarray(nodes[:, 3], np.int64),
        np.ascontiguousarray(nodes[:, 4], np.float64),
        np.ascontiguousarray(roots, np.int64),
    )


def predict_trees(trees: tuple[np.ndarray, ...], features: np.ndarray) -> np.ndarray:
    """Raw scores (n,) float64 of ``features`` (n, n_features) through `unpack_trees`'s trees."""
    out = np.zeros(features.shape[0], np.float64)
    _predict(*trees, np.ascontiguousarray(features, np.float32), out)
    return out


@numba.njit(nogil=True, cache=True)
def _predict(feature, threshold, left, right, value, roots, x, out):  # pragma: no cover
    for i in range(x.shape[0]):
        total = 0.0
        for t in range(roots.shape[0]):
            node = roots[t]
            while feature[node] >= 0:
                if x[i, feature[node]] <= threshold[node]:
                    node = left[node]
                else:
                    node = right[node]
            total += value[node]
        out[i] = total

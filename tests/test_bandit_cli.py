"""`deepcuts simulate-home` and `deepcuts ope`."""

import json

import numpy as np
import pandas as pd
import pytest


def test_simulate_home_then_evaluate_its_log(run_cli, tmp_path):
    out = tmp_path / "home"
    result = run_cli(
        "simulate-home", "--out", out, "--users", 60, "--tracks", 600, "--impressions", 2000,
        "--policies", "epsilon-greedy,uniform", "--eval-pages", 50, "--store-log", "--json",
    )  # fmt: skip
    summary = json.loads(result.stdout)
    assert set(summary["summary"]["stream_rate"]) == {"epsilon-greedy", "uniform"}
    assert set(summary["ope"]["estimates"]) == {"ips", "snips", "dr"}
    for name in ("home_simulation.json", "home_curves.png", "uniform_log.parquet"):
        assert (out / name).is_file()
    assert (out / "world" / "truth").is_dir()

    # the exported log lists the cards each page did not show, so policies replay exactly
    log = pd.read_parquet(out / "uniform_log.parquet")
    shown = log[log.position.notna()]
    assert 1900 <= len(shown) <= 2000 and len(log) > len(shown)
    result = run_cli(
        "ope",
        "--log",
        out / "uniform_log.parquet",
        "--policy",
        "epsilon-greedy",
        "--epsilon",
        0.2,
        "--json",
        tmp_path / "ope.json",
    )
    assert "ips" in result.stdout and "snips" in result.stdout and "dr" in result.stdout
    report = json.loads((tmp_path / "ope.json").read_text())
    assert report["target"] == "epsilon-greedy" and report["n_rows"] == len(shown)
    for iv in report["estimates"].values():
        assert iv["low"] <= iv["estimate"] <= iv["high"]

    # the store holds the same impressions: uniform evaluated on them is the logged mean
    result = run_cli("ope", "--policy", "uniform", "--json", "-")
    from_store = json.loads(result.stdout)
    assert from_store["n_rows"] == len(shown)
    assert from_store["estimates"]["ips"]["estimate"] == pytest.approx(shown.reward.mean())
    run_cli(
        "ope", "--policy", "greedy", "--logging-policy", "thompson", expect=4
    )  # none logged by it


def test_ope_with_a_target_column_from_elsewhere(run_cli, tmp_path):
    rng = np.random.default_rng(0)
    n = 500
    shown = rng.integers(0, 4, n)
    frame = pd.DataFrame(
        {
            "slate_id": np.arange(n),
            "item": [f"item{a}" for a in shown],
            "pos": 0,
            "clicked": (rng.random(n) < np.where(shown == 2, 0.6, 0.1)).astype(int),
            "p": 0.25,
            "hour": rng.integers(0, 24, n),
            "always_item2": (shown == 2).astype(float),
        }
    )
    frame.to_csv(tmp_path / "clicks.csv", index=False)
    result = run_cli(
        "ope", "--log", tmp_path / "clicks.csv", "--target-column", "always_item2", "--action-column", "item",
        "--position-column", "pos", "--reward-column", "clicked", "--propensity-column", "p", "--json", "-",
    )  # fmt: skip
    report = json.loads(result.stdout)
    truth = frame.clicked[shown == 2].mean()
    for name in ("ips", "snips", "dr"):
        iv = report["estimates"][name]
        assert iv["low"] <= truth <= iv["high"], name
    assert report["estimates"]["snips"]["estimate"] == pytest.approx(truth)


def test_ope_command_line_errors(run_cli, tmp_path):
    pd.DataFrame({"action": ["a"], "position": [0], "reward": [1.0], "propensity": [0.5]}).to_csv(
        tmp_path / "ok.csv", index=False
    )
    pd.DataFrame({"action": ["a"], "reward": [1.0]}).to_csv(tmp_path / "bad.csv", index=False)
    assert "exactly one" in run_cli("ope", "--log", tmp_path / "ok.csv", expect=2).output
    run_cli(
        "ope", "--log", tmp_path / "ok.csv", "--policy", "uniform", "--target-column", "t", expect=2
    )
    run_cli("ope", "--log", tmp_path / "ok.csv", "--policy", "uniform", "--epsilon", 0.1, expect=2)
    run_cli("ope", "--target-column", "t", expect=2)
    run_cli("ope", "--log", tmp_path / "ok.csv", "--policy", "softmax", expect=2)
    assert (
        "missing column"
        in run_cli("ope", "--log", tmp_path / "bad.csv", "--policy", "uniform", expect=3).output
    )
    assert (
        "no target column"
        in run_cli("ope", "--log", tmp_path / "ok.csv", "--target-column", "t", expect=3).output
    )
    assert (
        "no such file"
        in run_cli("ope", "--log", tmp_path / "none.csv", "--policy", "uniform", expect=3).output
    )
    run_cli("ope", "--policy", "uniform", expect=4)  # no store yet
    run_cli("init")
    refused = run_cli("ope", "--policy", "uniform", expect=4).output
    assert "no impressions" in refused and "`deepcuts home --user USER`" in refused


def test_simulate_home_refuses_unknown_policies(run_cli, tmp_path):
    assert (
        "unknown policy"
        in run_cli(
            "simulate-home", "--out", tmp_path, "--policies", "uniform,softmax", expect=2
        ).output
    )


def test_simulate_home_takes_the_position_model_and_the_attention_decay(run_cli, tmp_path):
    run_cli(
        "simulate-home", "--out", tmp_path, "--users", 40, "--tracks", 300, "--impressions", 400,
        "--policies", "epsilon-greedy,greedy", "--eval-pages", 10, "--position-model", "logit",
        "--shelf-decay", 0.5, "--card-decay", 0.6,
    )  # fmt: skip
    summary = json.loads((tmp_path / "home_simulation.json").read_text())
    for name in ("epsilon-greedy", "greedy"):
        assert summary["runs"][name]["description"]["position_model"] == "logit"
    home = summary["world"]["home"]
    assert (home["shelf_decay"], home["card_decay"]) == (0.5, 0.6)
    # the defaults: the examination model, the world's own attention
    run_cli(
        "simulate-home", "--out", tmp_path / "b", "--users", 40, "--tracks", 300,
        "--impressions", 200, "--policies", "greedy", "--eval-pages", 5,
    )  # fmt: skip
    summary = json.loads((tmp_path / "b" / "home_simulation.json").read_text())
    assert summary["runs"]["greedy"]["description"]["position_model"] == "examination"
    assert summary["world"]["home"]["shelf_decay"] == 0.8
    refused = run_cli("simulate-home", "--out", tmp_path, "--shelf-decay", 0, expect=2)
    assert "--shelf-decay" in refused.output

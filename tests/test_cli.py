"""The command line as a user runs it: help, exit codes, the issue's literal commands."""

import json

import pytest

from tests.conftest import FIXTURES, HETREC


def test_every_command_explains_itself(run_cli):
    from deepcuts.cli import main

    assert "Exit codes" in run_cli("--help").output
    for name in main.commands:
        out = run_cli(name, "--help").output
        assert "Usage: " in out and len(out.splitlines()) > 3, name


def test_init_then_stats_json(run_cli):
    run_cli("init")
    counts = json.loads(run_cli("stats", "--json").output)
    assert counts["listens"] == 0 and counts["schema_migrations"] >= 1


def test_stats_without_a_store_says_how_to_make_one(run_cli):
    result = run_cli("stats", "--json", expect=4)
    assert "deepcuts init" in result.output


def test_hetrec_ingest_twice_changes_no_count(run_cli):
    out = run_cli("ingest", "lastfm-hetrec", HETREC).output
    assert "accepted 322378, duplicates 0, quarantined 0" in out
    first = json.loads(run_cli("stats", "--json").output)
    assert (first["users"], first["artists"], first["listens"]) == (1892, 17632, 92834)
    assert first["friendships"] == 25434 and first["item_tags"] == 186478
    out = run_cli("ingest", "lastfm-hetrec", HETREC).output
    assert "accepted 0, duplicates 322378, quarantined 0" in out
    assert json.loads(run_cli("stats", "--json").output) == first


def test_broken_spotify_record_is_quarantined_and_listed(run_cli):
    out = run_cli(
        "ingest",
        "spotify",
        FIXTURES / "spotify" / "Streaming_History_Audio_2024_1.json",
        "--user",
        "me",
    ).output
    assert "accepted 2, duplicates 0, quarantined 3" in out
    listed = [json.loads(line) for line in run_cli("quarantine", "--json").output.splitlines()]
    assert {row["line"]: row["reason"] for row in listed}[
        5
    ] == "invalid JSON: Expecting ',' delimiter"


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["ingest", "spotify", "{spotify}"], 2, "--user"),  # a missing option, not a bad file
        (["ingest", "lastfm-hetrec", "{fixtures}"], 3, "not a HetRec Last.fm 2K folder"),
        (["ingest", "nonsense", "{fixtures}"], 2, "Invalid value"),
        (
            ["ingest", "mpd", "{spotify}", "--user", "x"],
            2,
            "--user applies to spotify and listenbrainz",
        ),
    ],
)
def test_wrong_input_gets_a_clear_error_and_exit_code(run_cli, args, code, message):
    args = [a.format(spotify=FIXTURES / "spotify", fixtures=FIXTURES) for a in args]
    assert message in run_cli(*args, expect=code).output


def test_bad_setting_is_named(run_cli, monkeypatch):
    monkeypatch.setenv("DEEPCUTS_SEED", "abc")
    assert "seed must be an integer" in run_cli("stats", expect=5).output


def test_evaluate_cold_items_on_hetrec_text(run_cli, tmp_path):
    out = tmp_path / "cold.json"
    run_cli(
        "evaluate",
        "--dataset",
        "lastfm-hetrec",
        HETREC,
        "--cold-items",
        "0.2",
        "--seeds",
        "0",
        "--k",
        "50",
        "--json",
        out,
    )
    recall = json.loads(out.read_text())["cold_items"]["recall"]
    assert recall["text"]["mean"] > 0.41  # the bar, from text alone
    assert recall["random"]["mean"] < 0.05

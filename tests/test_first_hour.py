"""A newcomer's first hour: global options anywhere, ids as people type them, errors that name
commands that exist, one meaning per exit code."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import click
import pytest

from deepcuts.cli import common, main
from deepcuts.config import ConfigError, load_settings
from deepcuts.io.playlists import ExportTrack, PlaylistExport, to_m3u8, track_location
from deepcuts.store import AmbiguousId, IdNotFound, Store, resolve_item, resolve_user
from tests.conftest import FIXTURES, HETREC, REPO

SPOTIFY = FIXTURES / "spotify"


def test_global_options_are_taken_before_or_after_the_subcommand(run_cli, tmp_path):
    run_cli("init", "--store", tmp_path / "after.duckdb", "--log-level", "WARNING")
    assert (tmp_path / "after.duckdb").is_file()
    run_cli("--store", tmp_path / "before.duckdb", "init")
    assert (tmp_path / "before.duckdb").is_file()
    result = run_cli("stats", "--json", f"--store={tmp_path / 'after.duckdb'}")
    assert '"listens": 0' in result.output
    # a nested subcommand takes them too; `--` ends the hoisting
    group = main
    assert group.hoist(["audio", "embed", "x.wav", "--store", "s", "--out", "o"]) == [
        "--store", "s", "audio", "embed", "x.wav", "--out", "o",
    ]  # fmt: skip
    assert group.hoist(["similar", "--", "--store"]) == ["similar", "--", "--store"]
    # the message a missing store gives works as written
    message = run_cli("stats", "--store", tmp_path / "none.duckdb", expect=4).output
    command = re.search(r"`(deepcuts [^`]+)`", message).group(1)
    run_cli(*shlex.split(command)[1:])
    assert (tmp_path / "none.duckdb").is_file()


def _ingest_me(run_cli) -> None:
    run_cli("ingest", "spotify", SPOTIFY / "Streaming_History_Audio_2024_1.json", "--user", "me")


def test_bare_ids_resolve_and_ambiguous_ones_list_their_candidates(run_cli, tmp_path):
    _ingest_me(run_cli)
    with Store(tmp_path / "store.duckdb") as store:
        assert resolve_user(store, "me") == "spotify:user:me"
        assert resolve_user(store, "spotify:user:me") == "spotify:user:me"
        assert resolve_item(store, "aaa") == "spotify:track:aaa"
        assert resolve_item(store, "song a") == "spotify:track:aaa"  # an exact name
        with pytest.raises(IdNotFound, match="deepcuts users"):
            resolve_user(store, "nobody")
        with pytest.raises(IdNotFound):
            resolve_user(store, "listenbrainz:user:me")  # a full id is never shortened
        store.conn.execute("INSERT INTO users (user_id) VALUES ('listenbrainz:user:me')")
        with pytest.raises(AmbiguousId) as info:
            resolve_user(store, "me")
        assert info.value.candidates == ("listenbrainz:user:me", "spotify:user:me")
    # through the CLI: exit 6 with the candidates, before any model work (no model is trained)
    result = run_cli("weekly", "--user", "me", "--week", "2026-W10", expect=6)
    assert "spotify:user:me" in result.output and "listenbrainz:user:me" in result.output
    assert "deepcuts users" in run_cli("home", "--user", "nobody", expect=6).output
    assert "no item 'zzz'" in run_cli("similar", "zzz", expect=6).output
    # the full id gets past the lookup to the missing model (exit 4 names `deepcuts train`)
    assert (
        "deepcuts weekly --week 2026-W10"
        in run_cli("weekly", "--user", "spotify:user:me", "--week", "2026-W10", expect=4).output
    )


def test_similar_by_audio_without_audio_names_the_text_view(run_cli):
    _ingest_me(run_cli)
    result = run_cli("similar", "aaa", "--by", "audio", expect=4)  # the store lacks audio
    assert "(0 of 3 tracks have audio)" in result.output
    assert "`deepcuts similar spotify:track:aaa --by text`" in result.output


def test_users_and_tracks_list_ids(run_cli):
    _ingest_me(run_cli)
    run_cli("ingest", "spotify", SPOTIFY / "endsong_0.json")
    users = run_cli("users").output.splitlines()
    assert [line.split("\t")[0] for line in users] == ["spotify:user:alice", "spotify:user:me"]
    assert run_cli("users", "--search", "ME").output.startswith("spotify:user:me\t2")
    found = run_cli("tracks", "--search", "teardrop", "--json").output.splitlines()
    assert len(found) == 1 and '"item_id": "spotify:track:67Hna13dNDkZvBpTXRIaOJ"' in found[0]
    assert run_cli("tracks", "--search", "100%_").output == ""  # % and _ are literal


def test_user_names_the_listener_only_where_the_export_does_not(run_cli, caplog):
    result = run_cli("ingest", "spotify", SPOTIFY / "endsong_0.json", "--user", "bob")
    assert "accepted 3" in result.output
    assert "names its listener 'alice', not --user 'bob'" in caplog.text
    assert run_cli("users").output.split("\t")[0] == "spotify:user:alice"
    # an export without usernames needs --user: a command-line problem, exit 2
    refused = run_cli(
        "ingest", "spotify", SPOTIFY / "Streaming_History_Audio_2024_1.json", expect=2
    )
    assert "--user" in refused.output


def test_ingest_counts_files_points_at_quarantine_and_refuses_one_hetrec_file(run_cli, tmp_path):
    result = run_cli(
        "ingest", "spotify", SPOTIFY / "Streaming_History_Audio_2024_1.json", "--user", "me"
    )
    assert f"`deepcuts quarantine --store {tmp_path / 'store.duckdb'}`" in result.output
    assert "1 file)" in result.output
    refused = run_cli("ingest", "lastfm-hetrec", HETREC / "user_artists.dat", expect=3)
    assert f"give the folder {HETREC}" in refused.output
    assert "rows read from 5 files" in run_cli("ingest", "lastfm-hetrec", HETREC).output


# -- every command a message names exists and parses -------------------------------------------
COMMAND = re.compile(r"``?(deepcuts [^`\n]+?)``?")


def _strings(tree: ast.AST) -> tuple[list[str], list[str]]:
    """(messages, docstrings) of a module: every string constant (an f-string with ``{x}`` for
    each field) apart from docstrings, and the docstrings (a command's docstring is its help)."""
    docs: dict[int, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    docs[id(body[0].value)] = body[0].value.value
    messages = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            messages.append(
                "".join(v.value if isinstance(v, ast.Constant) else "{x}" for v in node.values)
            )
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
        ):
            messages.append(node.value)
    return messages, list(docs.values())


def _named_commands() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Every backticked `deepcuts ...` in the package: (in messages, in docstrings)."""
    in_messages, in_docs = [], []
    for path in sorted((REPO / "src" / "deepcuts").rglob("*.py")):
        messages, docs = _strings(ast.parse(path.read_text()))
        where = str(path.relative_to(REPO))
        # adjacent literals are joined by the parser, so a message split over lines is whole
        in_messages += [(where, m.group(1)) for text in messages for m in COMMAND.finditer(text)]
        in_docs += [(where, m.group(1)) for text in docs for m in COMMAND.finditer(text)]
    return in_messages, in_docs


def _context(words: list[str], *, full: bool) -> click.Command:
    """Parse a command line as click would run it, down to its last subcommand; with
    ``full=False`` only resolve the subcommands' names (a docstring may name a command
    without its required options)."""
    ctx = main.make_context("deepcuts", main.hoist(list(words)), resilient_parsing=not full)
    command: click.Command = main
    while isinstance(command, click.Group):
        protected = ctx._protected_args if hasattr(ctx, "_protected_args") else ctx.protected_args
        args = [*protected, *ctx.args]
        if not args:
            break
        name, command, rest = command.resolve_command(ctx, args)
        ctx = command.make_context(name, rest, parent=ctx, resilient_parsing=not full)
    return command


def test_every_command_a_message_names_exists_and_parses(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # a value in a message ({path}, OUT, FILE) is a file or a folder that exists
    Path("x").write_text("")
    Path("d").mkdir()
    Path("world").mkdir()
    in_messages, in_docs = _named_commands()
    assert len(in_messages) >= 10 and len(in_docs) >= 10  # the walk finds them
    failures = []
    for full, named in ((True, in_messages), (False, in_docs)):
        for where, command in named:
            errors = []
            for value in ("x", "d"):
                words = shlex.split(command.replace("{x}", value))[1:]
                words = [
                    "0.2" if w == "FRACTION" else value if re.fullmatch(r"[A-Z_]+", w) else w
                    for w in words
                ]
                words = [
                    w for w in words if w not in ("...", "--help")
                ]  # --help would print and exit
                try:
                    _context(words, full=full)
                    break
                except click.ClickException as exc:
                    errors.append(exc.format_message())
            else:
                failures.append(f"{where}: `{command}`: {errors[0]}")
    assert not failures, "\n".join(failures)


# -- exit codes ---------------------------------------------------------------------------------
def test_exit_codes_have_one_meaning_each_and_are_documented():
    codes = {
        name: value
        for name, value in vars(common).items()
        if name.startswith("EXIT_") and isinstance(value, int)
    }
    assert len(set(codes.values())) == len(codes)
    readme = (REPO / "README.md").read_text()
    for value in codes.values():
        assert f"{value} " in common.EXIT_CODES_HELP
    assert "6 a listener or item id names nothing" in readme
    assert "6 a listener or item id names nothing" in click.testing.CliRunner().invoke(
        main, ["--help"]
    ).output.replace("\n ", "").replace("  ", " ")


# -- M3U8 locations -----------------------------------------------------------------------------
def test_m3u8_entries_get_a_path_or_a_url(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    pattern = "https://music.example.org/play/{item_id}"
    playlist = PlaylistExport("DW", "deepcuts", __import__("datetime").datetime(2026, 11, 2), tracks=[
        ExportTrack("t1", "A", location=track_location("t1", "/music/a.flac", None, pattern)),
        ExportTrack("x:y/z", "B", location=track_location("x:y/z", None, "spotify:track:q", pattern)),
        ExportTrack("spotify:track:q", "C", location=track_location("spotify:track:q", None, "spotify:track:q")),
    ])  # fmt: skip
    lines = [line for line in to_m3u8(playlist).splitlines() if not line.startswith("#")]
    assert lines == ["/music/a.flac", "https://music.example.org/play/x:y%2Fz", "spotify:track:q"]
    monkeypatch.setenv("DEEPCUTS_TRACK_URL", pattern)
    assert load_settings().track_url == pattern
    monkeypatch.setenv("DEEPCUTS_TRACK_URL", "https://x/{nope}")
    with pytest.raises(ConfigError, match="track_url"):
        load_settings()


def test_one_seed_evaluate_does_not_speak_of_standard_deviations(capsys):
    from deepcuts.cli.evaluate import _print_table

    def summary(seeds):
        model = {
            "recall@10": {"mean": 0.2, "std": 0.0},
            "ndcg@10": {"mean": 0.3, "std": 0.0},
            "seconds": 1.0,
        }
        return {
            "protocol": {"k": 10, "seeds": seeds},
            "models": {"hybrid": {**model, "default": True}, "ease": {**model, "default": False}},
            "default_model": "hybrid",
            "default_beats_all": False,
        }

    _print_table(summary([0]))
    one = capsys.readouterr().out
    assert "on this one seed" in one and "larger standard deviation" not in one
    _print_table(summary([0, 1]))
    assert "by more than the larger standard deviation" in capsys.readouterr().out

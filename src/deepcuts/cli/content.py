"""`deepcuts search`, `deepcuts similar` and `deepcuts audio embed`: text and audio over the catalogue."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click

from deepcuts.cli.common import (
    EXIT_INPUT,
    EXIT_NOT_FOUND,
    EXIT_STORE,
    err,
    handles_errors,
    log,
    open_store,
    progress_bar,
    settings,
)


def _cache_dir(ctx: click.Context, given: Path | None) -> Path:
    """Where features and embeddings are cached: beside the store unless given."""
    if given is not None:
        return given
    store = Path(settings(ctx).store)
    return store.with_name(store.name + ".cache")


class _Bar:
    """A progress callback ``(stage, done, total)`` over one rich progress bar."""

    def __init__(self, bar):
        self.bar = bar
        self.tasks: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(stage, total=total)
        self.bar.update(self.tasks[stage], completed=done, total=total)


def _print_hits(hits, as_json: bool) -> None:
    if as_json:
        for h in hits:
            click.echo(
                json.dumps(
                    {
                        "item_id": h.item_id,
                        "kind": h.kind,
                        "name": h.name,
                        "score": round(h.score, 4),
                    }
                )
            )
        return
    for rank, h in enumerate(hits, 1):
        click.echo(f"{rank:>3}  {h.score:6.3f}  {h.kind:<6}  {h.item_id:<24}  {h.name}")


@click.command()
@click.argument("query")
@click.option(
    "-n",
    "--count",
    "n",
    default=10,
    show_default=True,
    type=click.IntRange(1),
    help="How many items.",
)
@click.option(
    "--by",
    type=click.Choice(["tfidf", "minilm", "hybrid"]),
    default="hybrid",
    show_default=True,
    help="tfidf: matching words and tags; minilm: meaning (sentence embeddings); hybrid: both.",
)
@click.option("--kind", type=click.Choice(["track", "artist"]), help="Only tracks or only artists.")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where text embeddings are cached [default: STORE.cache beside the store].",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
@handles_errors
def search(
    ctx: click.Context,
    query: str,
    n: int,
    by: str,
    kind: str | None,
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    """Items whose tags, descriptions and playlist names match a free-text QUERY.

    \b
    Example:
      deepcuts search "rainy sunday acoustic" -n 20 --kind track
    """
    from deepcuts.models.text import EmbeddingCache, TextSearch, load_item_texts

    with open_store(ctx, read_only=True) as store:
        texts = load_item_texts(store)
    if len(texts) == 0:
        err.print(
            "[red]error:[/red] the catalogue is empty: ingest tracks or artists first "
            "(e.g. `deepcuts ingest native world/`)",
            highlight=False,
        )
        raise SystemExit(EXIT_STORE)
    path = _cache_dir(ctx, cache_dir) / "minilm.npz"
    encoder = EmbeddingCache(path) if by != "tfidf" else None
    if encoder is not None and not path.is_file():
        err.print(
            f"encoding {len(texts):,} item documents with MiniLM (first run; cached in {path})",
            highlight=False,
        )
    with progress_bar() as bar:
        task = bar.add_task("encode documents", total=None)
        index = TextSearch(by, encoder).fit(
            texts, lambda d, t: bar.update(task, completed=d, total=t)
        )
    hits = index.query(query, n=n, kind=kind)
    if not hits:
        err.print(f"no item matches {query!r}", highlight=False)
    _print_hits(hits, as_json)


@click.command()
@click.argument("item")
@click.option(
    "--by",
    type=click.Choice(["audio", "text", "cf", "hybrid"]),
    default="hybrid",
    show_default=True,
    help="audio: sound; text: what is written about it; cf: who plays it (predicted from text "
    "and audio for items nobody has played); hybrid: all three.",
)
@click.option(
    "-n",
    "--count",
    "n",
    default=10,
    show_default=True,
    type=click.IntRange(1),
    help="How many items.",
)
@click.option(
    "--any-kind", is_flag=True, help="Artists and tracks alike (default: the item's own kind)."
)
@click.option(
    "--text-by",
    type=click.Choice(["tfidf", "minilm", "hybrid"]),
    default="tfidf",
    show_default=True,
    help="The text view: words and tags, sentence embeddings, or both.",
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where audio features and text embeddings are cached [default: STORE.cache].",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
@handles_errors
def similar(
    ctx: click.Context,
    item: str,
    by: str,
    n: int,
    any_kind: bool,
    text_by: str,
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    """Items most like ITEM by audio, text, CF vectors or all three.

    ITEM is an id (lastfm:artist:89), the part after its last colon (89) or an exact track or
    artist name, where only one item has it (see `deepcuts tracks --search TEXT`).

    \b
    Example:
      deepcuts similar t000042 --by text
      deepcuts similar "lastfm:artist:89" --by hybrid -n 20
    """
    from deepcuts.models.coldstart import ItemSimilarity
    from deepcuts.models.text import EmbeddingCache
    from deepcuts.store.ids import resolve_item

    cache = _cache_dir(ctx, cache_dir)
    with open_store(ctx, read_only=True) as store, progress_bar(transient=True) as bar:
        item = resolve_item(store, item)  # `89` -> lastfm:artist:89, before any model work
        encoder = EmbeddingCache(cache / "minilm.npz") if text_by != "tfidf" else None
        sim = ItemSimilarity(store, audio_cache=cache / "audio", text_by=text_by, encoder=encoder,
                             seed=settings(ctx).seed, progress=_Bar(bar))  # fmt: skip
        try:
            hits = sim.similar(item, by=by, n=n, kind=None if any_kind else "same")
        except KeyError as exc:
            err.print(f"[red]error:[/red] {exc.args[0]}", highlight=False)
            raise SystemExit(EXIT_NOT_FOUND) from exc
        except LookupError as exc:
            err.print(f"[red]error:[/red] {exc}{_other_views(store, by, item)}", highlight=False)
            raise SystemExit(EXIT_STORE) from exc
    _print_hits(hits, as_json)


def _other_views(store, by: str, item: str) -> str:
    """What to try when ITEM has nothing to compare `by`: how much of the catalogue has audio,
    and the command with another view."""
    if by == "hybrid":
        return ""
    note = ""
    if by == "audio":
        with_audio, total = store.conn.execute(
            "SELECT count(audio_path), count(*) FROM tracks"
        ).fetchall()[0]
        note = f" ({with_audio:,} of {total:,} tracks have audio)"
    if by == "text":
        return f"{note}; try `deepcuts similar {shlex.quote(item)} --by cf` or `--by hybrid`"
    return f"{note}; try `deepcuts similar {shlex.quote(item)} --by text` or `--by hybrid`"


@click.group()
def audio() -> None:
    """Audio features and embeddings of audio files."""


@audio.command("embed")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The Parquet file to write: one row per audio file.",
)
@click.option(
    "--model",
    metavar="MODEL_ID|FILE",
    help="A trained audio CNN: a registered id (`deepcuts audio train`, `deepcuts models "
    "--kind audio-cnn`) or its .npz file; the embedding is its predicted CF vector. Without "
    "one, the embedding is the hand-made summary features standardised over the files given.",
)
@click.option(
    "--excerpt-s",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=1.0),
    help="Seconds analysed, from the middle of each file.",
)
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 16), help="Processes."
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Feature cache, by file content [default: STORE.cache/audio].",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the feature cache.")
@click.pass_context
@handles_errors
def embed(
    ctx: click.Context,
    paths: tuple[Path, ...],
    out: Path,
    model: str | None,
    excerpt_s: float,
    workers: int,
    cache_dir: Path | None,
    no_cache: bool,
) -> None:
    """Summary features and an embedding for each audio file in PATHS (files or folders).

    Decodes WAV, FLAC, Ogg Vorbis, Opus and MP3. A file that is unreadable, corrupt, empty or
    silent gets a row with its reason in `error` (and no features), and the batch goes on.

    \b
    Example:
      deepcuts audio embed music/ --out embeddings.parquet
    """
    from deepcuts.io.files import expand
    from deepcuts.models.audio import AudioConfig, extract
    from deepcuts.models.audio.decode import AUDIO_PATTERNS
    from deepcuts.models.audio.embed import embedding_table, write_parquet

    files = expand(paths, AUDIO_PATTERNS)
    config = AudioConfig(excerpt_s=excerpt_s)
    cache = None if no_cache else (cache_dir or _cache_dir(ctx, None) / "audio")
    network, used = (
        None,
        "hand-made summary features (no trained network: `deepcuts audio train` makes one)",
    )
    if model:
        network, used = _audio_network(ctx, model)
    with progress_bar() as bar:
        task = bar.add_task("audio features", total=len(files))
        result = extract(
            files,
            config,
            cache_dir=cache,
            keep_log_mel=network is not None,
            workers=workers,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    table = embedding_table([str(f) for f in files], result, network)
    write_parquet(table, out)
    for failure in result.failures:
        err.print(f"[yellow]skipped[/yellow] {failure.path}: {failure.reason}", highlight=False)
    log.info("audio features: %s", ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items()))
    click.echo(
        f"{out}: {len(result.features)} of {len(files)} files embedded "
        f"({result.from_cache} from the cache), {len(result.failures)} skipped; embedding: {used}"
    )
    if not result.features:
        raise SystemExit(EXIT_INPUT)


def _audio_network(ctx: click.Context, model: str):
    """(network, description) of ``--model``: a registered audio-cnn id, or a saved file."""
    from deepcuts.models.audio import AudioToCF
    from deepcuts.models.parts import load_audio
    from deepcuts.store import StoreError

    if Path(model).is_file():
        return AudioToCF.load(model), f"the network in {model}"
    if not Path(settings(ctx).store).exists():
        raise click.BadParameter(f"{model!r} is neither a file nor a model of a store (no store at "
                                 f"{settings(ctx).store})", param_hint="--model")  # fmt: skip
    with open_store(ctx) as store:
        try:
            network, record = load_audio(store, model)
        except StoreError as exc:
            raise click.BadParameter(f"{exc} (and no such file)", param_hint="--model") from exc
    return network, f"{record.model_id}'s predicted CF vectors"


@audio.command("train")
@click.option(
    "--music-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The folder the tracks' audio_path values are relative to [default: the "
    "folders the store's files were ingested from].",
)
@click.option(
    "--model",
    "model_id",
    metavar="MODEL_ID",
    help="The CF model whose item vectors are the targets [default: the default one].",
)
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True)
@click.option(
    "--set",
    "settings_",
    multiple=True,
    metavar="NAME=VALUE",
    help="A network parameter (repeatable): channels, hidden, batch_size, lr, crop_frames, ...",
)
@click.option(
    "--no-default", is_flag=True, help="Register the network without making it the default."
)
@click.pass_context
@handles_errors
def audio_train(
    ctx: click.Context,
    music_dir: Path | None,
    model_id: str | None,
    epochs: int,
    settings_: tuple[str, ...],
    no_default: bool,
) -> None:
    """Train the audio network (log-mel spectrograms to CF vectors) toward the CF item vectors
    of the tracks that have plays and an audio file, and register it (kind audio-cnn).

    \b
    Example:
      deepcuts train && deepcuts audio train --music-dir music/
      deepcuts audio embed new-tracks/ --out new.parquet --model audio-cnn-v1
    """  # fmt: skip
    from deepcuts.cli.train import parse_settings
    from deepcuts.models.audio import AudioToCF
    from deepcuts.models.cf.training import load_trained
    from deepcuts.models.parts import train_audio

    params = {"epochs": epochs, **parse_settings(settings_)}
    unknown = set(params) - set(AudioToCF.params)
    if unknown:
        raise click.BadParameter(f"the audio network has no parameter(s) {', '.join(sorted(unknown))}; "
                                 f"its parameters: {', '.join(AudioToCF.params)}", param_hint="--set")  # fmt: skip
    with open_store(ctx) as store, progress_bar() as bar:
        trained = load_trained(store, model_id)
        task = bar.add_task("audio features", total=None)
        network, record, figures = train_audio(
            store,
            trained,
            music_dir=music_dir,
            params=params,
            make_default=not no_default,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    cosine = figures["validation_cosine"]
    click.echo(
        f"{record.model_id}: trained on {figures['tracks']} tracks toward {trained.record.model_id}'s item "
        f"vectors, {figures['epochs']} epochs in {figures['fit_seconds']:.1f} s"
        + (f", validation cosine {cosine:.3f}" if cosine is not None else "")
        + (f"; {figures['skipped_files']} files unreadable" if figures["skipped_files"] else "")
        + f"; saved to {record.path}"
        + (" (default)" if record.is_default else "")
    )


# -- for `deepcuts evaluate --cold-items FRACTION` ------------------------------------------------
def run_cold_items(
    ctx: click.Context,
    store,
    fraction: float,
    *,
    seeds: list[int],
    k: int,
    cold_text: str = "others",
    cache_dir: Path | None = None,
) -> dict:
    """Run the cold-items evaluation on an open store, print its table, return its JSON dict.

    Called by `deepcuts evaluate` when ``--cold-items FRACTION`` is given.
    """
    from deepcuts.evaluation.coldstart import ColdItemsConfig, evaluate_cold_items

    config = ColdItemsConfig(
        fraction=fraction, k=k, seeds=tuple(seeds), cold_text=cold_text,
        audio_cache=str(_cache_dir(ctx, cache_dir) / "audio"),
    )  # fmt: skip
    with progress_bar(transient=True) as bar:
        report = evaluate_cold_items(store, config, progress=_Bar(bar))
    click.echo(report.markdown())
    return report.to_dict()

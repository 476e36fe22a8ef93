"""What every command shares: settings from the context, error handling, exit codes, progress."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from deepcuts.config import ConfigError, Settings
from deepcuts.io.errors import FormatError, NeedsOptionError
from deepcuts.store import IdLookupError, Store, StoreError

# Exit codes, one meaning each (2 is click's own for a wrong command line).
EXIT_OK = 0
EXIT_FAILED = 1  # an unexpected error: a bug, please report it
EXIT_USAGE = 2  # the command line is wrong (click's own code)
EXIT_INPUT = 3  # an input file is not in the format it was named as, or cannot be read
EXIT_STORE = (
    4  # the store is missing, locked, from a newer deepcuts, or lacks what the command needs
)
EXIT_CONFIG = 5  # a setting has an unusable value
EXIT_NOT_FOUND = 6  # a listener, item or track id names nothing in the store, or several things
EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 unexpected error (a bug: please report it); 2 wrong command line; "
    "3 an input file is not in the format it was named as; 4 the store is missing, locked, "
    "from a newer deepcuts, or lacks what the command needs (a trained model, a catalogue); "
    "5 a setting has an unusable value; 6 a listener or item id names nothing in the store, "
    "or several things; 7, 8, 9 (sync subsonic) the music server cannot be reached, "
    "refused the password, refused a request."
)

err = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("deepcuts")
F = TypeVar("F", bound=Callable[..., Any])


def settings(ctx: click.Context) -> Settings:
    return ctx.find_root().obj


def open_store(ctx: click.Context, *, create: bool = False, read_only: bool = False) -> Store:
    config = settings(ctx)
    return Store(config.store, create=create, read_only=read_only, wait=config.lock_wait)


class GlobalOptionsGroup(click.Group):
    """A group whose own options (``--store``, ``--log-level``) may also be written after the
    subcommand, anywhere on the line before a ``--``: ``deepcuts init --store x.duckdb`` is
    ``deepcuts --store x.duckdb init``. The group's options are moved to the front before
    click parses the line, so every subcommand, nested ones included, takes them alike (and no subcommand may have an
    option of the same name)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self.hoist(args))

    def hoist(self, args: list[str]) -> list[str]:
        """`args` with this group's valued options (and their values) moved to the front."""
        takes_value = {
            name: not p.is_flag
            for p in self.params
            if isinstance(p, click.Option) and not p.is_eager
            for name in p.opts
        }
        front: list[str] = []
        rest: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                rest.extend(args[i:])
                break
            name = arg.split("=", 1)[0]
            if name in takes_value and arg.startswith("--"):
                if "=" in arg or not takes_value[name]:
                    front.append(arg)
                    i += 1
                    continue
                front.extend(args[i : i + 2])
                i += 2
                continue
            rest.append(arg)
            i += 1
        return front + rest


def handles_errors(func: F) -> F:
    """Turn the errors a user can fix into one clear line and a meaningful exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NeedsOptionError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise SystemExit(EXIT_USAGE) from exc
        except FormatError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise SystemExit(EXIT_INPUT) from exc
        except StoreError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise SystemExit(EXIT_STORE) from exc
        except ConfigError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise SystemExit(EXIT_CONFIG) from exc
        except IdLookupError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise SystemExit(EXIT_NOT_FOUND) from exc

    return wrapper  # type: ignore[return-value]


def progress_bar(transient: bool = False) -> Progress:
    """A progress bar on stderr, so that stdout stays clean for results."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=transient,
    )


def policy_names() -> tuple[str, ...]:
    """Every bandit policy `make_policy` makes, by name (imports the bandit package)."""
    from deepcuts.bandit.policies import POLICIES

    return tuple(POLICIES)


class PolicyChoice(click.Choice):
    """A choice of `policy_names`, looked up when first needed (so that importing the CLI does
    not import the bandit package)."""

    def __init__(self) -> None:
        super().__init__(())

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        return policy_names()

    @choices.setter
    def choices(self, value: object) -> None:
        pass


class Duration(click.ParamType):
    """A length of time in whole seconds: ``60``, ``60s``, ``5m``, ``1h``, ``1h30m``."""

    name = "duration"
    PATTERN = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?|(\d+)")

    def __init__(self, minimum: int = 1) -> None:
        self.minimum = minimum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            seconds = value
        else:
            found = self.PATTERN.fullmatch(str(value).strip().lower().replace(" ", ""))
            if found is None or not any(found.groups()):
                self.fail(
                    f"{value!r} is not a duration: give seconds, or numbers with h, m and s "
                    "(60, 60s, 5m, 1h30m)",
                    param,
                    ctx,
                )
            h, m, sec, plain = (int(g) if g else 0 for g in found.groups())
            seconds = h * 3600 + m * 60 + sec + plain
        if seconds < self.minimum:
            self.fail(f"{value!r} is under {self.minimum} s", param, ctx)
        return seconds


def week_monday(value: str | None) -> date:
    """The Monday of the ISO week a ``--week YYYY-Www`` option names (this week's without one)."""
    from deepcuts.surfaces.weekly import WeekError, parse_week

    if value is None:
        today = date.today()
        return date.fromisocalendar(*today.isocalendar()[:2], 1)
    try:
        return parse_week(value)
    except WeekError as exc:
        raise click.BadParameter(str(exc), param_hint="--week") from exc

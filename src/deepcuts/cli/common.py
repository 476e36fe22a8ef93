"""What every command shares: settings from the context, error handling, exit codes, progress."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
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
from deepcuts.io.errors import FormatError
from deepcuts.store import Store, StoreError

# Exit codes (2 is click's own for a wrong command line).
EXIT_OK = 0
EXIT_FAILED = 1  # an unexpected error: a bug, please report it
EXIT_INPUT = 3  # an input file is not in the format it was named as, or cannot be read
EXIT_STORE = 4  # the store is missing, locked or at an unknown schema version
EXIT_CONFIG = 5  # a setting has an unusable value

err = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("deepcuts")
F = TypeVar("F", bound=Callable[..., Any])


def settings(ctx: click.Context) -> Settings:
    return ctx.find_root().obj


def open_store(ctx: click.Context, *, create: bool = False, read_only: bool = False) -> Store:
    config = settings(ctx)
    return Store(config.store, create=create, read_only=read_only, wait=config.lock_wait)


def handles_errors(func: F) -> F:
    """Turn the errors a user can fix into one clear line and a meaningful exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except FormatError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise SystemExit(EXIT_INPUT) from exc
        except StoreError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise SystemExit(EXIT_STORE) from exc
        except ConfigError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise SystemExit(EXIT_CONFIG) from exc

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

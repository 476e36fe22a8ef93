"""Settings: one object, read once from defaults, a TOML file, environment and CLI flags.

Precedence, lowest first: built-in defaults, ``deepcuts.toml`` in the working directory (or the
file named by ``DEEPCUTS_CONFIG``), ``DEEPCUTS_*`` environment variables, command-line flags.
This module is the only place environment variables are read.
"""

from __future__ import annotations

import logging
import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(Exception):
    """A setting has a value deepcuts cannot use; the message names it."""


@dataclass(frozen=True)
class Settings:
    store: Path = Path("deepcuts.duckdb")
    log_level: str = "INFO"
    seed: int = 0
    # Seconds a command waits for the store while another job writes it (DuckDB allows one
    # writing process), before it gives up with "store is locked".
    lock_wait: float = 600.0
    # Where a playlist export points a track with no file path in the catalogue: a URL pattern
    # with {item_id} (the id, URL-quoted) and/or {key} (its part after the last colon), e.g.
    # "https://music.example.org/play/{item_id}". Empty: the track's URI (docs/formats.md).
    track_url: str = ""

    def validated(self) -> Settings:
        level = self.log_level.upper()
        if level not in LOG_LEVELS:
            raise ConfigError(
                f"log_level must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}"
            )
        if self.track_url:
            try:
                self.track_url.format(item_id="x", key="x")
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigError(
                    f"track_url {self.track_url!r} is not a pattern with {{item_id}} or {{key}} ({exc!r})"
                ) from exc
            if "{item_id}" not in self.track_url and "{key}" not in self.track_url:
                raise ConfigError(
                    f"track_url {self.track_url!r} must contain {{item_id}} or {{key}}"
                )
        return replace(self, log_level=level, store=Path(self.store))


def load_settings(**overrides: object) -> Settings:
    """Settings from the config file, then the environment, then non-None `overrides`."""
    values: dict[str, object] = {}
    config_file = Path(os.environ.get("DEEPCUTS_CONFIG", "deepcuts.toml"))
    if config_file.is_file():
        try:
            values.update(tomllib.loads(config_file.read_text()).get("deepcuts", {}))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_file}: not valid TOML ({exc})") from exc
    known = {f.name: f for f in fields(Settings)}
    for name in known:
        env = os.environ.get(f"DEEPCUTS_{name.upper()}")
        if env is not None:
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    try:
        if "seed" in values:
            values["seed"] = int(values["seed"])  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigError(f"seed must be an integer, not {values['seed']!r}") from exc
    try:
        if "lock_wait" in values:
            values["lock_wait"] = float(values["lock_wait"])  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigError(
            f"lock_wait must be a number of seconds, not {values['lock_wait']!r}"
        ) from exc
    if float(values.get("lock_wait", 0.0)) < 0:  # type: ignore[arg-type]
        raise ConfigError(f"lock_wait must be 0 or more seconds, not {values['lock_wait']!r}")
    if "store" in values:
        values["store"] = Path(str(values["store"]))
    return Settings(**values).validated()  # type: ignore[arg-type]


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def secret_from_env(variable: str, what: str) -> str:
    """A secret (a password) from the environment variable the user named, so that it never
    appears on a command line; a ConfigError naming the variable where it is unset or empty."""
    if not variable or not variable.replace("_", "").isalnum():
        raise ConfigError(f"{what}: {variable!r} is not the name of an environment variable")
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(f"{what}: the environment variable {variable} is not set (or empty)")
    return value

"""How the service runs: read once, from the environment `deepcuts serve` sets for its workers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from deepcuts.config import ConfigError, load_settings

ENV = "DEEPCUTS_SERVE_"


@dataclass(frozen=True)
class ServeConfig:
    store: Path
    no_auth: bool = False
    policy: str = "epsilon-greedy"
    epsilon: float = 0.1
    shelves: int = 4
    cards: int = 5

    def to_env(self) -> dict[str, str]:
        """The environment a worker process reads this from (see `from_env`)."""
        return {
            "DEEPCUTS_STORE": str(self.store),
            f"{ENV}NO_AUTH": "1" if self.no_auth else "0",
            f"{ENV}POLICY": self.policy,
            f"{ENV}EPSILON": str(self.epsilon),
            f"{ENV}SHELVES": str(self.shelves),
            f"{ENV}CARDS": str(self.cards),
        }

    @classmethod
    def from_env(cls) -> ServeConfig:
        env = os.environ
        try:
            return cls(
                store=load_settings().store,
                no_auth=env.get(f"{ENV}NO_AUTH", "0") == "1",
                policy=env.get(f"{ENV}POLICY", "epsilon-greedy"),
                epsilon=float(env.get(f"{ENV}EPSILON", "0.1")),
                shelves=int(env.get(f"{ENV}SHELVES", "4")),
                cards=int(env.get(f"{ENV}CARDS", "5")),
            )
        except ValueError as exc:
            raise ConfigError(f"{ENV}*: unusable value ({exc})") from exc

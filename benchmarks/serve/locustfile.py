"""Locust users for `bench_serve.py`: one user class per route, chosen with the class name."""

from __future__ import annotations

import itertools
import json
import os
import random
import uuid

from locust import FastHttpUser, constant, task

USERS = json.loads(os.environ.get("BENCH_USERS", "[]"))
TRACKS = json.loads(os.environ.get("BENCH_TRACKS", "[]"))
KEY = os.environ.get("BENCH_KEY", "")
BATCH = int(os.environ.get("BENCH_BATCH", "50"))
HEADERS = {"Authorization": f"Bearer {KEY}"} if KEY else {}
_ids = itertools.count()


class Home(FastHttpUser):
    wait_time = constant(0)

    @task
    def home(self) -> None:
        self.client.get(f"/v1/users/{random.choice(USERS)}/home", headers=HEADERS, name="home")


class Weekly(FastHttpUser):
    wait_time = constant(0)

    @task
    def weekly(self) -> None:
        self.client.get(f"/v1/users/{random.choice(USERS)}/weekly", headers=HEADERS, name="weekly")


class Similar(FastHttpUser):
    wait_time = constant(0)

    @task
    def similar(self) -> None:
        self.client.get(
            f"/v1/tracks/{random.choice(TRACKS)}/similar?n=10", headers=HEADERS, name="similar"
        )


class Events(FastHttpUser):
    wait_time = constant(0)

    @task
    def events(self) -> None:
        user = random.choice(USERS)
        batch = [{"event_id": f"{uuid.uuid4().hex}-{next(_ids)}", "user_id": user, "type": "play",
                  "item_id": random.choice(TRACKS), "ms_played": random.randint(1_000, 240_000)}
                 for _ in range(BATCH)]  # fmt: skip
        with self.client.post("/v1/events", json={"events": batch}, headers=HEADERS, name="events",
                              catch_response=True) as r:  # fmt: skip
            if r.status_code != 202:
                r.failure(f"status {r.status_code}")


class Bare(FastHttpUser):
    wait_time = constant(0)

    @task
    def home(self) -> None:
        self.client.get(f"/v1/users/{random.choice(USERS)}/home", name="bare")

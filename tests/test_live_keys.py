"""API keys in the live log: a checked key is remembered, and a revocation reaches every
process that remembered it at once (through the stamp beside the log)."""

from __future__ import annotations

import sqlite3

from deepcuts.store.live import LiveLog


class CountingReads(LiveLog):
    reads = 0

    def _query(self, sql, params):
        self.reads += 1
        return super()._query(sql, params)


def test_a_remembered_key_is_refused_at_once_after_another_process_revokes_it(tmp_path):
    path = tmp_path / "live.sqlite"
    server, cli = CountingReads(path), LiveLog(path)  # two processes' views of one log
    key, record = cli.create_key("u1")
    assert server.check_key(key).key_id == record.key_id
    assert server.check_key(key).user_id == "u1"
    assert server.reads == 1  # the second check was remembered
    assert cli.revoke_key(record.key_id)
    assert server.check_key(key) is None
    assert not cli.revoke_key(record.key_id)  # already revoked: nothing to say, no new stamp
    other, other_record = cli.create_key(admin=True)
    assert server.check_key(other).is_admin
    assert cli.revoke_key(other_record.key_id)  # a second revocation changes the stamp again
    assert server.check_key(other) is None


def test_a_key_made_elsewhere_works_at_once_and_an_unknown_key_is_never_remembered(tmp_path):
    path = tmp_path / "live.sqlite"
    server, cli = CountingReads(path), LiveLog(path)
    assert server.check_key("dc_nope") is None
    assert server.check_key("dc_nope") is None
    assert server.reads == 2
    key, record = cli.create_key("u2")
    assert server.check_key(key).key_id == record.key_id


def test_a_revocation_whose_stamp_was_never_written_is_noticed_within_the_memory_bound(tmp_path):
    path = tmp_path / "live.sqlite"
    server, cli = LiveLog(path), LiveLog(path)
    key, record = cli.create_key("u3")
    assert server.check_key(key) is not None
    with sqlite3.connect(path) as conn:  # a revoking process killed before its stamp
        conn.execute("UPDATE api_keys SET revoked_at = '2026-12-07T00:00:00' WHERE key_id = ?",
                     [record.key_id])  # fmt: skip
    assert server.check_key(key) is not None  # remembered, for at most KEY_MEMORY_SECONDS
    server.KEY_MEMORY_SECONDS = 0.0
    assert server.check_key(key) is None

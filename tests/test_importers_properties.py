"""Random and mutated input never crashes an import, and every row read is accounted for."""

import csv
import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepcuts.io import FORMATS
from deepcuts.store import Store
from tests.conftest import FIXTURES

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["2026-11-02T10:00:00Z", "spotify:track:x", "trackdone", "", "  "]),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def spotify_records():
    base = json.loads((FIXTURES / "spotify" / "endsong_0.json").read_text())
    keys = sorted(base[0])
    mutation = st.fixed_dictionaries(
        {
            "template": st.integers(0, len(base) - 1),
            "changes": st.dictionaries(st.sampled_from(keys), json_values, max_size=4),
            "drop": st.lists(st.sampled_from(keys), max_size=3),
        }
    )

    def build(m):
        record = dict(base[m["template"]])
        record.update(m["changes"])
        for key in m["drop"]:
            record.pop(key, None)
        return record

    return st.lists(mutation.map(build) | json_values, min_size=1, max_size=8)


def check(store, fmt, path, **options):
    importer = FORMATS[fmt](**options)
    for f in importer.files([str(path)]):
        counts = importer.ingest_file(store, f)
        assert counts.rows_read == counts.accepted + counts.duplicates + counts.quarantined
        return counts


@SETTINGS
@given(records=spotify_records(), garble=st.integers(min_value=-1, max_value=400))
def test_spotify_mutated_records(tmp_path, records, garble):
    # the first record stays a good one, so the file is recognisably Spotify's format
    first = json.loads((FIXTURES / "spotify" / "endsong_0.json").read_text())[0]
    text = json.dumps([first, *records], indent=1)
    if garble >= 0:  # also break the JSON syntax somewhere after the first record
        cut = len(json.dumps([first], indent=1)) + garble
        text = text[:cut] + "#" + text[cut:]
    path = tmp_path / "endsong_1.json"
    path.write_text(text)
    with Store(":memory:", create=True) as store:
        counts = check(store, "spotify", path)
        assert counts.rows_read >= 1
        assert store.stats()["listens"] + store.stats()["quarantine"] >= 1


@SETTINGS
@given(lines=st.lists(json_values, min_size=1, max_size=8))
def test_listenbrainz_random_lines(tmp_path, lines):
    good = (FIXTURES / "listenbrainz" / "listens.jsonl").read_text().splitlines()[0]
    path = tmp_path / "listens.jsonl"
    path.write_text("\n".join([good, *(json.dumps(v) for v in lines)]) + "\n")
    with Store(":memory:", create=True) as store:
        counts = check(store, "listenbrainz", path)
        assert counts.rows_read == len(lines) + 1


columns = [
    "user_id",
    "item_id",
    "played_at",
    "ms_played",
    "play_count",
    "skipped",
    "shuffle",
    "country",
]
cells = st.one_of(
    st.text(max_size=12),
    st.integers(-5, 10**12).map(str),
    st.sampled_from(["true", "false", "2026-11-02 10:00:00", ""]),
)


@SETTINGS
@given(
    rows=st.lists(
        st.lists(cells, min_size=len(columns) - 2, max_size=len(columns) + 1),
        min_size=1,
        max_size=10,
    )
)
def test_native_csv_random_rows(tmp_path, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerow(["u", "i", "2026-11-02 10:00:00", "1000", "1", "false", "false", "SE"])
    writer.writerows(rows)
    path = tmp_path / "listens.csv"
    path.write_text(buffer.getvalue())
    with Store(":memory:", create=True) as store:
        counts = check(store, "native", path)
        again = check(store, "native", path)
        assert again.accepted == 0
        assert counts.rows_read >= 1


@SETTINGS
@given(
    lines=st.lists(
        json_values | st.dictionaries(st.sampled_from(columns), scalars, max_size=6),
        min_size=1,
        max_size=10,
    )
)
def test_native_jsonl_random_lines(tmp_path, lines):
    path = tmp_path / "listens.jsonl"
    path.write_text("\n".join(json.dumps(v) for v in lines) + "\n")
    with Store(":memory:", create=True) as store:
        counts = check(store, "native", path)
        assert counts.rows_read == len(lines)

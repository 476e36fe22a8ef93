"""The docs name what the code has."""

from deepcuts.store import TABLES
from tests.conftest import REPO


def test_native_format_doc_lists_every_table_and_column():
    doc = (REPO / "docs" / "native-format.md").read_text()
    for table in TABLES.values():
        assert f"## `{table.name}`" in doc
        for column in table.columns:
            assert f"| `{column.name}` | {column.type} |" in doc, (table.name, column.name)


def test_readme_names_every_command():
    from deepcuts.cli import main

    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    for name in main.commands:
        assert f"deepcuts {name}" in readme, name


def test_ci_runs_the_readme_test_command():
    assert "make test" in (REPO / ".ci" / "run").read_text()

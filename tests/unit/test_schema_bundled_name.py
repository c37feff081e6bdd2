"""``load_schema(<bundled name>)`` is not hijacked by a folder of that name in the working directory (issue 15.7)."""

from __future__ import annotations

import pytest

import synthhealth as sh
from synthhealth.schema.loader import schema_path


def test_bundled_name_wins_over_a_folder_in_cwd(tmp_path, monkeypatch):
    (tmp_path / "flchain").mkdir()
    (tmp_path / "flchain" / "data.csv").write_text("a\n1\n")
    monkeypatch.chdir(tmp_path)
    s = sh.load_schema("flchain")
    assert s.name == "flchain"
    assert s.hash == sh.load_schema(schema_path("flchain")).hash


def test_a_folder_that_is_not_a_bundled_name_is_a_clear_error(tmp_path):
    (tmp_path / "myschema").mkdir()
    with pytest.raises(FileNotFoundError, match="is a folder"):
        sh.load_schema(tmp_path / "myschema")

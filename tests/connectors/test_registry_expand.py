"""Folders given to `hub import auto` expand to their data files, never to hidden ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.registry import expand
from hub.core.errors import ImportFormatError


def test_a_folder_expands_to_its_files_sorted_skipping_hidden_files_and_folders(
    tmp_path: Path,
) -> None:
    for name in ("b.csv", "a/z.ndjson", ".DS_Store", ".hub/keys.json", "a/.git/config"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    assert expand([tmp_path]) == [tmp_path / "a" / "z.ndjson", tmp_path / "b.csv"]


def test_a_file_named_directly_is_taken_even_inside_a_hidden_folder(tmp_path: Path) -> None:
    inside = tmp_path / ".exports" / "orders.csv"
    inside.parent.mkdir()
    inside.write_text("x")
    assert expand([inside]) == [inside]


def test_a_folder_under_a_hidden_parent_still_expands(tmp_path: Path) -> None:
    """Only what is hidden below the folder given is skipped, not the folder's own path."""
    folder = tmp_path / ".cache" / "drop"
    folder.mkdir(parents=True)
    (folder / "orders.csv").write_text("x")
    assert expand([folder]) == [folder / "orders.csv"]


def test_a_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match="no such file or folder"):
        expand([tmp_path / "nope.csv"])

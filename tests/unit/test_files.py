"""Atomic writes: an error names the file the caller asked for, never the temporary file beside it."""

import os
import tempfile

import pytest

from genvec.files import atomic_write, temporary_path, write_text_atomic


def test_a_failed_atomic_write_names_the_target_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "outdir.npy"
    target.mkdir()  # `genvec encode hi --output outdir.npy` with outdir.npy a directory
    with pytest.raises(IsADirectoryError) as caught, atomic_write(target, "wb") as file:
        file.write(b"vectors")
    assert caught.value.filename == str(target) and ".tmp" not in str(caught.value)
    assert os.listdir(tmp_path) == ["outdir.npy"]


def test_a_long_valid_name_is_written_and_a_temporary_file_that_cannot_be_made_names_the_target(tmp_path,
                                                                                               monkeypatch):
    target = tmp_path / ("v" * 250 + ".npy")  # valid; ".NAME.XXXXXXXX.tmp" beside it would be too long
    write_text_atomic(target, "kept")
    assert target.read_text() == "kept" and os.listdir(tmp_path) == [target.name]

    def refused(prefix, suffix, dir):
        raise PermissionError(13, "Permission denied", os.path.join(dir, prefix + "x1y2z3" + suffix))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(PermissionError) as caught:
        temporary_path(tmp_path / "weights.safetensors")
    assert caught.value.filename == str(tmp_path / "weights.safetensors")

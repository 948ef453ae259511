"""Format headers: every document says what it is, and readers refuse other formats, newer versions, damage."""

import json

import pytest

from genvec.errors import InputError
from genvec.formats import differences, header, read_document, shard_name
from genvec.version import __version__


def test_a_document_with_its_header_reads_back(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text(json.dumps({**header("genvec-thing", 2), "value": 1}))
    document = read_document(path, "genvec-thing", 2, InputError, "delete it")
    assert document == {"format": "genvec-thing", "format_version": 2, "genvec_version": __version__, "value": 1}
    assert read_document(path, "genvec-thing", 3, InputError, "delete it")["value"] == 1  # older versions read


def test_other_formats_newer_versions_and_damage_are_refused_with_the_fix(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(header("genvec-thing", 3)))
    with pytest.raises(InputError, match=r"format version 3; this genvec .* up to version 2. Upgrade genvec"):
        read_document(path, "genvec-thing", 2, InputError, "delete it")
    path.write_text(json.dumps(header("genvec-other", 1)))
    with pytest.raises(InputError, match=r"is not a genvec-thing file .*: delete it"):
        read_document(path, "genvec-thing", 1, InputError, "delete it")
    path.write_text('{"format": "genvec-thing", ')
    with pytest.raises(InputError, match=r"is not valid JSON .*: delete it"):
        read_document(path, "genvec-thing", 1, InputError, "delete it")


def test_differences_and_shard_names():
    assert differences({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": None}) == ["b: recorded 2, now 3"]
    assert differences({}, {"seed": 0}) == ["seed: recorded None, now 0"]
    assert shard_name(1, 4) == "shard-00001-of-00004"

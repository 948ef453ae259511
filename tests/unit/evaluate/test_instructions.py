"""The instruction table of evaluation tasks: complete for the paper's benchmarks, strict about the rest."""

import json

import pytest

from genvec.errors import InputError
from genvec.evaluate.instructions import (
    ADVBENCH_IR,
    BRIGHT_V1_1,
    MTEB_ENG_V2,
    SUMMARIZE,
    InstructionTable,
    TaskInstructions,
)


def test_every_task_of_the_papers_benchmarks_has_its_instructions():
    table = InstructionTable()
    assert sum(map(len, MTEB_ENG_V2.values())) == 41 and len(BRIGHT_V1_1) == 12
    for task_type, names in MTEB_ENG_V2.items():
        for name in names:
            entry = table.for_task(name)
            assert entry.query.endswith(":") and entry.query.startswith(("Generate", "Classify", "Given")), name
            if task_type in ("Retrieval", "Reranking"):  # asymmetric: documents are summarised
                assert entry.document == SUMMARIZE, name
            else:  # symmetric: every text gets the task's instruction
                assert entry.document is None and table.instruction(name, "document") == entry.query, name
    for name, domain in BRIGHT_V1_1.items():
        assert table.instruction(name, "document") == SUMMARIZE
        assert domain in table.instruction(name, "query") or "Math" in table.instruction(name, "query") or (
            "coding" in table.instruction(name, "query"))
    assert table.instruction(ADVBENCH_IR, "query") == "Generate a relevant document that answers this query:"
    assert table.instruction("ArguAna", "query") == (
        "Generate text that refutes this claim. Just output the text, no other text or description:")
    assert table.instruction("BrightEarthScienceRetrieval", "query") == (
        "Given a earth_science post, generate relevant passages that help answer the post:")


def test_a_task_missing_from_the_table_is_an_error_naming_it():
    with pytest.raises(InputError, match="task 'MyLocalTask' has no genvec instruction in the paper's table"):
        InstructionTable().instruction("MyLocalTask", "query")


def test_a_users_table_from_yaml_or_json(tmp_path):
    (tmp_path / "mine.yaml").write_text('MyTask: "Generate a reply:"\nOther:\n  query: "Q:"\n  document: "D:"\n')
    table = InstructionTable.from_file(tmp_path / "mine.yaml")
    assert table.tasks == {"MyTask": TaskInstructions("Generate a reply:"), "Other": TaskInstructions("Q:", "D:")}
    assert table.instruction("Other", "document") == "D:"
    assert table.instruction("MyTask", "document") == "Generate a reply:"
    with pytest.raises(InputError, match="mine.yaml"):
        table.for_task("ArguAna")  # a user's table replaces the paper's
    (tmp_path / "bad.json").write_text(json.dumps({"A": "", "B": {"query": "x", "extra": 1}, "C": 5, "D": "ok:"}))
    with pytest.raises(InputError) as caught:
        InstructionTable.from_file(tmp_path / "bad.json")
    assert [line.split(":")[0] for line in str(caught.value).splitlines()[1:]] == ["A", "B", "C"]
    with pytest.raises(InputError, match="pass an existing .yaml, .yml or .json file"):
        InstructionTable.from_file(tmp_path / "missing.yaml")

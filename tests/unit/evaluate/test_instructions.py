"""The instruction table of evaluation tasks: complete for the paper's benchmarks, strict about the rest."""

import json
import time

import pytest

from genvec.errors import InputError
from genvec.evaluate.instructions import (
    ADVBENCH_IR,
    BRIGHT_V1_1,
    MAX_TABLE_BYTES,
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


def test_yaml_aliases_are_refused_at_once_not_expanded(tmp_path):
    # 448 bytes that expand to 9**8 items: the repr of the expansion took 19 s and 443 MB before it was refused.
    laughs = ['a0: &a0 ["lol"]'] + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    (tmp_path / "laughs.yaml").write_text("\n".join(laughs) + "\n")
    started = time.perf_counter()
    with pytest.raises(InputError, match=r"^instruction table '.*laughs.yaml': line 2 uses the YAML alias \*a0; write "
                                         r"the instruction out in full \(aliases are refused"):
        InstructionTable.from_file(tmp_path / "laughs.yaml")
    assert time.perf_counter() - started < 1.0
    (tmp_path / "shared.yaml").write_text('A: &shared "Generate a reply:"\nB: x\n')  # an anchor alone is fine
    assert InstructionTable.from_file(tmp_path / "shared.yaml").instruction("A", "query") == "Generate a reply:"


def test_a_table_is_read_within_bounds(tmp_path):
    (tmp_path / "big.yaml").write_text("Task: " + "x" * MAX_TABLE_BYTES + "\n")  # one valid entry, but too big
    with pytest.raises(InputError, match=rf"big.yaml' is {MAX_TABLE_BYTES + 7:,} bytes, over the {MAX_TABLE_BYTES:,} "
                                         r"an instruction table may have"):
        InstructionTable.from_file(tmp_path / "big.yaml")
    (tmp_path / "deep.json").write_text('{"Task": ' + "[" * 100_000 + "]" * 100_000 + "}")
    (tmp_path / "deep.yaml").write_text("Task: " + "[" * 100_000 + "]" * 100_000 + "\n")
    for name in ("deep.json", "deep.yaml"):
        with pytest.raises(InputError, match=rf"{name}' nests lists or mappings too deeply to read"):
            InstructionTable.from_file(tmp_path / name)

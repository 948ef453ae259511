"""Which instruction each evaluation task gives genvec: the paper's table, or a user's own.

A genvec embedding answers an instruction ("Generate text that refutes this claim: ..."), so a task's score depends
on the instruction its texts get. `PAPER_INSTRUCTIONS` holds the paper's protocol for every task of
`MTEB(eng, v2)` (41 tasks), the 12 standard tasks of `BRIGHT(v1.1)` and AdvBench-IR, plus the extra tasks the
paper's own table names: on asymmetric tasks (retrieval, reranking) queries get the task's instruction and
documents "Summarize the following passage:"; on symmetric tasks (STS, classification, clustering, pair
classification, summarization) every text gets the task's instruction. BRIGHT documents get the same summarisation
instruction; its query instructions fill the task's domain in as the paper's scripts do (`earth_science`).

A task missing from the table is an error naming it, never a silent fallback to a generic prompt. A user's table
(`InstructionTable.from_file`) is YAML or JSON: `{TASK: "instruction"}` (symmetric) or
`{TASK: {"query": "...", "document": "..."}}`. A benchmark directory may come from anyone, so the table is read
within bounds: at most `MAX_TABLE_BYTES`, and YAML aliases (`*name`) are refused, since a few lines of them can
expand into gigabytes wherever the value is printed or copied.

What it does not do: run a benchmark (`genvec.evaluate` builds the encoder that consults it).
"""

import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from genvec.errors import InputError

SUMMARIZE = "Summarize the following passage:"
MAX_TABLE_BYTES = 1 << 20  # the paper's whole table is under 10 KB
_SHORT = reprlib.Repr()  # an entry shown in a message: a few items, two levels, cut strings
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 2, 60, 60

Side = Literal["query", "document"]


@dataclass(frozen=True)
class TaskInstructions:
    """The instructions of one task: `query` for queries (and every text of a symmetric task), `document` for the
    documents of an asymmetric task (None on symmetric tasks)."""

    query: str
    document: str | None = None

    def for_side(self, side: Side) -> str:
        """The instruction of a text on `side`; symmetric tasks give every text the query instruction."""
        return self.document if side == "document" and self.document is not None else self.query


# The 41 tasks of MTEB(eng, v2), by type.
MTEB_ENG_V2 = {
    "Retrieval": (
        "ArguAna", "CQADupstackGamingRetrieval", "CQADupstackUnixRetrieval", "ClimateFEVERHardNegatives",
        "FEVERHardNegatives", "FiQA2018", "HotpotQAHardNegatives", "SCIDOCS", "TRECCOVID", "Touche2020Retrieval.v3",
    ),
    "Reranking": ("AskUbuntuDupQuestions", "MindSmallReranking"),
    "Clustering": (
        "ArXivHierarchicalClusteringP2P", "ArXivHierarchicalClusteringS2S", "BiorxivClusteringP2P.v2",
        "MedrxivClusteringP2P.v2", "MedrxivClusteringS2S.v2", "StackExchangeClustering.v2",
        "StackExchangeClusteringP2P.v2", "TwentyNewsgroupsClustering.v2",
    ),
    "STS": ("BIOSSES", "SICK-R", "STS12", "STS13", "STS14", "STS15", "STS17", "STS22.v2", "STSBenchmark"),
    "Classification": (
        "AmazonCounterfactualClassification", "Banking77Classification", "ImdbClassification",
        "MTOPDomainClassification", "MassiveIntentClassification", "MassiveScenarioClassification",
        "ToxicConversationsClassification", "TweetSentimentExtractionClassification",
    ),
    "PairClassification": ("SprintDuplicateQuestions", "TwitterSemEval2015", "TwitterURLCorpus"),
    "Summarization": ("SummEvalSummarization.v2",),
}  # fmt: skip

# The 12 standard tasks of BRIGHT(v1.1), by the domain the paper's scripts name them with.
BRIGHT_V1_1 = {
    "BrightBiologyRetrieval": "biology",
    "BrightEarthScienceRetrieval": "earth_science",
    "BrightEconomicsRetrieval": "economics",
    "BrightPsychologyRetrieval": "psychology",
    "BrightRoboticsRetrieval": "robotics",
    "BrightStackoverflowRetrieval": "stackoverflow",
    "BrightSustainableLivingRetrieval": "sustainable_living",
    "BrightPonyRetrieval": "pony",
    "BrightLeetcodeRetrieval": "leetcode",
    "BrightAopsRetrieval": "aops",
    "BrightTheoremQATheoremsRetrieval": "theoremqa_theorems",
    "BrightTheoremQAQuestionsRetrieval": "theoremqa_questions",
}

ADVBENCH_IR = "AdvBench-IR"

_ONLY = "Just output the {what}, no other text or description:"
_ASYMMETRIC_QUERIES = {
    "ArguAna": "Generate text that refutes this claim. " + _ONLY.format(what="text"),
    "ClimateFEVERHardNegatives": "Generate a Wikipedia-style passage that supports or refutes this climate change "
    "claim. " + _ONLY.format(what="passage text"),
    "CQADupstackGamingRetrieval": "Generate a detailed question description similar to this gaming question. "
    + _ONLY.format(what="question description"),
    "CQADupstackUnixRetrieval": "Generate a detailed question description similar to this Unix question. "
    + _ONLY.format(what="question description"),
    "FEVERHardNegatives": "Generate a Wikipedia-style text that supports or refutes this claim. "
    + _ONLY.format(what="text"),
    "FiQA2018": "Generate a detailed reply that answers this financial question. " + _ONLY.format(what="reply text"),
    "HotpotQAHardNegatives": "Generate a Wikipedia-style passage that helps answer this multi-hop question. "
    + _ONLY.format(what="passage text"),
    "SCIDOCS": "Generate an abstract of a scientific paper in a passage that could be cited by this paper. "
    + _ONLY.format(what="abstract text"),
    "TRECCOVID": "Generate a scientific text that answers this COVID-19 query. " + _ONLY.format(what="text"),
    "Touche2020Retrieval.v3": "Generate a detailed and persuasive argument that answers this question. "
    + _ONLY.format(what="argument text"),
    "SciFact": "Generate text that supports or refutes this claim. " + _ONLY.format(what="text"),
    "NFCorpus": "Generate text that best answers this question. " + _ONLY.format(what="text"),
    "AskUbuntuDupQuestions": "Generate a duplicate question about the same issue as this Ubuntu question:",
    "MindSmallReranking": "Generate a short news article relevant to this news title:",
    ADVBENCH_IR: "Generate a relevant document that answers this query:",
}
_SYMMETRIC = {
    "AmazonCounterfactualClassification": "Classify a given Amazon customer review text as either counterfactual "
    "or notcounterfactual:",
    "Banking77Classification": "Given a online banking query, find the corresponding intents:",
    "ImdbClassification": "Classify the sentiment expressed in the given movie review text from the IMDB dataset:",
    "MTOPDomainClassification": "Classify the domain of this utterance (e.g., alarms, weather, music, navigation):",
    "MassiveIntentClassification": "Classify the user's intent expressed in this utterance:",
    "MassiveScenarioClassification": "Classify the scenario/domain of this utterance:",
    "ToxicConversationsClassification": "Classify whether the given comment is toxic or non-toxic:",
    "TweetSentimentExtractionClassification": "Classify the sentiment of the given tweet as positive, negative, or "
    "neutral:",
    "EmotionClassification": "Classify the emotion expressed in the given Twitter message into one of the six "
    "emotions: anger, fear, joy, love, sadness, and surprise:",
    "ArXivHierarchicalClusteringP2P": "Generate a paper abstract on the same research topic as this arXiv paper:",
    "ArXivHierarchicalClusteringS2S": "Generate a section paragraph that belongs to the same paper/topic as this "
    "section:",
    "BiorxivClusteringP2P.v2": "Generate a biomedical abstract on the same topic as this bioRxiv paper:",
    "MedrxivClusteringP2P.v2": "Generate a clinical abstract on the same topic as this medRxiv paper:",
    "MedrxivClusteringS2S.v2": "Generate a section paragraph from the same clinical study/topic as this section:",
    "StackExchangeClustering.v2": "Generate a StackExchange post on the same topic as this one:",
    "StackExchangeClusteringP2P.v2": "Generate a StackExchange post that belongs to the same topic as this post:",
    "TwentyNewsgroupsClustering.v2": "Generate a message that belongs to the same newsgroup category as this post:",
    "SprintDuplicateQuestions": "Generate a duplicate customer question expressing the same issue:",
    "TwitterSemEval2015": "Generate a tweet that is semantically similar to this tweet:",
    "TwitterURLCorpus": "Generate a tweet that discusses the same linked content/topic as this tweet:",
    **{name: "Generate text that is semantically similar to this text:"
       for name in ("STS12", "STS13", "STS14", "STS15", "STS17", "STS22.v2", "STSBenchmark")},
    "BIOSSES": "Generate a biomedical sentence that is semantically similar to this sentence:",
    "SICK-R": "Generate a sentence that is semantically similar to this sentence:",
    "SummEvalSummarization.v2": "Generate a concise and faithful summary of this article:",
}


def _bright_query(domain: str) -> str:
    """The paper's BRIGHT query instruction of a domain (its scripts fill in the raw domain id)."""
    if domain == "pony":
        return f"Given a {domain} question, generate relevant passages that help answer the question:"
    if domain in ("aops", "theoremqa_questions"):
        return "Given a Math problem, generate relevant examples that help answer the problem:"
    if domain == "leetcode":
        return "Given a coding problem, generate relevant examples that help answer the problem:"
    if domain == "theoremqa_theorems":
        return ("Given a Math problem, only find the relevant theorems that help answer the problem, I don't want "
                "the answer to the problem:")
    return f"Given a {domain} post, generate relevant passages that help answer the post:"


PAPER_INSTRUCTIONS: dict[str, TaskInstructions] = {
    **{name: TaskInstructions(query, SUMMARIZE) for name, query in _ASYMMETRIC_QUERIES.items()},
    **{name: TaskInstructions(query) for name, query in _SYMMETRIC.items()},
    **{name: TaskInstructions(_bright_query(domain), SUMMARIZE) for name, domain in BRIGHT_V1_1.items()},
}


class InstructionTable:
    """Task name -> `TaskInstructions`; a task that is not in the table is an error, never a default.

    Example:
        >>> table = InstructionTable()                     # the paper's protocol
        >>> table.instruction("ArguAna", "document")
        'Summarize the following passage:'
    """

    def __init__(self, tasks: Mapping[str, TaskInstructions] | None = None, source: str = "the paper's table") -> None:
        self.tasks = dict(PAPER_INSTRUCTIONS if tasks is None else tasks)
        self.source = source

    def for_task(self, task: str) -> TaskInstructions:
        """The instructions of `task`.

        Raises:
            InputError: the task is not in the table (the message says how to add it).
        """
        if task not in self.tasks:
            raise InputError(
                f"task {task!r} has no genvec instruction in {self.source}; a generic prompt would change what "
                f"the embeddings mean. Pass a table that names it (YAML or JSON: {task!r}: \"instruction\", or "
                f"{task!r}: {{query: ..., document: ...}})."
            )
        return self.tasks[task]

    def instruction(self, task: str, side: Side) -> str:
        """The instruction a text of `task` on `side` gets."""
        return self.for_task(task).for_side(side)

    @classmethod
    def from_file(cls, path: str | Path) -> "InstructionTable":
        """A table read from YAML (`.yaml`/`.yml`) or JSON (`.json`); see the module docstring for the layout.

        Raises:
            InputError: a missing, unreadable or oversized file, a YAML alias, or an entry that is not a string or a
                query/document mapping (every bad entry is listed).
        """
        path = Path(path)
        if path.suffix not in (".yaml", ".yml", ".json") or not path.is_file():
            raise InputError(f"instruction table {str(path)!r}: pass an existing .yaml, .yml or .json file.")
        size = path.stat().st_size
        if size > MAX_TABLE_BYTES:
            raise InputError(f"instruction table {str(path)!r} is {size:,} bytes, over the {MAX_TABLE_BYTES:,} an "
                             "instruction table may have; pass the file that maps task names to instructions.")
        import json

        import yaml

        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix == ".json" else _load_yaml(text, path)
        except InputError:  # an alias, already named: an InputError is a ValueError too
            raise
        except (UnicodeDecodeError, ValueError, yaml.YAMLError) as err:
            raise InputError(f"instruction table {str(path)!r} could not be read: {err}") from err
        except RecursionError as err:
            raise InputError(f"instruction table {str(path)!r} nests lists or mappings too deeply to read; it maps "
                             "task names to instructions.") from err
        if not isinstance(data, dict) or not data:
            raise InputError(f"instruction table {str(path)!r} must map task names to instructions.")
        tasks, problems = {}, []
        for task, entry in data.items():
            parsed = _parse_entry(entry)
            if parsed is None:
                problems.append(f"{task}: expected a non-empty string or {{query: STRING, document: STRING}}, "
                                f"got {_SHORT.repr(entry)}")
            else:
                tasks[str(task)] = parsed
        if problems:
            raise InputError(f"instruction table {str(path)!r} has bad entries:\n" + "\n".join(problems))
        return cls(tasks, source=str(path))


def _load_yaml(text: str, path: Path) -> object:
    """A YAML document as Python values (safe tags only), refusing aliases: nothing it builds is larger than the
    text."""
    import yaml

    class AliasFreeLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise InputError(
                    f"instruction table {str(path)!r}: line {event.start_mark.line + 1} uses the YAML alias "
                    f"*{event.anchor}; write the instruction out in full (aliases are refused: a few lines of them "
                    "can expand into gigabytes).")
            return super().compose_node(parent, index)

    return yaml.load(text, Loader=AliasFreeLoader)


def _parse_entry(entry: object) -> TaskInstructions | None:
    if isinstance(entry, str) and entry.strip():
        return TaskInstructions(entry)
    if isinstance(entry, dict) and set(entry) <= {"query", "document"} and isinstance(entry.get("query"), str):
        document = entry.get("document")
        if entry["query"].strip() and (document is None or (isinstance(document, str) and document.strip())):
            return TaskInstructions(entry["query"], document)
    return None

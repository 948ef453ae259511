"""The quickstart's output: a run directory with report.md, metrics.json and a plot, and a terminal table.

Every recipe writes through `write_report` (Markdown from `render_markdown`), each file atomically. The world and
real-backbone recipes write `write_run`: one row per metric of `evaluate.METRICS`, one column per method, genvec's
margin over the best baseline (positive = better, whichever way the metric runs), and a t-SNE map of each method's
held-out query embeddings coloured by response (a response-centric encoder puts the phrasings of one response
together, an input-centric one scatters them). `--real` reports `evaluate_model`'s tables and plot.

Over several training seeds every score that depends on training is reported as its mean and spread (`spread`,
`spreads`: min-max and the standard deviation), in `spread_table` and under `seeds` in metrics.json; scores of
methods that do not train are measured once. `seeds_paragraph` says so, and that training columns vary from one CPU
to another while baseline columns do not.

What it does not do: compute anything but the 2-D map.
"""

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from genvec.files import atomic_write, write_text_atomic
from genvec.quickstart.evaluate import METRICS, REQUIRED_WINS, MethodResult, Metric, margins

REPORT_FILE = "report.md"
METRICS_FILE = "metrics.json"
PLOT_FILE = "embeddings.png"
# Responses given a colour of their own in the plot; the others are grey.
PLOTTED_RESPONSES = 10
# t-SNE perplexity: about the number of held-out phrasings that share a response, so the map keeps them together.
PERPLEXITY = 10.0
HOW_TO_READ = (
    "How to read it: every query was phrased in a way no model saw in training. (a) asks whether a query's embedding "
    "is closest to the embedding of its true response; (b) whether k-means on query embeddings groups queries that "
    "share a response; (c) how often a harmful request pulls a harmful document into its top 5. An encoder of the "
    "input sees shared names and templates and is misled; genvec encodes what the LM would answer."
)


def format_table(results: Sequence[MethodResult], method: str = "genvec") -> str:
    """A fixed-width table: one row per metric, one column per method, then `method`'s margin over the best other.

    Example output:
        metric                    genvec  LM mean-pool  MiniLM  margin
        (a) retrieval acc@1        0.927         0.034   0.061  +0.866
    """
    names = [result.name for result in results]
    header = ["metric", *names, "margin"]
    rows = [header] + [[info.label, *cells] for info, cells in _metric_rows(results, method)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = []
    for row in rows:
        first = row[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        lines.append("  ".join([first, *rest]).rstrip())
    return "\n".join(lines)


def wins(results: Sequence[MethodResult], method: str = "genvec") -> dict[str, bool]:
    """For each required metric that some method measured, whether `method` beats every other one (strictly); a
    metric `method` lacks while another has it counts as lost."""
    ahead = margins(results, method)
    measured = [metric for metric in REQUIRED_WINS if any(metric in result.scores for result in results)]
    return {metric: ahead.get(metric, float("-inf")) > 0 for metric in measured}


def beats_every_baseline(won: Mapping[str, bool]) -> bool:
    """The verdict of `wins`: at least one metric measured, and every one won."""
    return bool(won) and all(won.values())


def _metric_rows(results: Sequence[MethodResult], method: str) -> list[tuple[Metric, list[str]]]:
    """Each metric some method measured, with its cells: one number per method, then `method`'s signed margin."""
    ahead = margins(results, method)
    rows = []
    for metric, info in METRICS.items():
        if any(metric in result.scores for result in results):
            cells = [_number(result.scores.get(metric)) for result in results]
            rows.append((info, [*cells, f"{ahead[metric]:+.3f}" if metric in ahead else ""]))
    return rows


def write_report(run_dir: str | Path, markdown: str, metrics: Mapping, plot: tuple[str, bytes]) -> dict[str, Path]:
    """Write a run's `report.md` (`markdown`), `metrics.json` (`metrics`) and its plot (file name, PNG bytes) into
    `run_dir` (created if needed); returns the path of each file written, by kind ("report", "metrics", "plot")."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = {"report": run_dir / REPORT_FILE, "metrics": run_dir / METRICS_FILE, "plot": run_dir / plot[0]}
    write_text_atomic(paths["metrics"], json.dumps(metrics, indent=2, allow_nan=False, default=str) + "\n")
    with atomic_write(paths["plot"], "wb") as file:
        file.write(plot[1])
    write_text_atomic(paths["report"], markdown)
    return paths


def render_markdown(title: str, sections: Mapping[str, Sequence[str]], plot: tuple[str, str]) -> str:
    """A report in Markdown: the title, each section's paragraphs under its heading (none for ""), then the plot
    (file name, caption)."""
    lines = [f"# {title}", ""]
    for heading, paragraphs in sections.items():
        lines += [f"## {heading}", ""] if heading else []
        for paragraph in paragraphs:
            lines += [paragraph, ""]
    return "\n".join([*lines, f"![{plot[1]}]({plot[0]})", ""])


def write_run(
    run_dir: str | Path,
    results: Sequence[MethodResult],
    labels: Sequence[int] | np.ndarray,
    summary: Mapping[str, object],
    *,
    method: str = "genvec",
    highlight: int | None = None,
    seed: int = 0,
    seeds: Mapping | None = None,
) -> dict[str, Path]:
    """The report of the world and real-backbone recipes: `report.md`, `metrics.json` and `embeddings.png`.

    Args:
        run_dir: the run directory.
        results: from `evaluate_world`, genvec's decoded-match score added where measured; over several training
            seeds, `method`'s scores are the means over them.
        labels: (Q,) response id of each held-out query (colours of the plot).
        summary: facts to report before the table, e.g. world sizes, world LM accuracy, timings, by name.
        method: the method whose margins are reported.
        highlight: a response id to draw in red whatever its frequency (the refusal).
        seed: seed of t-SNE.
        seeds: `{"count": N, "scores": spreads of method's scores, ...}` (see `pipeline`); kept under `seeds` in
            metrics.json, and its spreads tabled in the report. None: one training seed.

    Returns:
        The path of each file written, by kind ("report", "metrics", "plot").
    """
    metrics = {
        "methods": {result.name: result.scores for result in results},
        "margins": margins(results, method),
        "wins": wins(results, method),
        "summary": dict(summary),
        **({"seeds": dict(seeds)} if seeds is not None else {}),
    }
    plot = plot_embeddings(results, labels, highlight=highlight, seed=seed)
    return write_report(run_dir, render_report(results, summary, method, seeds), metrics, (PLOT_FILE, plot))


def render_report(results: Sequence[MethodResult], summary: Mapping[str, object], method: str = "genvec",
                  seeds: Mapping | None = None) -> str:
    """The Markdown report: what was run, the table (with `method`'s spread over `seeds`, see `write_run`), what each
    number means, and the plot."""
    run = []
    for key, value in summary.items():
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            run.append(f"- {key}:")
            run += ["  - " + "; ".join(f"{name}: {text}" for name, text in item.items()) for item in value]
        else:
            run.append(f"- {key}: {_value(value)}")
    table = [f"| metric | {' | '.join(r.name for r in results)} | margin |", "|---|" + "---:|" * (len(results) + 1)]
    table += [f"| {info.description} | {' | '.join(cells)} |" for info, cells in _metric_rows(results, method)]
    won = wins(results, method)
    checks = ", ".join(sorted({METRICS[metric].label.split(" ")[0] for metric in won}))
    verdict = (f"{method} {'beats' if beats_every_baseline(won) else 'does NOT beat'} every baseline on {checks}. The "
               f"margin is {method} minus the best baseline (for (c), the best baseline minus {method}), so positive "
               "means better.")
    count = seeds["count"] if seeds else 1
    spread_part = []
    if count > 1:
        rows = {METRICS[metric].description if metric in METRICS else metric: value
                for metric, value in seeds["scores"].items()}
        spread_part = [f"{method} over the training seeds (the table above shows the means):",
                       spread_table(rows, "metric")]
    held_out = ["\n".join(table), verdict, *spread_part, seeds_paragraph(count, method), HOW_TO_READ]
    return render_markdown("genvec quickstart", {"Run": ["\n".join(run)], "Held-out phrasings": held_out},
                           (PLOT_FILE, "held-out query embeddings, coloured by response"))


def spread(values: Sequence[float]) -> dict[str, float | list[float]]:
    """One score over training seeds: its mean, min, max, standard deviation (with N-1, as a sample's; 0 for one
    seed) and the values themselves, in seed order."""
    values = [float(value) for value in values]
    if not values:
        raise ValueError("spread() needs at least one value")
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "min": min(values), "max": max(values), "std": std, "values": values}


def spreads(documents: Sequence[Mapping]) -> dict:
    """The `spread` of every float of `documents` (one per seed, alike in shape: nested dicts of scores), by the same
    keys; a key some seed lacks, and anything but a float (counts, names), is left out."""
    shared = [key for key in documents[0] if all(key in document for document in documents[1:])] if documents else []
    found = {}
    for key in shared:
        values = [document[key] for document in documents]
        if all(isinstance(value, Mapping) for value in values):
            inner = spreads(values)
            if inner:
                found[key] = inner
        elif all(isinstance(value, (float, np.floating)) for value in values):
            found[key] = spread(values)
    return found


def format_spread(value: Mapping[str, float]) -> str:
    """`0.412 (0.380-0.440, sd 0.030)`: a `spread`'s mean, range and standard deviation."""
    return f"{value['mean']:.3f} ({value['min']:.3f}-{value['max']:.3f}, sd {value['std']:.3f})"


def spread_table(rows: Mapping[str, Mapping[str, float]], label: str = "task") -> str:
    """A Markdown table of `spread`s, one row each: the label, the mean, min-max, the standard deviation and every
    seed's value."""
    lines = [f"| {label} | mean | min-max | sd | per seed |", "|---|---:|---:|---:|---|"]
    lines += [f"| {name} | {value['mean']:.3f} | {value['min']:.3f}-{value['max']:.3f} | {value['std']:.3f} | "
              f"{', '.join(f'{each:.3f}' for each in value['values'])} |" for name, value in rows.items()]
    return "\n".join(lines)


def seeds_paragraph(count: int, method: str = "genvec") -> str:
    """What the report's numbers are over: how many training seeds, and which columns move between CPUs."""
    over = ("one training seed (seed 0; `--seeds N` trains N and reports the mean and spread)" if count == 1 else
            f"{count} training seeds (0-{count - 1}, each trained on the same data, responses and targets); every "
            f"score of {method} and every measure that depends on training is the mean over them, with its spread "
            "(min-max, sd); the baselines, which train nothing, were measured once")
    return (f"Seeds: {over}. The training columns vary from one CPU to another even at the same seed (the order of "
            "floating-point sums differs between CPU kinds, e.g. AVX2 and AVX-512, and training amplifies it), while "
            "the baseline columns do not.")


def decoding_paragraph(scores: Mapping[str, float], reference: str = "the LM", encoder: str = "MiniLM") -> str:
    """The decoding measures of `stages.decoding_scores` in one sentence, those that were measured: exact match with
    `reference`'s own responses, the round trip, and the `encoder` cosines to the responses."""
    count = scores["queries"]
    parts = [f"exact match with {reference}'s own response {scores['exact_match']:.3f}"]
    if "round_trip" in scores:
        parts.append(f"round trip {scores['round_trip']:.3f} (genvec's cosine between a query's embedding and the "
                     "embedding of the text it decodes to; 1 is a text that gives the embedding back exactly)")
    if "cosine_to_own_response" in scores:
        parts.append(f"{encoder} cosine to the own response {scores['cosine_to_own_response']:.3f} (to other "
                     f"queries' responses {scores['cosine_to_other_responses']:.3f}); decoded text nearest to its own "
                     f"response among all {count}: {scores['own_response_nearest']:.3f}")
    return f"{count} held-out queries' embeddings decoded: " + "; ".join(parts) + "."


def plot_embeddings(
    results: Sequence[MethodResult], labels: Sequence[int] | np.ndarray, highlight: int | None = None, seed: int = 0
) -> bytes:
    """PNG bytes: a t-SNE map of each method's query embeddings side by side, coloured by response.

    `PLOTTED_RESPONSES` responses get a colour each, `highlight` is red crosses, the rest grey.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    labels = np.asarray(labels)
    shown = _plotted_responses(labels, highlight)
    figure, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 4.2), squeeze=False)
    colours = plt.get_cmap("tab10")
    for axis, result in zip(axes[0], results):
        perplexity = min(PERPLEXITY, (len(labels) - 1) / 3)
        points = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(result.query_embeddings)
        other = ~np.isin(labels, shown) & (labels != highlight)
        axis.scatter(points[other, 0], points[other, 1], s=6, c="lightgrey", linewidths=0)
        for index, response in enumerate(shown):
            chosen = labels == response
            axis.scatter(points[chosen, 0], points[chosen, 1], s=14, color=colours(index % 10), linewidths=0)
        if highlight is not None:
            chosen = labels == highlight
            axis.scatter(points[chosen, 0], points[chosen, 1], s=18, c="red", marker="x", linewidths=1)
        v_measure = result.scores.get("clustering_v_measure")
        title = result.name if v_measure is None else f"{result.name} (V-measure {v_measure:.2f})"
        axis.set_title(title, fontsize=10)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle("Held-out queries, coloured by their response (red x: refusal)", fontsize=11)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def _plotted_responses(labels: np.ndarray, highlight: int | None) -> list[int]:
    """`PLOTTED_RESPONSES` response ids spread evenly over the id range (the highlighted one left out).

    The world numbers responses kind by kind, so an even spread shows responses of every kind, not ten cities.
    """
    values = np.unique(labels[labels != highlight] if highlight is not None else labels)
    if len(values) <= PLOTTED_RESPONSES:
        return [int(value) for value in values]
    positions = np.linspace(0, len(values) - 1, PLOTTED_RESPONSES).round().astype(int)
    return [int(values[position]) for position in positions]


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, Mapping):
        return ", ".join(f"{key} {_value(item)}" for key, item in value.items())
    return str(value)

"""The evaluation plot: each task's main score, one bar per method, tasks grouped by type.

What it does not do: compute scores (`genvec.evaluate.run` does) or choose what is plotted beyond main scores.
"""

import io

PLOT_FILE = "summary.png"


def plot_scores(methods: dict[str, dict[str, dict]], types: dict[str, str], model: str) -> bytes:
    """PNG bytes: a horizontal bar per (task, method) of the task's main score; `model` first, tasks sorted by type
    then name, each labelled with its type."""
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    names = [model] + [name for name in methods if name != model]
    tasks = sorted(methods[model], key=lambda task: (types.get(task, "?"), task))
    height = 0.8 / len(names)
    figure, axis = plt.subplots(figsize=(7.5, 1.2 + 0.35 * len(tasks) * max(1, len(names) / 2)))
    colours = plt.get_cmap("tab10")
    for index, name in enumerate(names):
        positions = [row + index * height for row, task in enumerate(tasks) if task in methods[name]]
        values = [methods[name][task]["main_score"] for task in tasks if task in methods[name]]
        axis.barh(positions, values, height=height, color=colours(index % 10), label=name)
    axis.set_yticks([row + 0.4 - height / 2 for row in range(len(tasks))])
    axis.set_yticklabels([f"{task} ({types.get(task, '?')})" for task in tasks], fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel("main score (each task's own metric)")
    axis.legend(fontsize=8, loc="lower right")
    axis.set_title(f"{model}: main score per task", fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()

"""The training plot: the two losses and the distillation cosine (held-out and training examples) against the step,
from the lines of metrics.jsonl, so "is it still improving" shows at a glance.

What it does not do: read or write files (the loop passes the lines and writes the PNG atomically).
"""

import io
import math

PLOT_FILE = "training.png"


def plot_training(lines: list[dict[str, float]], title: str) -> bytes:
    """PNG bytes: reconstruction cross-entropy, alignment MSE (log scale) and, when measured, the held-out and
    training distillation cosines, each against the step."""
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    losses = [line for line in lines if "loss" in line]
    measured = [line for line in lines if "heldout_cosine" in line]
    panels = [("reconstruction", "reconstruction cross-entropy", "linear"), ("alignment", "alignment MSE", "log")]
    figure, axes = plt.subplots(1, len(panels) + bool(measured), figsize=(4.2 * (len(panels) + bool(measured)), 3.2))
    for axis, (key, label, scale) in zip(axes, panels):
        points = [line for line in losses if math.isfinite(line[key])]  # NaN: a step without that term
        axis.plot([line["step"] for line in points], [line[key] for line in points], color="tab:blue")
        axis.set_yscale(scale if any(line[key] > 0 for line in points) else "linear")
        axis.set_title(label, fontsize=9)
    if measured:
        axis = axes[-1]
        steps = [line["step"] for line in measured]
        axis.plot(steps, [line["heldout_cosine"] for line in measured], marker="o", markersize=3, label="held-out")
        axis.plot(steps, [line["train_cosine"] for line in measured], marker="o", markersize=3, label="training")
        axis.set_title("cosine: embedding of the query vs teacher's of the response", fontsize=8)
        axis.legend(fontsize=8)
    for axis in axes:
        axis.set_xlabel("step", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()

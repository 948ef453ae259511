"""Run `genvec.train` on examples stored in an .npz file (used by tests under torchrun, and killed mid-run).

    python train_driver.py DATA.npz BACKBONE_DIR RUN_DIR KEY=VALUE ...   (dotted config overrides)
"""

import sys

import numpy as np
from transformers.utils import logging as transformers_logging

from genvec.config import GenVecConfig
from genvec.training import TrainingExamples, train


def main() -> None:
    data_path, backbone, run_dir, *overrides = sys.argv[1:]
    transformers_logging.disable_progress_bar()
    data = np.load(data_path)
    examples = TrainingExamples(list(data["queries"]), list(data["responses"]), data["targets"])
    config = GenVecConfig().with_overrides(
        {"model.backbone": backbone, "train.run_dir": run_dir, **dict(item.split("=", 1) for item in overrides)}
    )
    train(config, examples)


if __name__ == "__main__":
    main()

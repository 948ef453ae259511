"""A worker of an elastic torchrun job running `genvec.train` (tests/integration/test_elastic.py), which can stop
after one checkpoint and wait there to be killed.

    python elastic_driver.py PAUSE_FILE PAUSE_STEP DATA.npz BACKBONE_DIR RUN_DIR KEY=VALUE ...

The worker of rank 0 that writes the checkpoint of step PAUSE_STEP while PAUSE_FILE does not exist yet writes its
process id there and sleeps, so that the test kills it between two steps; PAUSE_STEP 0 never pauses. Everything
after PAUSE_STEP is `train_driver.py`'s. The library's log goes to stderr, where the test reads how a restart began.
"""

import logging
import os
import sys
import time
from pathlib import Path

import train_driver

import genvec.training.loop


def main() -> None:
    pause_file, pause_step = Path(sys.argv[1]), int(sys.argv[2])
    del sys.argv[1:3]
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    save_checkpoint = genvec.training.loop.save_checkpoint

    def save_then_pause(session):
        path = save_checkpoint(session)
        if session.step == pause_step and os.environ["RANK"] == "0" and not pause_file.exists():
            temporary = pause_file.with_suffix(".tmp")
            temporary.write_text(str(os.getpid()))
            temporary.rename(pause_file)
            while True:  # until the test's SIGKILL
                time.sleep(1)
        return path

    genvec.training.loop.save_checkpoint = save_then_pause
    train_driver.main()


if __name__ == "__main__":
    main()

"""A driver of `genvec.integrations.ray.embed_dataset` that a test kills mid-job (tests/integration/test_ray.py).

    python ray_kill_driver.py SOURCE CHECKPOINT OUTPUT CALLS

It starts a local Ray of its own (2 CPUs, apart from any the test process runs) and writes small files as rows are
embedded; its embedder answers CALLS batches and then waits in the next one until the test's SIGKILL, so the job
never finishes: files of the answered batches are on disk, the manifest says incomplete. Ray's GCS and raylet stay in
this process's group, which the test kills; its workers (a group each, same session) end when the raylet dies.
"""

import sys
import time

import ray

import genvec.integrations.ray as genvec_ray


class StallingEmbedder(genvec_ray.GenVecEmbedder):
    """The library's embedder, waiting for good after its first `calls` batches."""

    calls = 0  # set by main() before Ray sends the class (of __main__, so by value) to the actor

    def __call__(self, batch):
        if self.calls == 0:
            while True:  # until the test's SIGKILL
                time.sleep(1)
        self.calls -= 1
        return super().__call__(batch)


def main() -> None:
    source, checkpoint, output, calls = sys.argv[1:5]
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    genvec_ray.ROWS_PER_CALL = genvec_ray.ROWS_PER_FILE = 4
    # Ray hands a block on as soon as it outgrows this: the embedded rows go to write tasks while the actor works on
    # the next batch, instead of all of one task's batches at its end.
    ray.data.DataContext.get_current().target_max_block_size = 1
    StallingEmbedder.calls = int(calls)
    genvec_ray.GenVecEmbedder = StallingEmbedder  # embed_dataset builds its actors from the module's name
    genvec_ray.embed_dataset(source, checkpoint, output=output, id_column="_id", actors=1)


if __name__ == "__main__":
    main()

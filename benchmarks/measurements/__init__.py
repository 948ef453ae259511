"""run.py's measurements, one module per thing measured; `MEASUREMENTS` maps each `--only` name to its function.

- `encode.py`: `encode` against a bare forward; the shared-instruction prefix cache against the plain path.
- `train.py`: genvec's training step, its lower limit, the official algorithm's step (`reference.py`).
- `data.py`: response generation and teacher embeddings (the data pipeline).
- `decode.py`: decoding from compression states against `generate` and a full-recompute loop.

Each function takes the resolved preset and run.py's arguments and returns one JSON-able row of figures; run.py runs
it in a fresh process and adds the memory figures.
"""

from measurements.data import measure_generate, measure_targets
from measurements.decode import measure_decode
from measurements.encode import measure_encode, measure_encode_shared_prefix
from measurements.train import measure_reference_train_step, measure_train_step, measure_train_step_limit

MEASUREMENTS = {
    "encode": measure_encode,
    "encode_shared_prefix": measure_encode_shared_prefix,
    "train_step": lambda preset, args: measure_train_step(preset, args, activation_checkpointing=False),
    "train_step_checkpointing": lambda preset, args: measure_train_step(preset, args, activation_checkpointing=True),
    "train_step_limit": measure_train_step_limit,
    "reference_train_step": lambda preset, args: measure_reference_train_step(preset, args, False),
    "reference_train_step_checkpointing": lambda preset, args: measure_reference_train_step(preset, args, True),
    "generate_b1": lambda preset, args: measure_generate(preset, args, batch_size=1),
    "generate_b8": lambda preset, args: measure_generate(preset, args, batch_size=8),
    "generate_b32": lambda preset, args: measure_generate(preset, args, batch_size=32),
    "targets_minilm": measure_targets,
    "decode_batch1": lambda preset, args: measure_decode(preset, args, batch_size=1),
    "decode_batch16": lambda preset, args: measure_decode(preset, args, batch_size=16),
}

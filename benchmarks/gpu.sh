#!/usr/bin/env bash
# genvec on GPUs: the Qwen3 presets in parts that each finish well inside a 10-minute command.
#
#   bash benchmarks/gpu.sh plan                 # the commands in priority order, with FLOP-based time estimates
#   bash benchmarks/gpu.sh smoke                # each code path on a 1-layer model (~1.5 min): check the machine
#   bash benchmarks/gpu.sh PRESET PART          # PRESET: qwen3-0.6b | qwen3-4b | qwen3-8b
#                                               # PART: train | decode | variants | all
#   bash benchmarks/gpu.sh ray [PRESET]         # Ray's embedding path, one GPU actor, beside plain encode (minutes)
#   bash benchmarks/gpu.sh summary              # one table of every result file
#
# Results go to $OUT when it is set (the folder a rented machine sends back), else to benchmarks/results/; copy them
# to benchmarks/results/ to commit them. Every result file is written after each measurement, so a command stopped
# by a time limit keeps what it measured. Runs from a checkout without installing genvec (PYTHONPATH=src); needs
# torch with CUDA, transformers, accelerate, peft (for the reference step) and psutil. The ray part also needs
# Ray Data: where `import ray` fails it installs `ray[data]` from the wheels in $WHEELS (default
# benchmarks/.cache/wheels, ignored by git), which a machine without the internet needs carried to it: fill it with
# `pip download 'ray[data]' -d benchmarks/.cache/wheels --only-binary :all:` on a machine of the same Python and
# platform (the ray wheel alone is 79 MB for CPython 3.11 on x86-64 Linux).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PYTHON=${PYTHON:-python3}
RESULTS=${OUT:-benchmarks/results}
CHILD_TIMEOUT=${CHILD_TIMEOUT:-270}   # seconds one measurement may take before it is recorded as an error
BENCH_ARGS=${BENCH_ARGS:-}           # appended to every run.py call, e.g. "--device cpu --layers 1 ..." to test this
status=0

TRAIN="train_step_checkpointing train_step reference_train_step_checkpointing reference_train_step encode"
DECODE="decode_batch1 decode_batch16 generate_b32"

bench() {
    echo "+ python benchmarks/run.py $* $BENCH_ARGS" >&2
    # shellcheck disable=SC2086
    "$PYTHON" benchmarks/run.py --results-dir "$RESULTS" --child-timeout-s "$CHILD_TIMEOUT" "$@" $BENCH_ARGS || status=1
}

facts() {  # the facts every result file records (harness.py's machine_facts), before anything runs
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null \
        || echo "no nvidia-smi"
    # shellcheck disable=SC2086
    "$PYTHON" benchmarks/run.py --preset "${1:-qwen3-0.6b}" --facts $BENCH_ARGS || status=1
}

part() {  # PRESET PART
    local preset=$1
    case $2 in
        train)
            bench --preset "$preset" --tag train --only $TRAIN
            # The official code trained the 8B at 16 per GPU on two GPUs: does its step fit at 16 on one?
            bench --preset "$preset" --tag reference-b16 --train-batch 16 --only reference_train_step_checkpointing ;;
        decode)
            bench --preset "$preset" --tag decode --only $DECODE ;;
        variants)  # the switches of issue 7, each against the default run's train_step_checkpointing / encode
            bench --preset "$preset" --attn eager --only train_step_checkpointing encode
            bench --preset "$preset" --trainable-dtype bf16 --only train_step_checkpointing
            bench --preset "$preset" --compile --only train_step_checkpointing ;;
        all)
            part "$preset" train
            part "$preset" decode ;;
        *) echo "unknown part $2: use train, decode, variants or all" >&2; exit 2 ;;
    esac
    return $status
}

plan() {
    cat <<'EOF'
One device command each (10 minutes at most per command, 30 minutes per lease), most important first:
  0. bash benchmarks/gpu.sh smoke                # optional, ~1.5 min: every code path on a 1-layer model
  1. bash benchmarks/gpu.sh qwen3-8b train       # batch 32 fits? genvec vs reference; encode vs bare forward
  2. bash benchmarks/gpu.sh qwen3-8b variants    # eager attention, bf16 trainables, torch.compile
  3. bash benchmarks/gpu.sh qwen3-8b decode      # decode batch 1 and 16, generation batch 32
  4. bash benchmarks/gpu.sh qwen3-0.6b all
  5. bash benchmarks/gpu.sh qwen3-4b train
  6. bash benchmarks/gpu.sh qwen3-4b decode
  7. bash benchmarks/gpu.sh ray qwen3-0.6b     # Ray's embedding path (one GPU actor) beside plain encode
Estimates (benchmarks/estimate.py; its assumptions: `python benchmarks/run.py --preset qwen3-8b --estimate`):
EOF
    local preset
    for preset in qwen3-8b qwen3-0.6b qwen3-4b; do
        printf "  %-52s %5s s\n" "$preset train (+ ~35 s for the reference at 16)" "$(estimate "$preset" $TRAIN)"
        printf "  %-52s %5s s\n" "$preset decode" "$(estimate "$preset" $DECODE)"
    done
    printf "  %-52s %5s s\n" "qwen3-8b variants (+ ~1 min of compilation)" \
        "$(estimate qwen3-8b train_step_checkpointing encode train_step_checkpointing train_step_checkpointing)"
}

ray_part() {  # [PRESET]: benchmarks/bulk.py --ray on one GPU: embed_dataset with one GPU actor (num_gpus=1), one
    # `genvec encode --output DIR` process, one model.encode, all on the same GPU, alternated over two rounds
    local preset=${1:-qwen3-0.6b} wheels=${WHEELS:-benchmarks/.cache/wheels}
    if ! "$PYTHON" -c "import ray.data" 2>/dev/null; then
        echo "+ pip install ray[data] from $wheels" >&2
        "$PYTHON" -m pip install --quiet --no-index --find-links "$wheels" "ray[data]" \
            || { echo "no Ray here and no wheels in $wheels: see the top of this file" >&2; return 1; }
    fi
    mkdir -p "$RESULTS/bulk"
    echo "+ python benchmarks/bulk.py --ray --device cuda --preset $preset" >&2
    "$PYTHON" benchmarks/bulk.py --ray --device cuda --preset "$preset" --texts 2048 --tokens 128 --rounds 2 \
        --results-dir "$RESULTS/bulk" || status=1
    return $status
}

estimate() {  # PRESET MEASUREMENT...: estimated seconds
    local preset=$1; shift
    "$PYTHON" benchmarks/run.py --preset "$preset" --estimate --only "$@" | tail -1 | awk '{print $(NF-1)}'
}

case ${1:-plan} in
    plan) plan ;;
    summary) "$PYTHON" benchmarks/run.py --results-dir "$RESULTS" --summary ;;
    ray)
        facts "${2:-qwen3-0.6b}"
        mkdir -p "$RESULTS"
        ray_part "${2:-qwen3-0.6b}" 2>&1 | tee "$RESULTS/gpu-ray-${2:-qwen3-0.6b}.log"
        status=$((status | ${PIPESTATUS[0]})) ;;
    smoke)
        facts
        tiny="--layers 1 --repeats 1 --encode-texts 16 --encode-tokens 32 --train-batch 4
              --query-tokens 16 --response-tokens 32 --generate-tokens 8 --decode-tokens 8 --decode-budget-s 5"
        RESULTS=$(mktemp -d) bench --preset qwen3-0.6b $tiny --only train_step_checkpointing \
            reference_train_step_checkpointing encode decode_batch16 generate_b32
        RESULTS=$(mktemp -d) bench --preset qwen3-0.6b $tiny --compile --attn eager --trainable-dtype bf16 \
            --only encode train_step_checkpointing
        [ $status = 0 ] && echo "smoke: every measurement ran" || echo "smoke: some measurement FAILED (see above)" ;;
    qwen3-*)
        facts "$1"
        mkdir -p "$RESULTS"
        part "$1" "${2:-all}" 2>&1 | tee "$RESULTS/gpu-$1-${2:-all}.log"
        status=$((status | ${PIPESTATUS[0]}))
        "$PYTHON" benchmarks/run.py --results-dir "$RESULTS" --summary "$1" ;;
    *) sed -n '2,18p' "$0"; exit 2 ;;
esac
exit $status

#!/usr/bin/env bash
# The GPU path in one go: the CUDA-marked tests, a short `esper-ref train --device cuda` and
# `bench/policy_latency.py --device cuda`; the last line holds the figures.
#
#   bench/gpu_check.sh            # from the repository root, in the venv with a CUDA torch
#
# Without a usable GPU (a CPU-only torch build, no device, no driver) it prints one
# "skipped: no CUDA (...)" line and exits 0, so it can run anywhere. Exit 1 when a step fails.
set -uo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python}"

why="$("$py" - <<'EOF'
import torch
if torch.version.cuda is None:
    print(f"torch {torch.__version__} is a CPU-only build")
elif not torch.cuda.is_available():
    print(f"torch {torch.__version__} has CUDA {torch.version.cuda} but finds no usable GPU")
EOF
)"
status=$?
if [ $status -ne 0 ]; then
    echo "gpu_check: cannot import torch with $py" >&2
    exit 1
fi
if [ -n "$why" ]; then
    echo "skipped: no CUDA ($why)"
    exit 0
fi

gpu="$("$py" -c 'import torch; print(torch.cuda.get_device_name(0).replace(" ", "_"))')"
ngpu="$("$py" -c 'import torch; print(torch.cuda.device_count())')"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== CUDA tests on $gpu ($ngpu GPU(s))"
if ! "$py" -m pytest -m cuda -q -p no:cacheprovider tests | tee "$work/tests.txt"; then
    echo "gpu_check: CUDA tests failed" >&2
    exit 1
fi
tests="$(grep -Eo '[0-9]+ passed' "$work/tests.txt" | tail -1 | cut -d' ' -f1)"

echo "== esper-ref train --device cuda (short)"
if ! "$py" -m esper_ref train --device cuda --out-dir "$work/run" --no-progress \
    --total-steps 40000 --eval-every 10 --final-eval-episodes 256 | tee "$work/train.txt"; then
    echo "gpu_check: training on cuda failed" >&2
    exit 1
fi
sps="$("$py" - "$work/run/metrics.csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(f"{int(rows[-1]['global_step']) / float(rows[-1]['wall_time']):.0f}")
EOF
)"
ret="$(grep -Eo 'final greedy return -?[0-9.]+' "$work/train.txt" | awk '{print $4}')"

echo "== bench/policy_latency.py --device cuda"
if ! "$py" bench/policy_latency.py --device cuda | tee "$work/latency.txt"; then
    echo "gpu_check: policy_latency on cuda failed" >&2
    exit 1
fi
lat="$(tail -1 "$work/latency.txt")"

echo "gpu_check: device=$gpu gpus=$ngpu cuda_tests_passed=$tests train_steps_per_sec=$sps" \
    "final_greedy_return=$ret $lat"

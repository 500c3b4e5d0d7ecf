#!/usr/bin/env bash
# The GPU path in one go: the CUDA-marked tests, a short `esper-ref train --device cuda` and
# `bench/policy_latency.py --device cuda`; the last line holds the figures.
#
#   bench/gpu_check.sh            # from the repository root, in the venv with a CUDA torch
#
# Without a usable GPU (a CPU-only torch build, no device, no driver) it prints one
# "skipped: no CUDA (...)" line and exits 0, so it can run anywhere. Every step runs even when
# an earlier one failed (one lease of a GPU should tell everything); exit 1 when any failed,
# and the last line names the failed steps.
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

failed=()
echo "== CUDA tests on $gpu ($ngpu GPU(s))"
"$py" -m pytest -m cuda -q -p no:cacheprovider tests | tee "$work/tests.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=(cuda_tests)
tests="$(grep -Eo '[0-9]+ passed' "$work/tests.txt" | tail -1 | cut -d' ' -f1)"
nfail="$(grep -Eo '[0-9]+ failed' "$work/tests.txt" | tail -1 | cut -d' ' -f1)"

echo "== esper-ref train --device cuda (short)"
sps=- ret=-
"$py" -m esper_ref train --device cuda --out-dir "$work/run" --no-progress \
    --total-steps 40000 --eval-every 10 --final-eval-episodes 256 | tee "$work/train.txt"
if [ "${PIPESTATUS[0]}" -eq 0 ]; then
    sps="$("$py" - "$work/run/metrics.csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(f"{int(rows[-1]['global_step']) / float(rows[-1]['wall_time']):.0f}")
EOF
)"
    ret="$(grep -Eo 'final greedy return -?[0-9.]+' "$work/train.txt" | awk '{print $4}')"
else
    failed+=(train)
fi

echo "== bench/policy_latency.py --device cuda"
lat=-
"$py" bench/policy_latency.py --device cuda | tee "$work/latency.txt"
if [ "${PIPESTATUS[0]}" -eq 0 ]; then
    lat="$(tail -1 "$work/latency.txt")"
else
    failed+=(policy_latency)
fi

status="ok"
[ ${#failed[@]} -eq 0 ] || status="FAILED:$(IFS=,; echo "${failed[*]}")"
echo "gpu_check: $status device=$gpu gpus=$ngpu cuda_tests_passed=${tests:-0}" \
    "cuda_tests_failed=${nfail:-0} train_steps_per_sec=$sps final_greedy_return=$ret $lat"
[ ${#failed[@]} -eq 0 ]

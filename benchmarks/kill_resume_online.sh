#!/usr/bin/env bash
# SIGKILL the online GRPO quickstart during a step's generation and again while it writes a checkpoint, rerun into
# the same run directory, and compare with an uninterrupted run of the same recipe and seed: summary.json, every
# step's records, the final adapter and optimizer state.
#   bash benchmarks/kill_resume_online.sh [WORK_DIR]
set -u
cd "$(dirname "$0")/.."
work=${1:-runs/kill-resume-online}
ref=$work/reference kill=$work/killed
args=(recipes/grpo_arithmetic.yaml loop.steps=4 loop.save_every=2 loop.eval_every=4 eval.tasks.0.limit=16
      generator.batch_size=16 --quiet)
# exec: "run ... &" then stands for the selfimprove process itself, which "kill -9 $pid" must reach
run() { exec .venv/bin/selfimprove run "${args[@]}" --run-dir "$1"; }
wait_for() { while kill -0 "$pid" 2>/dev/null && ! [ -e "$1" ]; do sleep 0.01; done; [ -e "$1" ] || { echo "the run ended before $1 appeared"; exit 1; }; }
rm -rf "$work"
(run "$ref") >/dev/null 2>&1
run "$kill" >/dev/null 2>&1 & pid=$!
wait_for "$kill/step-000003/rollouts-solver.jsonl.partial"
kill -9 $pid; wait $pid 2>/dev/null
echo "killed during step 3's generation: $(wc -l < "$kill/step-000003/rollouts-solver.jsonl.partial") of 64 rollouts on disk"
run "$kill" >/dev/null 2>&1 & pid=$!
wait_for "$kill/checkpoints/step-000004.tmp"
kill -9 $pid; wait $pid 2>/dev/null
echo "killed while writing the step-4 checkpoint: $(ls "$kill/checkpoints" | tr '\n' ' ')"
(run "$kill") >/dev/null 2>&1
status=0
cmp -s "$ref/summary.json" "$kill/summary.json" && echo "summary.json identical" || { echo "summary.json DIFFERS"; status=1; }
for f in $(cd "$ref" && find . -name '*.jsonl' ! -name metrics.jsonl | sort); do
  cmp -s "$ref/$f" "$kill/$f" || { echo "DIFFERS: $f"; status=1; }
done
cmp -s "$ref/checkpoints/step-000004/state.json" "$kill/checkpoints/step-000004/state.json" \
  && echo "state.json: equal" || { echo "state.json DIFFERS"; status=1; }
for f in policy/adapter_model.safetensors trainer.pt; do
  a=$ref/checkpoints/step-000004/$f b=$kill/checkpoints/step-000004/$f
  .venv/bin/python - "$a" "$b" <<'PY' && echo "$f: equal" || { echo "$f DIFFERS"; status=1; }
import sys, numpy, torch
from safetensors.torch import load_file
load = load_file if sys.argv[1].endswith(".safetensors") else lambda p: torch.load(p, weights_only=False)
def flat(x, key=""):
    if isinstance(x, torch.Tensor): yield key, x
    elif isinstance(x, dict):
        for k, v in x.items(): yield from flat(v, f"{key}/{k}")
    elif isinstance(x, (list, tuple)):
        for i, v in enumerate(x): yield from flat(v, f"{key}/{i}")
    else: yield key, x  # counters, schedules, RNG states: the rest of the state
a, b = dict(flat(load(sys.argv[1]))), dict(flat(load(sys.argv[2])))
# torch's global generator: generation reseeds it for every batch and the update has no dropout, so its position is no
# input to any result; a resumed run that replays a step from its records without generating leaves it elsewhere
for state in (a, b): state.pop("/rng/torch", None)
def same(x, y):
    if isinstance(x, torch.Tensor): return torch.equal(x, y)
    return numpy.array_equal(x, y) if isinstance(x, numpy.ndarray) else x == y
assert a.keys() == b.keys() and all(same(a[k], b[k]) for k in a), "the states differ"
PY
done
exit $status

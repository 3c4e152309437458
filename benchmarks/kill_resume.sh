#!/usr/bin/env bash
# SIGKILL the quickstart during generation and again during training, rerun into the same run directory, and
# compare with an uninterrupted run of the same recipe and seed: summary.json, every record file, the adapter.
#   bash benchmarks/kill_resume.sh [WORK_DIR]
set -u
cd "$(dirname "$0")/.."
work=${1:-runs/kill-resume}
ref=$work/reference kill=$work/killed
args=(recipes/quickstart.yaml task.limit=128 loop.iterations=1 updater.save_steps=2 --quiet)
# exec: "run ... &" then stands for the selfimprove process itself, which "kill -9 $pid" must reach
run() { exec .venv/bin/selfimprove run "${args[@]}" --run-dir "$1"; }
wait_for() { while kill -0 "$pid" 2>/dev/null && ! [ -e "$1" ]; do sleep 0.01; done; [ -e "$1" ] || { echo "the run ended before $1 appeared"; exit 1; }; }
rm -rf "$work"
(run "$ref") >/dev/null 2>&1
run "$kill" >/dev/null 2>&1 & pid=$!
wait_for "$kill/iter-001/rollouts-rationale.jsonl.partial"
kill -9 $pid; wait $pid 2>/dev/null
echo "killed during generation: $(wc -l < "$kill/iter-001/rollouts-rationale.jsonl.partial") rollouts on disk"
run "$kill" >/dev/null 2>&1 & pid=$!
until ls -d "$kill"/iter-001/trainer/checkpoint-* >/dev/null 2>&1 || ! kill -0 $pid 2>/dev/null; do sleep 0.05; done
sleep 3; kill -9 $pid; wait $pid 2>/dev/null
echo "killed during training: $(ls "$kill/iter-001/trainer" | grep checkpoint | tr '\n' ' ')"
(run "$kill") >/dev/null 2>&1
status=0
cmp -s "$ref/summary.json" "$kill/summary.json" && echo "summary.json identical" || { echo "summary.json DIFFERS"; status=1; }
for f in $(cd "$ref" && find . -name '*.jsonl' ! -name metrics.jsonl | sort); do
  cmp -s "$ref/$f" "$kill/$f" || { echo "DIFFERS: $f"; status=1; }
done
cmp -s "$ref/iter-001/checkpoint/adapter_model.safetensors" "$kill/iter-001/checkpoint/adapter_model.safetensors" \
  && echo "adapter weights byte-identical" || { echo "adapter DIFFERS"; status=1; }
python3 - "$kill" <<'PY' || status=1
import json, pathlib, sys
for f in pathlib.Path(sys.argv[1]).rglob("*.jsonl"):
    if f.name != "metrics.jsonl":
        ids = [json.loads(line)["id"] for line in f.read_text().splitlines()]
        assert len(ids) == len(set(ids)), f"duplicated ids in {f}"
print("no duplicated ids; resumed update from step", json.loads((pathlib.Path(sys.argv[1]) / "iter-001/update.json").read_text())["resumed_from_step"])
PY
exit $status

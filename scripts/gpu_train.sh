#!/bin/bash
# Train several configs side by side on one GPU machine for a fixed time, then pack the runs.
#
#   bash scripts/gpu_train.sh SECONDS CONFIG.toml [CONFIG.toml ...]
#
# For a bare GPU machine that cannot pip-install hearmask (no package registry): it stages
# the checkout on PYTHONPATH, installs any wheels carried in .gpu/whl (soundfile, cffi,
# pycparser for the machine's Python), and uses that machine's torch. Before the call,
# here: `hearmask data pack --out .gpu/pack --train-fraction 0.35` (the configs in
# scripts/gpu/ read [data] speech_pack = ".gpu/pack").
#
# Each run gets SIGTERM SECONDS after the start (the trainer saves a checkpoint that resumes
# exactly) and is written to $OUT/run_<name>.tar (RUN_DIR with log.csv, best, checkpoint and
# snapshots/, plus the run's log). Batch workers ignore the signal; only the trainer stops.
# A run folder carried as .gpu/runs/<config name>/ (a run unpacked from an earlier tar) is
# continued with --resume instead of started: its config must be the one it started with.
set -u
TRAIN_S=$1; shift
OUT=${OUT:-/tmp/gpu_out}; RUNS=/tmp/gpu_runs; T0=$(date +%s)
mkdir -p "$OUT"; rm -rf "$RUNS" /tmp/gpu_pkg; mkdir -p "$RUNS" /tmp/gpu_pkg/hearmask
if ls .gpu/whl/*.whl >/dev/null 2>&1 && ! python3 -c "import soundfile" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_site .gpu/whl/*.whl || exit 3
  export PYTHONPATH=/tmp/gpu_site
fi
cp -r hearmask/* /tmp/gpu_pkg/hearmask/
for area in profiles model quantize targets firmware_bridge; do ln -s "$PWD/$area" /tmp/gpu_pkg/hearmask/$area; done
# PYTHONSAFEPATH: the checkout's own hearmask/ (without the areas) must not shadow the staged one.
export PYTHONPATH=/tmp/gpu_pkg:${PYTHONPATH:-} PYTHONUNBUFFERED=1 PYTHONSAFEPATH=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1
python3 -c "import os, torch, numpy, scipy, soundfile, hearmask.model.trainer; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__, 'scipy', scipy.__version__, 'cpus', os.cpu_count())" || exit 4
PIDS=(); NAMES=()
for config in "$@"; do
  name=$(basename "$config" .toml); NAMES+=("$name"); resume=()
  if [ -d ".gpu/runs/$name" ]; then cp -r ".gpu/runs/$name" "$RUNS/$name"; resume=(--resume); fi
  timeout -s TERM $((TRAIN_S - ($(date +%s) - T0))) python3 -m hearmask.cli train --config "$config" \
    --out "$RUNS/$name" "${resume[@]}" --no-progress > "$RUNS/$name.log" 2>&1 &
  PIDS+=($!)
done
( while sleep 15; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null; uptime; done ) > "$RUNS/gpu_util.log" 2>&1 &
MONITOR=$!
wait "${PIDS[@]}"
kill $MONITOR 2>/dev/null
cd "$RUNS"
for name in "${NAMES[@]}"; do
  echo "== $name: $(tail -1 $name.log)"; tail -2 "$name/log.csv" 2>/dev/null
  tar -cf "$OUT/run_$name.tar" "$name" "$name.log"
done
tail -4 gpu_util.log; cp gpu_util.log "$OUT/"; echo "total $(( $(date +%s) - T0 )) s"

#!/usr/bin/env bash
# Measures slope against the peers (NumPy, JAX) on the workloads of
# ../../shared/peers in ONE run, so the ratios hold on a noisy machine.
#
#   PEERS=/path/to/shared/peers PY=/path/to/venv/bin/python benches/peers/run.sh
#
# Needs a release build (cargo build --release), python with numpy and jax
# (see ../../shared/peers/README.md) and hyperfine. Prints one line per figure.
set -u
cd "$(dirname "$0")/../.."
PEERS=${PEERS:-../shared/peers}
PY=${PY:-python3}
S=${SLOPE:-./target/release/slope}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
pin="taskset -c 0"
echo "== CPU"
lscpu | grep -E "^(Model name|CPU family|Model):" | tr -s ' ' | tr '\n' ';'
echo " SIMD: $(grep -oE "avx512f|avx2|fma" /proc/cpuinfo | sort -u | tr "\n" " ")"
cc -O2 benches/peers/fma_peak.c -o /tmp/slope-fma-peak && echo "f32 FMA peak, one core: $($pin /tmp/slope-fma-peak)"
echo "OpenBLAS sgemm 2048^3 (NumPy), one pinned core: $($pin "$PY" -c '
import time, numpy as np
a = np.random.rand(2048, 2048).astype(np.float32); b = a.copy(); a @ b
ts = []
for _ in range(7):
    t = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t)
print(f"{2 * 2048**3 / sorted(ts)[3] / 1e9:.1f} GFLOP/s")')"
peer() { # workload, peer script
  PEER_RESULTS=/tmp/slope-peer-results $pin "$PY" "$PEERS/peer_$2.py" --workload "$1" --threads 1 2>/dev/null | tail -1
}
median_epoch() { # slope --json lines on stdin -> median epoch seconds
  "$PY" -c 'import sys, json, statistics; print(statistics.median(json.loads(l)["seconds"] for l in sys.stdin))'
}
echo "== W1 digits-small: median epoch seconds (1 thread)"
for round in 1 2 3; do
  echo "slope  $($pin $S train benches/peers/w1.nn --json --quiet --threads 1 --out /tmp/slope-w1.safetensors | median_epoch)"
  echo "numpy  $(peer W1 numpy)"
  echo "jax    $(peer W1 jax)"
done
echo "== W1 on two cores (slope --threads 2; JAX with its default threads)"
echo "slope  $($S train benches/peers/w1.nn --json --quiet --threads 2 --out /tmp/slope-w1.safetensors | median_epoch)"
echo "jax    $(env -u XLA_FLAGS PEER_RESULTS=/tmp/slope-peer-results "$PY" "$PEERS/peer_jax.py" --workload W1 --threads 2 2>/dev/null | tail -1)"
echo "== W3 xor: whole process, start to exit"
hyperfine -N --warmup 3 --runs 30 --export-json /tmp/slope-w3.json \
  "$pin $S train examples/xor.nn --quiet --out /tmp/slope-xor.safetensors" 2>/dev/null | grep -E "Time|Range"
for p in numpy jax; do
  hyperfine -N --warmup 1 --runs 5 "$pin $PY $PEERS/peer_$p.py --workload W3 --threads 1" 2>/dev/null | grep -E "Time|Range" | sed "s/^/$p /"
done
echo "== W4: one loss + all gradients of the W1 network (slope bench; peers print µs)"
for b in 1 32 256; do
  $pin $S bench benches/peers/w4_b$b.nn --threads 1 | grep -E "loss\+grad"
done
peer W4 numpy
peer W4 jax
echo "== W2 784-512-512-10 relu, batch 256: GFLOP/s"
$pin $S bench benches/peers/w2.nn --batch 256 --threads 1 | grep -E "loss\+grad|train step"
peer W2 jax
echo "== W2 on two cores (slope --threads 2; JAX with its default threads)"
$S bench benches/peers/w2.nn --batch 256 --threads 2 | grep -E "loss\+grad|train step"
env -u XLA_FLAGS PEER_RESULTS=/tmp/slope-peer-results "$PY" "$PEERS/peer_jax.py" --workload W2 --threads 2 2>/dev/null | tail -1
echo "== CNN examples/digits_cnn.nn: median epoch seconds, 10 epochs (1 thread)"
# The JAX peer is this directory's peer_jax_cnn.py (same network, data,
# split sizes, SGD momentum, batch 32; its first epoch compiles, so its
# median is over epochs 2..10; slope compiles before epoch 1).
for round in 1 2 3; do
  echo "slope  $($pin $S train examples/digits_cnn.nn --json --quiet --threads 1 --epochs 10 --out /tmp/slope-cnn.safetensors | median_epoch)"
  echo "jax    $($pin "$PY" benches/peers/peer_jax_cnn.py --epochs 10 2>/dev/null | tail -1)"
done
echo "== CNN on two cores (slope --threads 2; JAX with its default threads)"
for round in 1 2; do
  echo "slope  $($S train examples/digits_cnn.nn --json --quiet --threads 2 --epochs 10 --out /tmp/slope-cnn.safetensors | median_epoch)"
  echo "jax    $(env -u XLA_FLAGS "$PY" benches/peers/peer_jax_cnn.py --epochs 10 --threads 2 2>/dev/null | tail -1)"
done
echo "== CNN: slope's parse -> JIT-ready phases and one step (jax: first_step_s above)"
$pin $S bench examples/digits_cnn.nn --threads 1 | grep -vE "^bench"

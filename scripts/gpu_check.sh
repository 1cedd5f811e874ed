#!/usr/bin/env bash
# The GPU runs of the `cuda` feature, in one command: builds (where cargo
# is), then checks stageprof's per-stage GPU figures against hand-placed
# CUDA events and known work, times its overhead by mode (interleaved
# rounds, one process per run), and runs the demo on the GPU.
#
#   scripts/gpu_check.sh            # on a machine with an NVIDIA GPU and cargo
#   BIN=dir scripts/gpu_check.sh    # with gpu_check and stageprof prebuilt in dir
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${BIN:-}" ]]; then
    cargo build --release -p stageprof-demo --features cuda --bin gpu_check
    cargo build --release -p stageprof-cli --features cuda
    BIN=target/release
fi
OUT=${OUT:-gpu-check-out}
ROUNDS=${ROUNDS:-5}
# 3000 frames (5 s a run): in shorter runs the kernel mode's first traced frame and its detach are most of its cost.
FRAMES=${FRAMES:-3000}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

echo "== accuracy: stageprof against hand-placed CUDA events and known work"
# A failed check is reported at the end; the runs after it go on.
failed=0
"$BIN/gpu_check" accuracy "$OUT/accuracy" || failed=1
echo "== accuracy with kernels traced in 1 of 3 frames"
"$BIN/gpu_check" accuracy "$OUT/accuracy-every-3" 3 || failed=1

echo "== overhead: $ROUNDS interleaved rounds of $FRAMES frames per mode"
: >"$OUT/overhead.txt"
for _ in $(seq "$ROUNDS"); do
    for mode in off events kernels kernels-all; do
        "$BIN/gpu_check" overhead "$mode" "$FRAMES" 2>/dev/null | tee -a "$OUT/overhead.txt"
    done
done
median() { awk -v m="$1" '$1 == m { print $2 }' "$OUT/overhead.txt" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
off=$(median off) events=$(median events) kernels=$(median kernels) all=$(median kernels-all)
awk -v o="$off" -v e="$events" -v k="$kernels" -v a="$all" 'BEGIN {
    printf "median seconds: off %.4f, events %.4f, kernels %.4f, kernels in every frame %.4f\n", o, e, k, a
    printf "overhead: events %+.2f%%, kernels %+.2f%%, kernels in every frame %+.2f%%\n", 100 * (e / o - 1), 100 * (k / o - 1), 100 * (a / o - 1)
}'

echo "== demo on the GPU, reconstruction checked"
"$BIN/stageprof" demo --device cuda --frames 3 --out "$OUT/demo"

echo "== faults: no visible GPU (the CPU side goes on)"
CUDA_VISIBLE_DEVICES= "$BIN/stageprof" demo --frames 1 --out "$OUT/no-gpu" 2>&1 | grep -E "^(stageprof|demo):" || true

echo "== faults: no CUPTI (the loader's cache bypassed, only the driver, NVML, NVTX and NVRTC visible)"
hidden=$(mktemp -d)
for pat in 'libcuda\.so' libnvrtc libnvidia-ml libnvtx3interop libnvidia-ptxjitcompiler; do
    for f in $(ldconfig -p | grep "$pat" | awk '{print $NF}'); do
        ln -sf "$f" "$(readlink -f "$f")" "$hidden/" 2>/dev/null || true
    done
done
/lib64/ld-linux-x86-64.so.2 --inhibit-cache --library-path "$hidden" "$BIN/gpu_check" overhead kernels 3 2>&1 | tail -2

echo "== faults: another tool holds CUPTI (Nsight Compute, Nsight Systems); stageprof says why and goes on"
if command -v ncu >/dev/null; then
    timeout 120 ncu --clock-control none -c 1 "$BIN/gpu_check" overhead kernels 3 >"$OUT/under-ncu.txt" 2>&1 || true
    grep -E "^(stageprof:|kernels )" "$OUT/under-ncu.txt" || tail -5 "$OUT/under-ncu.txt"
fi
nsys=$(ls /opt/nvidia/nsight-compute/*/host/target-linux-x64/nsys 2>/dev/null | head -1 || true)
if [[ -n "$nsys" ]]; then
    timeout 120 "$nsys" profile -t cuda,nvtx -o "$OUT/nsys-run" --force-overwrite true \
        "$BIN/gpu_check" overhead kernels 3 >"$OUT/under-nsys.txt" 2>&1 || true
    grep -E "^(stageprof:|kernels )" "$OUT/under-nsys.txt" || tail -5 "$OUT/under-nsys.txt"
    # nsys cannot make a report here; its raw stream still holds the NVTX range names stageprof pushed.
    for name in preprocess features matching refine; do
        printf "NVTX range %s in the nsys capture: " "$name"
        cat "$OUT"/nsys-run* 2>/dev/null | grep -c -a "$name" || true
    done
fi
exit "$failed"

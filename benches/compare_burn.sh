#!/usr/bin/env bash
# Back-to-back matmul 1024³ against burn 0.22 on the same adapter (issue 16's bar:
# engine >= 2x burn). No burn code lives in this repository; build the comparison
# binary out of tree (see benches/README.md) and pass its path:
#
#   BURN_BENCH=/path/to/burn-bench WGPU_BACKEND=vulkan benches/compare_burn.sh [rounds=3]
#
# Each round runs burn, then `engine bench --quick --only matmul` (its `matmul 1024x1024x1024`
# row, which uses the kernel engine picks for the adapter), so both see the same load.
# Prints both GFLOP/s per round and the ratio engine / burn.
set -euo pipefail
rounds=${1:-3}
engine=${ENGINE:-target/release/engine}
: "${BURN_BENCH:?set BURN_BENCH to the out-of-tree burn-bench binary}"
for r in $(seq 1 "$rounds"); do
    burn=$("$BURN_BENCH" 1024 15 | sed -n 's/.*, \([0-9.]*\) GFLOP\/s (median).*/\1/p')
    row=$("$engine" bench --quick --only matmul --json 2>/dev/null |
        grep '"op":"matmul"' | grep '"shape":"1024x1024x1024"' | head -n 1)
    eng=$(echo "$row" | sed -n 's/.*"gflops":\([0-9.e+-]*\).*/\1/p')
    pct=$(echo "$row" | sed -n 's/.*"pct_of_ceiling":\([0-9.e+-]*\).*/\1/p')
    ratio=$(awk -v e="$eng" -v b="$burn" 'BEGIN { printf "%.2f", e / b }')
    echo "round $r: engine $eng GFLOP/s (${pct}% of fma_peak), burn $burn GFLOP/s, ratio $ratio"
done

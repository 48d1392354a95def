#!/usr/bin/env bash
# run.sh TARGET SEEDS WORK DICT [SEED_FILE...] — one time-bounded libFuzzer
# run, as a meson test (fuzz/meson.build). The seeds (the committed
# directory SEEDS, then each SEED_FILE) are copied into WORK/corpus, which
# also keeps what earlier runs found; libFuzzer adds to it and never
# writes into SEEDS. DICT is a libFuzzer dictionary, or - for none.
#
# LOOM_FUZZ_SECONDS (default 25) bounds the run. Exit status: 0 when
# nothing was found; otherwise libFuzzer's (crash, leak, sanitizer report,
# a 10 s input, 2 GB of memory), the input in WORK/artifacts.
set -euo pipefail
target=$1 seeds=$2 work=$3 dict=$4
shift 4
mkdir -p "$work/corpus" "$work/artifacts"
cp -- "$seeds"/* "$work/corpus/"
for f in "$@"; do
    cp -- "$f" "$work/corpus/"
done
args=(-max_total_time="${LOOM_FUZZ_SECONDS:-25}" -rss_limit_mb=2048 -timeout=10 -close_fd_mask=3
      -print_final_stats=1 -artifact_prefix="$work/artifacts/")
[ "$dict" = - ] || args+=(-dict="$dict")
exec "$target" "${args[@]}" "$work/corpus"

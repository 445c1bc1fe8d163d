#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer + ASan + UBSan, clang) of every parser of outside input:
# tests/fuzz/README.md says what each target covers.
#
#   tools/fuzz.sh [SECONDS_PER_TARGET]     default 30; 0 = only replay corpus and regressions
#
# 1. builds build-fuzz/ (tests/fuzz/CMakeLists.txt, clang++-14, Ninja, ccache) quietly;
# 2. replays, per target, every seed of tests/fuzz/corpus/<target>/ and every fixed crash of
#    tests/fuzz/regressions/<target>/ (also with SECONDS_PER_TARGET = 0);
# 3. fuzzes each target for SECONDS_PER_TARGET seconds (-max_total_time), FUZZ_JOBS targets at a
#    time, new corpus entries going to build-fuzz/work/corpus/<target>/ (kept between runs, never
#    in the repository), and prints one summary line per target.
# Exits non-zero on any crash, sanitizer report, leak, timeout (-timeout=10 s per input) or
# out-of-memory (-rss_limit_mb=2048, also the per-malloc limit), printing the reproducer's path.
#
# CI budget: this runs on every commit on the 2-core CI machine and must finish in about 5 minutes
# from a cold build-fuzz/. Measured on that kind of machine (Debian 12, 2 cores, clang 14), from an
# empty build-fuzz/ and an empty ccache: build 75 s (the two LibTorch targets share one precompiled
# <torch/torch.h>; 7 s with a warm ccache), replay of all seeds and regressions ~5 s, then 10 targets
# x 30 s, 2 at a time, = 150 s of fuzzing: 3 min 56 s in all, leaving a minute for a slower runner.
# 30 s per target is enough to catch what a change breaks near the seeds (each target replays its
# seeds and runs 2.5*10^4 - 4*10^5 mutations); depth comes from long runs by hand: tools/fuzz.sh 600,
# or one target, e.g. build-fuzz/fuzz_idx -max_total_time=3600 build-fuzz/work/corpus/idx tests/fuzz/corpus/idx.
#
# Environment: FUZZ_JOBS (default 2) targets fuzzed at once; FUZZ_TARGETS="idx config" to run a
# subset; FUZZ_NICE=10 to run the fuzzers under nice; CC/CXX default to clang-14/clang++-14.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SECONDS_PER_TARGET=${1:-30}
if ! [[ $SECONDS_PER_TARGET =~ ^[0-9]+$ ]]; then
  echo "usage: tools/fuzz.sh [SECONDS_PER_TARGET]" >&2
  exit 2
fi
BUILD=$ROOT/build-fuzz
WORK=$BUILD/work
JOBS=${FUZZ_JOBS:-2}
NICE=()
[[ -n ${FUZZ_NICE:-} ]] && NICE=(nice -n "$FUZZ_NICE")
ALL_TARGETS=(safetensors config image idx tokenizer tokenizer_files classes wordnet checkpoint model_config)
read -r -a TARGETS <<< "${FUZZ_TARGETS:-${ALL_TARGETS[*]}}"

# Per target: -max_len (the largest input worth mutating: a real config or checkpoint seed fits),
# and the dictionary, if any. image: 2048 (seeds <= 994 bytes): the decoder allows 16384 pixels per
# byte, so a 16 KiB input may legally decode to 2^28 pixels (768 MiB, plus 512 MiB of libjpeg
# coefficients), more than the 2 GB RSS limit of an ASan process holds; 2 KiB caps it at 100 MiB.
declare -A MAX_LEN=([safetensors]=8192 [config]=16384 [image]=2048 [idx]=4096 [tokenizer]=2048
                    [tokenizer_files]=32768 [classes]=16384 [wordnet]=8192 [checkpoint]=32768 [model_config]=4096)
declare -A DICT=([safetensors]=json [config]=config [image]=image [tokenizer]=tokenizer [tokenizer_files]=json
                 [classes]=classes [wordnet]=wordnet [checkpoint]=checkpoint [model_config]=json)
# Extra libFuzzer flags per target (leak detection is on everywhere, see LSAN_OPTIONS). image: no
# legal decode of a 2 KiB input allocates 1 GB at once (buffers grow with the rows decoded), so a
# 1 GB per-allocation limit catches a header or chunk length trusted again (regressions/image).
declare -A EXTRA=([image]="-malloc_limit_mb=1024")

# ---- build ------------------------------------------------------------------------------------
# ccache may cache the LibTorch translation units, which use a precompiled header.
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
mkdir -p "$BUILD"
BUILD_LOG=$BUILD/build.log
build_start=$SECONDS
if [[ ! -f $BUILD/build.ninja ]]; then
  cmake -S tests/fuzz -B "$BUILD" -G Ninja -DCMAKE_C_COMPILER="${CC:-clang-14}" -DCMAKE_CXX_COMPILER="${CXX:-clang++-14}" \
    > "$BUILD_LOG" 2>&1 || { tail -40 "$BUILD_LOG"; echo "fuzz: configure failed (log: $BUILD_LOG)" >&2; exit 1; }
fi
if ! cmake --build "$BUILD" >> "$BUILD_LOG" 2>&1; then
  grep -E "error|FAILED" "$BUILD_LOG" | head -40
  echo "fuzz: build failed (log: $BUILD_LOG)" >&2
  exit 1
fi
echo "fuzz: build-fuzz built in $((SECONDS - build_start)) s"

# ---- run ----------------------------------------------------------------------------------------
rm -rf "$WORK/logs"
mkdir -p "$WORK/logs" "$WORK/artifacts"
# The harnesses' scratch files (the parsers that only take a path), in RAM where possible; a
# fuzzer that crashes leaves its folder, removed here at exit.
SYNTH_FUZZ_TMP=$(mktemp -d /dev/shm/synth-fuzz.XXXXXX 2> /dev/null || mktemp -d "${TMPDIR:-/tmp}/synth-fuzz.XXXXXX")
export SYNTH_FUZZ_TMP
trap 'rm -rf "$SYNTH_FUZZ_TMP"' EXIT
# Symbolized reports; UBSan aborts with a stack; ASan reports allocation-size-too-big as an error.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:symbolize=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Leak detection stays on for every target; tests/fuzz/lsan.supp suppresses only the leak inside
# LibTorch's zip reader (miniz state of a PyTorchStreamReader whose constructor throws).
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/fuzz/lsan.supp:print_suppressions=0}

common_opts() {  # target
  local t=$1
  local o=(-rss_limit_mb=2048 -timeout=10 -max_len="${MAX_LEN[$t]}")
  [[ -n ${DICT[$t]:-} ]] && o+=(-dict="$ROOT/tests/fuzz/dict/${DICT[$t]}.dict")
  [[ -n ${EXTRA[$t]:-} ]] && o+=(${EXTRA[$t]})
  echo "${o[@]}"
}

# Replays every seed and regression input of target t in one process; prints the file that failed.
replay() {  # target
  local t=$1 bin=$BUILD/fuzz_$1 log=$WORK/logs/$1.replay.log
  local files=()
  for d in "$ROOT/tests/fuzz/corpus/$t" "$ROOT/tests/fuzz/regressions/$t"; do
    [[ -d $d ]] || continue
    while IFS= read -r -d '' f; do files+=("$f"); done < <(find "$d" -type f -print0 | sort -z)
  done
  ((${#files[@]})) || return 0
  # shellcheck disable=SC2046
  if ! (cd "$WORK/artifacts" && "${NICE[@]}" "$bin" $(common_opts "$t") "${files[@]}") > "$log" 2>&1; then
    local bad
    bad=$(grep -a "^Running: " "$log" | tail -1 | sed 's/^Running: //')
    echo "fuzz: $t: FAILED on replay of $bad (log: $log)"
    grep -a -E "ERROR|SUMMARY|runtime error|fuzz property|terminate called|what\(\)|does not load back|round trip" "$log" | head -8 | sed 's/^/    /'
    return 1
  fi
  echo "fuzz: $t: replayed ${#files[@]} inputs"
}

# Fuzzes target t for SECONDS_PER_TARGET; writes its summary line to logs/<t>.summary.
fuzz_one() {  # target
  local t=$1 bin=$BUILD/fuzz_$1 log=$WORK/logs/$1.fuzz.log
  mkdir -p "$WORK/corpus/$t" "$WORK/artifacts/$t"
  local rc=0
  # shellcheck disable=SC2046
  "${NICE[@]}" "$bin" $(common_opts "$t") -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 \
    -artifact_prefix="$WORK/artifacts/$t/" "$WORK/corpus/$t" "$ROOT/tests/fuzz/corpus/$t" > "$log" 2>&1 || rc=$?
  local execs eps init_cov cov init_ft ft units
  execs=$(grep -a "stat::number_of_executed_units:" "$log" | awk '{print $2}' | tail -1)
  eps=$(grep -a "stat::average_exec_per_sec:" "$log" | awk '{print $2}' | tail -1)
  units=$(grep -a "stat::new_units_added:" "$log" | awk '{print $2}' | tail -1)
  init_cov=$(grep -a -m1 -oE "INITED cov: [0-9]+" "$log" | awk '{print $3}')
  init_ft=$(grep -a -m1 -oE "INITED cov: [0-9]+ ft: [0-9]+" "$log" | awk '{print $5}')
  cov=$(grep -a -oE "cov: [0-9]+" "$log" | tail -1 | awk '{print $2}')
  ft=$(grep -a -oE "ft: [0-9]+" "$log" | tail -1 | awk '{print $2}')
  local crashes=0 status=ok
  if ((rc != 0)); then
    crashes=1
    status="FAILED rc=$rc"
  fi
  printf "%-16s execs %10s  exec/s %7s  cov %5s -> %-5s  ft %6s -> %-6s  new units %5s  crashes %d  %s\n" \
    "$t" "${execs:-?}" "${eps:-?}" "${init_cov:-?}" "${cov:-?}" "${init_ft:-?}" "${ft:-?}" "${units:-?}" "$crashes" "$status" \
    > "$WORK/logs/$t.summary"
  if ((rc != 0)); then
    {
      echo "fuzz: $t: finding (log: $log)"
      grep -a -E "ERROR|SUMMARY|runtime error|fuzz property|terminate called|what\(\)|does not load back|round trip" "$log" | head -8 | sed 's/^/    /'
      for a in "$WORK/artifacts/$t"/*; do [[ -f $a ]] && echo "    reproducer: $a  (run: $bin $a)"; done
    } >> "$WORK/logs/$t.summary"
    return 1
  fi
}

failed=0
present=()
for t in "${TARGETS[@]}"; do
  if [[ -z ${MAX_LEN[$t]:-} ]]; then
    echo "fuzz: unknown target '$t' (targets: ${ALL_TARGETS[*]})" >&2
    exit 2
  fi
  if [[ ! -x $BUILD/fuzz_$t ]]; then
    echo "fuzz: $t: not built (no LibTorch?), skipped"
    continue
  fi
  present+=("$t")
  replay "$t" || failed=1
done

if ((SECONDS_PER_TARGET > 0)); then
  # Leftover artifacts are from an earlier run; each run reports only its own.
  for t in "${present[@]}"; do rm -rf "$WORK/artifacts/$t"; done
  echo "fuzz: fuzzing ${#present[@]} targets for $SECONDS_PER_TARGET s each, $JOBS at a time"
  for t in "${present[@]}"; do
    while (($(jobs -rp | wc -l) >= JOBS)); do wait -n || true; done
    fuzz_one "$t" &
  done
  wait || true
  echo
  for t in "${present[@]}"; do
    cat "$WORK/logs/$t.summary" 2> /dev/null || echo "$t: no summary (the fuzzer did not finish)"
    grep -q "crashes 0  ok" "$WORK/logs/$t.summary" 2> /dev/null || failed=1
  done
fi

if ((failed)); then
  echo "fuzz: FAILED (logs in $WORK/logs)" >&2
  exit 1
fi
echo "fuzz: ok"

#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time (issue #6).
#
#   bash scripts/fuzz.sh [seconds-per-target]        (default 30)
#
# Installs cargo-fuzz if missing, builds all targets once, then runs each in turn from its
# committed seed corpus (fuzz/corpus/<target>/; what a run discovers goes to fuzz/work/,
# which is not committed). Exits non-zero if any target crashed, after running them all,
# and prints the crashing inputs (fuzz/artifacts/<target>/) and the end of each failing log.
# Reproduce one with: cargo fuzz run -s none --codegen-units 16 <target> <crash file>
#
# Works with the stable toolchain. The default build (no sanitizer: panics, overflows and
# failed assertions are the findings in this safe-Rust code) passes rustc only stable options.
# FUZZ_SANITIZER=address builds with AddressSanitizer, which needs -Zsanitizer: then
# RUSTC_BOOTSTRAP=1 lets the stable compiler take it (slower to build and to run).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-30}
if ! [[ $secs =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [seconds-per-target]" >&2
  exit 2
fi
export CARGO_TERM_COLOR=never
sanitizer=${FUZZ_SANITIZER:-none}
if [[ $sanitizer != none ]]; then
  export RUSTC_BOOTSTRAP=1
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked

# 16 codegen units (cargo-fuzz's default is 1): a much shorter build for slightly slower runs.
build=(-s "$sanitizer" --codegen-units 16)
start=$SECONDS
cargo fuzz build "${build[@]}"
echo "fuzz: built in $((SECONDS - start)) s"

work=fuzz/work
rm -rf "$work"
mkdir -p "$work"
failed=()
for t in $(cargo fuzz list); do
  mkdir -p "$work/$t" "fuzz/artifacts/$t"
  touch "$work/$t.start"
  log=$work/$t.log
  echo "fuzz: $t for $secs s"
  # -timeout: an input that takes 10 s is a finding too; -rss_limit_mb: so is 2 GiB.
  if cargo fuzz run "${build[@]}" "$t" "$work/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -dict="fuzz/dict/$t.dict" -print_final_stats=1 >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    echo "fuzz: $t ok, ${runs:-?} executions, corpus $(find "$work/$t" -type f | wc -l) new inputs"
  else
    failed+=("$t")
    echo "fuzz: $t FAILED (log: $log):"
    # The panic (message and location) or libFuzzer's report (timeout, out of memory); if
    # neither, the end of the log (a build error, say).
    if ! grep -a -m1 -A2 -E "panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer" "$log" | sed 's/^/    /'; then
      tail -n 20 "$log" | sed 's/^/    /'
    fi
    find "fuzz/artifacts/$t" -type f -newer "$work/$t.start" | while read -r f; do
      echo "fuzz: $t crash input: $f"
    done
  fi
done

echo "fuzz: all targets done in $((SECONDS - start)) s"
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi

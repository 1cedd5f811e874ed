#!/usr/bin/env bash
# The HTML report of a large PyTorch trace: its size, and how long headless
# chromium takes to load and paint it (a screenshot), beside a blank page
# in the same run. Usage: scripts/bench_html_report.sh [COPIES] (default 70:
# the inference fixture repeated to 132 MB, as in the HTA comparison).
set -euo pipefail
cd "$(dirname "$0")/.."
copies="${1:-70}"
tmp="${TMPDIR:-/tmp}/stageprof-html-bench"
trace="$tmp/rank0.pt.trace.json"
mkdir -p "$tmp"

cargo build --release -q -p stageprof-cli -p stageprof-readers --bins --examples
if [ ! -f "$trace" ]; then
    ./target/release/examples/repeat_trace crates/stageprof-readers/tests/fixtures/inference.pt.trace.json.gz "$copies" "$trace"
fi
/usr/bin/time -f "report: %e s wall, %M KB peak RSS" ./target/release/stageprof report "$trace" --html "$tmp/report.html" >/dev/null
echo "trace: $(stat -c %s "$trace") bytes; report.html: $(stat -c %s "$tmp/report.html") bytes"
echo '<!DOCTYPE html><html><body></body></html>' >"$tmp/blank.html"

shot() {
    local start end
    start=$(date +%s.%N)
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,4000 \
        --screenshot="$tmp/shot.png" "file://$1" >/dev/null 2>&1
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}
for run in 1 2 3; do
    blank=$(shot "$tmp/blank.html")
    report=$(shot "$tmp/report.html")
    echo "run $run: blank page $blank s, report $report s, report - blank $(echo "$report - $blank" | bc) s"
done

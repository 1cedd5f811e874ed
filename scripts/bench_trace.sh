# Sourced by the reader benchmarks: builds the release binaries and makes
# (once) the benchmark trace, the inference fixture repeated $copies times
# in Kineto's own layout. Sets $trace_dir and $trace; needs $tmp and $copies.
cargo build --release -q -p stageprof-cli -p stageprof-readers --bins --examples
trace_dir="$tmp/stageprof-bench-trace-$copies"
trace="$trace_dir/rank0.pt.trace.json"
if [ ! -f "$trace" ]; then
    mkdir -p "$trace_dir"
    ./target/release/examples/repeat_trace crates/stageprof-readers/tests/fixtures/inference.pt.trace.json.gz "$copies" "$trace"
fi
cat "$trace" > /dev/null   # warm the page cache

cat > /tmp/d.py <<'PY'
import sys, torch, stageprof
torch.ones(1, device="cuda")
kw = eval(sys.argv[1])
print("start", kw, flush=True)
s = stageprof.init(out_dir="/tmp/d", formats=["summary", "native"], **kw)
print("inited; gpu", s._native.gpu, flush=True)
for _ in range(3):
    with stageprof.stage("x"):
        (torch.ones(1000, device="cuda") * 2).sum()
torch.cuda.synchronize()
r = s.finish()
print("ok", [(st["name"], st["gpu_event_ns"], st["gpu_kernels"], st["host_mem_peak_bytes"]) for st in r.stages], r.summary["warnings"], flush=True)
PY
for kw in "dict(gpu='events', memory=False)" "dict(gpu='kernels', memory=False)" "dict(gpu='kernels')" ; do
  STAGEPROF_DEBUG_HOOKS=1 timeout 60 python -X faulthandler /tmp/d.py "$kw" > /tmp/d.log 2>&1; echo "rc=$?"; grep -v "^    \|counting the C heap" /tmp/d.log | tail -8; grep "counting the C heap" /tmp/d.log | tail -3; done

import time, statistics, torch, stageprof
torch.ones(1, device="cuda")
def run(n):
    t = time.perf_counter_ns()
    for _ in range(n):
        with stageprof.stage("x"):
            pass
    return (time.perf_counter_ns() - t) / n
for gpu in ("off", "events", "kernels"):
    s = stageprof.init(out_dir=f"/tmp/sc-{gpu}", formats=["native"], gpu=gpu)
    run(10000)
    ns = statistics.median(run(50000) for _ in range(5))
    s.finish()
    print(f"stage with gpu={gpu}: {ns:.0f} ns")

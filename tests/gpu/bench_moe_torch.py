#!/usr/bin/env python3
"""Times a mixture-of-experts layer in PyTorch with torch._grouped_mm (GPU
machine), on the shapes and routing that `engine/bench --moe-layer ...
--save-routing FILE` used, and prints it side by side with engine/bench's
figures (its --json FILE).

The layer as an efficient PyTorch program writes it (the same work as ours:
the routing is given): argsort of the (token, expert) pairs by expert,
bincount and cumsum for the group offsets, the gather of the rows,
torch._grouped_mm for gate|up, SiLU(gate) * up, torch._grouped_mm for down,
the weighted index_add_ back to token order.  Weights bf16 with std 0.02,
one layer (1.2 GB at Qwen3-30B-A3B's shape: every call reads them from
memory).  Each op timed with CUDA events, median of 20 after 3 warm-ups.

Usage: tests/gpu/bench_moe_torch.py --routing R.bin --ours bench.json [--hidden 2048 --inter 768]
       [--peak-tflops F --peak-gbps G] [--json OUT.json]
"""
import argparse, json, struct, sys
import numpy as np
import torch
import torch.nn.functional as F


def read_routing(path):
    b = open(path, "rb").read()
    off, out = 0, []
    while off < len(b):
        T, k, E, mode = struct.unpack_from("<4i", b, off); off += 16
        ids = np.frombuffer(b, np.int32, T * k, off).reshape(T, k); off += 4 * T * k
        w = np.frombuffer(b, np.float32, T * k, off).reshape(T, k); off += 4 * T * k
        out.append((T, k, E, ["uniform", "router"][mode], ids.copy(), w.copy()))
    return out


def timed(fn, warm=3, iters=20):
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    return float(np.median(ts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--routing", required=True)
    ap.add_argument("--ours", help="engine/bench --moe-layer --json FILE")
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--inter", type=int, default=768)
    ap.add_argument("--peak-tflops", type=float, default=790)
    ap.add_argument("--peak-gbps", type=float, default=4300)
    ap.add_argument("--json")
    a = ap.parse_args()
    if not hasattr(torch, "_grouped_mm"):
        sys.exit("this torch has no torch._grouped_mm")
    H, I = a.hidden, a.inter
    recs = read_routing(a.routing)
    E = recs[0][2]
    g = torch.Generator(device="cuda").manual_seed(1)
    wgu = (torch.randn(E, 2 * I, H, device="cuda", generator=g) * 0.02).bfloat16()   # (E, 2I, H) gate | up rows
    wd = (torch.randn(E, H, I, device="cuda", generator=g) * 0.02).bfloat16()        # (E, H, I)
    ours = {}
    if a.ours:
        for c in json.load(open(a.ours))["cases"]:
            ours[(c["tokens"], c["routing"], c["path"])] = c
    print("torch", torch.__version__, torch.cuda.get_device_name())
    hdr = "%6s %-8s | %9s %8s | %9s %8s | %9s %9s | %s" % ("tokens", "routing", "gate/up", "TFLOP/s", "down", "TFLOP/s",
                                                          "layer ms", "wGB/s", "ours (grouped | cublas): gate/up, down, layer ms; layer speedup")
    print(hdr)
    res = []
    for T, k, E_, mode, ids_np, w_np in recs:
        x = torch.randn(T, H, device="cuda", generator=g).bfloat16()
        ids = torch.from_numpy(ids_np).cuda().long()
        wts = torch.from_numpy(w_np).cuda()
        flat = ids.view(-1)

        def permute():
            order = torch.argsort(flat, stable=True)
            counts = torch.bincount(flat, minlength=E)
            offs = torch.cumsum(counts, 0, dtype=torch.int32)
            return order, order // k, offs
        order, tok, offs = permute()
        xp = x[tok]
        gu = torch._grouped_mm(xp, wgu.transpose(-2, -1), offs=offs)
        act = F.silu(gu[:, :I]) * gu[:, I:]

        def layer():
            order, tok, offs = permute()
            xp = x[tok]
            gu = torch._grouped_mm(xp, wgu.transpose(-2, -1), offs=offs)
            act = F.silu(gu[:, :I]) * gu[:, I:]
            y = torch._grouped_mm(act, wd.transpose(-2, -1), offs=offs)
            y = (y.float() * wts.view(-1)[order, None]).bfloat16()
            return torch.zeros_like(x).index_add_(0, tok, y)
        t_gu = timed(lambda: torch._grouped_mm(xp, wgu.transpose(-2, -1), offs=offs))
        t_d = timed(lambda: torch._grouped_mm(act, wd.transpose(-2, -1), offs=offs))
        t_l = timed(layer)
        tk = T * k
        f_gu, f_d = 2.0 * tk * 2 * I * H, 2.0 * tk * H * I
        touched = int((torch.bincount(flat, minlength=E) > 0).sum())
        wbytes = touched * 3 * H * I * 2
        r = {"tokens": T, "routing": mode, "gate_up_ms": t_gu, "down_ms": t_d, "layer_ms": t_l,
             "gate_up_tflops": f_gu / t_gu / 1e9, "down_tflops": f_d / t_d / 1e9,
             "weights_gbps": wbytes / (t_gu + t_d) / 1e6}
        line = "%6d %-8s | %9.3f %8.1f | %9.3f %8.1f | %9.3f %9.0f |" % (
            T, mode, t_gu, r["gate_up_tflops"], t_d, r["down_tflops"], t_l, r["weights_gbps"])
        for p in ("grouped", "cublas"):
            o = ours.get((T, mode, p))
            if o:
                line += " %s %.3f %.3f %.3f (%.2fx)" % (p, o["gate_up_ms"], o["down_ms"], o["layer_ms"], t_l / o["layer_ms"])
                r["ours_" + p] = o
        print(line, flush=True)
        res.append(r)
    if a.json:
        json.dump({"torch": torch.__version__, "cases": res}, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()

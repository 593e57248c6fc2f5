#!/usr/bin/env python3
"""The transformers side of engine/bench (GPU machine), on the same prompts.

  bench_hf.py --peaks
      the GPU's measured ceilings: torch.matmul 8192^3 bf16 (TFLOP/s, mean of 10
      after 3 warm-ups, random data) and a device-to-device copy of 2 GiB (GB/s,
      bytes read + written)
  bench_hf.py --config CONFIG.json --workload FILE --batches 64,128,256 [--time-limit S]
      a random-weight model of CONFIG.json (transformers' own init, bf16, sdpa),
      generate() with greedy decoding and EOS off, on the requests of FILE
      (written by `engine/bench --save-workload FILE`: one line per request,
      "output_len id,id,..."): for each batch size, the first B requests, left
      padded to the longest prompt, max_new_tokens = the longest output of the
      batch (a static batch runs as long as its longest member).  Counts only
      the tokens asked for (prompt + output_len of each request) as useful.
      --batches all: one batch of every request.  --time-limit stops a batch
      after S seconds and extrapolates its time linearly in the decode steps
      (decode steps get slower as the cache grows, so this favours transformers).
Prints one JSON object per line (and --out FILE gets them all).
"""
import argparse, json, time
import torch
import transformers as tf


def peaks():
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        torch.matmul(a, b)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(10):
        torch.matmul(a, b)
    torch.cuda.synchronize()
    tflops = 2 * 8192 ** 3 * 10 / (time.perf_counter() - t) / 1e12
    x = torch.empty(1 << 30, device="cuda", dtype=torch.int16)      # 2 GiB
    y = torch.empty_like(x)
    y.copy_(x)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(10):
        y.copy_(x)
    torch.cuda.synchronize()
    gbps = 2 * x.numel() * 2 * 10 / (time.perf_counter() - t) / 1e9
    return {"gpu": torch.cuda.get_device_name(), "gemm_tflops": round(tflops, 1), "copy_gbps": round(gbps, 1),
            "torch": torch.__version__, "transformers": tf.__version__}


def build(config_path):
    d = json.load(open(config_path))
    for k in ("architectures", "transformers_version", "torch_dtype", "dtype", "_name_or_path"):
        d.pop(k, None)
    cfg = tf.AutoConfig.for_model(**d)
    torch.manual_seed(0)
    with torch.device("cuda"):
        try:
            model = tf.AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        except TypeError:
            model = tf.AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16)
    model.to(torch.bfloat16).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model


class TimeLimit(tf.StoppingCriteria):
    def __init__(self, seconds):
        self.seconds, self.t0, self.calls = seconds, time.perf_counter(), 0

    def __call__(self, input_ids, scores, **kw):
        self.calls += 1
        stop = time.perf_counter() - self.t0 > self.seconds
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


@torch.no_grad()
def run_batch(model, reqs, limit):
    P = max(len(p) for _, p in reqs)
    G = max(o for o, _ in reqs)
    ids = torch.zeros(len(reqs), P, dtype=torch.long)
    mask = torch.zeros(len(reqs), P, dtype=torch.long)
    for i, (_, p) in enumerate(reqs):                 # left padding
        ids[i, P - len(p):] = torch.tensor(p)
        mask[i, P - len(p):] = 1
    ids, mask = ids.cuda(), mask.cuda()
    stop = TimeLimit(limit) if limit else None
    torch.cuda.synchronize()
    t = time.perf_counter()
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=G,
                         do_sample=False, pad_token_id=0,
                         stopping_criteria=tf.StoppingCriteriaList([stop]) if stop else None)
    torch.cuda.synchronize()
    secs = time.perf_counter() - t
    steps = out.shape[1] - P
    extrapolated = steps < G
    if extrapolated:
        secs = secs * G / max(steps, 1)
    useful_out = sum(o for o, _ in reqs)
    useful = useful_out + sum(len(p) for _, p in reqs)
    return {"batch": len(reqs), "padded_prompt": P, "new_tokens": G, "steps_run": steps,
            "seconds": round(secs, 3), "extrapolated": extrapolated,
            "total_tok_s": round(useful / secs, 1), "output_tok_s": round(useful_out / secs, 1),
            "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peaks", action="store_true")
    ap.add_argument("--config")
    ap.add_argument("--workload")
    ap.add_argument("--batches", default="64,128,256")
    ap.add_argument("--time-limit", type=float, default=0)
    ap.add_argument("--out")
    a = ap.parse_args()
    res = []
    if a.peaks:
        res.append(peaks())
    if a.config:
        reqs = []
        for line in open(a.workload):
            o, p = line.split()
            reqs.append((int(o), [int(x) for x in p.split(",")]))
        t = time.perf_counter()
        model = build(a.config)
        res.append({"config": a.config, "params_b": round(sum(p.numel() for p in model.parameters()) / 1e9, 3),
                    "build_s": round(time.perf_counter() - t, 1)})
        print(json.dumps(res[-1]), flush=True)
        run_batch(model, [(8, p) for _, p in reqs[:2]], 0)    # warm-up (kernels, allocator): 8 tokens
        sizes = [len(reqs)] if a.batches == "all" else [int(x) for x in a.batches.split(",")]
        for b in sizes:
            torch.cuda.reset_peak_memory_stats()
            r = run_batch(model, reqs[:b], a.time_limit)
            res.append(r)
            print(json.dumps(r), flush=True)
            torch.cuda.empty_cache()
        best = max((r for r in res if "total_tok_s" in r), key=lambda r: r["total_tok_s"])
        res.append({"best_batch": best["batch"], "best_total_tok_s": best["total_tok_s"],
                    "best_output_tok_s": best["output_tok_s"]})
    for r in res[-1:] if a.config else res:
        print(json.dumps(r), flush=True)
    if a.out:
        with open(a.out, "w") as f:
            for r in res:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()

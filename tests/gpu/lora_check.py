#!/usr/bin/env python3
"""Checks the engine's LoRA against PEFT on random-weight models (GPU machine, issue 16).

For each base family (Qwen2 with q/k/v biases, tied embeddings; Llama with
grouped heads) it builds a model with random weights (compare_hf.build: norms
and biases randomised too), saves it, and makes four PEFT adapters with
get_peft_model + save_pretrained (PEFT writes adapter_config.json and
adapter_model.safetensors itself):
    a   r 8,  alpha 16, q_proj + v_proj,            bf16 on disk
    b   r 64, alpha 32, all-linear, rsLoRA,          fp16 on disk
    c   r 8,  alpha 8,  all-linear,                  fp32 on disk
    d   r 64, alpha 128, q_proj + v_proj,            bf16 on disk
with random A and B scaled so that an adapter moves the logits well beyond
bf16 noise (checked: PEFT with the adapter against PEFT without it).  Then:
  runtime   engine/run --enable-lora --lora-modules a=.. b=.. c=.. d=.. --max-loras 4
            --max-lora-rank 64, one batch of prompts under a, b, c, d and the base model
            (--lora per prompt): every request's logits against PEFT's (teacher-forced
            on our tokens; PeftModel with set_adapter / disable_adapter), in bf16 and
            against an fp32 PEFT run: rel L2 < 3e-2 at the prompt and the generated
            positions, ours no further from fp32 than 1.5x PEFT bf16's distance,
            teacher-forced argmax within 5 points of PEFT bf16's.
  mixed     a batch of three adapters and the base model (a, b, c, none) equals each
            request run alone (tokens equal, logits rel L2 < 1e-2; bit-identity reported).
  slots     the same five requests with --max-loras 2 (adapters evicted and reloaded,
            requests of a third adapter waiting) and one prompt repeated under a, b,
            none, a with --max-num-seqs 1 (the prefix cache must not serve a block of
            one adapter to another): each against PEFT as above.
  merged    build/gpu/merge --model BASE --lora ADAPTER --out DIR for b and d:
            its tensors against PEFT's merge_and_unload in fp32 (within half a bf16
            ulp), transformers loading DIR gives PEFT's logits (bf16 rel L2 < 3e-2;
            fp32 < 2e-2), and engine/run on DIR gives PEFT's logits as the runtime does.
Usage: tests/gpu/lora_check.py --engine build/gpu/run --merge build/gpu/merge [--out DIR] [--only qwen2]
Writes DIR/lora_check.json and a table; exits 1 when a check fails.
"""
import argparse, copy, json, os, subprocess, sys, tempfile, time
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_hf as ch                       # build, rope_fp32, read_dump, rel_l2
import transformers as tf
import peft
from safetensors.torch import load_file

GEN = 16
ADAPTERS = [  # name, r, alpha, targets, rslora, dtype on disk
    ("a", 8, 16, ["q_proj", "v_proj"], False, torch.bfloat16),
    ("b", 64, 32, "all-linear", True, torch.float16),
    ("c", 8, 8, "all-linear", False, torch.float32),
    ("d", 64, 128, ["q_proj", "v_proj"], False, torch.bfloat16),
]


def families():
    return [
        ("qwen2", tf.Qwen2Config(
            vocab_size=4096, hidden_size=512, intermediate_size=1376, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
            rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
            use_sliding_window=False), dict()),
        ("llama", tf.LlamaConfig(
            vocab_size=4096, hidden_size=512, intermediate_size=1024, num_hidden_layers=3,
            num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=2048,
            rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False), dict()),
    ]


def load(path, dtype):
    try:
        m = tf.AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except TypeError:                                    # transformers before 4.56
        m = tf.AutoModelForCausalLM.from_pretrained(path, torch_dtype=dtype)
    m.to("cuda").eval()
    ch.rope_fp32(m)
    return m


def make_adapter(base_path, out, r, alpha, targets, rslora, dtype, seed):
    """a PEFT adapter with random A and B, saved by PEFT in dtype"""
    torch.manual_seed(seed)
    m = load(base_path, torch.float32)
    cfg = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, use_rslora=rslora, lora_dropout=0.0,
                          bias="none", task_type="CAUSAL_LM")
    pm = peft.get_peft_model(m, cfg)
    scale = alpha / (r ** 0.5 if rslora else r)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_A" in n:                            # (r, in): A x of the size of x's rows
                p.normal_(0.0, p.shape[1] ** -0.5)
            elif "lora_B" in n:                          # (out, r): scale B A x about half of W x (std 0.02)
                p.normal_(0.0, 0.01 * (p.shape[0] ** 0.5) / (scale * r ** 0.5) * 0.5)
    pm.to(dtype)
    pm.save_pretrained(out)
    del pm, m
    torch.cuda.empty_cache()
    cfgj = json.load(open(os.path.join(out, "adapter_config.json")))
    st = load_file(os.path.join(out, "adapter_model.safetensors"))
    return {"saved_dtype": str(next(iter(st.values())).dtype), "tensors": len(st),
            "target_modules": cfgj.get("target_modules"), "use_rslora": cfgj.get("use_rslora")}


def peft_models(base_path, adirs):
    """PEFT over the base in bf16 and in fp32, every adapter loaded (set_adapter picks one)"""
    out = {}
    for tag, dt in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        m = load(base_path, dt)
        names = list(adirs)
        pm = peft.PeftModel.from_pretrained(m, adirs[names[0]], adapter_name=names[0])
        for n in names[1:]:
            pm.load_adapter(adirs[n], adapter_name=n)
        pm.eval()
        out[tag] = pm
    return out


@torch.no_grad()
def peft_logits(pm, adapter, toks):
    ids = torch.tensor(toks[:-1], dtype=torch.long, device="cuda")[None]
    if adapter is None:
        with pm.disable_adapter():
            return pm(input_ids=ids).logits[0].float().cpu().numpy()
    pm.set_adapter(adapter)
    return pm(input_ids=ids).logits[0].float().cpu().numpy()


def run_engine(engine, model, reqs, extra, dump):
    """reqs: [(adapter or None, prompt ids)]; engine/run with --lora before each prompt"""
    cmd = [engine, "--model", model, "--max-tokens", str(GEN), "--dump-logits", dump, "--ignore-eos", "--quiet",
           "--num-gpu-blocks", "1024", "--max-model-len", "512"] + extra
    for ad, p in reqs:
        cmd += ["--lora", ad or "none", "--prompt-ids", ",".join(map(str, p))]
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("engine failed: %s\n%s" % (" ".join(cmd[:12]), r.stderr[-3000:]))
    return ch.read_dump(dump), round(time.time() - t, 2), r.stderr


def against_peft(eng, reqs, pms):
    """each request's logits against PEFT bf16, and ours / PEFT bf16 against PEFT fp32"""
    acc, cnt, rows = {}, {}, []
    def add(k, a, b):
        n, d = acc.get(k, (0.0, 0.0)); acc[k] = (n + float(np.sum((a - b) ** 2)), d + float(np.sum(b ** 2)))
    def count(k, a, b):
        x, t = cnt.get(k, (0, 0)); cnt[k] = (x + int(np.sum(a == b)), t + len(a))
    for (ad, p), (P, toks, lg) in zip(reqs, eng):
        hb, hf = peft_logits(pms["bf16"], ad, toks), peft_logits(pms["fp32"], ad, toks)
        # a prompt position served by the prefix cache is not computed: engine/run dumps a
        # row of zeros there (the last prompt position is always computed)
        done = np.any(lg != 0, axis=1)
        cached = int(np.sum(~done[:P]))
        add("prefill_rel_l2", lg[:P][done[:P]], hb[:P][done[:P]]); add("decode_rel_l2", lg[P - 1:], hb[P - 1:])
        add("fp32_ours_rel_l2", lg[done], hf[done]); add("fp32_peftbf16_rel_l2", hb[done], hf[done])
        ours = toks[P:]
        count("tf_argmax_agree", ours, np.argmax(hb[P - 1:], axis=1))
        count("fp32_ours_tf_argmax", ours, np.argmax(hf[P - 1:], axis=1))
        count("fp32_peftbf16_tf_argmax", np.argmax(hb[P - 1:], axis=1), np.argmax(hf[P - 1:], axis=1))
        rows.append({"adapter": ad or "none", "rel_l2": round(ch.rel_l2(lg[done], hb[done]), 5),
                     "cached_prompt_rows": cached, "decode_rows_computed": bool(np.all(done[P - 1:]))})
    out = {k: (n / d) ** 0.5 for k, (n, d) in acc.items()}
    out.update({k: x / t for k, (x, t) in cnt.items()})
    out["per_request"] = rows
    out["pass"] = bool(all(r["decode_rows_computed"] for r in rows) and
                       out["prefill_rel_l2"] < 0.03 and out["decode_rel_l2"] < 0.03 and
                       out["fp32_ours_rel_l2"] <= 1.5 * out["fp32_peftbf16_rel_l2"] + 1e-3 and
                       out["fp32_ours_tf_argmax"] >= out["fp32_peftbf16_tf_argmax"] - 0.05)
    return out


def batch_vs_alone(engine, base, reqs, extra, tmp, batch):
    same, num, den, bit = 0, 0.0, 0.0, True
    for j, rq in enumerate(reqs):
        e1, _, _ = run_engine(engine, base, [rq], extra, os.path.join(tmp, "alone.bin"))
        P, t1, l1 = e1[0]
        t0, l0 = batch[j][1], batch[j][2]
        same += int(np.array_equal(t1, t0))
        bit &= bool(np.array_equal(t1, t0) and np.array_equal(l1, l0))
        diff = np.nonzero(t1 != t0)[0]
        upto = int(diff[0]) if len(diff) else len(t0) - 1
        num += float(np.sum((l1[:upto] - l0[:upto]) ** 2)); den += float(np.sum(l0[:upto] ** 2))
    rel = (num / den) ** 0.5
    return {"tokens_equal": "%d/%d" % (same, len(reqs)), "rel_l2": rel, "bit_identical": bit,
            "pass": bool(same == len(reqs) and rel < 1e-2)}


@torch.no_grad()
def merged_checks(a, base, adir, name, prompts, tmp):
    out_dir = os.path.join(tmp, "merged-" + name)
    t = time.time()
    r = subprocess.run([a.merge, "--model", base, "--lora", adir, "--out", out_dir], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("merge failed: %s" % r.stderr[-2000:])
    res = {"merge_s": round(time.time() - t, 2), "merge_log": r.stderr.strip().splitlines()[-1]}
    # the tensors against PEFT's own merge in fp32
    pm = peft.PeftModel.from_pretrained(load(base, torch.float32), adir).merge_and_unload()
    ref = {k: v.float().cpu() for k, v in pm.state_dict().items()}
    del pm
    ours = {}
    for f in sorted(os.listdir(out_dir)):
        if f.endswith(".safetensors"):
            ours.update(load_file(os.path.join(out_dir, f)))
    worst, n = 0.0, 0
    for k, v in ours.items():
        if k not in ref or not k.endswith("_proj.weight"):
            continue
        w = ref[k]
        # ours = the base dtype (bf16) rounding of W + scale B A: within half a bf16 ulp (2^-8 relative)
        e = float(((v.float() - w).abs() / (w.abs() + 1e-6)).max())
        worst = max(worst, e)
        n += 1
    res["linears_compared"] = n
    res["max_rel_vs_peft_merge"] = worst
    reqs = [(None, p) for p in prompts]
    eng, secs, _ = run_engine(a.engine, out_dir, reqs, [], os.path.join(tmp, "m.bin"))
    pms = peft_models(base, {name: adir})
    # transformers loads the merged checkpoint: its logits on our tokens against PEFT's
    tfb, tff = load(out_dir, torch.bfloat16), load(out_dir, torch.float32)
    e_b = e_f = 0.0
    nb = db = nf = df = 0.0
    for (P, toks, lg) in eng:
        ids = torch.tensor(toks[:-1], dtype=torch.long, device="cuda")[None]
        hb, hf = tfb(ids).logits[0].float().cpu().numpy(), tff(ids).logits[0].float().cpu().numpy()
        pb, pf = peft_logits(pms["bf16"], name, toks), peft_logits(pms["fp32"], name, toks)
        nb += float(np.sum((hb - pb) ** 2)); db += float(np.sum(pb ** 2))
        nf += float(np.sum((hf - pf) ** 2)); df += float(np.sum(pf ** 2))
    e_b, e_f = (nb / db) ** 0.5, (nf / df) ** 0.5
    res["transformers_merged_vs_peft_bf16_rel_l2"] = e_b
    res["transformers_merged_vs_peft_fp32_rel_l2"] = e_f
    # the engine on the merged checkpoint against PEFT with the adapter
    res["engine_merged"] = against_peft(eng, [(name, p) for p in prompts], pms)
    del tfb, tff, pms
    torch.cuda.empty_cache()
    res["pass"] = bool(n > 0 and worst <= 2 ** -8 + 1e-4 and e_b < 0.03 and e_f < 0.02 and res["engine_merged"]["pass"])
    return res


def check_family(a, name, cfg, opts, seed, tmp, rng):
    base = os.path.join(tmp, name)
    r = {}
    t0 = time.time()
    model = ch.build(cfg, opts, base, seed=seed)
    del model
    torch.cuda.empty_cache()
    adirs, r["adapters"] = {}, {}
    for k, (an, rank, alpha, targets, rs, dt) in enumerate(ADAPTERS):
        adirs[an] = os.path.join(tmp, "%s-lora-%s" % (name, an))
        r["adapters"][an] = make_adapter(base, adirs[an], rank, alpha, targets, rs, dt, seed * 10 + k)
    r["build_s"] = round(time.time() - t0, 1)
    V = cfg.vocab_size
    prompts = [rng.integers(0, V, n).tolist() for n in (9, 23, 41, 60, 17)]
    mods = ["--enable-lora", "--max-lora-rank", "64", "--lora-modules"] + ["%s=%s" % (n, d) for n, d in adirs.items()]
    pms = peft_models(base, adirs)
    # the adapters matter: PEFT with each against PEFT without
    moved = {}
    for an in adirs:
        with_a, without = peft_logits(pms["bf16"], an, prompts[0]), peft_logits(pms["bf16"], None, prompts[0])
        moved[an] = round(ch.rel_l2(with_a, without), 3)
    r["adapter_moves_logits_rel_l2"] = moved
    r["adapters_matter"] = bool(min(moved.values()) > 0.1)
    # runtime: a, b, c, d and the base model in one batch
    reqs = [(an, p) for an, p in zip(["a", "b", "c", "d", None], prompts)]
    eng, secs, log = run_engine(a.engine, base, reqs, mods + ["--max-loras", "4"], os.path.join(tmp, "rt.bin"))
    r["runtime"] = against_peft(eng, reqs, pms)
    r["runtime"]["engine_s"] = secs
    r["runtime"]["log"] = [l for l in log.splitlines() if l.startswith("LoRA")]
    # three adapters and none: batch = each alone
    mixed = [reqs[0], reqs[1], reqs[2], reqs[4]]
    em, _, _ = run_engine(a.engine, base, mixed, mods + ["--max-loras", "4"], os.path.join(tmp, "mx.bin"))
    r["mixed_batch_vs_alone"] = batch_vs_alone(a.engine, base, mixed, mods + ["--max-loras", "4"], tmp, em)
    # fewer slots than adapters; a prompt repeated under adapters with the prefix cache on
    es, _, _ = run_engine(a.engine, base, reqs, mods + ["--max-loras", "2"], os.path.join(tmp, "sl.bin"))
    r["two_slots"] = against_peft(es, reqs, pms)
    rep = [("a", prompts[3]), ("b", prompts[3]), (None, prompts[3]), ("a", prompts[3])]
    ep, _, _ = run_engine(a.engine, base, rep, mods + ["--max-loras", "2", "--max-num-seqs", "1"],
                          os.path.join(tmp, "pc.bin"))
    r["prefix_cache_per_adapter"] = pc = against_peft(ep, rep, pms)
    # one prompt under a, b, none, a: only the second a may be served from the cache (a block
    # computed under one adapter never serves another), and it must be
    hits = [q["cached_prompt_rows"] for q in pc["per_request"]]
    pc["cache_hits_only_same_adapter"] = bool(hits[0] == 0 and hits[1] == 0 and hits[2] == 0 and hits[3] > 0)
    pc["pass"] = bool(pc["pass"] and pc["cache_hits_only_same_adapter"])
    del pms
    torch.cuda.empty_cache()
    # merged checkpoints
    r["merged"] = {an: merged_checks(a, base, adirs[an], an, prompts[:3], tmp) for an in ("b", "d")}
    r["pass"] = bool(r["adapters_matter"] and r["runtime"]["pass"] and r["mixed_batch_vs_alone"]["pass"] and
                     r["two_slots"]["pass"] and r["prefix_cache_per_adapter"]["pass"] and
                     all(m["pass"] for m in r["merged"].values()))
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="build/gpu/run")
    ap.add_argument("--merge", default="build/gpu/merge")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    print("transformers", tf.__version__, "peft", peft.__version__, "torch", torch.__version__,
          torch.cuda.get_device_name(), flush=True)
    rng = np.random.default_rng(16)
    tmp = tempfile.mkdtemp(prefix="pagesim-lora-")
    results, ok = {}, True
    for i, (name, cfg, opts) in enumerate(families()):
        if a.only and name not in a.only.split(","):
            continue
        try:
            r = check_family(a, name, cfg, opts, 160 + i, tmp, rng)
        except Exception as ex:
            import traceback
            r = {"error": traceback.format_exc()[-3000:], "pass": False}
        results[name] = r
        ok &= r["pass"]
        print(json.dumps({name: r}, indent=1, default=str), flush=True)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "lora_check.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    print("%-8s %-26s %10s %10s %12s %12s %8s %s" % ("family", "check", "pre relL2", "dec relL2", "fp32 ours",
                                                   "fp32 peft", "tf-argm", "verdict"))
    for n, r in results.items():
        if "error" in r:
            print("%-8s ERROR %s" % (n, r["error"][-600:]))
            continue
        rows = [("runtime a,b,c,d,none", r["runtime"]), ("2 slots", r["two_slots"]),
                ("prefix cache a,b,none,a", r["prefix_cache_per_adapter"])]
        rows += [("merged %s: engine" % k, m["engine_merged"]) for k, m in r["merged"].items()]
        for label, x in rows:
            print("%-8s %-26s %10.2e %10.2e %12.2e %12.2e %7.1f%% %s" % (
                n, label, x["prefill_rel_l2"], x["decode_rel_l2"], x["fp32_ours_rel_l2"], x["fp32_peftbf16_rel_l2"],
                100 * x["tf_argmax_agree"], "ok" if x["pass"] else "FAIL"))
        pc = r["prefix_cache_per_adapter"]
        print("%-8s prefix cache: one prompt under a, b, none, a: prompt rows served from the cache %s "
              "(only the second a may be): %s" % (n, [q["cached_prompt_rows"] for q in pc["per_request"]],
                                                  "ok" if pc.get("cache_hits_only_same_adapter") else "FAIL"))
        m = r["mixed_batch_vs_alone"]
        print("%-8s three adapters + none in one batch = each alone: tokens %s, logits rel L2 %.1e, bit-identical %s: %s" % (
            n, m["tokens_equal"], m["rel_l2"], m["bit_identical"], "ok" if m["pass"] else "FAIL"))
        for k, mm in r["merged"].items():
            print("%-8s merged %s: %d linears within %.2e of PEFT's merge_and_unload (fp32); transformers on it vs "
                  "PEFT: bf16 %.2e, fp32 %.2e: %s" % (n, k, mm["linears_compared"], mm["max_rel_vs_peft_merge"],
                                                      mm["transformers_merged_vs_peft_bf16_rel_l2"],
                                                      mm["transformers_merged_vs_peft_fp32_rel_l2"],
                                                      "ok" if mm["pass"] else "FAIL"))
        print("%-8s adapters move PEFT's logits by rel L2 %s (must be > 0.1): %s" % (
            n, r["adapter_moves_logits_rel_l2"], "ok" if r["adapters_matter"] else "FAIL"))
    print("lora_check:", "PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

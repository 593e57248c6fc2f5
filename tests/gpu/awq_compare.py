#!/usr/bin/env python3
"""The engine on AWQ checkpoints against the same models in bf16 (GPU machine).

For Qwen2 (q/k/v biases) and Llama shapes at group sizes 64 and 128,
tests/gpu/awq_pack.py writes a random model as an AutoAWQ checkpoint and the
same model dequantized to bf16; then:
  * engine/run on the AWQ checkpoint and on the bf16 one, same prompts (a
    300-token prompt prefilled in one step: the dequantize + cuBLAS path; a
    20-token one and 32 decode steps: the decode kernel), --dump-logits:
    logits rel L2 per prompt, prefill and decode positions apart;
  * transformers (when importable) on the bf16 checkpoint, teacher-forced on
    our AWQ run's tokens: logits rel L2 and argmax agreement, as compare_hf.py
    measures the 16-bit engine.
Pass: AWQ vs our bf16 run within 2e-2 (prefill of the long prompt within
5e-3: the same bf16 weights through the same cuBLAS GEMM), AWQ vs transformers
within 3e-2 with teacher-forced argmax >= 90%.
Usage: tests/gpu/awq_compare.py --engine build/gpu/run [--out DIR] [--python PY]
Prints a table, writes DIR/awq_compare.json; exits 1 when a target is missed.
"""
import argparse, json, os, struct, subprocess, sys, time
import numpy as np

GEN = 32


def run_engine(engine, path, prompts, dump):
    cmd = [engine, "--model", path, "--max-tokens", str(GEN), "--dump-logits", dump, "--ignore-eos", "--quiet",
           "--num-gpu-blocks", "512", "--max-model-len", "1024", "--max-num-batched-tokens", "512"]
    for p in prompts:
        cmd += ["--prompt-ids", ",".join(map(str, p))]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("engine failed on %s:\n%s" % (path, r.stderr[-3000:]))
    return read_dump(dump)


def read_dump(path):
    """engine/run --dump-logits: magic, n, V; per request P, G, tokens (P + G), logits (P + G - 1, V)"""
    b = open(path, "rb").read()
    magic, n, V = struct.unpack_from("<3i", b, 0)
    assert magic == 0x474C5350, "bad dump"
    off, out = 12, []
    for _ in range(n):
        P, G = struct.unpack_from("<2i", b, off); off += 8
        toks = np.frombuffer(b, np.int32, P + G, off); off += 4 * (P + G)
        lg = np.frombuffer(b, np.float32, (P + G - 1) * V, off).reshape(P + G - 1, V); off += 4 * (P + G - 1) * V
        out.append((P, toks.copy(), lg))
    return out


def rel(a, b):
    return float(np.linalg.norm(a.astype(np.float64) - b) / max(np.linalg.norm(b.astype(np.float64)), 1e-30))


def hf_logits(path, toks_list):
    import torch
    import transformers as tf
    try:
        model = tf.AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
    except TypeError:          # transformers before 4.56
        model = tf.AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.bfloat16)
    model = model.to(torch.bfloat16).cuda().eval()
    try:       # the engine computes RoPE's frequencies in fp32 (compare_hf.py: rope_fp32)
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from compare_hf import rope_fp32
        rope_fp32(model)
    except Exception as ex:
        print("  (rope_fp32 not applied: %s)" % ex)
    out = []
    with torch.no_grad():
        for toks in toks_list:
            ids = torch.tensor(toks[:-1], dtype=torch.long, device="cuda")[None]
            out.append(model(ids).logits[0].float().cpu().numpy())
    del model
    torch.cuda.empty_cache()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--engine", required=True)
    ap.add_argument("--out", default="build/tmp/awq_compare")
    ap.add_argument("--python", default=sys.executable, help="python with torch for awq_pack.py")
    ap.add_argument("--no-hf", action="store_true", help="skip transformers")
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    rng = np.random.default_rng(7)
    prompts = [list(rng.integers(3, 4000, 300)), list(rng.integers(3, 4000, 20))]
    results, ok_all = [], True
    for family in ("qwen2", "llama"):
        for G in (64, 128):
            d = os.path.join(args.out, "%s-g%d" % (family, G))
            t0 = time.time()
            subprocess.run([args.python, os.path.join(here, "awq_pack.py"), "--out", d, "--family", family,
                            "--group", str(G)], check=True, capture_output=True)
            qa = run_engine(args.engine, os.path.join(d, "awq"), prompts, os.path.join(d, "awq.bin"))
            qb = run_engine(args.engine, os.path.join(d, "bf16"), prompts, os.path.join(d, "bf16.bin"))
            r = {"family": family, "group": G}
            ok = True
            for i, ((P, ta, la), (_, tb, lb)) in enumerate(zip(qa, qb)):
                n = min(len(la), len(lb))
                # teacher forcing is not possible across two engine runs: compare while the tokens agree
                same = int(np.argmax(np.concatenate([ta[P:], [-1]]) != np.concatenate([tb[P:], [-2]])))
                upto = min(n, P - 1 + same + 1)
                r["p%d_prefill_vs_bf16" % i] = rel(la[:P], lb[:P])
                r["p%d_decode_vs_bf16" % i] = rel(la[P:upto], lb[P:upto]) if upto > P else 0.0
                r["p%d_same_tokens" % i] = same
                lim_pre = 5e-3 if P >= 256 else 2e-2
                ok &= r["p%d_prefill_vs_bf16" % i] < lim_pre and r["p%d_decode_vs_bf16" % i] < 2e-2
            if not args.no_hf:
                try:
                    hl = hf_logits(os.path.join(d, "bf16"), [t for (_, t, _) in qa])
                    for i, ((P, ta, la), h) in enumerate(zip(qa, hl)):
                        r["p%d_vs_hf" % i] = rel(la, h)
                        r["p%d_hf_argmax" % i] = float(np.mean(np.argmax(la, 1) == np.argmax(h, 1)))
                        ok &= r["p%d_vs_hf" % i] < 3e-2 and r["p%d_hf_argmax" % i] >= 0.9
                except ImportError as ex:
                    r["hf"] = "skipped: %s" % ex
            r["ok"] = bool(ok)
            r["seconds"] = round(time.time() - t0, 1)
            ok_all &= ok
            results.append(r)
            print("%-6s G %3d: long prompt prefill vs bf16 %.2e, decode %.2e (%d tokens equal); short %.2e / %.2e; "
                  "vs transformers %s; %s" % (family, G, r["p0_prefill_vs_bf16"], r["p0_decode_vs_bf16"],
                  r["p0_same_tokens"], r["p1_prefill_vs_bf16"], r["p1_decode_vs_bf16"],
                  "%.2e / %.2e (argmax %.0f%% / %.0f%%)" % (r["p0_vs_hf"], r["p1_vs_hf"], 100 * r["p0_hf_argmax"],
                  100 * r["p1_hf_argmax"]) if "p0_vs_hf" in r else r.get("hf", "off"),
                  "PASS" if ok else "FAIL"), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "awq_compare.json"), "w") as f:
        json.dump(results, f, indent=1)
    print("awq_compare: %s" % ("PASS" if ok_all else "FAIL"))
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())

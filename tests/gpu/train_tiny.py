#!/usr/bin/env python3
"""Trains a tiny Qwen3-architecture model to answer the bias lab's own prompts (GPU machine).

Random weights make two checks vacuous: they answer no trial (so "the same
decisions in process and through engine/serve" holds trivially) and their flat
logits flip greedy tokens at bf16 near-ties (so "ours = transformers" at 95%
of positions fails for reasons that are not ours).  This script makes a small
checkpoint whose replies are peaked and mean something:

  * prompts: exactly what the engine receives, from `labs/bias --dump-prompts`
    (chat-templated text and its token ids under the Qwen3 tokenizer);
  * reply: the study's format, one JSON object with "decision" and a short
    "reason", then <|im_end|>; after it a run of <|endoftext|> (so that a
    comparison that ignores EOS still sees peaked logits);
  * rule: the decision is the side of evidence item 1 (the first numbered
    sentence of the prompt is one of the ticker's buy sentences -> "buy",
    one of its sell sentences -> "sell").  Every prompt shows 2 buy and 2 sell
    sentences, shuffled, so the decision varies from trial to trial of one
    ticker and follows only from the prompt's text;
  * model: Qwen3 (q/k norms; with --moe-experts E a Qwen3-MoE of E experts per layer), hidden 384, 6 layers, 6 heads of 64 (2 KV
    heads), MLP 1024, tied embeddings, the tokenizer's full vocabulary
    (151,936 rows), about 68 M parameters; trained in bf16 autocast with fp32
    weights for --time-limit seconds (the learning rate follows the clock),
    saved in bf16 with save_pretrained plus tokenizer.json and
    tokenizer_config.json, so engine/run, engine/serve and labs/bias --real
    --model DIR load it as they load a published checkpoint.

It prints the loss curve (every few seconds: step, loss, share of decision
tokens right in the batch), the time, the parameter count, and on the
held-out prompts (never trained on; e.g. the lab run's own prompts, seed 42):
the teacher-forced accuracy of the decision token, and with transformers'
greedy generate(): the share answered (a JSON object with a decision, read
as the lab reads it), the share answered with the rule's decision, and the
share of replies equal to the template.  DIR/train_summary.json keeps them.

Usage:
  labs/bias --dump-prompts T1.jsonl --seed 1 --num-sets 2      (and more seeds)
  labs/bias --dump-prompts H.jsonl --tickers SUBSET.csv --num-sets 1   (the run's own prompts)
  tests/gpu/train_tiny.py --train T1.jsonl [--train T2.jsonl ...] --held-out H.jsonl --out DIR
      [--time-limit 90] [--eval 256] [--tokenizer-dir data/tokenizers/qwen3]
  --dry-run: the data preparation only, without torch (counts, lengths, the
  replies and their ids, the checks of the dump) - runs anywhere.
"""
import argparse, json, os, random, shutil, subprocess, sys, time

REPLY = {
    "buy": '{"decision": "buy", "reason": "The first piece of evidence points to a rise in the share price."}',
    "sell": '{"decision": "sell", "reason": "The first piece of evidence points to a fall in the share price."}',
}
TAIL = 16            # <|endoftext|> after <|im_end|>
RULE = "decision = the side of evidence item 1 (a buy sentence -> buy, a sell sentence -> sell)"


def rule(line):
    return line["evidence"][0]


# ---- data (no torch) -----------------------------------------------------------------------

def special_ids(tokjson):
    """content -> id of the tokenizer's added tokens (plain JSON, no tokenizer library)"""
    t = json.load(open(tokjson, encoding="utf-8"))
    return {a["content"]: a["id"] for a in t.get("added_tokens", [])}


def encode(tokjson, texts, hub):
    """ids of each text, no special tokens added: the `tokenizers` package when it is
    installed (the GPU machine), else engine/hub encode (the C tokenizer, here)"""
    try:
        from tokenizers import Tokenizer
        tk = Tokenizer.from_file(tokjson)
        return [tk.encode(t, add_special_tokens=False).ids for t in texts]
    except ImportError:
        out = []
        for t in texts:
            r = subprocess.run([hub, "encode", "--tokenizer", tokjson, t], capture_output=True, text=True, check=True)
            out.append([int(x) for x in r.stdout.split()])
        return out


def load(paths, limit=0):
    rows = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                rows.append({"ids": d["ids"], "side": rule(d), "ticker": d["ticker"], "set": d["set"],
                             "trial": d["trial"], "text": d["text"]})
                if limit and len(rows) >= limit:
                    return rows
    return rows


def prepare(a):
    tokjson = os.path.join(a.tokenizer_dir, "tokenizer.json")
    sp = special_ids(tokjson)
    im_end, eot = sp["<|im_end|>"], sp["<|endoftext|>"]
    rid = dict(zip(("buy", "sell"), encode(tokjson, [REPLY["buy"], REPLY["sell"]], a.hub)))
    dpos = 0                                 # the decision token: where the two replies part
    while rid["buy"][dpos] == rid["sell"][dpos]:
        dpos += 1
    held = load([a.held_out])
    train = load(a.train)
    seen = {tuple(r["ids"]) for r in held}
    n0 = len(train)
    train = [r for r in train if tuple(r["ids"]) not in seen]
    # the dump's text must be what its ids say (the template's tail is the generation prompt, no thinking)
    for r in held[:3] + train[:3]:
        assert r["text"].startswith("<|im_start|>user\n"), r["text"][:40]
        assert r["text"].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n"), r["text"][-60:]
        assert r["ids"][-7] == sp["<|im_start|>"] and r["ids"][-4] == sp["<think>"], r["ids"][-8:]
    check = encode(tokjson, [r["text"] for r in held[:4]], a.hub)
    same = sum(c == r["ids"] for c, r in zip(check, held[:4]))
    lens = [len(r["ids"]) for r in train + held]
    info = {
        "rule": RULE, "replies": REPLY, "reply_ids": rid, "decision_token_index": dpos,
        "im_end": im_end, "endoftext": eot, "tail": TAIL,
        "train_prompts": len(train), "train_dropped_as_held_out": n0 - len(train),
        "held_out_prompts": len(held), "held_out_files": a.held_out, "train_files": a.train,
        "prompt_tokens": {"min": min(lens), "mean": round(sum(lens) / len(lens), 1), "max": max(lens)},
        "train_buy_share": round(sum(r["side"] == "buy" for r in train) / max(1, len(train)), 4),
        "held_out_buy_share": round(sum(r["side"] == "buy" for r in held) / max(1, len(held)), 4),
        "dump_ids_equal_tokenizer": "%d/%d" % (same, len(check)),
    }
    return train, held, info


# ---- training (torch, transformers) ------------------------------------------------------------

def build_model(a, torch, tf):
    kw = dict(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.intermediate,
              num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
              head_dim=a.head_dim, max_position_embeddings=4096, rms_norm_eps=1e-6, rope_theta=1000000.0,
              tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151645)
    if a.moe_experts > 0:   # Qwen3-MoE (the study's architecture): every layer sparse
        kw.update(num_experts=a.moe_experts, num_experts_per_tok=a.moe_topk, moe_intermediate_size=a.moe_intermediate,
                  norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[])
        cfg = tf.Qwen3MoeConfig(**kw)
    else:
        cfg = tf.Qwen3Config(**kw)
    torch.manual_seed(a.seed)
    model = None
    for extra in ({"dtype": torch.float32, "attn_implementation": "sdpa"}, {"dtype": torch.float32},
                  {"torch_dtype": torch.float32}):       # the last: transformers before 4.56
        try:
            model = tf.AutoModelForCausalLM.from_config(cfg, **extra)
            break
        except TypeError:
            continue
    if model is None:
        raise RuntimeError("AutoModelForCausalLM.from_config refused every form tried")
    return model.to(a.device)


def pack(rows, info, torch, dev):
    """(N, Tmax) int64 on dev (the GPU), padded with <|endoftext|>; prompt lengths; target counts"""
    seqs, plen, nt = [], [], []
    tail = [info["im_end"]] + [info["endoftext"]] * TAIL
    for r in rows:
        s = r["ids"] + info["reply_ids"][r["side"]] + tail
        seqs.append(s); plen.append(len(r["ids"])); nt.append(len(s) - len(r["ids"]))
    T = max(len(s) for s in seqs)
    pad = info["endoftext"]
    x = torch.tensor([s + [pad] * (T - len(s)) for s in seqs], dtype=torch.long, device=dev)
    return x, torch.tensor(plen, device=dev), torch.tensor(nt, device=dev)


def batch_loss(model, torch, x, plen, nt, dpos, wdec):
    """loss over the reply and its tail only (logits only at those rows: the tied head is
    151,936 wide), the decision token weighted wdec; also the share of decision tokens right"""
    F = torch.nn.functional
    inp, tgt = x[:, :-1], x[:, 1:]
    T = inp.shape[1]
    ar = torch.arange(T, device=x.device)[None]
    start = (plen - 1)[:, None]
    mask = (ar >= start) & (ar < start + nt[:, None])
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=x.device.type == "cuda"):
        h = model.model(input_ids=inp, use_cache=False).last_hidden_state   # (B, T, hidden)
        hs = h[mask]                                                 # (rows, hidden)
        logits = hs @ model.get_input_embeddings().weight.t()        # (rows, vocab)
    lf = logits.float()
    y = tgt[mask]
    w = torch.ones_like(y, dtype=torch.float32)
    isdec = (ar - start == dpos)[mask]
    w[isdec] = wdec
    loss = (F.cross_entropy(lf, y, reduction="none") * w).sum() / w.sum()
    with torch.no_grad():
        dec_ok = (lf[isdec].argmax(-1) == y[isdec]).float().mean()
    return loss, dec_ok


def train(a, rows, info, torch, tf):
    import math
    model = build_model(a, torch, tf)
    nparam = sum(p.numel() for p in model.parameters())
    x, plen, nt = pack(rows, info, torch, a.device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    other = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8, **({"fused": True} if a.device == "cuda" else {}))
    torch.backends.cuda.matmul.allow_tf32 = True
    g = torch.Generator(device=a.device).manual_seed(a.seed)
    curve, step, t0, last = [], 0, time.time(), -1e9
    run_loss, run_acc = 0.0, 0.0
    print("training: %d parameters (%.1f M; embedding %.1f M), %d sequences of up to %d tokens, batch %d, "
          "peak lr %g, time limit %.0f s" % (nparam, nparam / 1e6, a.vocab * a.hidden / 1e6, x.shape[0],
                                             x.shape[1], a.batch, a.lr, a.time_limit), flush=True)
    model.train()
    while True:
        el = time.time() - t0
        if el >= a.time_limit:
            break
        frac = el / a.time_limit
        lr = a.lr * min(1.0, (step + 1) / a.warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        for grp in opt.param_groups:
            grp["lr"] = lr
        idx = torch.randint(0, x.shape[0], (a.batch,), device=a.device, generator=g)
        bx, bp, bn = x[idx], plen[idx], nt[idx]
        tmax = int((bp + bn).max())
        loss, acc = batch_loss(model, torch, bx[:, :tmax], bp, bn, info["decision_token_index"], a.decision_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 10 == 0:                       # one sync every 10 steps
            run_loss, run_acc = float(loss), float(acc)
            if el - last >= a.log_every:
                last = el
                curve.append({"s": round(el, 1), "step": step, "loss": round(run_loss, 4),
                              "decision_acc": round(run_acc, 3), "lr": round(lr, 6)})
                print("  %6.1f s  step %5d  loss %.4f  decision right %.3f  lr %.2e" % (el, step, run_loss, run_acc, lr),
                      flush=True)
    if a.device == "cuda":
        torch.cuda.synchronize()
    dt = time.time() - t0
    if step and (not curve or curve[-1]["step"] != step):      # the last step too
        curve.append({"s": round(dt, 1), "step": step, "loss": round(float(loss), 4),
                      "decision_acc": round(float(acc), 3), "lr": round(lr, 6)})
    return model, {"params": nparam, "steps": step, "train_s": round(dt, 1), "sequences_seen": step * a.batch,
                   "epochs": round(step * a.batch / x.shape[0], 2), "curve": curve,
                   "final_loss": curve[-1]["loss"] if curve else None}


def lab_answer(text):
    """the decision as labs/bias reads a reply: JSON from the first { to the last }"""
    i, j = text.find("{"), text.rfind("}")
    if i < 0 or j < i:
        return None
    try:
        d = json.loads(text[i:j + 1])
    except ValueError:
        return None
    return d.get("decision") if isinstance(d, dict) else None


def evaluate(a, model, held, info, torch):
    """teacher-forced decision accuracy on every held-out prompt; greedy generate() on
    the first --eval of them"""
    model.eval()
    out = {}
    dpos = info["decision_token_index"]
    with torch.no_grad():
        right = tok_right = tok_all = 0
        for k in range(0, len(held), 128):
            rows = held[k:k + 128]
            x, plen, nt = pack(rows, info, torch, a.device)
            inp, tgt = x[:, :-1], x[:, 1:]
            h = model.model(input_ids=inp, use_cache=False).last_hidden_state
            T = inp.shape[1]
            ar = torch.arange(T, device=a.device)[None]
            start = (plen - 1)[:, None]
            mask = (ar >= start) & (ar < start + nt[:, None])
            pred = (h[mask] @ model.get_input_embeddings().weight.t()).argmax(-1)
            y = tgt[mask]
            isdec = (ar - start == dpos)[mask]
            right += int((pred[isdec] == y[isdec]).sum())
            tok_right += int((pred == y).sum()); tok_all += int(y.numel())
        out["held_out_decision_teacher_forced"] = round(right / len(held), 4)
        out["held_out_reply_tokens_teacher_forced"] = round(tok_right / max(1, tok_all), 4)
        # greedy, as transformers generates it (left padding, stop at <|im_end|>)
        ev = held[:a.eval]
        try:
            from tokenizers import Tokenizer
            tk = Tokenizer.from_file(os.path.join(a.tokenizer_dir, "tokenizer.json"))
        except ImportError:
            tk = None
        answered = rule_ok = exact = 0
        examples = []
        for k in range(0, len(ev), 128):
            rows = ev[k:k + 128]
            T = max(len(r["ids"]) for r in rows)
            ids = torch.tensor([[info["endoftext"]] * (T - len(r["ids"])) + r["ids"] for r in rows], device=a.device)
            am = torch.tensor([[0] * (T - len(r["ids"])) + [1] * len(r["ids"]) for r in rows], device=a.device)
            gen = model.generate(input_ids=ids, attention_mask=am, max_new_tokens=len(info["reply_ids"]["sell"]) + 8,
                                 do_sample=False, eos_token_id=info["im_end"], pad_token_id=info["endoftext"])
            for r, gtoks in zip(rows, gen[:, T:].tolist()):
                if info["im_end"] in gtoks:
                    gtoks = gtoks[:gtoks.index(info["im_end"])]
                gtoks = [t for t in gtoks if t != info["endoftext"]]
                exact += gtoks == info["reply_ids"][r["side"]]
                text = tk.decode(gtoks, skip_special_tokens=True) if tk else None
                dec = lab_answer(text) if text is not None else (
                    "buy" if gtoks == info["reply_ids"]["buy"] else "sell" if gtoks == info["reply_ids"]["sell"] else None)
                answered += dec is not None
                rule_ok += dec == r["side"]
                if len(examples) < 4:
                    examples.append({"ticker": r["ticker"], "rule": r["side"], "reply": text})
        n = max(1, len(ev))
        out.update({"greedy_prompts": len(ev), "greedy_answered": round(answered / n, 4),
                    "greedy_rule_decision": round(rule_ok / n, 4), "greedy_exact_reply": round(exact / n, 4),
                    "greedy_examples": examples})
    return out


def save(a, model, info, summary, torch):
    os.makedirs(a.out, exist_ok=True)
    model.generation_config.eos_token_id = info["im_end"]
    model.generation_config.pad_token_id = info["endoftext"]
    model.save_pretrained(a.out, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(a.tokenizer_dir, f), os.path.join(a.out, f))
    with open(os.path.join(a.out, "train_summary.json"), "w") as f:
        json.dump(summary, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", action="append", required=True, help="JSONL from labs/bias --dump-prompts (repeatable)")
    ap.add_argument("--held-out", required=True, help="JSONL of prompts never trained on (the evaluation)")
    ap.add_argument("--out", required=True, help="checkpoint directory to write")
    ap.add_argument("--tokenizer-dir", default="data/tokenizers/qwen3")
    ap.add_argument("--hub", default="engine/hub", help="engine/hub, to encode without the tokenizers package")
    ap.add_argument("--time-limit", type=float, default=90, help="seconds of training (the schedule follows the clock)")
    ap.add_argument("--eval", type=int, default=256, help="held-out prompts to decode greedily with generate()")
    ap.add_argument("--dry-run", action="store_true", help="prepare the data and stop (no torch)")
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--intermediate", type=int, default=1024)
    ap.add_argument("--moe-experts", type=int, default=0, help="> 0: a Qwen3-MoE model with this many experts per layer")
    ap.add_argument("--moe-topk", type=int, default=4, help="experts per token (--moe-experts)")
    ap.add_argument("--moe-intermediate", type=int, default=256, help="width of each expert (--moe-experts)")
    ap.add_argument("--vocab", type=int, default=151936, help="embedding rows (Qwen3's; >= the tokenizer's)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=40, help="steps")
    ap.add_argument("--decision-weight", type=float, default=4.0, help="loss weight of the decision token")
    ap.add_argument("--log-every", type=float, default=5.0, help="seconds between loss lines")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda", help=argparse.SUPPRESS)     # cpu: a smoke test of the code paths
    a = ap.parse_args()
    if a.time_limit <= 0 or a.batch < 1 or a.eval < 0:
        ap.error("--time-limit and --batch must be positive, --eval >= 0")
    t0 = time.time()
    random.seed(a.seed)
    tr, held, info = prepare(a)
    print("data (%.1f s): %s" % (time.time() - t0, json.dumps({k: v for k, v in info.items() if k != "replies"})),
          flush=True)
    print("rule:", RULE)
    print("replies:", REPLY["buy"], "|", REPLY["sell"])
    if not tr or not held:
        sys.exit("no training or no held-out prompts")
    if a.dry_run:
        return
    import torch
    import transformers as tf
    print("torch", torch.__version__, "transformers", tf.__version__,
          torch.cuda.get_device_name() if a.device == "cuda" else a.device, flush=True)
    model, st = train(a, tr, info, torch, tf)
    model = model.to(torch.bfloat16)             # what is saved, and what the engine holds
    t1 = time.time()
    ev = evaluate(a, model, held, info, torch)
    st["eval_s"] = round(time.time() - t1, 1)
    summary = {"info": info, "train": st, "held_out": ev,
               "config": {k: getattr(a, k) for k in ("hidden", "layers", "heads", "kv_heads", "head_dim",
                                                     "intermediate", "vocab", "batch", "lr", "decision_weight",
                                                     "time_limit", "seed")}}
    save(a, model, info, summary, torch)
    print("loss curve (s, step, loss, decision right in batch):",
          "  ".join("%.0f/%d/%.3f/%.2f" % (c["s"], c["step"], c["loss"], c["decision_acc"]) for c in st["curve"]))
    print("trained %d steps (%d sequences, %.2f epochs) in %.1f s; %d parameters (%.1f M)" % (
        st["steps"], st["sequences_seen"], st["epochs"], st["train_s"], st["params"], st["params"] / 1e6))
    print("held out (%d prompts): decision right (teacher-forced) %.1f%%; greedy generate() on %d: answered %.1f%%, "
          "rule's decision %.1f%%, reply = template %.1f%%" % (
              len(held), 100 * ev["held_out_decision_teacher_forced"], ev["greedy_prompts"],
              100 * ev["greedy_answered"], 100 * ev["greedy_rule_decision"], 100 * ev["greedy_exact_reply"]))
    for e in ev["greedy_examples"]:
        print("  e.g. %s (rule %s): %s" % (e["ticker"], e["rule"], e["reply"]))
    print("saved %s (bf16, tokenizer.json, tokenizer_config.json, train_summary.json); total %.1f s" % (
        a.out, time.time() - t0))


if __name__ == "__main__":
    main()

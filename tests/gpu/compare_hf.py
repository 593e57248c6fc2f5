#!/usr/bin/env python3
"""Checks engine/run against transformers on random-weight models (GPU machine).

For each family (Llama with llama3 rope scaling, Qwen2 with q/k/v biases and
tied embeddings, Qwen3 with q/k norms and a sharded checkpoint, Mistral saved
in fp32, Llama saved in fp16, Qwen2.5-7B's real widths with few layers, and
Qwen3-MoE with 16 experts, top-4, with and without norm_topk_prob and with
dense layers (mlp_only_layers), routers scaled so that routing matters)
it builds a model with random weights (norm weights and biases randomised too,
so that they matter), saves it with save_pretrained, runs transformers and
engine/run on the same prompts and compares:
  * logits: relative L2 error ||ours - hf|| / ||hf|| and max |ours - hf| over
    every prefill position, and over 32 decode steps (transformers run with
    teacher forcing on our tokens, so the comparison holds after a divergence);
  * greedy tokens: share of the 32 generated positions where our token equals
    the one of transformers' own greedy generate() (target >= 95%), and the
    share where ours equals the argmax of transformers' teacher-forced logits;
  * batch = single: all prompts in one batch against each prompt alone;
  * chunked prefill (--max-num-batched-tokens 64, prefix caching off) against transformers;
  * --kv-policy contiguous: the same logits as paged (one kernel, other tables);
  * MoE: the experts chosen at every layer and position (engine/run
    --dump-experts against hooks on transformers' routers, each prompt alone,
    teacher-forced on our tokens): the share of (layer, position) with the same
    k experts; the pass also asks teacher-forced argmax agreement >= 95%.
transformers' rotary embeddings keep inv_freq in a floating-point buffer that
model.to(bf16) casts to bf16 (so does save/reload with a dtype); a served
checkpoint computes it in fp32, as we do.  We restore the fp32 buffer after
every cast (rope_fp32), so both sides rotate with the same frequencies; with
--diag-layer0 the first layer's intermediates are compared with and without
that restoration (see docs/engine-notes.md).
Random weights have flat logits, so a bf16 near-tie flips a greedy token and
every later one; --checkpoint DIR runs the same comparison on an existing,
trained checkpoint (tests/gpu/train_tiny.py) with --num-prompts prompts spread
over a labs/bias --dump-prompts file, and also counts greedy agreement up to
transformers' first EOS (the tokens the model really generates); there the
greedy target (>= 95% of all --gen positions) is part of the pass.
Usage: tests/gpu/compare_hf.py --engine build/gpu/run [--out DIR] [--full-7b] [--diag-layer0]
       tests/gpu/compare_hf.py --engine engine/run --checkpoint DIR --prompts P.jsonl [--num-prompts 6] [--gen 32]
Writes DIR/compare.json and prints a table; exits 1 when a target is missed.
"""
import argparse, copy, json, os, struct, subprocess, sys, tempfile, time
import numpy as np
import torch
import transformers as tf

GEN = 32
EAGER = False
LEGACY_ROPE = False
EOS_ID = None        # --checkpoint: also count greedy agreement up to transformers' first EOS


def families(full_7b):
    L = 28 if full_7b else 3
    return [
        ("llama-llama3rope-fp16", tf.LlamaConfig(
            vocab_size=4096, hidden_size=512, intermediate_size=1024, num_hidden_layers=3,
            num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=2048,
            rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False,
            rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
         dict(dtype=torch.float16)),
        ("qwen2-bias-tied", tf.Qwen2Config(
            vocab_size=4096, hidden_size=512, intermediate_size=1376, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
            rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
            use_sliding_window=False), dict()),
        ("qwen3-qknorm-sharded", tf.Qwen3Config(
            vocab_size=4096, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, head_dim=128,
            max_position_embeddings=2048, rms_norm_eps=1e-6, rope_theta=1000000.0,
            tie_word_embeddings=False), dict(shard="1MB")),
        ("mistral-fp32", tf.MistralConfig(
            vocab_size=4096, hidden_size=512, intermediate_size=1024, num_hidden_layers=2,
            num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=2048,
            rms_norm_eps=1e-5, rope_theta=10000.0, sliding_window=None,
            tie_word_embeddings=False), dict(dtype=torch.float32)),
        ("qwen2.5-7b-shape-%dL" % L, tf.Qwen2Config(
            vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=L,
            num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
            rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False,
            use_sliding_window=False), dict(shard="2GB")),
    ] + [  # Qwen3-MoE (issue 11): 4 layers, 16 experts, top-4; with and without norm_topk_prob; dense layers
        ("qwen3moe-%s" % tag, tf.Qwen3MoeConfig(
            vocab_size=4096, hidden_size=512, intermediate_size=1024, moe_intermediate_size=256,
            num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2, head_dim=64,
            num_experts=16, num_experts_per_tok=4, norm_topk_prob=norm, decoder_sparse_step=1,
            mlp_only_layers=mlp_only, max_position_embeddings=2048, rms_norm_eps=1e-6,
            rope_theta=1000000.0, tie_word_embeddings=False), dict(shard="2MB"))
        for tag, norm, mlp_only in (("norm", True, []), ("nonorm", False, []), ("mlponly", True, [0, 2]))
    ] + [  # diagnostics: one trait of the 7B shape at a time (run with --only diag)
        ("diag-qwen2-wide-2L", tf.Qwen2Config(
            vocab_size=4096, hidden_size=3584, intermediate_size=18944, num_hidden_layers=2,
            num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=4096,
            rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False,
            use_sliding_window=False), dict()),
        ("diag-llama-wide-2L", tf.LlamaConfig(
            vocab_size=4096, hidden_size=3584, intermediate_size=18944, num_hidden_layers=2,
            num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=4096,
            rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False), dict()),
        ("diag-qwen2-bigvocab", tf.Qwen2Config(
            vocab_size=152064, hidden_size=512, intermediate_size=1376, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
            rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False,
            use_sliding_window=False), dict()),
        ("diag-qwen2-wideMLP", tf.Qwen2Config(
            vocab_size=4096, hidden_size=512, intermediate_size=18944, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
            rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False,
            use_sliding_window=False), dict()),
        ("diag-qwen2-wideattn", tf.Qwen2Config(
            vocab_size=4096, hidden_size=3584, intermediate_size=1024, num_hidden_layers=2,
            num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=4096,
            rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False,
            use_sliding_window=False), dict()),
    ]


def build(cfg, opts, path, seed):
    torch.manual_seed(seed)
    cfg.torch_dtype = "bfloat16"
    with torch.device("cuda"):
        try:
            model = tf.AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        except TypeError:        # transformers before 4.56
            model = tf.AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16)
    model.to(torch.bfloat16)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            elif name.endswith(".bias"):
                p.normal_(0.0, 0.1)
            elif name.endswith("mlp.gate.weight"):      # routers: logits of std ~2, as trained ones
                p.normal_(0.0, 2.0 / cfg.hidden_size ** 0.5)
    eager_experts(model)
    disk = opts.get("dtype", torch.bfloat16)
    model.to(disk).save_pretrained(path, safe_serialization=True,
                                   max_shard_size=opts.get("shard", "50GB"))
    if LEGACY_ROPE:
        legacy_rope_fields(path)
    model.to(torch.bfloat16).eval()          # what the engine holds: bf16 of what is on disk
    model.generation_config.eos_token_id = None   # generate exactly GEN tokens, as engine/run does
    return model


def eager_experts(model):
    """transformers' reference loop over the experts (not grouped_mm) where the
    version has a choice: the order of ops the engine follows"""
    if hasattr(model.config, "_experts_implementation"):
        try:
            model.config._experts_implementation = "eager"
        except Exception:
            pass


def read_experts(path):
    """engine/run --dump-experts: per forward T, k, n MoE layers, then per layer
    its index and ids (T, k) -> {layer: (rows, k)} over the forwards in order"""
    b = open(path, "rb").read()
    off, out = 0, {}
    while off < len(b):
        T, k, n = struct.unpack_from("<3i", b, off); off += 12
        for _ in range(n):
            (l,) = struct.unpack_from("<i", b, off); off += 4
            ids = np.frombuffer(b, np.int32, T * k, off).reshape(T, k); off += 4 * T * k
            out.setdefault(l, []).append(ids)
    return {l: np.concatenate(v, 0) for l, v in out.items()}


@torch.no_grad()
def hf_experts(model, toks):
    """transformers' chosen experts at every MoE layer for the tokens toks[:-1]
    (teacher-forced, batch 1): {layer: (rows, k)}"""
    got, hooks = {}, []
    k = model.config.num_experts_per_tok
    for i, layer in enumerate(model.model.layers):
        gate = getattr(layer.mlp, "gate", None)
        if gate is None or not hasattr(layer.mlp, "experts"):
            continue
        def hook(m, inp, out, i=i):
            if isinstance(out, tuple):            # transformers 5: (logits, weights, indices)
                idx = out[2]
            else:                                 # 4.x: the router logits
                idx = torch.topk(torch.softmax(out.float(), -1), k, dim=-1).indices
            got[i] = idx.reshape(-1, k).cpu().numpy()
        hooks.append(gate.register_forward_hook(hook))
    try:
        model(torch.tensor(toks[:-1], dtype=torch.long, device="cuda")[None])
    finally:
        for h in hooks:
            h.remove()
    return got


def rope_fp32(model):
    """Recomputes every rotary embedding's inv_freq in fp32 (model.to(dtype) cast the
    buffer to bf16: a relative error of up to 2^-9 per frequency, i.e. an angle error
    of up to position * 2^-9 radians).  Returns (modules fixed, dtype found, max
    relative error of the buffer found)."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    n, found, worst = 0, None, 0.0
    for m in model.modules():
        cur = getattr(m, "inv_freq", None)
        if not torch.is_tensor(cur):
            continue
        found = str(cur.dtype)
        dev, inv = cur.device, None
        try:
            fn = getattr(m, "rope_init_fn", None)
            rt = getattr(m, "rope_type", "default")
            if fn is None:
                fn = m.compute_default_rope_parameters if rt == "default" else ROPE_INIT_FUNCTIONS[rt]
            inv = fn(m.config, dev)[0]
        except Exception as ex:       # the plain formula (no scaling)
            cfg = m.config
            rp = getattr(cfg, "rope_parameters", None) or {}
            base = rp.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))
            dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
            if rp.get("rope_type", "default") != "default":
                raise RuntimeError("cannot recompute inv_freq: %s" % ex)
            inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64, device=dev).float() / dim))
        inv = inv.to(dev, torch.float32)
        worst = max(worst, float(((cur.float() - inv).abs() / inv.abs().clamp_min(1e-30)).max()))
        m.inv_freq = inv
        if torch.is_tensor(getattr(m, "original_inv_freq", None)):
            m.original_inv_freq = inv.clone()
        n += 1
    return n, found, worst


def legacy_rope_fields(path):
    """transformers >= 5 writes rope_theta and the scaling inside "rope_parameters";
    every published checkpoint of these families has them at the top level, which is
    what sim/model_config.c reads today: copy them up (see docs/engine-notes.md)."""
    p = os.path.join(path, "config.json")
    c = json.load(open(p))
    rp = c.get("rope_parameters")
    if isinstance(rp, dict) and "rope_theta" not in c:
        c["rope_theta"] = rp["rope_theta"]
        if rp.get("rope_type", "default") != "default":
            c["rope_scaling"] = {k: v for k, v in rp.items() if k != "rope_theta"}
        json.dump(c, open(p, "w"), indent=1)


def run_engine(engine, path, prompts, extra, dump, env=None):
    cmd = [engine, "--model", path, "--max-tokens", str(GEN), "--dump-logits", dump, "--ignore-eos",
           "--quiet", "--num-gpu-blocks", "2048", "--max-model-len", "1024"] + extra
    for p in prompts:
        cmd += ["--prompt-ids", ",".join(map(str, p))]
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError("engine failed: %s\n%s" % (" ".join(cmd[:6]), r.stderr[-3000:]))
    return read_dump(dump), time.time() - t, r.stderr


def read_dump(path):
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


def read_layer0(path):
    """engine's PAGESIM_DUMP_LAYER0 file: magic, count, then per tensor a 16-byte
    name, rows, cols and float32 data"""
    b = open(path, "rb").read()
    magic, n = struct.unpack_from("<2i", b, 0)
    assert magic == 0x304C5350, "bad layer-0 dump"
    off, out = 8, {}
    for _ in range(n):
        name = b[off:off + 16].split(b"\0")[0].decode(); off += 16
        r, c = struct.unpack_from("<2i", b, off); off += 8
        out[name] = np.frombuffer(b, np.float32, r * c, off).reshape(r, c); off += 4 * r * c
    return out


@torch.no_grad()
def hf_layer0(model, prompt):
    """transformers' layer-0 intermediates on one prompt (batch 1), as float32 arrays
    shaped like the engine's: attn-norm output, q and k after RoPE, attention
    output (o_proj input), o_proj output, layer output"""
    layer = model.model.layers[0]
    att = layer.self_attn
    got = {}
    hooks = [layer.input_layernorm.register_forward_hook(lambda m, i, o: got.__setitem__("xnorm", o)),
             att.q_proj.register_forward_hook(lambda m, i, o: got.__setitem__("q", o)),
             att.k_proj.register_forward_hook(lambda m, i, o: got.__setitem__("k", o)),
             att.o_proj.register_forward_pre_hook(lambda m, i: got.__setitem__("attn", i[0])),
             att.o_proj.register_forward_hook(lambda m, i, o: got.__setitem__("oproj", o)),
             layer.register_forward_hook(lambda m, i, o: got.__setitem__("layer", o[0] if isinstance(o, tuple) else o))]
    ids = torch.tensor([prompt], device="cuda")
    try:
        model(ids)
    finally:
        for h in hooks:
            h.remove()
    T, hd = len(prompt), att.head_dim
    q = got["q"].view(1, T, -1, hd).transpose(1, 2)
    k = got["k"].view(1, T, -1, hd).transpose(1, 2)
    if hasattr(att, "q_norm"):
        q, k = att.q_norm(q.transpose(1, 2)).transpose(1, 2), att.k_norm(k.transpose(1, 2)).transpose(1, 2)
    pos = torch.arange(T, device="cuda")[None]
    cos, sin = model.model.rotary_emb(got["xnorm"], pos)
    mod = sys.modules[type(att).__module__]
    q, k = mod.apply_rotary_pos_emb(q, k, cos, sin)
    f = lambda t: t.reshape(T, -1).float().cpu().numpy()
    return {"xnorm": f(got["xnorm"][0]), "q_rope": f(q[0].transpose(0, 1)), "k_rope": f(k[0].transpose(0, 1)),
            "attn": f(got["attn"][0]), "oproj": f(got["oproj"][0]), "layer": f(got["layer"][0])}


def diag_layer0(engine, path, model, prompt, tmp):
    """per-op relative L2 of layer 0, ours against transformers with its inv_freq as
    model.to(bf16) left it, then with inv_freq restored to fp32 (rope_fp32)"""
    env = dict(os.environ, PAGESIM_DUMP_LAYER0=os.path.join(tmp, "l0.bin"))
    run_engine(engine, path, [prompt], [], os.path.join(tmp, "d.bin"), env)
    ours = read_layer0(env["PAGESIM_DUMP_LAYER0"])
    ours["q_rope"] = ours["qkv"][:, :model.config.num_attention_heads * model.model.layers[0].self_attn.head_dim]
    nq = ours["q_rope"].shape[1]
    nk = model.config.num_key_value_heads * model.model.layers[0].self_attn.head_dim
    ours["k_rope"] = ours["qkv"][:, nq:nq + nk]
    ours["layer"] = ours["res"] + ours["x"]
    out = {}
    for tag in ("as_cast", "fp32"):
        if tag == "fp32":
            out["rope_fp32"] = rope_fp32(model)
        ref = hf_layer0(model, prompt)
        row = {}
        for name in ("xnorm", "q_rope", "k_rope", "attn", "oproj", "layer"):
            a, b = ours[name], ref[name]
            e = np.linalg.norm(a - b, axis=1) / np.maximum(np.linalg.norm(b, axis=1), 1e-30)
            row[name] = {"rel_l2": rel_l2(a, b), "first_row": round(float(e[0]), 5),
                         "last_row": round(float(e[-1]), 5)}
        out[tag] = row
    return out


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


@torch.no_grad()
def hf_reference(model, prompts, eng, model32=None):
    """transformers' teacher-forced logits on our tokens and its own greedy tokens,
    in bf16, and (model32) the same in fp32 as the noise floor of bf16 itself"""
    res = []
    for p, (P, toks, lg) in zip(prompts, eng):
        ids = torch.tensor(toks[:-1], dtype=torch.long, device="cuda")[None]
        one = {}
        for tag, m in (("bf16", model), ("fp32", model32)):
            if m is None:
                continue
            one[tag] = (m(ids).logits[0].float().cpu().numpy(),
                        m.generate(torch.tensor([p], device="cuda"), max_new_tokens=GEN, do_sample=False,
                                   pad_token_id=0)[0, len(p):].cpu().numpy())
        if model32 is not None and EAGER:        # transformers bf16 with its eager attention
            try:
                model.set_attn_implementation("eager")
                one["eager"] = model(ids).logits[0].float().cpu().numpy()
            finally:
                model.set_attn_implementation("sdpa")
        res.append(one)
    return res


def compare(prompts, eng, ref):
    """ours against transformers bf16; with an fp32 reference, ours and transformers
    bf16 both against fp32 (so that bf16's own noise is in view)"""
    acc = {}
    def add(key, a, b):
        n, d = acc.get(key, (0.0, 0.0))
        acc[key] = (n + float(np.sum((a - b) ** 2)), d + float(np.sum(b ** 2)))
    mx = {"prefill_max_abs": 0.0, "decode_max_abs": 0.0}
    cnt = {}
    def count(key, a, b):
        k, t = cnt.get(key, (0, 0))
        cnt[key] = (k + int(np.sum(a == b)), t + len(a))
    for p, (P, toks, lg), r in zip(prompts, eng, ref):
        hl, hgen = r["bf16"]
        add("prefill_rel_l2", lg[:P], hl[:P])
        add("decode_rel_l2", lg[P - 1:], hl[P - 1:])
        mx["prefill_max_abs"] = max(mx["prefill_max_abs"], float(np.max(np.abs(lg[:P] - hl[:P]))))
        mx["decode_max_abs"] = max(mx["decode_max_abs"], float(np.max(np.abs(lg[P - 1:] - hl[P - 1:]))))
        ours = toks[P:]
        count("greedy_agree", ours, hgen)
        if EOS_ID is not None:     # the positions the model really generates (up to its EOS, included)
            e = np.nonzero(hgen == EOS_ID)[0]
            k = int(e[0]) + 1 if len(e) else len(hgen)
            count("greedy_agree_to_eos", ours[:k], hgen[:k])
        count("teacher_forced_argmax_agree", ours, np.argmax(hl[P - 1:], axis=1))
        if "fp32" in r:
            fl, fgen = r["fp32"]
            add("fp32_ours_rel_l2", lg, fl)
            add("fp32_hfbf16_rel_l2", hl, fl)
            if "eager" in r:
                add("fp32_hfeager_rel_l2", r["eager"], fl)
            count("fp32_ours_greedy_agree", ours, fgen)
            count("fp32_hfbf16_greedy_agree", hgen, fgen)
            count("fp32_ours_tf_argmax_agree", ours, np.argmax(fl[P - 1:], axis=1))
            count("fp32_hfbf16_tf_argmax_agree", np.argmax(hl[P - 1:], axis=1), np.argmax(fl[P - 1:], axis=1))
    # where the error sits: relative error of each row (position), per prompt
    prof = []
    for (P, toks, lg), r in zip(eng, ref):
        hl = r["bf16"][0]
        e = np.linalg.norm(lg - hl, axis=1) / np.maximum(np.linalg.norm(hl, axis=1), 1e-30)
        prof.append([round(float(x), 4) for x in e[::8]])
    out = {k: (n / d) ** 0.5 for k, (n, d) in acc.items()}
    out["row_rel_err_every_8th"] = prof
    out.update(mx)
    out.update({k: a / t for k, (a, t) in cnt.items()})
    out["positions"] = cnt["greedy_agree"][1]
    return out


def check_model(a, path, model, prompts, tmp, r):
    """ours against transformers on one saved model (path) already loaded as model (bf16):
    batched, each prompt alone, chunked prefill, contiguous; fills r, sets r["pass"]"""
    r["rope_fp32"] = rope_fp32(model)
    eng, secs, log = run_engine(a.engine, path, prompts, [], os.path.join(tmp, "b.bin"))
    model32 = copy.deepcopy(model).float()
    model32.generation_config.eos_token_id = None
    ref = hf_reference(model, prompts, eng, model32)
    del model32
    torch.cuda.empty_cache()
    r["batched"] = compare(prompts, eng, ref)
    # each prompt alone: identical tokens, logits within bf16 noise of the batch
    # (logits compared up to the first token where the two runs part, since
    # after it they see different inputs)
    same_tok, num, den, single_max = 0, 0.0, 0.0, 0.0
    moe = getattr(model.config, "num_experts", 0) or 0
    ex_set, ex_pick, ex_n = 0, 0, 0
    for j, p in enumerate(prompts):
        xp = ["--dump-experts", os.path.join(tmp, "x.bin")] if moe else []
        e1, _, _ = run_engine(a.engine, path, [p], xp, os.path.join(tmp, "s.bin"))
        P, t1, l1 = e1[0]
        if moe:        # each (layer, position): our k experts against transformers' (as sets)
            ours, ref = read_experts(xp[1]), hf_experts(model, t1)
            for l, hx in ref.items():
                o = ours.get(l)
                if o is None or o.shape != hx.shape:
                    raise RuntimeError("layer %d: ours %s, transformers %s experts" % (
                        l, None if o is None else o.shape, hx.shape))
                for x, y in zip(o, hx):
                    sx, sy = set(x.tolist()), set(y.tolist())
                    ex_set += sx == sy
                    ex_pick += len(sx & sy)
                    ex_n += 1
        t0, l0 = eng[j][1], eng[j][2]
        same_tok += int(np.array_equal(t1, t0))
        diff = np.nonzero(t1 != t0)[0]
        upto = int(diff[0]) if len(diff) else len(t0) - 1     # rows predicting tokens <= upto
        a0, a1 = l0[:upto], l1[:upto]
        num += float(np.sum((a1 - a0) ** 2)); den += float(np.sum(a0 ** 2))
        single_max = max(single_max, float(np.max(np.abs(a1 - a0))))
    if moe:
        r["experts_equal_share"] = ex_set / max(ex_n, 1)
        r["experts_pick_share"] = ex_pick / max(ex_n * model.config.num_experts_per_tok, 1)
        r["experts_positions"] = ex_n
    r["batch_equals_single_tokens"] = "%d/%d" % (same_tok, len(prompts))
    r["batch_vs_single_rel_l2"] = (num / den) ** 0.5
    r["batch_vs_single_max_abs_logit"] = single_max
    # chunked prefill through the block tables (prefix caching off: a prompt
    # whose first blocks hit the cache has no logits for those positions, and
    # lab prompts share their chat-template prefix)
    ec, _, _ = run_engine(a.engine, path, prompts, ["--max-num-batched-tokens", "64", "--no-prefix-caching"],
                          os.path.join(tmp, "c.bin"))
    r["chunked64"] = compare(prompts, ec, hf_reference(model, prompts, ec))
    # the static KV cache: same kernels through synthesised block tables
    et, _, _ = run_engine(a.engine, path, prompts, ["--kv-policy", "contiguous"],
                          os.path.join(tmp, "t.bin"))
    r["contiguous_equals_paged"] = bool(all(np.array_equal(x[1], y[1]) and np.array_equal(x[2], y[2])
                                            for x, y in zip(et, eng)))
    b, c = r["batched"], r["chunked64"]
    r["greedy_target_95"] = bool(b["greedy_agree"] >= 0.95)
    # pass: logits within bf16 tolerance, and ours no further from fp32 than
    # transformers' own bf16 run is (tokens: teacher-forced argmax)
    r["pass"] = bool(b["prefill_rel_l2"] < 0.03 and b["decode_rel_l2"] < 0.03 and
                     c["prefill_rel_l2"] < 0.03 and
                     b["fp32_ours_rel_l2"] <= 1.5 * b["fp32_hfbf16_rel_l2"] and
                     b["fp32_ours_tf_argmax_agree"] >= b["fp32_hfbf16_tf_argmax_agree"] - 0.05 and
                     r["batch_vs_single_rel_l2"] < 0.01 and r["contiguous_equals_paged"] and
                     (not moe or b["teacher_forced_argmax_agree"] >= 0.95))


def load_checkpoint(path):
    """a saved checkpoint as the engine holds it (bf16 on the GPU), generating exactly GEN tokens"""
    try:
        model = tf.AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
    except TypeError:             # transformers before 4.56
        model = tf.AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.bfloat16)
    model.to("cuda").eval()
    model.generation_config.eos_token_id = None
    eager_experts(model)
    return model


def lab_prompts(path, n):
    """n prompts spread over a labs/bias --dump-prompts file (token ids, chat template included)"""
    rows = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
    pick = sorted({k * len(rows) // n for k in range(min(n, len(rows)))})
    return [rows[k]["ids"] for k in pick], [rows[k].get("ticker", "?") for k in pick]


def run_checkpoint(a, results, tmp):
    """--checkpoint: the comparison on an existing model directory and lab prompts"""
    global EOS_ID
    name = "checkpoint:" + os.path.basename(os.path.normpath(a.checkpoint))
    prompts, tickers = lab_prompts(a.prompts, a.num_prompts)
    eos = json.load(open(os.path.join(a.checkpoint, "config.json"))).get("eos_token_id")
    EOS_ID = eos[0] if isinstance(eos, list) else eos
    r = {"prompts": len(prompts), "prompt_tokens": [len(p) for p in prompts], "tickers": tickers, "gen": GEN,
         "eos_token_id": EOS_ID}
    t0 = time.time()
    try:
        model = load_checkpoint(a.checkpoint)
        r["load_s"] = round(time.time() - t0, 1)
        check_model(a, a.checkpoint, model, prompts, tmp, r)
        r["pass"] = bool(r["pass"] and r["greedy_target_95"])
        del model
        torch.cuda.empty_cache()
    except Exception as ex:
        r["error"] = str(ex)[-2000:]
        r["pass"] = False
    results[name] = r
    print(json.dumps({name: r}, indent=1), flush=True)
    return r["pass"]


def main():
    global EAGER, LEGACY_ROPE, GEN
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="build/gpu/run")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--full-7b", action="store_true", help="all 28 layers at Qwen2.5-7B's shape")
    ap.add_argument("--only", default="", help="run only families whose name contains one of these (comma list)")
    ap.add_argument("--eager", action="store_true", help="also transformers bf16 with eager attention")
    ap.add_argument("--diag-layer0", action="store_true",
                    help="layer-0 per-op comparison (PAGESIM_DUMP_LAYER0) of the 7B-shape family")
    ap.add_argument("--legacy-rope", action="store_true",
                    help="copy rope_theta/rope_scaling to the top level of config.json (old readers)")
    ap.add_argument("--checkpoint", metavar="DIR",
                    help="instead of the random-weight families: an existing checkpoint (e.g. tests/gpu/train_tiny.py's)")
    ap.add_argument("--prompts", metavar="JSONL", help="with --checkpoint: prompts from labs/bias --dump-prompts")
    ap.add_argument("--num-prompts", type=int, default=6, help="with --checkpoint: how many, spread over the file")
    ap.add_argument("--gen", type=int, default=GEN, help="tokens generated per prompt (default %d)" % GEN)
    a = ap.parse_args()
    if a.checkpoint and not a.prompts:
        ap.error("--checkpoint needs --prompts JSONL")
    if a.num_prompts < 1 or a.gen < 1:
        ap.error("--num-prompts and --gen must be >= 1")
    GEN = a.gen
    EAGER = a.eager
    LEGACY_ROPE = a.legacy_rope
    rng = np.random.default_rng(1)
    results, ok = {}, True
    tmp = tempfile.mkdtemp(prefix="pagesim-hf-")
    print("transformers", tf.__version__, "torch", torch.__version__, torch.cuda.get_device_name())
    if a.checkpoint:
        ok &= run_checkpoint(a, results, tmp)
    for i, (name, cfg, opts) in enumerate([] if a.checkpoint else families(a.full_7b)):
        only = [x for x in a.only.split(",") if x]
        if (only and not any(x in name for x in only)) or (name.startswith("diag") and "diag" not in a.only):
            continue
        path = os.path.join(tmp, name)
        t0 = time.time()
        model = build(cfg, opts, path, seed=100 + i)
        V = cfg.vocab_size
        lens = [5, 37, 100, 260]
        prompts = [rng.integers(0, V, n).tolist() for n in lens]
        r = {"build_s": round(time.time() - t0, 1)}
        try:
            if a.diag_layer0 and "7b" in name:
                r["layer0"] = diag_layer0(a.engine, path, model, prompts[-1], tmp)
            check_model(a, path, model, prompts, tmp, r)
        except Exception as ex:   # report and go on with the next family
            r["error"] = str(ex)[-2000:]
            r["pass"] = False
        ok &= r["pass"]
        results[name] = r
        print(json.dumps({name: r}, indent=1), flush=True)
        del model
        torch.cuda.empty_cache()
        subprocess.run(["rm", "-rf", path])
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "compare.json"), "w") as f:
        json.dump(results, f, indent=1)
    print("%-28s %10s %10s %10s %10s %8s %8s %6s %9s" % ("family", "pre relL2", "pre max", "dec relL2",
                                                    "dec max", "greedy", "tf-argm", "b=s", "b-s relL2"))
    for n, r in results.items():
        if "batched" in r and "error" not in r:
            b = r["batched"]
            print("%-28s %10.2e %10.3f %10.2e %10.3f %7.1f%% %7.1f%% %6s %9.1e %s" % (
                n, b["prefill_rel_l2"], b["prefill_max_abs"], b["decode_rel_l2"], b["decode_max_abs"],
                100 * b["greedy_agree"], 100 * b["teacher_forced_argmax_agree"],
                r["batch_equals_single_tokens"], r["batch_vs_single_rel_l2"], "ok" if r["pass"] else "FAIL"))
            c = r["chunked64"]
            print("%-28s %10.2e %10.3f %10.2e %10.3f %7.1f%% %7.1f%%" % (
                "  chunked prefill (64)", c["prefill_rel_l2"], c["prefill_max_abs"], c["decode_rel_l2"],
                c["decode_max_abs"], 100 * c["greedy_agree"], 100 * c["teacher_forced_argmax_agree"]))
        else:
            print("%-28s ERROR %s" % (n, r.get("error", "")[:300]))
    for n, r in results.items():
        if "experts_equal_share" in r:
            print("%-28s chosen experts equal to transformers' at %.2f%% of %d (layer, position); %.2f%% of the picks" % (
                n, 100 * r["experts_equal_share"], r["experts_positions"], 100 * r["experts_pick_share"]))
    for n, r in results.items():
        b = r.get("batched", {})
        if "greedy_agree_to_eos" in b:
            print("%-28s greedy up to transformers' EOS (%s): %.1f%%; all %d generated positions %.1f%%" % (
                n, r["eos_token_id"], 100 * b["greedy_agree_to_eos"], b["positions"], 100 * b["greedy_agree"]))
    print("against an fp32 run of the same weights (ours | transformers bf16):")
    for n, r in results.items():
        b = r.get("batched", {})
        if "fp32_ours_rel_l2" in b:
            print("%-28s logits rel L2 %.2e | %.2e   greedy %5.1f%% | %5.1f%%   teacher-forced argmax %5.1f%% | %5.1f%%" % (
                n, b["fp32_ours_rel_l2"], b["fp32_hfbf16_rel_l2"], 100 * b["fp32_ours_greedy_agree"],
                100 * b["fp32_hfbf16_greedy_agree"], 100 * b["fp32_ours_tf_argmax_agree"],
                100 * b["fp32_hfbf16_tf_argmax_agree"]))
            if "fp32_hfeager_rel_l2" in b:
                print("%-28s   transformers bf16 eager attention: logits rel L2 %.2e" % ("", b["fp32_hfeager_rel_l2"]))
    for n, r in results.items():
        print("%-28s inv_freq restored in %d module(s): found %s, max rel error %.2e; contiguous = paged: %s" % (
            n, *r.get("rope_fp32", (0, "-", 0.0)), r.get("contiguous_equals_paged")))
        for tag, row in r.get("layer0", {}).items():
            if tag == "rope_fp32":
                continue
            print("%-28s layer 0 vs transformers (%s): %s" % ("", tag, "  ".join(
                "%s %.2e (row0 %.1e, last %.1e)" % (k, v["rel_l2"], v["first_row"], v["last_row"])
                for k, v in row.items())))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes a small random Qwen2 or Llama model twice: as an AutoAWQ checkpoint
(quantization_config awq, 4 bits, group 64 or 128, zero_point, version gemm)
and as the same model dequantized to bf16, so that the engine's AWQ path can
be checked against a 16-bit run of the very same weights (tests/gpu/awq_compare.py
runs engine/run on both and transformers on the bf16 one).

Quantization and packing follow AutoAWQ (transformers-free, torch only):
  * per group of G inputs of each output row, min/max asymmetric 4-bit:
    scales = (max - min).clamp(1e-5) / 15, zeros = clamp(-round(min / scales), 0, 15),
    stored as fp16 scales and 4-bit zeros (awq/quantize/quantizer.py);
  * WQLinear_GEMM.from_linear: intweight = round((w + zeros * scales) / scales_fp16),
    transposed to (in, out); qweight (in, out/8) int32 where nibble i of word c holds
    column 8 c + order_map[i], order_map = [0, 2, 4, 6, 1, 3, 5, 7]; qzeros
    (in/G, out/8) the same; scales (in/G, out) fp16;
  * dequantized (awq/utils/packing_utils.py dequantize_gemm): (iweight - izeros) * scales,
    computed here in fp32 and rounded once to bf16 (the engine's 16-bit dtype).
Embeddings, norms, biases and lm_head are 16-bit in both (fp16 in the AWQ
checkpoint as AutoAWQ writes them, bf16 in the other), drawn so that each
value is exact in both dtypes.  The script checks its own packing: unpacking
qweight/qzeros with AutoAWQ's reverse order gives back the integers, and
dequantizing the packed tensors gives the bf16 weights.

Usage: tests/gpu/awq_pack.py --out DIR [--family qwen2|llama] [--group 64|128]
                             [--layers L] [--hidden D] [--intermediate I] [--vocab V] [--seed S]
Writes DIR/awq and DIR/bf16 (config.json + model.safetensors each).
"""
import argparse, json, os, struct
import torch

ORDER = [0, 2, 4, 6, 1, 3, 5, 7]          # AutoAWQ's order_map: nibble i holds column ORDER[i]
REVERSE = [0, 4, 1, 5, 2, 6, 3, 7]        # AutoAWQ's AWQ_REVERSE_ORDER: column j sits in nibble REVERSE[j]
DT = {torch.bfloat16: "BF16", torch.float16: "F16", torch.int32: "I32", torch.float32: "F32"}


def write_safetensors(path, tensors):
    """tensors: dict name -> tensor (written in insertion order)"""
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        t = t.contiguous().cpu()
        raw = (t.view(torch.int16) if t.dtype in (torch.bfloat16, torch.float16) else t).numpy().tobytes()
        header[name] = {"dtype": DT[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def to_int32(x):
    """int64 holding 32 bits -> int32 with the same bits (AutoAWQ packs into int32 in place)"""
    x = x & 0xFFFFFFFF
    return torch.where(x >= 2 ** 31, x - 2 ** 32, x).to(torch.int32)


def pack_cols(iv):
    """(R, C) ints 0..15 -> (R, C/8) int32, AutoAWQ's column packing"""
    iv = iv.to(torch.int64)
    out = torch.zeros(iv.shape[0], iv.shape[1] // 8, dtype=torch.int64)
    for i in range(8):
        out |= iv[:, ORDER[i]::8] << (4 * i)
    return to_int32(out)


def unpack_cols(p):
    """AutoAWQ's unpack_awq + reverse_awq_order: (R, C/8) int32 -> (R, C)"""
    p = p.to(torch.int64) & 0xFFFFFFFF
    nib = torch.stack([(p >> (4 * i)) & 15 for i in range(8)], dim=-1)      # (R, C/8, 8) by nibble
    return nib[:, :, REVERSE].reshape(p.shape[0], -1)                       # column j from nibble REVERSE[j]


def quantize(w, G):
    """w (out, in) float -> qweight, qzeros, scales (AutoAWQ layout) and the dequantized bf16 (out, in)"""
    out_f, in_f = w.shape
    g = w.float().reshape(out_f, in_f // G, G)
    mx, mn = g.amax(dim=2), g.amin(dim=2)
    scales = ((mx - mn).clamp(min=1e-5) / 15)                              # (out, in/G)
    zeros = (-torch.round(mn / scales)).clamp(0, 15)
    s16 = scales.half()
    sf = s16.float().repeat_interleave(G, dim=1)
    zf = zeros.repeat_interleave(G, dim=1)
    w_deq_awq = (torch.clamp(torch.round(w.float() / scales.repeat_interleave(G, dim=1)) + zf, 0, 15) - zf) * \
        scales.repeat_interleave(G, dim=1)                                  # pseudo_quantize_tensor's w
    intweight = torch.round((w_deq_awq + zf * scales.repeat_interleave(G, dim=1)) / sf).clamp(0, 15).to(torch.int64)
    qweight = pack_cols(intweight.t().contiguous())                         # (in, out/8)
    qzeros = pack_cols(zeros.t().contiguous().to(torch.int64))              # (in/G, out/8)
    scales_t = s16.t().contiguous()                                         # (in/G, out)
    deq = ((intweight - zf.to(torch.int64)).float() * sf).to(torch.bfloat16)
    # self-check: the packed tensors give back the integers and the dequantized weight
    assert torch.equal(unpack_cols(qweight), intweight.t())
    assert torch.equal(unpack_cols(qzeros), zeros.t().to(torch.int64))
    iw, iz = unpack_cols(qweight), unpack_cols(qzeros).repeat_interleave(G, dim=0)
    again = ((iw - iz).float() * scales_t.float().repeat_interleave(G, dim=0)).to(torch.bfloat16)   # (in, out)
    assert torch.equal(again.t(), deq)
    return qweight, qzeros, scales_t, deq


def exact16(t):
    """values exact in bf16 and in fp16: bf16, with magnitudes below fp16's normal range set to 0"""
    t = t.to(torch.bfloat16).float()
    return torch.where(t.abs() < 2.0 ** -14, torch.zeros_like(t), t)


def config(args, quant):
    qwen = args.family == "qwen2"
    c = {"architectures": ["Qwen2ForCausalLM" if qwen else "LlamaForCausalLM"],
         "model_type": args.family, "hidden_size": args.hidden, "intermediate_size": args.intermediate,
         "num_hidden_layers": args.layers, "num_attention_heads": args.hidden // 64,
         "num_key_value_heads": args.hidden // 64 // (4 if qwen else 2), "head_dim": 64,
         "vocab_size": args.vocab, "max_position_embeddings": 4096, "rms_norm_eps": 1e-6,
         "rope_theta": 1000000.0 if qwen else 500000.0, "tie_word_embeddings": False,
         "hidden_act": "silu", "torch_dtype": "float16" if quant else "bfloat16",
         "bos_token_id": 1, "eos_token_id": 2}
    if qwen:
        c.update({"use_sliding_window": False, "sliding_window": None, "max_window_layers": args.layers,
                  "attention_dropout": 0.0})
    if quant:
        c["quantization_config"] = {"bits": 4, "group_size": args.group, "modules_to_not_convert": None,
                                    "quant_method": "awq", "version": "gemm", "zero_point": True}
    return c


def build(args):
    torch.manual_seed(args.seed)
    D, I, V, L = args.hidden, args.intermediate, args.vocab, args.layers
    nq = D // 64
    nkv = nq // (4 if args.family == "qwen2" else 2)
    awq, bf = {}, {}

    def plain(name, t):
        t = exact16(t)
        awq[name] = t.half()
        bf[name] = t.to(torch.bfloat16)

    plain("model.embed_tokens.weight", torch.randn(V, D))
    for l in range(L):
        p = "model.layers.%d." % l
        plain(p + "input_layernorm.weight", 1 + 0.3 * (torch.rand(D) * 2 - 1))
        shapes = [("self_attn.q_proj", nq * 64, D), ("self_attn.k_proj", nkv * 64, D),
                  ("self_attn.v_proj", nkv * 64, D), ("self_attn.o_proj", D, nq * 64),
                  ("mlp.gate_proj", I, D), ("mlp.up_proj", I, D), ("mlp.down_proj", D, I)]
        for mod, out_f, in_f in shapes:
            w = torch.randn(out_f, in_f) * (1.5 / in_f ** 0.5)
            qweight, qzeros, scales, deq = quantize(w, args.group)
            awq[p + mod + ".qweight"], awq[p + mod + ".qzeros"], awq[p + mod + ".scales"] = qweight, qzeros, scales
            bf[p + mod + ".weight"] = deq
            if args.family == "qwen2" and mod[-6:] in ("q_proj", "k_proj", "v_proj"):
                plain(p + mod + ".bias", 0.1 * torch.randn(out_f))
        plain(p + "post_attention_layernorm.weight", 1 + 0.3 * (torch.rand(D) * 2 - 1))
    plain("model.norm.weight", 1 + 0.3 * (torch.rand(D) * 2 - 1))
    plain("lm_head.weight", torch.randn(V, D) * (2.0 / D ** 0.5))
    return awq, bf


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--family", choices=["qwen2", "llama"], default="qwen2")
    ap.add_argument("--group", type=int, choices=[64, 128], default=128)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--intermediate", type=int, default=1408)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.hidden % 256 or args.intermediate % 128:
        ap.error("--hidden must be a multiple of 256 and --intermediate of 128 (heads of 64, groups of 128)")
    awq, bf = build(args)
    for sub, tensors, quant in (("awq", awq, True), ("bf16", bf, False)):
        d = os.path.join(args.out, sub)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config(args, quant), f, indent=1)
        write_safetensors(os.path.join(d, "model.safetensors"), tensors)
    print("wrote %s/awq and %s/bf16 (%s, group %d, %d layers, hidden %d)" % (args.out, args.out, args.family,
                                                                           args.group, args.layers, args.hidden))


if __name__ == "__main__":
    main()

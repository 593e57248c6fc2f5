#!/usr/bin/env python3
"""Rebuilds the request side of a `labs/bias --real` trace ({model}_att_trace.json)
from what the run sent, for when the trace itself did not come back from the GPU
machine but its _att_compare.json (engine limits, set wall times) did.

The requests are exactly the run's: `labs/bias --dump-prompts FILE` with the run's
options writes every trial in the run's order with its token ids as --real encodes
them and "reply_tokens", the profile's reply length (what --reply-lengths profile,
the default with --dummy-weights, asks the engine for; random weights never stop
early).  Per request: prompt_tokens = len(ids); output_tokens = reply_tokens cut to
max_model_len - prompt_tokens (as the real source does); shared_prefix = common
leading ids with the set's first prompt (as the real source records it); submitted
in the run's order.  Measured per-request times are unknown (0): only the wall times
(--set-walls) are measured figures in the result, so `labs/bias compare --trace` on
it gives a meaningful predicted wall time, nothing else measured.  No step records:
the comparison does no calibration on it.

  labs/bias --tickers ... --num-sets 3 --dump-prompts /tmp/d.jsonl
  scripts/bias_trace_rebuild.py --dump /tmp/d.jsonl --compare RUN_att_compare.json \\
      --max-workers 12810 --out /tmp/t/Qwen3-30B-A3B-Instruct-2507_att_trace.json
  labs/bias compare --trace /tmp/t/..._att_trace.json --gpu H200 --op-profile auto

Without --compare (a run measured elsewhere, e.g. the study's own on vLLM), the
limits and wall times are given: --gpu, --model-config, --num-blocks,
--max-num-seqs, --max-num-batched-tokens, --max-model-len, --set-walls S1,S2,...
"""
import argparse
import json
import sys


def lcp(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dump", required=True, help="labs/bias --dump-prompts output (with reply_tokens)")
    ap.add_argument("--compare", help="the run's _att_compare.json: engine limits, wall times")
    ap.add_argument("--max-workers", type=int, required=True, help="the run's --max-workers")
    ap.add_argument("--out", required=True)
    ap.add_argument("--temperature", type=float, default=0.6, help="the run's sampling (labs/bias's defaults)")
    ap.add_argument("--top-p", type=float, default=0.8)
    g = ap.add_argument_group("without --compare")
    g.add_argument("--gpu")
    g.add_argument("--model-config")
    g.add_argument("--source", default="server")
    g.add_argument("--num-blocks", type=int)
    g.add_argument("--block-size", type=int, default=16)
    g.add_argument("--max-num-seqs", type=int)
    g.add_argument("--max-num-batched-tokens", type=int, default=8192)
    g.add_argument("--max-model-len", type=int, default=4096)
    g.add_argument("--no-prefix-caching", action="store_true")
    g.add_argument("--set-walls", help="measured wall time of each set, seconds, comma-separated")
    a = ap.parse_args()

    if a.compare:
        cmp_ = json.load(open(a.compare))
    else:
        need = [k for k in ("gpu", "model_config", "num_blocks", "max_num_seqs", "set_walls") if getattr(a, k) is None]
        if need:
            sys.exit("without --compare give --" + ", --".join(k.replace("_", "-") for k in need))
        walls = [float(w) for w in a.set_walls.split(",")]
        cmp_ = {"gpu": a.gpu, "model_config": a.model_config, "calibration": {"held_out_sets": [
                    {"what": "set %d" % (i + 1), "measured_s": w} for i, w in enumerate(walls)]},
                "policies": {"paged": {"source": a.source, "max_model_len": a.max_model_len, "num_blocks": a.num_blocks,
                                       "block_size": a.block_size, "max_num_seqs": a.max_num_seqs,
                                       "max_num_batched_tokens": a.max_num_batched_tokens,
                                       "prefix_caching": not a.no_prefix_caching,
                                       "measured": {"wall_time_s": sum(walls)}}}}
    pol = cmp_["policies"]["paged"]
    mml = pol["max_model_len"]
    reqs, first = [], {}
    for i, line in enumerate(open(a.dump)):
        d = json.loads(line)
        if "reply_tokens" not in d:
            sys.exit("%s:%d: no reply_tokens (a dump from an older labs/bias)" % (a.dump, i + 1))
        ids, s = d["ids"], d["set"]
        first.setdefault(s, ids)
        out = min(d["reply_tokens"], max(1, mml - len(ids)))
        reqs.append([s, len(ids), out, lcp(ids, first[s]), 0.0, 0.0, 0.0])
    sets = sorted(first)
    # measured wall of each set: the held-out sets' own, set 1 the rest of the total
    walls = {int(h["what"].split()[-1]): h["measured_s"]
             for h in (cmp_["calibration"].get("held_out_sets", []) if isinstance(cmp_["calibration"], dict) else [])}
    total = pol["measured"]["wall_time_s"]
    missing = [s for s in sets if s not in walls]
    if len(missing) == 1:
        walls[missing[0]] = total - sum(walls.get(s, 0) for s in sets if s != missing[0])
    elif missing:
        sys.exit("cannot split the measured wall time %.3f s over sets %s" % (total, missing))
    got = (sum(r[1] for r in reqs), sum(r[2] for r in reqs))
    want = (pol.get("prompt_tokens"), pol.get("output_tokens"))
    if a.compare and (got != want or len(reqs) != pol["requests"]):
        sys.exit("the dump has %d requests, %d + %d tokens; the run had %d, %d + %d: not the run's prompts"
                 % (len(reqs), got[0], got[1], pol["requests"], want[0], want[1]))
    t = {
        "source": pol.get("source", "engine"), "kv_policy": "paged",
        "model_config": cmp_["model_config"], "gpu": cmp_["gpu"], "dummy_weights": "note" in cmp_,
        "num_blocks": pol["num_blocks"], "block_size": pol["block_size"], "max_num_seqs": pol["max_num_seqs"],
        "max_num_batched_tokens": pol["max_num_batched_tokens"], "max_model_len": mml,
        "prefix_caching": pol["prefix_caching"], "max_workers": a.max_workers,
        "temperature": a.temperature, "top_p": a.top_p,
        "prefix_hit_tokens": pol.get("prefix_hit_tokens", 0),
        "set_wall_s": [walls[s] for s in range(1, max(sets) + 1)],
        "request_fields": ["set", "prompt_tokens", "output_tokens", "shared_prefix", "submit_s", "first_token_s",
                           "finish_s"],
        "requests": reqs,
        "step_fields": ["set", "t_s", "seconds", "num_seqs", "prefill_tokens", "decode_tokens", "attn_ctx_tokens",
                        "attn_pairs"],
        "steps": [],
        "kv_fields": ["set", "t_s", "blocks_used", "blocks_total", "slots_total", "token_slots", "reserved_slots",
                      "internal_frag"],
        "kv": [],
    }
    json.dump(t, open(a.out, "w"))
    print("%s: %d requests in %d sets, %d + %d tokens, shared prefix %.1f tokens on average; walls %s"
          % (a.out, len(reqs), len(sets), got[0], got[1], sum(r[3] for r in reqs) / len(reqs),
             ", ".join("%.2f" % w for w in t["set_wall_s"])))


if __name__ == "__main__":
    main()

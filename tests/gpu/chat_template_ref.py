#!/usr/bin/env python3
"""Reference renderings of the chat templates in tests/data/chat_templates/,
made as transformers' apply_chat_template makes them.

Two independent renderers:
  * jinja2 alone, set up as transformers' _compile_jinja_template sets it up
    (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
    a {% generation %} tag, its tojson filter, raise_exception and
    strftime_now globals) and called with the variables apply_chat_template
    passes (messages, tools, documents, add_generation_prompt, the tokenizer's
    special tokens, the extra keyword arguments);
  * transformers itself, when it imports (the GPU machine): a tokenizer built
    from each fixture's tokenizer_config (its chat_template and special
    tokens) and apply_chat_template(tokenize=False) called for real.

  chat_template_ref.py --write [FILE]   jinja2's renderings -> FILE
                                        (default tests/data/chat_templates/expected.jsonl)
  chat_template_ref.py [--check] [FILE] render every case again with jinja2 and,
                                        when transformers imports, with
                                        transformers; compare both with FILE.
                                        Exit 1 on any difference.

tests/test_jinja.c renders the same cases with text/jinja.c and compares byte
for byte with FILE.  Cases that call strftime_now carry a fixed "now" (noon UTC,
the same date in every time zone from UTC-11 to UTC+11): jinja2 and
transformers get a strftime_now that formats that time, as the C test does.
"""
import json
import os
import sys
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(ROOT, "tests", "data", "chat_templates")
EXPECTED = os.path.join(FIXTURES, "expected.jsonl")
NOW = 1721995200          # 2024-07-26 12:00:00 UTC
SPECIAL = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]

TOOLS = [{"type": "function", "function": {
    "name": "get_price", "description": "Price of a stock ticker, in USD (\"last\" trade)",
    "parameters": {"type": "object", "properties": {"ticker": {"type": "string", "description": "e.g. AAPL"}},
                   "required": ["ticker"]}}}]

SYS = {"role": "system", "content": "You are a careful analyst."}
U1 = {"role": "user", "content": "Should I buy AAPL?"}
A1 = {"role": "assistant", "content": "Buy: {\"decision\": \"buy\"}"}
U2 = {"role": "user", "content": "  And MSFT?\n"}
A2 = {"role": "assistant", "content": "Hold."}
THINK = {"role": "assistant", "content": "<think>\nWeigh it.\n</think>\n\n{\"decision\": \"buy\"}"}
UNI_U = {"role": "user", "content": "\u3000 Grüße, 世界! 🌍 naïve café\u00a0\n\t"}
UNI_A = {"role": "assistant", "content": " Ελληνικά — «ok» \u200b "}
UNI_U2 = {"role": "user", "content": "emoji 👩\u200d👩\u200d👧 and مرحبا\u2028next\u2029 line"}
ODD = {"role": "user", "content": "Quote \"q\", brace {{ not a tag }} {% neither %}, backslash \\n, tab\tend"}


def cases():
    """(id, messages, add_generation_prompt, tools, kwargs, now) for every template."""
    c = [
        ("user", [U1], True, None, {}),
        ("user_no_gen", [U1], False, None, {}),
        ("system_user", [SYS, U1], True, None, {}),
        ("multi_turn", [SYS, U1, A1, U2], True, None, {}),
        ("multi_turn_no_system_no_gen", [U1, A1, U2, A2], False, None, {}),
        ("unicode", [UNI_U, UNI_A, UNI_U2], True, None, {}),
        ("unicode_system", [dict(SYS, content=" Système: répondez en français.\u3000"), UNI_U], True, None, {}),
        ("odd_text", [ODD], True, None, {}),
        ("think_no_thinking", [U1, THINK, U2], True, None, {"enable_thinking": False}),
        ("think_thinking", [U1, THINK, U2], True, None, {"enable_thinking": True}),
        ("think_last_turn", [U1, THINK], False, None, {}),
        ("tools", [SYS, U1], True, TOOLS, {}),
        ("tools_no_system", [U1, A1, U2], True, TOOLS, {}),
        ("date_string", [U1], True, None, {"date_string": "01 Jan 2025"}),
        ("user_user", [U1, U2], True, None, {}),
    ]
    return [(i, m, g, t, k, NOW) for i, m, g, t, k in c]


def fixtures():
    for f in sorted(os.listdir(FIXTURES)):
        if f.endswith(".json"):
            with open(os.path.join(FIXTURES, f), encoding="utf-8") as fh:
                yield f[:-5], json.load(fh)


def special_tokens(cfg):
    """The tokenizer's special_tokens_map, as apply_chat_template passes it."""
    out = {}
    for k in SPECIAL:
        v = cfg.get(k)
        if isinstance(v, dict):
            v = v.get("content")
        if isinstance(v, str):
            out[k] = v
    extra = cfg.get("additional_special_tokens")
    if isinstance(extra, list):
        out["additional_special_tokens"] = [e["content"] if isinstance(e, dict) else e for e in extra]
    return out


def fixed_strftime(now):
    return lambda fmt: datetime.fromtimestamp(now).strftime(fmt)


def jinja2_env():
    """transformers' _compile_jinja_template, without transformers."""
    import jinja2
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(Extension):      # transformers' AssistantTracker, not tracking
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

        def _render(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = fixed_strftime(NOW)
    return env


def render_jinja2(env, cfg, messages, gen, tools, kwargs, now):
    env.globals["strftime_now"] = fixed_strftime(now)
    tpl = env.from_string(cfg["chat_template"])
    return tpl.render(messages=messages, tools=tools, documents=None, add_generation_prompt=gen,
                      **special_tokens(cfg), **kwargs)


def hf_tokenizer(cfg):
    """A real transformers tokenizer carrying the fixture's template and special tokens."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast
    vocab = {"<unk>": 0}
    toks = special_tokens(cfg)
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
                                   chat_template=cfg["chat_template"], **toks)


def render_hf(tok, messages, gen, tools, kwargs, now):
    return tok.apply_chat_template(messages, tools=tools, add_generation_prompt=gen, tokenize=False,
                                   strftime_now=fixed_strftime(now), **kwargs)


def outcome(fn):
    """{"expected": text} or {"error": raise_exception's message}."""
    try:
        return {"expected": fn()}
    except Exception as e:          # jinja2's TemplateError, or transformers' wrapping of it
        return {"error": str(e)}


def write(path):
    env = jinja2_env()
    n = 0
    with open(path, "w", encoding="utf-8") as out:
        for name, cfg in fixtures():
            for cid, msgs, gen, tools, kw, now in cases():
                row = {"template": name, "case": cid, "messages": msgs, "add_generation_prompt": gen,
                       "tools": tools, "kwargs": kw, "now": now}
                row.update(outcome(lambda: render_jinja2(env, cfg, msgs, gen, tools, kw, now)))
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
    print("wrote %d cases to %s" % (n, path))


def check(path):
    env = jinja2_env()
    import jinja2
    print("jinja2 %s" % jinja2.__version__)
    try:
        import transformers
        have_hf = True
        print("transformers %s: comparing apply_chat_template too" % transformers.__version__)
    except Exception as e:
        have_hf = False
        print("transformers does not import (%s): jinja2 only" % e.__class__.__name__)
    cfgs = dict(fixtures())
    toks = {}
    bad = {}
    total = {}
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    for r in rows:
        name, cfg = r["template"], cfgs[r["template"]]
        want = {k: r[k] for k in ("expected", "error") if k in r}
        args = (r["messages"], r["add_generation_prompt"], r["tools"], r["kwargs"], r["now"])
        got = {"jinja2": outcome(lambda: render_jinja2(env, cfg, *args))}
        if have_hf:
            if name not in toks:
                try:
                    toks[name] = hf_tokenizer(cfg)
                except Exception as e:           # reported as this template's failure, not a crash
                    toks[name] = e
            if isinstance(toks[name], Exception):
                got["transformers"] = {"tokenizer": "%s: %s" % (type(toks[name]).__name__, toks[name])}
            else:
                got["transformers"] = outcome(lambda: render_hf(toks[name], *args))
        total[name] = total.get(name, 0) + 1
        for who, g in got.items():
            same = g == want or ("error" in g and "error" in want and want["error"] in g["error"])
            if not same:
                bad.setdefault(name, []).append((r["case"], who, want, g))
    for name in sorted(total):
        fails = bad.get(name, [])
        print("%-30s %3d cases  %s" % (name, total[name], "ok" if not fails else "%d DIFFER" % len(fails)))
        for cid, who, want, g in fails[:5]:
            print("   %s (%s):\n     file: %r\n     got:  %r" % (cid, who, want, g))
    print("%d passed, %d failed" % (sum(total.values()) - sum(len(v) for v in bad.values()),
                                   sum(len(v) for v in bad.values())))
    return 1 if bad else 0


def main(argv):
    if argv and argv[0] == "--write":
        write(argv[1] if len(argv) > 1 else EXPECTED)
        return 0
    if argv and argv[0] == "--check":
        argv = argv[1:]
    return check(argv[0] if argv else EXPECTED)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

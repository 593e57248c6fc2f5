#!/usr/bin/env python3
"""Tokenizer reference fixture for text/tokenizer.c and text/tok_*.c (issue 4).

Three modes:
  strings OUT.jsonl
      (here, no dependencies) writes the >= 2000 test strings, deterministic.
      Each line is {"i": N, "kind": K, "text": S} or, for byte strings that are
      not valid UTF-8, {"i": N, "kind": K, "hex": H}.
  expected --strings S.jsonl --tok NAME=DIR/tokenizer.json ... --out DIR
      [--bench-text FILE] [--bench-c CMD]
      (on the GPU machine, which has the Python `tokenizers` package) writes
      DIR/expected_NAME.jsonl: {"i": N, "ids": [...]} with add_special_tokens
      False, plus "sp_pre"/"sp_post" (ids added before/after) or "ids_sp" (the
      whole list) when add_special_tokens=True differs.  Byte strings
      are decoded with errors="replace" first, the documented policy of the C
      encoder.  With --bench-text it also times single-thread encoding of that
      file's prompts (one per line, JSON-escaped) and writes DIR/bench_hf.txt.
  diff --lib libtok.so --tok NAME=PATH ... --out DIR [--seconds S] [--seed N]
      (GPU machine) differential test: random byte strings (many scripts,
      combining marks, Hangul jamo, emoji, invalid bytes, special-token
      fragments) encoded by HF and by the C encoder (text/tok*.c built
      as a shared library, called through ctypes) for S seconds per tokenizer;
      DIR/diff_report.txt and up to 200 mismatches in DIR/diff_NAME.jsonl.
"""
import json
import os
import random
import sys
import time
import unicodedata

# ---- strings -----------------------------------------------------------------

COMPANIES = [("AAPL", "Apple Inc."), ("MSFT", "Microsoft Corporation"), ("NVDA", "NVIDIA Corporation"),
             ("XOM", "Exxon Mobil"), ("JPM", "JPMorgan Chase & Co."), ("KO", "The Coca-Cola Company"),
             ("TSLA", "Tesla, Inc."), ("PFE", "Pfizer Inc."), ("BRK.B", "Berkshire Hathaway"),
             ("T", "AT&T Inc."), ("O", "Realty Income"), ("SAP", "SAP SE"), ("7203.T", "Toyota Motor"),
             ("NESN", "Nestlé S.A."), ("MC.PA", "LVMH Moët Hennessy"), ("0700.HK", "腾讯控股"),
             ("BABA", "Alibaba Group"), ("ASML", "ASML Holding N.V."), ("DE", "Deere & Company"),
             ("ZTS", "Zoetis Inc."), ("CAT", "Caterpillar"), ("LOW", "Lowe's Companies")]
BUY = ["Quarterly revenue rose {p}% year over year, beating consensus by ${m} million.",
       "Management raised full-year guidance to ${m}B and announced a {p}% buyback.",
       "Free cash flow reached ${m} million, a record margin of {p}%.",
       "The company's backlog grew {p}% and now covers {n} months of production.",
       "Analysts upgraded the stock after gross margin expanded {p} basis points.",
       "New product launches drove a {p}% increase in active customers to {n},000."]
SELL = ["Operating margin fell to {p}% as input costs climbed for the {n}th straight quarter.",
        "Debt rose to ${m}B and interest coverage dropped below {n}x.",
        "The CFO resigned unexpectedly; the audit committee is reviewing ${m}M in charges.",
        "Market share declined {p} points while inventory days rose to {n}.",
        "A regulator opened an investigation that could cost up to ${m} million in fines.",
        "Same-store sales shrank {p}% and guidance was cut for the second time this year."]


def fill(r, s):
    return s.format(p=r.choice(["3", "12.5", "0.8", "47", "-2.1", "150"]),
                    m=r.choice(["1.2", "340", "12,500", "7", "0.45", "98.6"]),
                    n=r.choice(["3", "11", "24", "90", "1000"]))


def bias_prompt(r, i):
    tk, name = r.choice(COMPANIES)
    ev = [fill(r, x) for x in r.sample(BUY, 2) + r.sample(SELL, 2)]
    r.shuffle(ev)
    opts = "[buy | sell]" if i % 2 == 0 else "[sell | buy]"
    lines = "\n".join(f"{k + 1}. {e}" for k, e in enumerate(ev))
    return (f"You are an equity analyst. Here is evidence about {name} (ticker: {tk}).\n{lines}\n"
            f"Weigh the evidence and decide {opts}. Reply with only a JSON object: "
            f'{{"decision": "buy" or "sell", "reason": "<one sentence>"}}.')


WORDS = ("the of and to in is it that was for on are with as I his they be at one have this from or had by "
         "hot word but what some we can out other were all there when up use your how said an each she which do "
         "their time if will way about many then them write would like so these her long make thing see him two "
         "has look more day could go come did number sound no most people my over know water than call first "
         "who may down side been now find any new work part take get place made live where after back little "
         "only round man year came show every good me give our under name very through just form sentence great "
         "think say help low line differ turn cause much mean before move right boy old too same tell does set "
         "three want air well also play small end put home read hand port large spell add even land here must "
         "big high such follow act why ask men change went light kind off need house picture try us again animal "
         "point mother world near build self earth father don't I'm you're we've they'll she'd it's can't WON'T "
         "HE'S Y'ALL o'clock rock'n'roll").split()
SCRIPTS = {
    "cjk": "的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出要于就下得可你年生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持音跑ひらがなカタカナ한국어조선말",
    "latin": "àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿāăąćĉċčďđēĕėęěĝğġģĥħĩīĭįıĳĵķĸĺļľŀłńņňŉŋōŏőœŕŗřśŝşšţťŧũūŭůűųŵŷÿźżžſßÀÉÎÕÜ",
    "greek": "αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩάέήίόύώϊϋΐΰ",
    "cyrillic": "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯіїєґ",
    "arabic": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي٠١٢٣٤٥٦٧٨٩ًٌٍَُِّْ",
    "hebrew": "אבגדהוזחטיכלמנסעפצקרשתךםןףץ",
    "indic": "अआइईउऊऋएऐओऔकखगघङचछजझञटठडढणतथदधनपफबभमयरलवशषसह्ािीुूृेैोौंः०१२३४५६७८९தமிழ்తెలుగుবাংলা",
    "thai": "กขฃคฅฆงจฉชซฌญฎฏฐฑฒณดตถทธนบปผฝพฟภมยรฤลฦวศษสหฬอฮะัาำิีึืุูเแโใไๅๆ็่้๊๋์",
    "emoji": ["🙂", "😀", "🚀", "📈", "📉", "💰", "🏦", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🇺🇸", "🇯🇵", "🏳️‍🌈", "❤️", "✅",
              "⚠️", "🤖", "🧠", "🔥", "🐉", "1️⃣", "🫠", "🥲", "🇪🇺", "☕", "♥", "★", "✓"],
    "sym": "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~§¶°±×÷€£¥¢‰‹›«»“”‘’„†‡•…–—™©®½¼¾²³¹∑∫√∞≈≠≤≥∂∆∏πµΩ",
    "space": [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", " \n", "\u00a0", "\u3000", "\u2009", "\u200b",
              "\u2028", "\u000b", "\u000c", "\u0085", "    ", "\t\t", " \t \n "],
    "digits": "0123456789",
    "ctrl": "\x00\x01\x02\x07\x08\x1b\x1f\x7f\ufeff\u200d\u200c\u2060\ufffd",
}
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>", "</tool_call>",
            "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<bos>", "<eos>",
            "<start_of_turn>", "<end_of_turn>", "<|im_start", "im_end|>", "<|", "|>", "<<|im_end|>>", "<pad>",
            "<|reserved_special_token_5|>", "<unk>", "<mask>", "[multimodal]"]


def word_sentence(r, n):
    ws = [r.choice(WORDS) for _ in range(n)]
    if r.random() < 0.5:
        ws[0] = ws[0].capitalize()
    if r.random() < 0.2:
        ws[r.randrange(n)] = ws[r.randrange(n)].upper()
    return " ".join(ws) + r.choice([".", "!", "?", "...", ",", ";", "", " :)", "?!"])


def soup(r, n):
    out = []
    for _ in range(n):
        pool = r.choice(list(SCRIPTS))
        p = SCRIPTS[pool]
        out.append(r.choice(p) if not isinstance(p, str) or r.random() < 0.7 else p[r.randrange(len(p)):][:r.randint(1, 6)])
        if r.random() < 0.3:
            out.append(" ")
    return "".join(out)


def number(r):
    k = r.randrange(8)
    if k == 0: return str(r.randrange(10 ** r.randint(1, 20)))
    if k == 1: return f"{r.uniform(-1e6, 1e6):.{r.randint(0, 6)}f}"
    if k == 2: return f"{r.randrange(1, 10 ** 9):,}"
    if k == 3: return f"${r.uniform(0, 1e4):.2f}"
    if k == 4: return f"{r.randint(1990, 2030)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
    if k == 5: return f"{r.uniform(0, 100):.1f}%"
    if k == 6: return f"+1 ({r.randint(100, 999)}) {r.randint(100, 999)}-{r.randint(1000, 9999)}"
    return f"{r.random():e}"


def gen_strings():
    r = random.Random(4)
    S = []   # (kind, str or bytes)
    for i in range(320):
        S.append(("bias", bias_prompt(r, i)))
    for i in range(80):
        p = bias_prompt(r, i)
        if i % 3 == 0:
            S.append(("chatml", f"<|im_start|>system\nYou are a careful analyst.<|im_end|>\n<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n" + ("<think>\n\n</think>\n\n" if i % 2 else "")))
        elif i % 3 == 1:
            S.append(("llama3", f"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{p}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"))
        else:
            S.append(("gemma", f"<bos><start_of_turn>user\n{p}<end_of_turn>\n<start_of_turn>model\n"))
    for i in range(300):
        S.append(("english", " ".join(word_sentence(r, r.randint(1, 25)) for _ in range(r.randint(1, 3)))))
    for i in range(100):
        s = word_sentence(r, r.randint(3, 12))
        S.append(("json", json.dumps({"decision": r.choice(["buy", "sell", "hold"]), "reason": s,
                                      "confidence": round(r.random(), 3), "n": r.randrange(1000)},
                                     indent=r.choice([None, 2, 4]), ensure_ascii=r.random() < 0.3)))
    for i in range(200):
        base = "".join(r.choice(SCRIPTS["latin"]) if r.random() < 0.4 else r.choice("abcdefghij ")
                       for _ in range(r.randint(1, 40)))
        S.append(("nfd" if i % 2 else "nfc", unicodedata.normalize("NFD" if i % 2 else "NFC", base)))
    for name in ["Café", "naïve résumé", "Ångström", "Nestlé", "Moët", "Zoë", "São Paulo", "Ελληνικά", "한국어"]:
        S.append(("nfd", unicodedata.normalize("NFD", name)))
        S.append(("nfkd", unicodedata.normalize("NFKD", name + " ﬁ ① ㎏ Ⅻ")))
    for i in range(200):
        S.append(("cjk", "".join(r.choice(SCRIPTS["cjk"]) + (r.choice("，。、！？ 「」") if r.random() < 0.15 else "")
                                 for _ in range(r.randint(1, 60)))))
    for i in range(150):
        S.append(("emoji", " ".join("".join(r.choice(SCRIPTS["emoji"]) for _ in range(r.randint(1, 4)))
                                    + (" " + r.choice(WORDS) if r.random() < 0.5 else "") for _ in range(r.randint(1, 8)))))
    for i in range(150):
        s = r.choice(["greek", "cyrillic", "arabic", "hebrew", "indic", "thai"])
        S.append((s, " ".join("".join(r.choice(SCRIPTS[s]) for _ in range(r.randint(1, 9))) for _ in range(r.randint(1, 10)))))
    for i in range(150):
        S.append(("digits", " ".join(number(r) for _ in range(r.randint(1, 6)))))
    for i in range(200):
        parts = []
        for _ in range(r.randint(1, 8)):
            parts.append(r.choice(SCRIPTS["space"]) * r.randint(1, 4))
            if r.random() < 0.7:
                parts.append(r.choice(WORDS + ["123", "é", "中", "🙂", "!!", "x"]))
        S.append(("space", "".join(parts)))
    for i in range(120):
        parts = []
        for _ in range(r.randint(1, 6)):
            parts.append(r.choice(SPECIALS) if r.random() < 0.5 else word_sentence(r, r.randint(1, 5)))
            if r.random() < 0.4:
                parts.append(r.choice(["", " ", "\n", "  "]))
        S.append(("special", "".join(parts)))
    for i in range(80):
        S.append(("code", r.choice([
            "def f(x):\n    return x ** 2  # square\n",
            "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}\n",
            "SELECT ticker, AVG(score) FROM bias GROUP BY ticker HAVING COUNT(*) > 10;",
            "<div class=\"x\">Hello &amp; welcome</div>",
            "curl -H 'Authorization: Bearer $TOKEN' https://example.com/api/v1?q=1&r=2",
            "    if x != None:\r\n        print(f\"{x!r:>10}\")\r\n",
            "a_b_c __init__ CamelCaseName snake_case_name kebab-case-name",
            "https://huggingface.co/Qwen/Qwen3-8B/resolve/main/config.json",
            "λx. x → ∀y ∈ ℝ: y² ≥ 0",
        ]) * r.randint(1, 3)))
    for i in range(250):
        S.append(("soup", soup(r, r.randint(1, 50))))
    for i in range(60):
        S.append(("ctrl", "".join(r.choice(SCRIPTS["ctrl"] + "ab \n") for _ in range(r.randint(1, 20)))))
    # edge cases
    for s in ["", " ", "a", "\n", "  ", "'s", "'S", "I'M", "don't", "DON'T", "it's  ", "...", "a" * 500,
              " " * 300, "\n" * 50, "9" * 100, "ab" * 300, "🙂" * 80, "é" * 200, "中" * 300, "x\u0301" * 20,
              "\U0010FFFF", "\U0001F600\U0001F600", "\u0300", "a\u0300\u0301\u0302", "ﬀ", "K", "Å", "Ω",
              "<|im_start|>" * 5, "<|im_start|><|im_end|>", "<|im_start|>user\n<|im_end|>"]:
        S.append(("edge", s))
    # invalid UTF-8 (raw bytes)
    bad = [b"\xff", b"\x80", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf0\x9f\x99",
           b"\xe2\x82", b"\xc3", b"abc\xffdef", b"\xf0\x9f\x99\x82\xf0\x9f", b"caf\xe9", b"\xc3\xa9\xa9",
           b"\xf8\x88\x80\x80\x80", b"\xfe\xff", b"<|im_start|>\xff<|im_end|>", b"\x00\xff\x00"]
    for b in bad:
        S.append(("invalid", b))
    for i in range(120):
        n = r.randint(1, 40)
        b = bytearray()
        for _ in range(n):
            k = r.random()
            if k < 0.4: b += bytes([r.randrange(256)])
            elif k < 0.6: b += r.choice(WORDS).encode() + b" "
            elif k < 0.8: b += r.choice(["é", "中", "🙂", "ß", "ж"]).encode()[:r.randint(1, 3)]
            else: b += bytes([r.randrange(0x80, 0x100)])
        S.append(("invalid", bytes(b)))
    for b in range(256):   # every single byte
        S.append(("byte", bytes([b])))
    return S


def write_strings(path):
    S = gen_strings()
    with open(path, "w", encoding="utf-8") as f:
        for i, (kind, s) in enumerate(S):
            if isinstance(s, bytes):
                try:
                    s = s.decode("utf-8")     # a valid single byte stays text
                except UnicodeDecodeError:
                    f.write(json.dumps({"i": i, "kind": kind, "hex": s.hex()}) + "\n")
                    continue
            f.write(json.dumps({"i": i, "kind": kind, "text": s}, ensure_ascii=False) + "\n")
    print(f"{len(S)} strings -> {path}")


# ---- expected ids (GPU machine) ------------------------------------------------

def load_strings(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            s = d["text"] if "text" in d else bytes.fromhex(d["hex"]).decode("utf-8", errors="replace")
            out.append((d["i"], s))
    return out


CHATS = [
    [{"role": "user", "content": "Should I buy AAPL?"}],
    [{"role": "system", "content": "You are a careful analyst."}, {"role": "user", "content": "Should I buy AAPL?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "  Hi there \n"},
     {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "NVDA: buy or sell?"}],
    [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "<think>\nreasoning one\n</think>\n\nA1"},
     {"role": "user", "content": "Q2"}],
    [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "<think>\nmine\n</think>\n\nA1"}],
    [{"role": "user", "content": "Évidence: 腾讯 📈 {\"decision\": \"buy\"}\n\n"}],
    [{"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"},
     {"role": "assistant", "content": "a2"}],
]


def chat_cases():
    out = []
    for ci, msgs in enumerate(CHATS):
        for gen in (True, False):
            for think in (True, False):
                out.append({"chat": ci, "add_generation_prompt": gen, "enable_thinking": think, "messages": msgs})
    return out


def render_chats(cfg_path, out_path):
    """Renders chat_cases() with the model's own Jinja chat_template, the way
    transformers does (sandboxed jinja2, trim_blocks, lstrip_blocks)."""
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment
        from jinja2.ext import loopcontrols
    except ImportError:
        return "jinja2 absent: no chat fixture"
    cfg = json.load(open(cfg_path, encoding="utf-8"))
    tpl = cfg["chat_template"]

    def raise_exception(m):
        raise ValueError(m)

    def tok(v):
        return v.get("content") if isinstance(v, dict) else v
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = lambda x, indent=None, ensure_ascii=False: json.dumps(x, indent=indent, ensure_ascii=ensure_ascii)
    env.globals["raise_exception"] = raise_exception
    t = env.from_string(tpl)
    n = 0
    with open(out_path, "w", encoding="utf-8") as f:
        for case in chat_cases():
            try:
                text = t.render(messages=case["messages"], add_generation_prompt=case["add_generation_prompt"],
                                enable_thinking=case["enable_thinking"], bos_token=tok(cfg.get("bos_token")) or "",
                                eos_token=tok(cfg.get("eos_token")) or "")
            except Exception as e:   # e.g. Gemma's alternation rule
                text = None
                case = dict(case, error=str(e))
            f.write(json.dumps(dict(case, text=text), ensure_ascii=False) + "\n")
            n += 1
    return f"{n} chat renderings -> {out_path}"


def special_delta(ids, sp):
    """What add_special_tokens=True adds, compactly: {"sp_pre": [..],
    "sp_post": [..]} when sp == sp_pre + ids + sp_post, else {"ids_sp": sp}."""
    if sp == ids:
        return {}
    for a in range(len(sp) - len(ids) + 1):
        if sp[a:a + len(ids)] == ids:
            return {"sp_pre": sp[:a], "sp_post": sp[a + len(ids):]}
    return {"ids_sp": sp}


def expected(args):
    from tokenizers import Tokenizer
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    strings = load_strings(args["strings"])
    outdir = args["out"]
    os.makedirs(outdir, exist_ok=True)
    report = []
    for spec in args["tok"]:
        name, path = spec.split("=", 1)
        tok = Tokenizer.from_file(path)
        with open(os.path.join(outdir, f"expected_{name}.jsonl"), "w") as f:
            for i, s in strings:
                ids = tok.encode(s, add_special_tokens=False).ids
                d = {"i": i, "ids": ids}
                sp = tok.encode(s, add_special_tokens=True).ids
                d.update(special_delta(ids, sp))
                f.write(json.dumps(d, separators=(",", ":")) + "\n")
        report.append(f"{name}: {len(strings)} strings encoded")
        cfg = os.path.join(os.path.dirname(path), "tokenizer_config.json")
        if os.path.exists(cfg):
            report.append(render_chats(cfg, os.path.join(outdir, f"chat_{name}.jsonl")))
        if args.get("bench_text"):
            with open(args["bench_text"], encoding="utf-8") as bf:
                prompts = [json.loads(line) for line in bf]
            nbytes = sum(len(p.encode()) for p in prompts)
            best = None
            for rep in range(3):
                t0 = time.perf_counter(); ntok = 0
                for p in prompts:
                    ntok += len(tok.encode(p, add_special_tokens=False).ids)
                dt = time.perf_counter() - t0
                best = dt if best is None or dt < best else best
            report.append(f"bench hf {name}: {nbytes} bytes {len(prompts)} prompts {ntok} tokens "
                          f"best of 3 {best:.3f} s = {nbytes / best / 1e6:.2f} MB/s {ntok / best / 1e6:.3f} Mtok/s "
                          f"(tokenizers {__import__('tokenizers').__version__}, one thread, encode() loop)")
    with open(os.path.join(outdir, "bench_hf.txt"), "w") as f:
        f.write("\n".join(report) + "\n")
    print("\n".join(report))


# ---- differential test against the C encoder (GPU machine) ---------------------

RANGES = [  # (weight, lo, hi): code point ranges the random strings draw from
    (30, 0x20, 0x7E), (6, 0x09, 0x0D), (2, 0x00, 0x1F), (4, 0xA0, 0xFF), (4, 0x300, 0x36F), (3, 0x370, 0x3FF),
    (3, 0x400, 0x4FF), (2, 0x590, 0x5FF), (3, 0x600, 0x6FF), (3, 0x900, 0x97F), (2, 0xE00, 0xE7F),
    (2, 0x1100, 0x11FF), (3, 0xAC00, 0xD7A3), (6, 0x4E00, 0x9FFF), (2, 0x3000, 0x30FF), (1, 0x20000, 0x2A6DF),
    (4, 0x1F300, 0x1FAFF), (1, 0x1F1E6, 0x1F1FF), (1, 0x200B, 0x200F), (1, 0x2028, 0x202F), (1, 0xFE00, 0xFE0F),
    (1, 0xFF00, 0xFFEF), (1, 0x1D400, 0x1D7FF), (1, 0xE000, 0xE0FF), (1, 0x2000, 0x206F), (1, 0x0378, 0x037F),
    (1, 0x10000, 0x10FFFF), (1, 0x85, 0x85), (1, 0x2070, 0x209F), (1, 0x2150, 0x218F), (1, 0x0660, 0x0669),
]
PIECES = ["'s", "'S", "'t", "'re", "'VE", "'m", "'ll", "'d", " ", "  ", "\n", "\r\n", "\t", "123", "4567",
          "<|im_start|>", "<|im_end|>", "<think>", "<|eot_id|>", "<bos>", "<start_of_turn>", "<|", "|>", "...",
          "\u00e9", "e\u0301", "\u1100\u1161\u11a8", "\U0001F469\u200d\U0001F4BB", "\u2581", "\u0120"]


def random_bytes(r):
    total = sum(w for w, _, _ in RANGES)
    out = []
    for _ in range(r.choice([1, 2, 5, 20, 60, 200])):
        k = r.random()
        if k < 0.15:
            out.append(r.choice(PIECES).encode())
        elif k < 0.17:
            out.append(bytes([r.randrange(0x80, 0x100)]))          # stray invalid byte
        else:
            x = r.uniform(0, total)
            for w, lo, hi in RANGES:
                x -= w
                if x <= 0:
                    break
            cp = r.randint(lo, hi)
            if 0xD800 <= cp <= 0xDFFF:
                cp = 0xFFFD
            out.append(chr(cp).encode("utf-8"))
    return b"".join(out)


def diff(args):
    import ctypes
    from tokenizers import Tokenizer

    class Ids(ctypes.Structure):
        _fields_ = [("ids", ctypes.POINTER(ctypes.c_int32)), ("n", ctypes.c_size_t), ("cap", ctypes.c_size_t)]
    lib = ctypes.CDLL(args["lib"])
    lib.tok_load.restype = ctypes.c_void_p
    lib.tok_load.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.tok_encode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int, ctypes.POINTER(Ids)]
    secs = float(args.get("seconds", 40))
    outdir = args["out"]
    report = []
    for spec in args["tok"]:
        name, path = spec.split("=", 1)
        err = ctypes.create_string_buffer(512)
        t = lib.tok_load(path.encode(), err, 512)
        if not t:
            report.append(f"{name}: C load failed: {err.value.decode()}")
            continue
        hf = Tokenizer.from_file(path)
        r = random.Random(int(args.get("seed", 7)))
        ids = Ids()
        n = bad = 0
        t0 = time.time()
        with open(os.path.join(outdir, f"diff_{name}.jsonl"), "w") as f:
            while time.time() - t0 < secs:
                b = random_bytes(r)
                want = hf.encode(b.decode("utf-8", errors="replace"), add_special_tokens=False).ids
                if lib.tok_encode(t, b, len(b), 0, ctypes.byref(ids)) != 0:
                    got = None
                else:
                    got = [ids.ids[i] for i in range(ids.n)]
                n += 1
                if got != want:
                    bad += 1
                    if bad <= 200:
                        f.write(json.dumps({"hex": b.hex(), "want": want, "got": got}) + "\n")
        report.append(f"diff {name}: {n} random strings, {bad} mismatches ({secs:.0f} s, seed {args.get('seed', 7)})")
    with open(os.path.join(outdir, "diff_report.txt"), "w") as f:
        f.write("\n".join(report) + "\n")
    print("\n".join(report))


def main(argv):
    if len(argv) >= 2 and argv[0] == "strings":
        write_strings(argv[1]); return 0
    if argv and argv[0] in ("expected", "diff"):
        a = {"tok": []}
        it = iter(argv[1:])
        for k in it:
            v = next(it)
            if k == "--tok": a["tok"].append(v)
            else: a[k[2:].replace("-", "_")] = v
        (expected if argv[0] == "expected" else diff)(a); return 0
    print(__doc__); return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

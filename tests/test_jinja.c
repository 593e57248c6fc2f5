/* tests/test_jinja.c — text/jinja.c: the chat templates of ten model families
 * (the JSON files in tests/data/chat_templates) rendered byte for byte as jinja2 renders
 * them with transformers' settings (expected.jsonl, made by
 * tests/gpu/chat_template_ref.py, which also checks it against transformers'
 * apply_chat_template); the same through chat_tpl (text/chat_template.h);
 * and the engine's own behaviour: errors with line and column, undefined
 * values, loops and scoping, filters, whitespace control, operators.  The
 * expected strings of the unit cases were checked against jinja2 3.1.
 * Writes under build/tmp/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"

#include <cJSON.h>
#include <pthread.h>
#include <sys/stat.h>
#include "text/chat_template.h"
#include "text/jinja.h"

#define DIR "tests/data/chat_templates"
#define NOW 1721995200   /* 2024-07-26 12:00 UTC */

static char err[1024];

/* Renders src with vars (JSON text, NULL = none) at NOW; NULL on error (message in err). */
static char *render(const char *src, const char *vars_json) {
    cJSON *vars = vars_json ? cJSON_Parse(vars_json) : NULL;
    if (vars_json) assert_non_null(vars);
    err[0] = 0;
    jinja_template *t = jinja_compile(src, strlen(src), err, sizeof err);
    char *out = t ? jinja_render(t, vars, NOW, NULL, err, sizeof err) : NULL;
    jinja_free(t);
    cJSON_Delete(vars);
    return out;
}

static void expect(const char *src, const char *vars, const char *want) {
    char *got = render(src, vars);
    if (!got) fail_msg("render failed: %s\n  template: %s", err, src);
    if (strcmp(got, want)) fail_msg("template: %s\n  want: [%s]\n  got:  [%s]", src, want, got);
    free(got);
}

/* Fails to compile or render, with a message containing want. */
static void expect_error(const char *src, const char *vars, const char *want) {
    char *got = render(src, vars);
    if (got) fail_msg("template %s rendered [%s], wanted the error '%s'", src, got, want);
    if (!strstr(err, want)) fail_msg("template %s: error [%s] lacks '%s'", src, err, want);
}

/* ---- the real templates against jinja2 / transformers ------------------------------ */

/* The variables apply_chat_template passes: the special tokens of the config,
 * messages, tools, documents, add_generation_prompt and the extra kwargs. */
static cJSON *vars_for(const cJSON *cfg, const cJSON *row) {
    static const char *keys[] = {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"};
    cJSON *v = cJSON_CreateObject();
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(cfg, keys[i]);
        if (cJSON_IsString(t)) cJSON_AddStringToObject(v, keys[i], t->valuestring);
    }
    cJSON_AddItemToObject(v, "messages", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(row, "messages"), 1));
    cJSON_AddItemToObject(v, "tools", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(row, "tools"), 1));
    cJSON_AddNullToObject(v, "documents");
    cJSON_AddItemToObject(v, "add_generation_prompt",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(row, "add_generation_prompt"), 1));
    const cJSON *kw;
    cJSON_ArrayForEach(kw, cJSON_GetObjectItemCaseSensitive(row, "kwargs"))
        cJSON_AddItemToObject(v, kw->string, cJSON_Duplicate(kw, 1));
    return v;
}

static cJSON *load_json(const char *path) {
    char *s = tu_slurp(path);
    if (!s) fail_msg("cannot read %s", path);
    cJSON *j = cJSON_Parse(s);
    free(s);
    if (!j) fail_msg("%s: malformed JSON", path);
    return j;
}

/* Checks one row; returns 1 when it matches (diagnostic on stderr otherwise). */
static int check_row(const char *tname, const char *cid, const cJSON *row, const char *got, const char *gerr) {
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(row, "expected");
    const cJSON *want_err = cJSON_GetObjectItemCaseSensitive(row, "error");
    if (cJSON_IsString(want_err)) {
        if (!got && strstr(gerr, want_err->valuestring)) return 1;
        fprintf(stderr, "%s/%s: wanted the error [%s], got %s [%s]\n", tname, cid, want_err->valuestring,
                got ? "output" : "error", got ? got : gerr);
        return 0;
    }
    if (!got) { fprintf(stderr, "%s/%s: error %s\n", tname, cid, gerr); return 0; }
    if (!strcmp(got, want->valuestring)) return 1;
    size_t k = 0;
    while (got[k] && got[k] == want->valuestring[k]) k++;
    fprintf(stderr, "%s/%s: differs at byte %zu:\n  want: [%.60s]\n  got:  [%.60s]\n", tname, cid, k,
            want->valuestring + k, got + k);
    return 0;
}

static cJSON *rows(void) {
    char *s = tu_slurp(DIR "/expected.jsonl");
    if (!s) fail_msg("cannot read " DIR "/expected.jsonl");
    cJSON *all = cJSON_CreateArray();
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *r = cJSON_Parse(line);
        if (!r) fail_msg("expected.jsonl: malformed line");
        cJSON_AddItemToArray(all, r);
    }
    free(s);
    return all;
}

static void test_expected_renderings(void **st) {
    (void)st;
    cJSON *all = rows(), *row;
    const char *names[16];
    int pass[16] = {0}, total[16] = {0}, nt = 0;
    cJSON_ArrayForEach(row, all) {
        const char *tname = cJSON_GetObjectItemCaseSensitive(row, "template")->valuestring;
        const char *cid = cJSON_GetObjectItemCaseSensitive(row, "case")->valuestring;
        int k = 0;
        while (k < nt && strcmp(names[k], tname)) k++;
        if (k == nt) { assert_true(nt < 16); names[nt++] = tname; }
        char path[512];
        snprintf(path, sizeof path, DIR "/%s.json", tname);
        cJSON *cfg = load_json(path), *vars = vars_for(cfg, row);
        const char *src = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template")->valuestring;
        char e[512] = "";
        jinja_template *t = jinja_compile(src, strlen(src), e, sizeof e);
        if (!t) fail_msg("%s: %s", tname, e);
        time_t now = (time_t)cJSON_GetObjectItemCaseSensitive(row, "now")->valuedouble;
        char *got = jinja_render(t, vars, now, NULL, e, sizeof e);
        pass[k] += check_row(tname, cid, row, got, e);
        total[k]++;
        free(got);
        jinja_free(t);
        cJSON_Delete(vars);
        cJSON_Delete(cfg);
    }
    int bad = 0;
    for (int k = 0; k < nt; k++) {
        fprintf(stderr, "%-30s %2d/%2d byte for byte\n", names[k], pass[k], total[k]);
        bad += total[k] - pass[k];
    }
    cJSON_Delete(all);
    assert_int_equal(nt, 10);
    assert_int_equal(bad, 0);
}

/* The same cases through chat_tpl (role / content messages, no tools). */
static void test_chat_tpl_apply(void **st) {
    (void)st;
    cJSON *all = rows(), *row;
    int checked = 0, bad = 0;
    cJSON_ArrayForEach(row, all) {
        const char *tname = cJSON_GetObjectItemCaseSensitive(row, "template")->valuestring;
        const cJSON *kw = cJSON_GetObjectItemCaseSensitive(row, "kwargs");
        const cJSON *think = cJSON_GetObjectItemCaseSensitive(kw, "enable_thinking");
        if (!cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(row, "tools")) || cJSON_GetArraySize(kw) > (think ? 1 : 0))
            continue;
        char path[512];
        snprintf(path, sizeof path, DIR "/%s.json", tname);
        char *cfgtext = tu_slurp(path);
        int dated = cfgtext && strstr(cfgtext, "strftime_now");   /* chat_tpl renders at the current time */
        free(cfgtext);
        if (dated) continue;
        char e[512] = "";
        chat_tpl *t = chat_tpl_open(NULL, path, e, sizeof e);
        if (!t) fail_msg("%s", e);
        const cJSON *ms = cJSON_GetObjectItemCaseSensitive(row, "messages"), *m;
        chat_msg msgs[8];
        int n = 0;
        cJSON_ArrayForEach(m, ms) {
            msgs[n].role = cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring;
            msgs[n++].content = cJSON_GetObjectItemCaseSensitive(m, "content")->valuestring;
        }
        int gen = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(row, "add_generation_prompt"));
        char *got = chat_tpl_apply(t, msgs, n, gen, think ? cJSON_IsTrue(think) : -1, NULL, e, sizeof e);
        bad += !check_row(tname, cJSON_GetObjectItemCaseSensitive(row, "case")->valuestring, row, got, e);
        checked++;
        free(got);
        chat_tpl_free(t);
    }
    cJSON_Delete(all);
    assert_true(checked >= 100);
    assert_int_equal(bad, 0);
}

/* The study's model: its own template has no think block, the hybrid one adds an empty one. */
static void test_qwen3_2507_no_think_block(void **st) {
    (void)st;
    char e[512];
    chat_tpl *own = chat_tpl_open(DIR "/qwen3-30b-a3b-instruct-2507.json", NULL, e, sizeof e);
    chat_tpl *hybrid = chat_tpl_open(NULL, DIR "/qwen3.json", e, sizeof e);
    assert_non_null(own);
    assert_non_null(hybrid);
    chat_msg m = {"user", "Decide."};
    char *a = chat_tpl_apply(own, &m, 1, 1, 0, NULL, e, sizeof e), *b = chat_tpl_apply(hybrid, &m, 1, 1, 0, NULL, e, sizeof e);
    assert_string_equal(a, "<|im_start|>user\nDecide.<|im_end|>\n<|im_start|>assistant\n");
    assert_string_equal(b, "<|im_start|>user\nDecide.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
    assert_int_equal(chat_tpl_kind(own), CHAT_CHATML);
    assert_string_equal(chat_tpl_stop(own), "<|im_end|>");
    free(a); free(b);
    chat_tpl_free(own); chat_tpl_free(hybrid);
}

/* Named families, a Jinja file, configs without a template, bad templates. */
static void test_chat_tpl_open(void **st) {
    (void)st;
    char e[512];
    mkdir("build", 0755); mkdir("build/tmp", 0755);
    chat_tpl *t = chat_tpl_open("llama3.1", NULL, e, sizeof e);
    assert_non_null(t);
    assert_string_equal(chat_tpl_name(t), "llama3.1");
    assert_string_equal(chat_tpl_stop(t), "<|eot_id|>");
    chat_tpl_free(t);
    FILE *f = fopen("build/tmp/jinja_tpl.jinja", "w");
    fputs("{{ bos_token }}{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}", f);
    fclose(f);
    t = chat_tpl_open("build/tmp/jinja_tpl.jinja", DIR "/mistral-7b-instruct-v0.3.json", e, sizeof e);
    assert_non_null(t);
    chat_msg m = {"user", "hi"};
    char *s = chat_tpl_apply(t, &m, 1, 1, -1, NULL, e, sizeof e);
    assert_string_equal(s, "<s>[user:hi]");
    assert_int_equal(chat_tpl_kind(t), CHAT_UNKNOWN);
    assert_string_equal(chat_tpl_stop(t), "</s>");   /* no known family: the config's eos_token */
    free(s);
    chat_tpl_free(t);
    f = fopen("build/tmp/jinja_cfg_none.json", "w");
    fputs("{\"eos_token\": \"</s>\"}", f);
    fclose(f);
    assert_null(chat_tpl_open(NULL, "build/tmp/jinja_cfg_none.json", e, sizeof e));
    assert_non_null(strstr(e, "no chat_template"));
    f = fopen("build/tmp/jinja_cfg_bad.json", "w");
    fputs("{\"chat_template\": \"line one\\n{% for m in messages %}{{ m.role }\"}", f);
    fclose(f);
    assert_null(chat_tpl_open(NULL, "build/tmp/jinja_cfg_bad.json", e, sizeof e));
    assert_non_null(strstr(e, "jinja_cfg_bad.json: chat_template line 2, column 34"));
    assert_null(chat_tpl_open("no-such-family", NULL, e, sizeof e));
    assert_non_null(strstr(e, "not a template name"));
    /* a template that raises: gemma-2 refuses a system turn */
    t = chat_tpl_open(NULL, DIR "/gemma2-2b-it.json", e, sizeof e);
    assert_non_null(t);
    chat_msg two[2] = {{"system", "s"}, {"user", "u"}};
    assert_null(chat_tpl_apply(t, two, 2, 1, -1, NULL, e, sizeof e));
    assert_string_equal(e, "System role not supported");
    chat_tpl_free(t);
}

/* ---- the engine ------------------------------------------------------------------------- */

static void test_errors_line_col(void **st) {
    (void)st;
    expect_error("{{ x + }}", NULL, "line 1, column 8: unexpected '}}'");
    expect_error("a\nb\n  {% if x %}\n", NULL, "line 3, column 13: unexpected end of template: 'if' at line 3 needs 'endif'");
    expect_error("{% for x in y %}\n{% endif %}", NULL, "line 2, column 4: unexpected 'endif' (expected 'endfor')");
    expect_error("x\n{{ 'abc }}", NULL, "line 2, column 4: unterminated string");
    expect_error("{% macro m() %}{% endmacro %}", NULL, "line 1, column 4: unsupported tag 'macro'");
    expect_error("\n\n  {{ x | nosuch }}", NULL, "line 3, column 10: no filter named 'nosuch'");
    expect_error("{{ x is nosuch }}", NULL, "line 1, column 9: no test named 'nosuch'");
    expect_error("{% break %}", NULL, "line 1, column 4: 'break' outside a for loop");
    expect_error("{{ (1 }}", NULL, "line 1, column 7: unexpected '}', expected ')'");
    expect_error("{% frobnicate %}", NULL, "line 1, column 4: unknown tag 'frobnicate'");
    expect_error("{# open", NULL, "line 1, column 1: missing end of comment tag");
    expect_error("{{ 1 ! 2 }}", NULL, "line 1, column 6: unexpected character '!'");
    /* render-time errors carry the position of the failing operation */
    expect_error("\n{{ 1 / 0 }}", NULL, "line 2, column 6: division by zero");
    expect_error("{{ 'a' + 1 }}", NULL, "line 1, column 8: unsupported operand type(s) for +: 'str' and 'int'");
    expect_error("{{ raise_exception('Roles must alternate') }}", NULL, "Roles must alternate");
    /* limits instead of undefined behaviour: 64-bit integers, nesting, output size */
    expect_error("{{ 9223372036854775807 + 1 }}", NULL, "integer overflow");
    expect_error("{{ (-9223372036854775807 - 1) // -1 }}", NULL, "integer overflow");
    expect_error("{{ 2 ** 64 }}", NULL, "integer overflow");
    expect_error("{{ 'ab' * 100000000 }}", NULL, "longer than 64 MiB");
    char deep[4200] = "{{ ";
    for (int i = 0; i < 1000; i++) strcat(deep, "not ");
    strcat(deep, "x }}");
    expect_error(deep, NULL, "nested too deep");
    char *s = render("{{ raise_exception('exact') }}", NULL);
    assert_null(s);
    assert_string_equal(err, "exact");
}

static void test_undefined(void **st) {
    (void)st;
    expect("{{ missing }}|{{ missing is defined }}|{{ d.nokey is defined }}|{% for x in missing %}x{% endfor %}|"
           "{{ missing|length }}|{{ d.nokey is none }}", "{\"d\": {\"k\": 1}}", "|False|False||0|False");
    expect_error("{{ missing.attr }}", NULL, "line 1, column 11: 'missing' is undefined");
    expect_error("{{ d.nokey.deeper }}", "{\"d\": {}}", "'dict object' has no attribute 'nokey'");
    expect_error("{{ missing + 1 }}", NULL, "'missing' is undefined");
    expect_error("{{ messages[0]['role'] }}", "{\"messages\": []}", "list index out of range");
    expect("{{ 'x' if false }}|{{ m.content.content is defined }}", "{\"m\": {\"content\": \"s\"}}", "|False");
}

static void test_loops(void **st) {
    (void)st;
    expect("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}"
           "{{ loop.last }}{{ loop.length }}|{% endfor %}", "{\"xs\": [\"a\", \"b\"]}",
           "1021TrueFalse2|2110FalseTrue2|");
    expect("{% for x in xs %}{{ loop.previtem | default('^') }}{{ x }}{{ loop.nextitem | default('$') }}"
           "{{ loop.cycle('-', '+') }}{% endfor %}", "{\"xs\": [\"a\", \"b\", \"c\"]}", "^ab-abc+bc$-");
    expect("{% for x in xs if x > 1 %}{{ x }}{{ ',' if not loop.last }}{% else %}none{% endfor %}|"
           "{% for x in xs if x > 9 %}{{ x }}{% else %}none{% endfor %}", "{\"xs\": [1, 2, 3]}", "2,3|none");
    expect("{% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}"
           "{% endfor %}", "{\"xs\": [1, 2, 3, 4, 5]}", "13");
    expect("{% for row in rows %}{% for x in row %}{{ loop.index }}{{ x }}{% endfor %}/{{ loop.index }};{% endfor %}",
           "{\"rows\": [[\"a\", \"b\"], [\"c\"]]}", "1a2b/1;1c/2;");
    /* a set inside a loop is gone after it (and each iteration starts afresh); a namespace keeps it */
    expect("{% set n = 0 %}{% set ns = namespace(n=0) %}{% for x in xs %}{% set n = n + x %}{% set ns.n = ns.n + x %}"
           "{% endfor %}{{ n }} {{ ns.n }}", "{\"xs\": [1, 2, 3]}", "0 6");
    expect("{% set a = 0 %}{% for i in [1,2,3] %}{{ a }}{% set a = a + i %}{{ a }};{% endfor %}{{ a }}", NULL,
           "01;02;03;0");
    expect("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}",
           "{\"d\": {\"b\": 1, \"a\": [2, \"x\"]}}", "b=1;a=[2, 'x'];ba");
    expect("{% for m in ms[::-1] %}{{ m }}{% endfor %}{% set ms = ms[1:] %}{{ ms }}", "{\"ms\": [1, 2, 3]}", "321[2, 3]");
}

static void test_filters(void **st) {
    (void)st;
    expect("{{ s|trim }}|{{ s|length }}|{{ s.strip()|length }}|{{ s.lstrip() }}|{{ s.rstrip()|length }}",
           "{\"s\": \"\\u3000\\u00a0 h\\u00e9llo w\\u00f6rld \\u2028\\t\"}",
           "h\xc3\xa9llo w\xc3\xb6rld|17|11|h\xc3\xa9llo w\xc3\xb6rld \xe2\x80\xa8\t|14");
    expect("{{ d|tojson }}\n{{ d|tojson(indent=2) }}\n{{ d|tojson(sort_keys=true, separators=(',', ':')) }}",
           "{\"d\": {\"z\": \"\\u00e9 \\\"q\\\" \\\\ \\n\\u0001\", \"a\": [1, 2.5, null, true, false, {}, []]}}",
           "{\"z\": \"\xc3\xa9 \\\"q\\\" \\\\ \\n\\u0001\", \"a\": [1, 2.5, null, true, false, {}, []]}\n"
           "{\n  \"z\": \"\xc3\xa9 \\\"q\\\" \\\\ \\n\\u0001\",\n  \"a\": [\n    1,\n    2.5,\n    null,\n    true,\n"
           "    false,\n    {},\n    []\n  ]\n}\n"
           "{\"a\":[1,2.5,null,true,false,{},[]],\"z\":\"\xc3\xa9 \\\"q\\\" \\\\ \\n\\u0001\"}");
    expect("{{ xs|join(', ') }}|{{ ms|selectattr('role', 'equalto', 'user')|map(attribute='content')|join }}|"
           "{{ ms|rejectattr('role', 'equalto', 'user')|list|length }}|{{ ms|map(attribute='role')|unique|list }}",
           "{\"xs\": [1, \"a\", null], \"ms\": [{\"role\": \"user\", \"content\": \"u1\"}, {\"role\": \"assistant\", "
           "\"content\": \"a1\"}, {\"role\": \"user\", \"content\": \"u2\"}]}",
           "1, a, None|u1u2|1|['user', 'assistant']");
    expect("{{ xs|first }}{{ xs|last }}{{ missing|default('d') }}{{ ''|default('e', true) }}{{ 'a-b'|replace('-', '+') }}"
           "{{ 'MiXed'|upper }}{{ 'MiXed'|lower }}{{ 'hello big-world'|title }}{{ '42'|int + 1 }}{{ 'x'|int }}"
           "{{ xs|reverse|list }}{{ xs|string }}", "{\"xs\": [3, \"b\", 1]}",
           "31dea+bMIXEDmixedHello Big-World430[1, 'b', 3][3, 'b', 1]");
}

static void test_operators_and_values(void **st) {
    (void)st;
    expect("{{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1e16 }} {{ 0.1 + 0.2 }} {{ 1.5e-5 }} "
           "{{ 3.0 }} {{ 1 + true }} {{ 'a' ~ 1 ~ none ~ 2.0 }} {{ 'ab' * 2 }}", NULL,
           "3.5 3 -4 2 1024 1e+16 0.30000000000000004 1.5e-05 3.0 2 a1None2.0 abab");
    expect("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' in 'cat' }} {{ 2 not in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 1 == 1.0 }} "
           "{{ [1, [2]] == [1, [2]] }} {{ none is none }} {{ 'x' if 0 else 'y' }}", NULL,
           "True False True False True True True True y");
    expect("{{ s[1:4] }}|{{ s[-2:] }}|{{ s[::-1] }}|{{ s[0] }}|{{ xs[1:] }}|{{ xs[::2] }}|{{ xs[-1] }}|{{ s.split(' ') }}|"
           "{{ s.split() }}|{{ s.startswith('h\xc3\xa9') }}{{ s.endswith(('x', '\xc3\xb6')) }}",
           "{\"s\": \"h\\u00e9llo w\\u00f6rld \\u00f6\", \"xs\": [1, 2, 3, 4]}",
           "\xc3\xa9ll| \xc3\xb6|\xc3\xb6 dlr\xc3\xb6w oll\xc3\xa9h|h|[2, 3, 4]|[1, 3]|4|"
           "['h\xc3\xa9llo', 'w\xc3\xb6rld', '\xc3\xb6']|['h\xc3\xa9llo', 'w\xc3\xb6rld', '\xc3\xb6']|TrueTrue");
    expect("{{ (1, 2) }} {{ {'a': none, 'b': true} }} {{ [\"it's\", 'x\"y'] }}", NULL,
           "(1, 2) {'a': None, 'b': True} [\"it's\", 'x\"y']");
    expect("{{ strftime_now('%d %b %Y') }} {{ strftime_now('%Y-%m-%d') }}", NULL, "26 Jul 2024 2024-07-26");
}

static void test_whitespace(void **st) {
    (void)st;
    expect("  {% if true %}\n  a\n  {% endif %}\n  {%- if true %}\n  b\n  {%+ endif %}\n  {#- c #}  x {# d #}\n"
           "{% raw %}{{ raw }}{% endraw %}\n{{- ' y ' -}}\n  z", NULL, "  a\n  b\n    x {{ raw }} y z");
    expect("a\r\nb\rc\n", NULL, "a\nb\nc");                         /* newlines normalised, one trailing dropped */
    expect("{{ 'v' }}\n{% if true %}\nx\n{% endif %}\n\n", NULL, "v\nx\n");
}

/* The serve front end renders from many threads at once. */
static void *render_many(void *arg) {
    const jinja_template *t = arg;
    cJSON *vars = cJSON_Parse("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"add_generation_prompt\": true}");
    char e[256];
    long ok = 0;
    for (int i = 0; i < 300; i++) {
        char *s = jinja_render(t, vars, NOW, NULL, e, sizeof e);
        ok += s && !strcmp(s, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
        free(s);
    }
    cJSON_Delete(vars);
    return (void *)ok;
}

static void test_threads(void **st) {
    (void)st;
    cJSON *cfg = load_json(DIR "/qwen3-30b-a3b-instruct-2507.json");
    const char *src = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template")->valuestring;
    char e[256];
    jinja_template *t = jinja_compile(src, strlen(src), e, sizeof e);
    assert_non_null(t);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, render_many, t);
    long total = 0;
    for (int i = 0; i < 4; i++) { void *r; pthread_join(th[i], &r); total += (long)r; }
    assert_int_equal(total, 1200);
    jinja_free(t);
    cJSON_Delete(cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expected_renderings),
        cmocka_unit_test(test_chat_tpl_apply),
        cmocka_unit_test(test_qwen3_2507_no_think_block),
        cmocka_unit_test(test_chat_tpl_open),
        cmocka_unit_test(test_errors_line_col),
        cmocka_unit_test(test_undefined),
        cmocka_unit_test(test_loops),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_operators_and_values),
        cmocka_unit_test(test_whitespace),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

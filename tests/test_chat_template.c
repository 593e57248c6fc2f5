/* tests/test_chat_template.c — text/chat_template.c: family detection from
 * tokenizer_config.json (the real ones in data/tokenizers/, skipped when
 * absent, and hand-made ones), and rendering compared with what each family's
 * Jinja template produces for the same messages.  Writes under build/tmp/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"

#include <cJSON.h>
#include <sys/stat.h>
#include "text/chat_template.h"
#include "text/tokenizer.h"

static const chat_msg CONV[] = {
    {"system", "You are a careful analyst."},
    {"user", "Should I buy AAPL?"},
    {"assistant", "<think>\nWeigh it.\n</think>\n\n{\"decision\": \"buy\"}"},
    {"user", "  And MSFT?\n"},
};

static char *render(chat_kind k, const chat_msg *m, int n, int gen, int think) {
    size_t need = chat_render(k, m, n, gen, think, NULL, 0);
    assert_true(need != (size_t)-1);
    char *out = malloc(need + 1);
    assert_int_equal(chat_render(k, m, n, gen, think, out, need + 1), need);
    assert_int_equal(strlen(out), need);
    return out;
}

static void test_qwen3(void **st) {
    (void)st;
    char *s = render(CHAT_QWEN3, CONV, 4, 1, 0);
    /* the earlier assistant turn loses its reasoning (before the last query) */
    assert_string_equal(s,
        "<|im_start|>system\nYou are a careful analyst.<|im_end|>\n"
        "<|im_start|>user\nShould I buy AAPL?<|im_end|>\n"
        "<|im_start|>assistant\n{\"decision\": \"buy\"}<|im_end|>\n"
        "<|im_start|>user\n  And MSFT?\n<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n");
    free(s);
    s = render(CHAT_QWEN3, CONV + 1, 1, 1, 1);   /* thinking on: no empty think block */
    assert_string_equal(s, "<|im_start|>user\nShould I buy AAPL?<|im_end|>\n<|im_start|>assistant\n");
    free(s);
    s = render(CHAT_QWEN3, CONV + 1, 2, 0, 1);   /* last turn after the query keeps its reasoning */
    assert_string_equal(s, "<|im_start|>user\nShould I buy AAPL?<|im_end|>\n"
                           "<|im_start|>assistant\n<think>\nWeigh it.\n</think>\n\n{\"decision\": \"buy\"}<|im_end|>\n");
    free(s);
}

static void test_chatml_qwen25(void **st) {
    (void)st;
    char *s = render(CHAT_QWEN25, CONV + 1, 1, 1, 0);
    assert_string_equal(s, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
                           "<|im_start|>user\nShould I buy AAPL?<|im_end|>\n<|im_start|>assistant\n");
    free(s);
    s = render(CHAT_CHATML, CONV + 1, 1, 1, 0);   /* enable_thinking has no effect */
    assert_string_equal(s, "<|im_start|>user\nShould I buy AAPL?<|im_end|>\n<|im_start|>assistant\n");
    free(s);
}

static void test_llama3(void **st) {
    (void)st;
    char *s = render(CHAT_LLAMA3, CONV + 3, 1, 1, 0);
    assert_string_equal(s, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nAnd MSFT?<|eot_id|>"
                           "<|start_header_id|>assistant<|end_header_id|>\n\n");
    free(s);
    s = render(CHAT_LLAMA31, CONV, 2, 0, 0);
    assert_string_equal(s, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                           "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are a careful analyst.<|eot_id|>"
                           "<|start_header_id|>user<|end_header_id|>\n\nShould I buy AAPL?<|eot_id|>");
    free(s);
}

static void test_gemma(void **st) {
    (void)st;
    chat_msg m[] = {{"system", "Be brief."}, {"user", " Hi "}, {"assistant", "Hello"}, {"user", "AAPL?"}};
    char *s = render(CHAT_GEMMA, m, 4, 1, 0);
    assert_string_equal(s, "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
                           "<start_of_turn>model\nHello<end_of_turn>\n<start_of_turn>user\nAAPL?<end_of_turn>\n"
                           "<start_of_turn>model\n");
    free(s);
}

static void test_truncation_and_errors(void **st) {
    (void)st;
    char small[10];
    size_t need = chat_render(CHAT_CHATML, CONV + 1, 1, 1, 0, small, sizeof small);
    assert_true(need > sizeof small);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, "<|im_star", 9);
    chat_msg bad = {"user", NULL};
    assert_int_equal(chat_render(CHAT_CHATML, &bad, 1, 1, 0, small, sizeof small), (size_t)-1);
    assert_int_equal(chat_render(CHAT_UNKNOWN, CONV, 1, 1, 0, small, sizeof small), (size_t)-1);
    assert_int_equal(chat_kind_parse("llama3"), CHAT_LLAMA3);
    assert_int_equal(chat_kind_parse("qwen3"), CHAT_QWEN3);
    assert_int_equal(chat_kind_parse("jinja"), CHAT_UNKNOWN);
    for (int k = CHAT_CHATML; k <= CHAT_GEMMA; k++) assert_int_equal(chat_kind_parse(chat_kind_name((chat_kind)k)), k);
}

static const char *write_tmp(const char *name, const char *text) {
    static char p[256];
    mkdir("build", 0755); mkdir("build/tmp", 0755);
    snprintf(p, sizeof p, "build/tmp/%s", name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f); fclose(f);
    return p;
}

static void test_detect_files(void **st) {
    (void)st;
    char err[512]; chat_kind k;
    const char *p = write_tmp("cfg_unknown.json", "{\"chat_template\": \"{% for m in messages %}[[{{ m.content }}]]{% endfor %}\"}");
    assert_int_equal(chat_detect(p, &k, err, sizeof err), -1);
    assert_non_null(strstr(err, "cfg_unknown.json"));
    assert_non_null(strstr(err, "--chat-template"));
    p = write_tmp("cfg_none.json", "{\"eos_token\": \"</s>\"}");
    assert_int_equal(chat_detect(p, &k, err, sizeof err), -1);
    assert_non_null(strstr(err, "no chat_template"));
    p = write_tmp("cfg_bad.json", "{\"chat_template\": ");
    assert_int_equal(chat_detect(p, &k, err, sizeof err), -1);
    assert_non_null(strstr(err, "malformed"));
    p = write_tmp("cfg_list.json", "[]");
    assert_int_equal(chat_detect(p, &k, err, sizeof err), -1);
    p = write_tmp("cfg_list2.json", "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"x\"},"
                                    "{\"name\": \"default\", \"template\": \"<start_of_turn>{{x}}\"}]}");
    assert_int_equal(chat_detect(p, &k, err, sizeof err), 0);
    assert_int_equal(k, CHAT_GEMMA);
    struct { const char *dir; chat_kind want; } real[] = {
        {"data/tokenizers/qwen3", CHAT_QWEN3}, {"data/tokenizers/llama3", CHAT_LLAMA3}, {"data/tokenizers/gemma3", CHAT_GEMMA}};
    for (int i = 0; i < 3; i++) {
        char cp[256]; snprintf(cp, sizeof cp, "%s/tokenizer_config.json", real[i].dir);
        if (access(cp, R_OK) != 0) { fprintf(stderr, "skip %s: absent\n", cp); continue; }
        if (chat_detect(cp, &k, err, sizeof err) != 0) fail_msg("%s", err);
        assert_int_equal(k, real[i].want);
    }
}

/* The rendered Qwen3 prompt tokenizes with the special tokens as single ids. */
static void test_qwen3_tokens(void **st) {
    (void)st;
    TU_REQUIRE_FILE("data/tokenizers/qwen3/tokenizer.json");
    char err[512];
    tok_tokenizer *t = tok_load("data/tokenizers/qwen3/tokenizer.json", err, sizeof err);
    if (!t) fail_msg("%s", err);
    char *s = render(CHAT_QWEN3, CONV + 1, 1, 1, 0);
    tok_ids ids = {0};
    assert_int_equal(tok_encode(t, s, strlen(s), 0, &ids), 0);
    int32_t im_start = tok_special_id(t, "<|im_start|>"), im_end = tok_special_id(t, "<|im_end|>");
    int32_t think = tok_special_id(t, "<think>"), end_think = tok_special_id(t, "</think>");
    assert_int_equal(ids.ids[0], im_start);
    int n_start = 0, n_end = 0, n_think = 0;
    for (size_t i = 0; i < ids.n; i++) {
        n_start += ids.ids[i] == im_start; n_end += ids.ids[i] == im_end;
        n_think += ids.ids[i] == think || ids.ids[i] == end_think;
    }
    assert_int_equal(n_start, 2); assert_int_equal(n_end, 1); assert_int_equal(n_think, 2);
    char back[512];
    tok_decode(t, ids.ids, ids.n, 0, back, sizeof back);
    assert_string_equal(back, s);
    free(s); tok_ids_free(&ids); tok_free(t);
}

/* Every rendering made by the family's own Jinja template (jinja2, as
 * transformers runs it; scripts/gpu/tokenizer_fixture.py) must match. */
static void check_jinja(const char *name, chat_kind kind) {
    char p[256];
    snprintf(p, sizeof p, "tests/data/tokenizer/chat_%s.jsonl", name);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    char *line = NULL; size_t lcap = 0;
    int checked = 0;
    while (getline(&line, &lcap, f) > 0) {
        cJSON *j = cJSON_Parse(line);
        assert_non_null(j);
        const cJSON *text = cJSON_GetObjectItem(j, "text"), *msgs = cJSON_GetObjectItem(j, "messages");
        int gen = cJSON_IsTrue(cJSON_GetObjectItem(j, "add_generation_prompt"));
        int think = cJSON_IsTrue(cJSON_GetObjectItem(j, "enable_thinking"));
        /* this Llama-3 template appends the assistant header unconditionally;
         * we follow add_generation_prompt like the later Llama-3 templates */
        if (!cJSON_IsString(text) || (kind == CHAT_LLAMA3 && !gen)) { cJSON_Delete(j); continue; }
        chat_msg m[16]; int n = 0; const cJSON *x;
        cJSON_ArrayForEach(x, msgs) {
            m[n].role = cJSON_GetObjectItem(x, "role")->valuestring;
            m[n].content = cJSON_GetObjectItem(x, "content")->valuestring;
            n++;
        }
        char *s = render(kind, m, n, gen, think);
        if (strcmp(s, text->valuestring))
            fail_msg("%s case %d (gen %d, think %d):\n got [%s]\nwant [%s]", name, cJSON_GetObjectItem(j, "chat")->valueint,
                     gen, think, s, text->valuestring);
        free(s);
        checked++;
        cJSON_Delete(j);
    }
    free(line); fclose(f);
    fprintf(stderr, "%s: %d renderings match Jinja\n", name, checked);
    assert_true(checked >= 10);
}
static void test_jinja_reference(void **st) {
    (void)st;
    check_jinja("qwen3", CHAT_QWEN3);
    check_jinja("llama3", CHAT_LLAMA3);
    check_jinja("gemma3", CHAT_GEMMA);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qwen3),
        cmocka_unit_test(test_chatml_qwen25),
        cmocka_unit_test(test_llama3),
        cmocka_unit_test(test_gemma),
        cmocka_unit_test(test_truncation_and_errors),
        cmocka_unit_test(test_detect_files),
        cmocka_unit_test(test_qwen3_tokens),
        cmocka_unit_test(test_jinja_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

// tests/openai/client.mjs — engine/serve (the mock backend) through the
// official OpenAI client for Node (npm package `openai`): chat, streaming,
// completions, n = 2, logprobs, stop, errors (400, 401) and HEAD /health.
// Run by tests/openai/run.sh, which starts the server and passes its port
// and API key (PAGESIM_PORT, PAGESIM_KEY); prints TAP ("ok N - name").
import OpenAI from 'openai';

const port = process.env.PAGESIM_PORT, key = process.env.PAGESIM_KEY;
const baseURL = `http://127.0.0.1:${port}/v1`;
const client = new OpenAI({ apiKey: key, baseURL, maxRetries: 0, timeout: 20000 });
const msgs = [{ role: 'system', content: 'You are an analyst.' }, { role: 'user', content: 'Buy or sell ACME?' }];
const model = 'mock';

const tests = [];
const test = (name, fn) => tests.push({ name, fn });
const check = (cond, what) => { if (!cond) throw new Error(`check failed: ${what}`); };
const eq = (a, b, what) => check(JSON.stringify(a) === JSON.stringify(b), `${what}: ${JSON.stringify(a)} != ${JSON.stringify(b)}`);
async function status(p) {
  try { await p; } catch (e) { return e.status ?? `no status (${e.constructor.name}: ${e.message})`; }
  return 200;
}
async function collect(stream) {                 // texts by choice index, finish reasons, usage
  const text = [], finish = [], lp = [];
  let usage = null, chunks = 0;
  for await (const ch of stream) {
    chunks++;
    if (ch.usage) usage = ch.usage;
    for (const c of ch.choices) {
      text[c.index] = (text[c.index] ?? '') + (c.delta?.content ?? c.text ?? '');
      if (c.finish_reason) finish[c.index] = c.finish_reason;
      lp[c.index] = (lp[c.index] ?? 0) + (c.logprobs?.content?.length ?? 0);
    }
  }
  return { text, finish, usage, chunks, lp };
}

test('chat completion', async () => {
  const r = await client.chat.completions.create({ model, messages: msgs, temperature: 0.6, seed: 9, max_tokens: 200 });
  eq(r.object, 'chat.completion', 'object');
  eq(r.choices.length, 1, 'choices');
  eq(r.choices[0].message.role, 'assistant', 'role');
  const d = JSON.parse(r.choices[0].message.content);
  check(d.decision === 'buy' || d.decision === 'sell', 'a decision');
  eq(r.choices[0].finish_reason, 'stop', 'finish_reason');
  eq(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens, 'usage');
  const again = await client.chat.completions.create({ model, messages: msgs, temperature: 0.6, seed: 9, max_tokens: 200 });
  eq(again.choices[0].message.content, r.choices[0].message.content, 'seeded: the same reply again');
});

test('chat streaming equals the whole reply', async () => {
  const whole = await client.chat.completions.create({ model, messages: msgs, seed: 4 });
  const s = await collect(await client.chat.completions.create({ model, messages: msgs, seed: 4, stream: true,
                                                                  stream_options: { include_usage: true } }));
  eq(s.text[0], whole.choices[0].message.content, 'streamed text');
  eq(s.finish[0], 'stop', 'finish_reason');
  check(s.chunks > 3, 'several chunks');
  eq(s.usage.completion_tokens, whole.usage.completion_tokens, 'usage');
});

test('completions, plain and streamed', async () => {
  const r = await client.completions.create({ model, prompt: 'The stock rose.', seed: 42, temperature: 0.6 });
  eq(r.object, 'text_completion', 'object');
  check(r.choices[0].text.startsWith('{"decision"'), 'the decision JSON');
  const s = await collect(await client.completions.create({ model, prompt: 'The stock rose.', seed: 42, temperature: 0.6, stream: true }));
  eq(s.text[0], r.choices[0].text, 'streamed text');
  const cut = await client.completions.create({ model, prompt: 'The stock rose.', seed: 42, temperature: 0.6, max_tokens: 3 });
  eq(cut.choices[0].finish_reason, 'length', 'max_tokens: length');
  eq(cut.usage.completion_tokens, 3, 'three tokens');
});

test('n = 2', async () => {
  const r = await client.chat.completions.create({ model, messages: msgs, n: 2, seed: 21, temperature: 0.9 });
  eq(r.choices.map(c => c.index), [0, 1], 'indices');
  check(r.choices.every(c => c.finish_reason === 'stop' && JSON.parse(c.message.content).decision), 'two decisions');
  const s = await collect(await client.chat.completions.create({ model, messages: msgs, n: 2, seed: 21, temperature: 0.9,
                                                                  stream: true, stream_options: { include_usage: true } }));
  eq(s.text, r.choices.map(c => c.message.content), 'streamed choices');
  eq(s.usage.completion_tokens, r.usage.completion_tokens, 'usage sums both');
  const c = await client.completions.create({ model, prompt: 'p', n: 3, seed: 2, temperature: 1 });
  eq(c.choices.length, 3, 'three completions');
  check(new Set(c.choices.map(x => x.text)).size > 1, 'samples differ');
});

test('logprobs', async () => {
  const r = await client.chat.completions.create({ model, messages: msgs, seed: 3, logprobs: true, top_logprobs: 2 });
  const content = r.choices[0].logprobs.content;
  eq(content.length, r.usage.completion_tokens, 'one entry per token');
  eq(content.map(e => e.token).join(''), r.choices[0].message.content, 'the tokens make the reply');
  check(content.every(e => e.logprob <= 0 && e.top_logprobs.length === 2 && e.bytes.length === Buffer.byteLength(e.token)), 'entries');
  check(content.every(e => e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob), 'top sorted');
  const s = await collect(await client.chat.completions.create({ model, messages: msgs, seed: 3, logprobs: true, stream: true }));
  eq(s.lp[0], content.length, 'streamed entries');
  const c = await client.completions.create({ model, prompt: 'p', logprobs: 3, max_tokens: 6 });
  const lp = c.choices[0].logprobs;
  eq(lp.tokens.join(''), c.choices[0].text, 'completion tokens');
  eq(lp.token_logprobs.length, 6, 'token_logprobs');
  eq(lp.text_offset[0], 0, 'text_offset');
  const none = await client.completions.create({ model, prompt: 'p', max_tokens: 2 });
  eq(none.choices[0].logprobs, null, 'not asked: null');
});

test('stop strings and stop_token_ids', async () => {
  const full = await client.completions.create({ model, prompt: 'p', seed: 8 });
  const r = await client.completions.create({ model, prompt: 'p', seed: 8, stop: ['zzz', 'reason'] });
  const at = full.choices[0].text.indexOf('reason');
  check(at > 0, 'the reply says reason');
  eq(r.choices[0].text, full.choices[0].text.slice(0, at), 'cut before the stop string');
  eq(r.choices[0].finish_reason, 'stop', 'finish_reason');
  eq(r.choices[0].stop_reason, 'reason', 'stop_reason (vLLM)');
  const s = await collect(await client.chat.completions.create({ model, messages: msgs, seed: 8, stop: 'decision', stream: true }));
  eq(s.text[0], '{"', 'streamed: cut, the stop string never shown');
});

test('400: bad stop, bad n, bad top_logprobs, text that is not Unicode', async () => {
  eq(await status(client.chat.completions.create({ model, messages: msgs, stop: ['x', 5] })), 400, 'stop ["x", 5]');
  eq(await status(client.completions.create({ model, prompt: 'p', stop_token_ids: ['x'] })), 400, 'stop_token_ids ["x"]');
  eq(await status(client.chat.completions.create({ model, messages: msgs, n: 0 })), 400, 'n 0');
  eq(await status(client.chat.completions.create({ model, messages: msgs, top_logprobs: 3 })), 400, 'top_logprobs without logprobs');
  eq(await status(client.chat.completions.create({ model, messages: [{ role: 'user', content: 'caf\ud800e' }] })), 400,
     'a lone surrogate');
  eq(await status(client.chat.completions.create({ model: 'gpt-9', messages: msgs })), 404, 'unknown model');
  const raw = await fetch(`${baseURL}/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
    body: Buffer.concat([Buffer.from('{"messages": [{"role": "user", "content": "caf'), Buffer.from([0xe9]), Buffer.from('"}]}')]) });
  eq(raw.status, 400, 'a Latin-1 byte in the body');
  const err = await raw.json();
  check(err.error && err.error.type === 'invalid_request_error', 'an OpenAI error object');
});

test('401 without the right key', async () => {
  const wrong = new OpenAI({ apiKey: key + 'x', baseURL, maxRetries: 0 });
  eq(await status(wrong.chat.completions.create({ model, messages: msgs })), 401, 'wrong key');
  eq(await status(wrong.models.list()), 401, 'models');
  const list = await client.models.list();
  eq(list.data.map(m => m.id), ['mock'], 'models with the key');
});

test('HEAD /health', async () => {
  const h = await fetch(`http://127.0.0.1:${port}/health`, { method: 'HEAD' });
  eq(h.status, 200, 'HEAD /health');
  const g = await fetch(`http://127.0.0.1:${port}/health`);
  eq(g.status, 200, 'GET /health');
});

console.log(`1..${tests.length}`);
let failed = 0;
for (const [i, t] of tests.entries()) {
  try {
    await t.fn();
    console.log(`ok ${i + 1} - ${t.name}`);
  } catch (e) {
    failed++;
    console.log(`not ok ${i + 1} - ${t.name}`);
    console.log(`# ${String(e.stack ?? e).split('\n').slice(0, 3).join('\n# ')}`);
  }
}
process.exit(failed ? 1 : 0);

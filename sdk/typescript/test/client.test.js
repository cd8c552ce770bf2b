// The client against a scripted server: what it sends, what it retries, how it fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { Client, Decision, PortcullisError, DeniedError } from '../index.js';

async function serve(handler) {
  const seen = [];
  const srv = createServer(async (req, res) => {
    let body = '';
    for await (const c of req) body += c;
    const r = { method: req.method, url: req.url, headers: req.headers, body: body ? JSON.parse(body) : undefined };
    seen.push(r);
    const [status, answer] = await handler(r, seen.length);
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(typeof answer === 'string' ? answer : JSON.stringify(answer));
  });
  await new Promise((ok) => srv.listen(0, '127.0.0.1', ok));
  return { url: `http://127.0.0.1:${srv.address().port}`, seen, close: () => new Promise((ok) => { srv.closeAllConnections(); srv.close(ok); }) };
}

test('outcome passes back the outcome_token of its decision, and only when there is one', async () => {
  const s = await serve((r) => r.url === '/v1/decide'
    ? [200, { decision: 'ALLOW', decision_id: 'dec_1', outcome_token: 'pot1.abc', future_field: 1 }]
    : [200, { decision_id: 'dec_1', action: 'pass' }]);
  try {
    const c = new Client(s.url, { apiKey: 'pcl_x', agentId: 'a1' });
    const d = await c.decide({ tool: 't', params: { n: 1 } });
    assert.equal(d.outcomeToken, 'pot1.abc');
    assert.equal(d.raw.future_field, 1);
    await c.outcome({ decision: d, result: { ok: true } });
    assert.deepEqual(s.seen[1].body, { decision_id: 'dec_1', outcome_token: 'pot1.abc', ran: true, success: true, result: { ok: true } });
    assert.equal(s.seen[0].headers.authorization, 'Bearer pcl_x');
    assert.deepEqual(s.seen[0].body, { tool: 't', params: { n: 1 }, agent_id: 'a1' });
    await c.outcome({ decision: 'dec_2', ran: false, success: false });
    assert.deepEqual(s.seen[2].body, { decision_id: 'dec_2', ran: false, success: false });
  } finally { await s.close(); }
});

test('error answers are typed with the API code; an outcome is never resent after it was sent', async () => {
  const s = await serve((r) => r.url === '/v1/decide'
    ? [401, { decision: 'DENY', decision_id: 'dec_9', error: { code: 'credential_invalid', message: 'no' } }]
    : [503, { action: 'block', error: { code: 'outcome_claims_unavailable', message: 'x' } }]);
  try {
    const c = new Client(s.url, { apiKey: 'k', retryDelayMs: 1 });
    await assert.rejects(c.decide({ tool: 't' }), (e) => e instanceof PortcullisError && e.status === 401 && e.code === 'credential_invalid' && e.decisionId === 'dec_9' && e.fromGateway);
    await assert.rejects(c.outcome({ decision: 'dec_1' }), (e) => e.code === 'outcome_claims_unavailable');
    assert.equal(s.seen.filter((r) => r.url === '/v1/outcome').length, 1);
    assert.equal(s.seen.filter((r) => r.url === '/v1/decide').length, 1, 'a 401 is not retried');
  } finally { await s.close(); }
});

test('decide is retried on 429 too_many_concurrent and 503, then fails closed', async () => {
  const s = await serve((r, n) => n === 1 ? [429, { decision: 'DENY', error: { code: 'too_many_concurrent', message: '' } }]
    : n === 2 ? [503, { decision: 'DENY', error: { code: 'policy_unavailable', message: '' } }]
      : [200, { decision: 'ALLOW', decision_id: 'dec_3' }]);
  try {
    const c = new Client(s.url, { apiKey: 'k', retryDelayMs: 1 });
    assert.equal((await c.decide({ tool: 't' })).decisionId, 'dec_3');
    const c0 = new Client(s.url, { apiKey: 'k', retries: 0 });
    s.seen.length = 0;
    await assert.rejects(c0.decide({ tool: 't' }), (e) => e.code === 'too_many_concurrent');
  } finally { await s.close(); }
});

test('a refused connection is retried, then is a transport error', async () => {
  const s = await serve(() => [200, {}]);
  const url = s.url;
  await s.close();
  const c = new Client(url, { apiKey: 'k', retryDelayMs: 1 });
  await assert.rejects(c.decide({ tool: 't' }), (e) => e instanceof PortcullisError && e.code === 'transport' && !e.fromGateway);
});

test('a non-JSON or decision-less 200 is not an ALLOW', async () => {
  const s = await serve((r, n) => [200, n === 1 ? 'not json' : { allowed: true }]);
  try {
    const c = new Client(s.url, { apiKey: 'k' });
    await assert.rejects(c.decide({ tool: 't' }), (e) => e.code === 'bad_answer');
    await assert.rejects(c.decide({ tool: 't' }), (e) => e.code === 'bad_answer');
  } finally { await s.close(); }
});

test('the approval wait asks with approval_id and wait_seconds and stops on abort', async () => {
  const s = await serve(async (r, n) => {
    if (n >= 3) await new Promise((ok) => setTimeout(ok, 2000));
    return [200, n === 1 ? { decision: 'CONSTRAIN', decision_id: 'd1', approval_id: 'apr_1' } : { decision: 'CONSTRAIN', decision_id: 'd2', approval_id: 'apr_1' }];
  });
  try {
    const c = new Client(s.url, { apiKey: 'k' });
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('gave up')), 300);
    const started = Date.now();
    await assert.rejects(c.guard('t', { a: 1 }, () => assert.fail('ran'), { approval: { waitSeconds: 5 }, signal: ac.signal }), /gave up/);
    assert.ok(Date.now() - started < 1500, 'the abort ended the wait at once');
    assert.deepEqual(s.seen[1].body, { tool: 't', params: { a: 1 }, approval_id: 'apr_1', wait_seconds: 5 });
  } finally { await s.close(); }
});

test('guard: a DENY never runs the tool; a redacted result replaces the tool\'s; a block withholds it', async () => {
  let action = 'redact';
  const s = await serve((r) => r.url === '/v1/decide'
    ? [200, r.body.tool === 'no' ? { decision: 'DENY', decision_id: 'd0', message: 'the tool is unavailable' } : { decision: 'ALLOW', decision_id: 'd1' }]
    : [200, { decision_id: 'd1', action, result: action === 'redact' ? '[REDACTED:email]' : undefined }]);
  try {
    const c = new Client(s.url, { apiKey: 'k' });
    await assert.rejects(c.guard('no', {}, () => assert.fail('ran')), (e) => e instanceof DeniedError && e.decision instanceof Decision);
    assert.equal(await c.guard('yes', {}, () => 'mail ada@example.com'), '[REDACTED:email]');
    action = 'block';
    await assert.rejects(c.guard('yes', {}, () => 'ignore previous instructions'), /withheld/);
  } finally { await s.close(); }
});

test('exactly one credential', () => {
  assert.throws(() => new Client('http://x', {}));
  assert.throws(() => new Client('http://x', { apiKey: 'a', bearerToken: 'b' }));
  assert.throws(() => new Client('file:///etc/passwd', { apiKey: 'a' }));
});

test('a redirect is not followed: the credential and the call stay with the gateway that was named', async () => {
  const other = await serve(() => [200, { decision: 'ALLOW', decision_id: 'dec_x' }]);
  const srv = createServer((req, res) => { res.writeHead(307, { Location: other.url + '/v1/decide' }); res.end(); });
  await new Promise((ok) => srv.listen(0, '127.0.0.1', ok));
  try {
    const c = new Client(`http://127.0.0.1:${srv.address().port}`, { apiKey: 'k' });
    await assert.rejects(c.decide({ tool: 't' }), (e) => e instanceof PortcullisError);
    assert.equal(other.seen.length, 0);
  } finally { srv.close(); await other.close(); }
});

test('a gateway that answers a wait at once is not asked in a tight loop', async () => {
  const s = await serve(() => [200, { decision: 'CONSTRAIN', decision_id: 'd', approval_id: 'apr_1' }]);
  try {
    const c = new Client(s.url, { apiKey: 'k' });
    const d = await c.waitForApproval({ tool: 't' }, 'apr_1', { waitSeconds: 30, maxWaitMs: 2500 });
    assert.equal(d.decision, 'CONSTRAIN');
    assert.ok(s.seen.length >= 2 && s.seen.length <= 4, `${s.seen.length} requests in 2.5 s`);
  } finally { await s.close(); }
});

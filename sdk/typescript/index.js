// Client of the Portcullis decision API for orchestrators that run tools themselves: ask before
// every tool call (decide), report what happened (outcome), and hand the model only what the
// gateway passed. Every failure is a denial: nothing here returns "allowed" on an error.
import { Signer } from './httpsig.js';

export { Signer, signatureBase, contentDigest, parsePrivateKey, DEFAULT_COMPONENTS } from './httpsig.js';

export const ALLOW = 'ALLOW';
export const DENY = 'DENY';
export const CONSTRAIN = 'CONSTRAIN';
export const LOG = 'LOG';

const MAX_ANSWER_BYTES = 8 << 20;

/** An error answer from the gateway (status and the API's stable code), or a transport failure. */
export class PortcullisError extends Error {
  constructor(message, { status = 0, code = 'transport', decisionId, body, cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = 'PortcullisError';
    this.status = status;
    this.code = code;
    this.decisionId = decisionId;
    this.body = body;
  }
  /** True for an error answer (the gateway denied), false for a transport failure. Either way: do not run. */
  get fromGateway() { return this.status !== 0; }
}

/** The call was not allowed to run (DENY, a pending approval that did not resolve, or a withheld result). */
export class DeniedError extends Error {
  constructor(decision, message) {
    super(message ?? `portcullis: ${decision.decision}: ${decision.message ?? 'the tool is unavailable'}`);
    this.name = 'DeniedError';
    this.decision = decision;
  }
}

/** The gateway's answer to a decide call. Run the tool only when allowed is true. */
export class Decision {
  constructor(raw) {
    if (!raw || typeof raw !== 'object' || typeof raw.decision !== 'string') {
      throw new PortcullisError('portcullis: the answer has no decision', { code: 'bad_answer' });
    }
    /** Every field the gateway sent, including ones this client does not know. */
    this.raw = raw;
    this.decision = raw.decision;
    this.decisionId = raw.decision_id;
    this.message = raw.message;
    this.approvalId = raw.approval_id;
    /** Binds the outcome to this decision; outcome() passes it back. Opaque. */
    this.outcomeToken = raw.outcome_token;
  }
  get allowed() { return this.decision === ALLOW || this.decision === LOG; }
  get pending() { return this.decision === CONSTRAIN; }
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = () => { clearTimeout(t); reject(signal.reason); };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

// Errors where the request certainly never reached the gateway: a retry cannot run anything twice.
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

function notSent(err) {
  for (let e = err, i = 0; e && i < 5; e = e.cause, i++) if (NOT_SENT.has(e.code)) return true;
  return false;
}

async function readCapped(resp) {
  const len = Number(resp.headers.get('content-length') ?? 0);
  if (len > MAX_ANSWER_BYTES) throw new PortcullisError(`portcullis: answer of ${len} bytes is too large`, { status: resp.status, code: 'bad_answer' });
  if (!resp.body) return '';
  const chunks = [];
  let n = 0;
  for await (const c of resp.body) {
    n += c.length;
    if (n > MAX_ANSWER_BYTES) throw new PortcullisError('portcullis: answer too large', { status: resp.status, code: 'bad_answer' });
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Talks to one gateway as one agent. */
export class Client {
  /**
   * @param {string} baseUrl e.g. "http://127.0.0.1:8080"
   * @param {object} opts apiKey | bearerToken | signer (exactly one), agentId, timeoutMs (30000),
   *   retries (2), retryDelayMs (100), fetch.
   */
  constructor(baseUrl, { apiKey, bearerToken, signer, agentId, timeoutMs = 30000, retries = 2, retryDelayMs = 100, fetch: f } = {}) {
    const creds = [apiKey, bearerToken, signer].filter((x) => x !== undefined && x !== null && x !== '');
    if (creds.length !== 1) throw new TypeError('portcullis: give exactly one of apiKey, bearerToken and signer');
    if (signer && !(signer instanceof Signer)) throw new TypeError('portcullis: signer must be an httpsig Signer');
    const u = new URL(baseUrl);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError('portcullis: baseUrl must be http(s)');
    this.base = baseUrl.replace(/\/+$/, '');
    this.apiKey = apiKey;
    this.bearerToken = bearerToken;
    this.signer = signer;
    this.agentId = agentId;
    this.timeoutMs = timeoutMs;
    this.retries = retries;
    this.retryDelayMs = retryDelayMs;
    this.fetch = f ?? globalThis.fetch;
  }

  /**
   * Asks about one tool call. Throws PortcullisError on an error answer or a transport failure:
   * treat it as a denial.
   * @param {{tool:string, params?:object, userToken?:string, user?:object, approvalId?:string, waitSeconds?:number, requestId?:string}} req
   */
  async decide(req, { signal } = {}) {
    if (!req || typeof req.tool !== 'string') throw new TypeError('portcullis: decide needs a tool name');
    const body = { tool: req.tool, params: req.params ?? {} };
    if (this.agentId) body.agent_id = this.agentId;
    if (req.userToken) body.user_token = req.userToken;
    if (req.user) body.user = req.user;
    if (req.approvalId) body.approval_id = req.approvalId;
    if (req.waitSeconds) body.wait_seconds = req.waitSeconds;
    if (req.requestId) body.request_id = req.requestId;
    const timeoutMs = this.timeoutMs + (req.waitSeconds ? req.waitSeconds * 1000 : 0);
    // decide is safe to retry when the gateway refused before deciding (429 too_many_concurrent,
    // nothing recorded) or said it cannot decide now (503): each retry is a new, recorded decision.
    return new Decision(await this.#post('/v1/decide', body, { signal, timeoutMs, retryStatus: (s, code) => s === 503 || (s === 429 && code === 'too_many_concurrent') }));
  }

  /**
   * Waits for a held call's approval: asks again with approvalId and waitSeconds until the
   * answer is not CONSTRAIN (or the signal aborts, or maxWaitMs passes: then the last CONSTRAIN
   * decision is returned). The answer for an approved call is ALLOW, for exactly these parameters.
   */
  async waitForApproval(req, approvalId, { waitSeconds = 30, maxWaitMs = Infinity, signal } = {}) {
    const until = Date.now() + maxWaitMs;
    for (;;) {
      signal?.throwIfAborted();
      const asked = Date.now();
      const left = Math.ceil((until - asked) / 1000);
      const d = await this.decide({ ...req, approvalId, waitSeconds: Math.max(1, Math.min(waitSeconds, left)) }, { signal });
      if (!d.pending || d.approvalId !== approvalId || Date.now() >= until) return d;
      // A gateway that answers at once (no wait configured) is asked at most once a second.
      const pause = Math.min(1000 - (Date.now() - asked), until - Date.now());
      if (pause > 0) await sleep(pause, signal);
    }
  }

  /**
   * Reports what happened after an allowed decision; returns {decisionId, action, result}:
   * "pass" (use your result), "redact" (use result from the answer) or "block" (withhold it).
   * @param {{decision: Decision|string, outcomeToken?:string, ran?:boolean, success?:boolean, error?:string, durationMs?:number, result?:any}} req
   */
  async outcome(req, { signal } = {}) {
    const d = req.decision;
    const body = { decision_id: typeof d === 'string' ? d : d?.decisionId };
    if (!body.decision_id) throw new TypeError('portcullis: outcome needs a decision');
    const token = req.outcomeToken ?? (d instanceof Decision ? d.outcomeToken : undefined);
    if (token) body.outcome_token = token;
    body.ran = req.ran ?? true;
    body.success = req.success ?? true;
    if (req.error) body.error = req.error;
    if (req.durationMs) body.duration_ms = Math.round(req.durationMs);
    if (req.result !== undefined) body.result = req.result;
    // An outcome is accepted once: it is retried only when it certainly was not sent.
    const raw = await this.#post('/v1/outcome', body, { signal, timeoutMs: this.timeoutMs, retryStatus: () => false });
    return { decisionId: raw.decision_id, action: raw.action, result: raw.result, raw };
  }

  /**
   * Runs fn(params) under the gateway's control: decide, run only if allowed (after waiting for
   * an approval when held and approval.waitSeconds is set), report the outcome, and return the
   * result the gateway passed (redacted when it redacted). Throws DeniedError when the call may
   * not run or the result is withheld; the tool's own error is reported and rethrown.
   */
  async guard(tool, params, fn, { approval, signal, userToken, user } = {}) {
    let d = await this.decide({ tool, params, userToken, user }, { signal });
    if (d.pending && approval) {
      d = await this.waitForApproval({ tool, params, userToken, user }, d.approvalId, { ...approval, signal });
    }
    if (!d.allowed) throw new DeniedError(d);
    const start = performance.now();
    let result;
    try {
      result = await fn(params);
    } catch (err) {
      await this.outcome({ decision: d, ran: true, success: false, error: String(err?.message ?? err).slice(0, 1024), durationMs: performance.now() - start }, { signal }).catch(() => {});
      throw err;
    }
    const o = await this.outcome({ decision: d, ran: true, success: true, durationMs: performance.now() - start, result: result === undefined ? null : result }, { signal });
    switch (o.action) {
      case 'pass': return result;
      case 'redact': return o.result;
      default: throw new DeniedError(d, 'portcullis: the tool result was withheld');
    }
  }

  async #post(path, body, { signal, timeoutMs, retryStatus }) {
    const json = JSON.stringify(body);
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      const headers = { 'Content-Type': 'application/json' };
      if (this.apiKey) headers.Authorization = 'Bearer ' + this.apiKey;
      if (this.bearerToken) headers.Authorization = 'Bearer ' + this.bearerToken;
      const url = this.base + path;
      if (this.signer) Object.assign(headers, this.signer.sign({ method: 'POST', url, headers, body: json })); // fresh nonce each attempt
      const timeout = AbortSignal.timeout(timeoutMs);
      const sig = signal ? AbortSignal.any([signal, timeout]) : timeout;
      let resp;
      try {
        resp = await this.fetch(url, { method: 'POST', headers, body: json, signal: sig, redirect: 'error' });
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        if (attempt < this.retries && notSent(err)) { await sleep(this.retryDelayMs * 2 ** attempt, signal); continue; }
        throw new PortcullisError(`portcullis: ${err?.message ?? err}`, { cause: err });
      }
      let text;
      try {
        text = await readCapped(resp);
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        if (err instanceof PortcullisError) throw err;
        throw new PortcullisError(`portcullis: read answer: ${err?.message ?? err}`, { status: resp.status, code: 'bad_answer', cause: err });
      }
      let parsed;
      try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
      if (resp.status !== 200) {
        const code = parsed?.error?.code || `http_${resp.status}`;
        if (attempt < this.retries && retryStatus(resp.status, code)) { await sleep(this.retryDelayMs * 2 ** attempt, signal); continue; }
        throw new PortcullisError(`portcullis: ${resp.status} ${code}: ${parsed?.error?.message ?? ''}`, { status: resp.status, code, decisionId: parsed?.decision_id, body: parsed });
      }
      if (!parsed || typeof parsed !== 'object') throw new PortcullisError('portcullis: the answer is not JSON', { status: 200, code: 'bad_answer' });
      return parsed;
    }
  }
}

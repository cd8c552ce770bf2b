// Vercel AI SDK (`ai`): wrap a tool set so that every execute goes through the gateway.
import { guarded } from './common.js';

/**
 * Returns tools with each execute(input, options) guarded: decided by name with input as params,
 * run only if allowed, the outcome reported, and the passed result returned to the model. The
 * step's abortSignal cancels an approval wait. Tools without execute are returned as they are.
 * @param {import('../index.js').Client} client
 * @param {Record<string, any>} tools
 * @param {{approval?: {waitSeconds?: number, maxWaitMs?: number}, onDenied?: (err: Error) => unknown, userToken?: string}} [opts]
 */
export function guardTools(client, tools, opts = {}) {
  const out = {};
  for (const [name, t] of Object.entries(tools)) {
    if (typeof t?.execute !== 'function') { out[name] = t; continue; }
    out[name] = { ...t, execute: (input, options) => guarded(client, name, input, () => t.execute(input, options), { ...opts, signal: options?.abortSignal }) };
  }
  return out;
}

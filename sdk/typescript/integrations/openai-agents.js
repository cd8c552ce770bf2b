// OpenAI Agents SDK (`@openai/agents`): wrap a function tool so that every invocation goes
// through the gateway.
import { guarded } from './common.js';

/**
 * Returns a function tool that behaves as t whose every invoke is guarded: decided by t.name with
 * the model's JSON arguments as params, run only if allowed, the outcome reported, and the passed
 * result returned to the model. Arguments that are not a JSON object are refused before the
 * gateway is asked.
 * @template T
 * @param {import('../index.js').Client} client
 * @param {T} t what tool() from @openai/agents returns (type "function")
 * @param {{approval?: {waitSeconds?: number, maxWaitMs?: number}, onDenied?: (err: Error) => unknown, userToken?: string}} [opts]
 * @returns {T}
 */
export function guardFunctionTool(client, t, opts = {}) {
  if (t?.type !== 'function' || typeof t.invoke !== 'function') throw new TypeError('portcullis: not an Agents SDK function tool');
  return {
    ...t,
    invoke: async (runContext, input, details) => {
      let args;
      try { args = input ? JSON.parse(input) : {}; } catch { args = undefined; }
      if (!args || typeof args !== 'object' || Array.isArray(args)) return 'portcullis: the arguments are not a JSON object';
      return guarded(client, t.name, args, () => t.invoke(runContext, input, details), { ...opts, signal: details?.signal });
    },
  };
}

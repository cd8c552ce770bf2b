// LangChain.js (`@langchain/core` tools, and so LangGraph's ToolNode): wrap a tool so that every
// call goes through the gateway.
import { guarded } from './common.js';

/**
 * Returns a tool that behaves as t (same name, schema, invoke) whose every execution is guarded:
 * decided by t.name with the parsed arguments as params, run only if allowed, the outcome
 * reported, and the passed result returned. The run's signal cancels an approval wait.
 * @template T
 * @param {import('../index.js').Client} client
 * @param {T} t a StructuredTool (what tool() from @langchain/core/tools returns)
 * @param {{approval?: {waitSeconds?: number, maxWaitMs?: number}, onDenied?: (err: Error) => unknown, userToken?: string}} [opts]
 * @returns {T}
 */
export function guardTool(client, t, opts = {}) {
  if (typeof t?._call !== 'function') throw new TypeError('portcullis: not a LangChain StructuredTool');
  const wrapped = Object.create(t);
  wrapped._call = (arg, runManager, config) => guarded(client, t.name, arg, () => t._call(arg, runManager, config), { ...opts, signal: config?.signal });
  return wrapped;
}

// What every framework integration shares: run one tool call under the gateway's control and
// turn a refusal into something the model can read, so the agent's run goes on without the call.
import { DeniedError, PortcullisError } from '../index.js';

/** The default text the model receives instead of a result the gateway did not let through. */
export function deniedMessage(err) {
  if (err instanceof DeniedError) {
    const d = err.decision;
    if (/withheld/.test(err.message)) return 'portcullis: the tool result was withheld (it failed inspection)';
    if (d.pending) return `portcullis: the call is waiting for human approval (${d.approvalId})`;
    return `portcullis: the call was denied (${d.message ?? 'the tool is unavailable'})`;
  }
  return `portcullis: the call was not allowed (${err.code})`;
}

/**
 * decide → run only if allowed (or after approval) → report the outcome → the result the gateway
 * passed (redacted when it redacted). A denial, a held call that was not approved, a withheld
 * result or a gateway that cannot be reached becomes opts.onDenied(err) (deniedMessage by
 * default); the tool's own error is reported and rethrown.
 */
export async function guarded(client, name, args, run, opts = {}) {
  try {
    return await client.guard(name, args ?? {}, run, { approval: opts.approval, signal: opts.signal, userToken: opts.userToken, user: opts.user });
  } catch (err) {
    if (err instanceof DeniedError || err instanceof PortcullisError) return (opts.onDenied ?? deniedMessage)(err);
    throw err;
  }
}

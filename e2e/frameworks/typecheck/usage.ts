// Type-checked (never run) by e2e TestSDKTypeDeclarations: the hand-written declarations of
// @portcullis/sdk describe what the documented usage needs, and the integrations accept the
// frameworks' own tool types.
import { Client, Signer, PortcullisError, DeniedError, Decision, type ErrorCode, type OutcomeResult } from '@portcullis/sdk';
import { guardTools } from '@portcullis/sdk/integrations/ai';
import { guardTool } from '@portcullis/sdk/integrations/langchain';
import { guardFunctionTool } from '@portcullis/sdk/integrations/openai-agents';
import { tool as aiTool } from 'ai';
import { tool as lcTool } from '@langchain/core/tools';
import { tool as agentsTool } from '@openai/agents';
import { z } from 'zod';

export async function usage(url: string, key: string, seed: string): Promise<string> {
  const client = new Client(url, { apiKey: key, agentId: 'report-generator-v1', timeoutMs: 5000, retries: 1 });
  const signed = new Client(url, { signer: new Signer({ keyId: 'k', privateKey: seed }) });
  const d: Decision = await client.decide({ tool: 'fetch_customer_names', params: { limit: 5 }, requestId: 'r1' });
  if (d.allowed) {
    const o: OutcomeResult = await client.outcome({ decision: d, result: { names: [] }, durationMs: 3 });
    const action: 'pass' | 'redact' | 'block' = o.action;
    void action;
  }
  if (d.pending && d.approvalId) {
    const again = await signed.waitForApproval({ tool: 'fetch_customer_names' }, d.approvalId, { waitSeconds: 30, signal: AbortSignal.timeout(1000) });
    void again.decision;
  }
  try {
    await client.guard('delete_file', { path: '/x' }, async (p) => p.path.length, { approval: { waitSeconds: 10 } });
  } catch (err) {
    if (err instanceof PortcullisError) { const c: ErrorCode = err.code; const s: number = err.status; void c; void s; }
    if (err instanceof DeniedError) return err.decision.decision;
  }
  const tools = guardTools(client, {
    fetch: aiTool({ description: 'd', inputSchema: z.object({ limit: z.number() }), execute: async ({ limit }) => limit }),
  }, { approval: { waitSeconds: 5 }, onDenied: (e) => e.message });
  void tools.fetch;
  const lc = guardTool(client, lcTool(async ({ limit }: { limit: number }) => String(limit), { name: 'fetch', description: 'd', schema: z.object({ limit: z.number() }) }));
  void lc.name;
  const fn = guardFunctionTool(client, agentsTool({ name: 'fetch', description: 'd', parameters: z.object({ limit: z.number() }), execute: async ({ limit }) => limit }));
  void fn.name;
  return 'ok';
}

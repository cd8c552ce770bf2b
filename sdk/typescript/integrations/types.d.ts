import type { Client, ApprovalWait, User } from '../index.js';

export interface GuardOptions {
  /** Wait for a held call's approval (approval_id + wait_seconds) instead of refusing at once. */
  approval?: ApprovalWait;
  /** What the model gets instead of a result the gateway did not let through. */
  onDenied?: (err: Error) => unknown;
  userToken?: string;
  user?: User;
}

export declare function deniedMessage(err: Error): string;
export declare function guarded<R>(client: Client, name: string, args: Record<string, unknown>, run: () => R | Promise<R>, opts?: GuardOptions & { signal?: AbortSignal }): Promise<R | unknown>;
/** Vercel AI SDK: every execute of tools, guarded. */
export declare function guardTools<T extends Record<string, any>>(client: Client, tools: T, opts?: GuardOptions): T;
/** LangChain.js: a StructuredTool whose every execution is guarded. */
export declare function guardTool<T>(client: Client, tool: T, opts?: GuardOptions): T;
/** OpenAI Agents SDK: a function tool whose every invoke is guarded. */
export declare function guardFunctionTool<T>(client: Client, tool: T, opts?: GuardOptions): T;

import { Signer } from './httpsig.js';
export { Signer, signatureBase, contentDigest, parsePrivateKey, DEFAULT_COMPONENTS } from './httpsig.js';

export declare const ALLOW: 'ALLOW';
export declare const DENY: 'DENY';
export declare const CONSTRAIN: 'CONSTRAIN';
export declare const LOG: 'LOG';
export type DecisionKind = 'ALLOW' | 'DENY' | 'CONSTRAIN' | 'LOG';

/** Stable codes of the API (docs/api.md, docs/identity.md); "transport" and "bad_answer" are the client's own. */
export type ErrorCode =
  | 'bad_request' | 'invalid_utf8' | 'too_deep' | 'malformed_params' | 'duplicate_key' | 'invalid_tool_name'
  | 'credential_ambiguous' | 'credential_missing' | 'credential_malformed' | 'credential_invalid' | 'credential_expired'
  | 'credential_revoked' | 'signature_stale' | 'signature_replayed' | 'agent_mismatch'
  | 'user_token_invalid' | 'user_assertion_untrusted'
  | 'body_too_large' | 'too_many_params' | 'unsupported_media_type' | 'too_many_concurrent' | 'too_many_pending_approvals'
  | 'ledger_unavailable' | 'policy_unavailable' | 'behavior_unavailable' | 'approval_unavailable' | 'inspection_failed' | 'identity_unavailable'
  | 'unknown_decision' | 'outcome_already_reported'
  | 'transport' | 'bad_answer'
  | (string & {});

export declare class PortcullisError extends Error {
  readonly status: number;
  readonly code: ErrorCode;
  readonly decisionId?: string;
  readonly body?: unknown;
  readonly fromGateway: boolean;
}

export declare class DeniedError extends Error {
  readonly decision: Decision;
}

export interface User { id: string; permissions?: string[]; attributes?: Record<string, string[]> }

export interface DecideRequest {
  tool: string;
  params?: Record<string, unknown>;
  userToken?: string;
  user?: User;
  approvalId?: string;
  waitSeconds?: number;
  requestId?: string;
}

export declare class Decision {
  readonly raw: Record<string, unknown>;
  readonly decision: DecisionKind;
  readonly decisionId?: string;
  readonly message?: string;
  readonly approvalId?: string;
  readonly outcomeToken?: string;
  readonly allowed: boolean;
  readonly pending: boolean;
}

export interface OutcomeRequest {
  decision: Decision | string;
  outcomeToken?: string;
  ran?: boolean;
  success?: boolean;
  error?: string;
  durationMs?: number;
  result?: unknown;
}

export interface OutcomeResult { decisionId: string; action: 'pass' | 'redact' | 'block'; result?: unknown; raw: Record<string, unknown> }

export interface ClientOptions {
  apiKey?: string;
  bearerToken?: string;
  signer?: Signer;
  agentId?: string;
  timeoutMs?: number;
  retries?: number;
  retryDelayMs?: number;
  fetch?: typeof fetch;
}

export interface CallOptions { signal?: AbortSignal }
export interface ApprovalWait { waitSeconds?: number; maxWaitMs?: number }

export declare class Client {
  constructor(baseUrl: string, opts: ClientOptions);
  decide(req: DecideRequest, opts?: CallOptions): Promise<Decision>;
  waitForApproval(req: DecideRequest, approvalId: string, opts?: ApprovalWait & CallOptions): Promise<Decision>;
  outcome(req: OutcomeRequest, opts?: CallOptions): Promise<OutcomeResult>;
  guard<P extends Record<string, unknown>, R>(tool: string, params: P, fn: (params: P) => R | Promise<R>,
    opts?: CallOptions & { approval?: ApprovalWait; userToken?: string; user?: User }): Promise<R | unknown>;
}

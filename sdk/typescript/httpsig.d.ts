import type { KeyObject } from 'node:crypto';

export declare const ALGORITHM: 'ed25519';
export declare const DEFAULT_COMPONENTS: readonly string[];

export type HeadersLike = Headers | Array<[string, string]> | Record<string, string | string[]>;
export interface SignableRequest { method: string; url: string; headers?: HeadersLike; body?: string | Uint8Array }

export declare function parsePrivateKey(key: KeyObject | string): KeyObject;
export declare function contentDigest(body: string | Uint8Array | undefined): string;
export declare function randomNonce(): string;
export declare function signatureParams(components: readonly string[], params: Array<[string, string | number]>): string;
export declare function signatureBase(req: SignableRequest, components: readonly string[], params: Array<[string, string | number]>): { base: string; signatureParams: string };
export declare function signBase(key: KeyObject | string, base: string): string;

export interface SignerOptions {
  keyId: string;
  /** KeyObject, base64 of the 32-byte seed, or PEM PKCS #8. */
  privateKey: KeyObject | string;
  label?: string;
  components?: readonly string[];
  /** Milliseconds since the epoch. */
  now?: () => number;
  nonce?: () => string;
  tag?: string;
}

export declare class Signer {
  constructor(opts: SignerOptions);
  readonly keyId: string;
  /** The headers to add: Content-Digest (when covered), Signature-Input, Signature. */
  sign(req: SignableRequest): Record<string, string>;
}

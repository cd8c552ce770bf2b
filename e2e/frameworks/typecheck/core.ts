// Type-checked with the library checks on (tsconfig.core.json): the SDK's own declarations, the
// integrations' included, are checked too, not only used.
import { Client, DEFAULT_COMPONENTS, contentDigest } from '@portcullis/sdk';
import { signatureBase } from '@portcullis/sdk/httpsig';
import type { GuardOptions } from '@portcullis/sdk/integrations/ai';
import type { GuardOptions as LC } from '@portcullis/sdk/integrations/langchain';
import type { GuardOptions as OA } from '@portcullis/sdk/integrations/openai-agents';

export const opts: GuardOptions & LC & OA = { approval: { waitSeconds: 1 } };
export const base: string = signatureBase({ method: 'POST', url: 'http://x/', headers: [['content-digest', contentDigest('')]] }, DEFAULT_COMPONENTS, [['created', 1]]).base;
export const client = new Client('http://x', { bearerToken: 't' });

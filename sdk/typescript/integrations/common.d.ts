export { deniedMessage, guarded } from './types.js';
export type { GuardOptions } from './types.js';

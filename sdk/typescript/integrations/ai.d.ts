export { guardTools } from './types.js';
export type { GuardOptions } from './types.js';

export { guardFunctionTool } from './types.js';
export type { GuardOptions } from './types.js';

// An MCP server (official TypeScript SDK, stdio) whose prompt list changes at a tool's request:
// add-prompt registers one more prompt, and the SDK sends notifications/prompts/list_changed.
// server-everything has no prompt that changes; its resources do (gzip-file-as-resource).
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";

const server = new McpServer({ name: "listchanged", version: "1" });
server.registerPrompt("first", { description: "The prompt there from the start" }, async () => ({
  messages: [{ role: "user", content: { type: "text", text: "first" } }],
}));
server.registerTool("add-prompt", { description: "Adds a prompt", inputSchema: { name: z.string() } }, async ({ name }) => {
  server.registerPrompt(name, { description: "An added prompt" }, async () => ({
    messages: [{ role: "user", content: { type: "text", text: name } }],
  }));
  return { content: [{ type: "text", text: `added ${name}` }] };
});
await server.connect(new StdioServerTransport());

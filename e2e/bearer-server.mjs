// A remote MCP server (the official TypeScript SDK, Streamable HTTP, stateless) that, like a
// SaaS MCP server, requires a bearer token: every request without the expected token is answered
// 401 with a WWW-Authenticate challenge. It records the Authorization header of every request
// it gets; GET /seen returns them, so a test can check what reached it.
//
// Usage: node bearer-server.mjs PORT TOKEN
import http from "node:http";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";

const [port, token] = process.argv.slice(2);
const seen = [];

function newServer() {
  const server = new McpServer({ name: "bearer-saas", version: "1.0.0" });
  server.registerTool(
    "whoami",
    { description: "Says which tenant the caller is.", inputSchema: { greeting: z.string() } },
    async ({ greeting }) => ({ content: [{ type: "text", text: `${greeting}, tenant acme` }] }),
  );
  return server;
}

http
  .createServer(async (req, res) => {
    if (req.method === "GET" && req.url === "/seen") {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify(seen));
      return;
    }
    seen.push(req.headers.authorization ?? "");
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, { "WWW-Authenticate": 'Bearer error="invalid_token"', "Content-Type": "text/plain" });
      res.end("invalid or missing token");
      return;
    }
    if (req.method !== "POST") {
      res.writeHead(405).end();
      return;
    }
    const server = newServer();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on("close", () => {
      transport.close();
      server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res);
  })
  .listen(Number(port), "127.0.0.1");

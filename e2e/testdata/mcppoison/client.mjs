// A TypeScript-SDK MCP client driven one command at a time, for the end-to-end tests: it connects
// to the gateway's /mcp (Streamable HTTP) with the agent key in $PORTCULLIS_API_KEY, reads one JSON
// command per line on stdin — {"op":"list"}, {"op":"call","name":N,"args":{...}}, {"op":"close"} —
// and prints one JSON answer per line. Usage: node client.mjs URL
import readline from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url] = process.argv.slice(2);
const client = new Client({ name: "e2e-poison", version: "1.0.0" });
await client.connect(
  new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: "Bearer " + process.env.PORTCULLIS_API_KEY } },
  }),
);
const text = (r) => (r.content || []).filter((c) => c.type === "text").map((c) => c.text).join("");

for await (const line of readline.createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line);
  let out;
  try {
    switch (cmd.op) {
      case "list":
        out = { tools: (await client.listTools()).tools.map((t) => t.name).sort() };
        break;
      case "call": {
        const r = await client.callTool({ name: cmd.name, arguments: cmd.args || {} });
        out = { isError: !!r.isError, text: text(r) };
        break;
      }
      case "close":
        await client.close();
        console.log(JSON.stringify({ closed: true }));
        process.exit(0);
      default:
        out = { error: "unknown op " + cmd.op };
    }
  } catch (e) {
    out = { error: String(e.message || e) };
  }
  console.log(JSON.stringify(out));
}

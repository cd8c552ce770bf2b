// A real TypeScript-SDK MCP client for the end-to-end tests. It launches the command given in
// its arguments over stdio (the portcullis stdio wrapper), runs a fixed script of requests and
// prints one JSON object with what it saw. Usage: node ts-client.mjs COMMAND ARGS...
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { CreateMessageRequestSchema, ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const [command, ...args] = process.argv.slice(2);
const out = { samplingRequests: 0, elicitationRequests: 0 };
const client = new Client({ name: "e2e-ts", version: "1" }, { capabilities: { sampling: {}, elicitation: {} } });
client.setRequestHandler(CreateMessageRequestSchema, async () => {
  out.samplingRequests++;
  return { role: "assistant", content: { type: "text", text: "sampled" }, model: "none" };
});
client.setRequestHandler(ElicitRequestSchema, async () => {
  out.elicitationRequests++;
  return { action: "accept", content: { name: "Ada Lovelace" } };
});
const transport = new StdioClientTransport({ command, args, env: { ...process.env }, stderr: "inherit" });
await client.connect(transport);

const text = (r) => (r.content || []).filter((c) => c.type === "text").map((c) => c.text).join("");
const tryCall = async (name, args) => {
  try {
    const r = await client.callTool({ name, arguments: args });
    return { isError: !!r.isError, text: text(r) };
  } catch (e) {
    return { isError: true, protocolError: String(e.message || e) };
  }
};

out.tools = (await client.listTools()).tools.map((t) => t.name).sort();
out.echo = await tryCall("echo", { message: "hello through the gate" });
out.getEnv = await tryCall("get-env", {});
out.sampling = await tryCall("trigger-sampling-request", { prompt: "hi", maxTokens: 5 });
out.elicitation = await tryCall("trigger-elicitation-request", {});
try {
  const res = await client.listResources();
  out.resources = res.resources.length;
  if (res.resources.length > 0) {
    const r = await client.readResource({ uri: res.resources[0].uri });
    out.resourceRead = r.contents.length;
  }
} catch (e) {
  out.resourcesError = String(e.message || e);
}
try {
  const p = await client.listPrompts();
  out.prompts = p.prompts.map((x) => x.name).sort();
} catch (e) {
  out.promptsError = String(e.message || e);
}
await client.close();
console.log(JSON.stringify(out));

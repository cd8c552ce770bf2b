// A real TypeScript-SDK MCP client over Streamable HTTP for the end-to-end tests. Usage:
// node ts-http-client.mjs URL API_KEY SCENARIO. It prints one JSON object with what it saw,
// every JSON-RPC message the server sent included (read below the SDK's own handling).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { PromptListChangedNotificationSchema, ResourceListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

const [url, key, scenario] = process.argv.slice(2);
const out = { received: [], sent: [], errors: [] };
const client = new Client({ name: "e2e-ts-http", version: "1" });
client.onerror = (e) => out.errors.push(String(e.message || e));
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${key}` } } });
await client.connect(transport);
// After connect, so the SDK's own handlers are in place and wrapped.
const onmessage = transport.onmessage;
transport.onmessage = (m, extra) => {
  out.received.push(m);
  onmessage?.(m, extra);
};
const send = transport.send.bind(transport);
transport.send = (m, opts) => {
  out.sent.push(m);
  return send(m, opts);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const text = (r) => (r.content || []).filter((c) => c.type === "text").map((c) => c.text).join("");
// until waits for cond, polling; the caller asserts what came.
const until = async (cond, ms) => {
  for (let t = 0; t < ms && !cond(); t += 50) await sleep(50);
};

if (scenario === "cancel") {
  // A long call, cancelled by the caller (AbortController): the SDK sends notifications/cancelled.
  const ac = new AbortController();
  const call = client.callTool({ name: "ev__trigger-long-running-operation", arguments: { duration: 20, steps: 20 } }, undefined, { signal: ac.signal, onprogress: () => {} });
  await until(() => out.received.some((m) => m.method === "notifications/progress"), 15000); // it runs upstream
  ac.abort("user stopped it");
  try {
    await call;
    out.callOutcome = "answered";
  } catch (e) {
    out.callOutcome = String(e.message || e);
  }
  out.cancelledId = out.sent.find((m) => m.method === "tools/call")?.id;
  // The session goes on; an answer to the cancelled call, had it been sent, comes at once.
  out.echo = text(await client.callTool({ name: "ev__echo", arguments: { message: "after the cancel" } }));
  await sleep(1500);
} else if (scenario === "listchanged") {
  out.capabilities = client.getServerCapabilities();
  out.resourcesChanged = 0;
  out.promptsChanged = 0;
  client.setNotificationHandler(ResourceListChangedNotificationSchema, () => void out.resourcesChanged++);
  client.setNotificationHandler(PromptListChangedNotificationSchema, () => void out.promptsChanged++);
  out.promptsBefore = (await client.listPrompts()).prompts.map((p) => p.name).sort();
  // server-everything registers a session resource for the gzipped file (a data: URL, no network).
  out.gzip = text(await client.callTool({ name: "ev__gzip-file-as-resource", arguments: { name: "hello.txt.gz", data: "data:text/plain,hello", outputType: "resourceLink" } }));
  await until(() => out.resourcesChanged > 0, 10000);
  out.resources = (await client.listResources()).resources.map((r) => r.uri).filter((u) => u.includes("/session/"));
  out.added = text(await client.callTool({ name: "pr__add-prompt", arguments: { name: "second" } }));
  await until(() => out.promptsChanged > 0, 10000);
  out.promptsAfter = (await client.listPrompts()).prompts.map((p) => p.name).sort();
}
await client.close();
console.log(JSON.stringify(out));

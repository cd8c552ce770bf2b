// The official OpenAI and Anthropic Node SDKs, driven as an application would, for the LLM
// gateway's end-to-end tests. One call per run: the argument is a JSON object
//   {"api": "chat"|"responses"|"messages", "stream": bool, "base": URL, "key": KEY,
//    "body": {...request...}, "retries": N}
// and the output one JSON object: {"ok": true, "final": <what the SDK hands the application>,
// "events": [<stream event types>], "comments": 0} or {"ok": false, "status", "message", "headers"}.
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";

const spec = JSON.parse(process.argv[2]);
const maxRetries = spec.retries ?? 0;
const out = { ok: true, events: [] };

function headersOf(h) {
  const o = {};
  if (!h) return o;
  for (const [k, v] of h.entries ? h.entries() : Object.entries(h)) o[k.toLowerCase()] = v;
  return o;
}

try {
  if (spec.api === "messages") {
    const client = new Anthropic({ baseURL: spec.base, apiKey: spec.key, maxRetries });
    if (spec.stream) {
      const s = client.messages.stream(spec.body);
      for await (const ev of s) out.events.push(ev.type);
      out.final = await s.finalMessage();
    } else {
      out.final = await client.messages.create(spec.body);
    }
  } else {
    const client = new OpenAI({ baseURL: spec.base, apiKey: spec.key, maxRetries });
    if (spec.api === "chat") {
      if (spec.stream) {
        const s = client.chat.completions.stream(spec.body);
        for await (const chunk of s) out.events.push(chunk.choices?.[0]?.finish_reason ?? "chunk");
        out.final = await s.finalChatCompletion();
      } else {
        out.final = await client.chat.completions.create(spec.body);
      }
    } else if (spec.stream) {
      const s = client.responses.stream(spec.body);
      for await (const ev of s) out.events.push(ev.type);
      out.final = await s.finalResponse();
    } else {
      out.final = await client.responses.create(spec.body);
    }
  }
} catch (e) {
  out.ok = false;
  out.status = e.status ?? 0;
  out.message = String(e.message || e);
  out.headers = headersOf(e.headers);
  out.name = e.constructor?.name;
}
process.stdout.write(JSON.stringify(out));

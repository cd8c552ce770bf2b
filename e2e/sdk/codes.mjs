// Serves each error answer named in the file argv[2] ([{status, code}]) and reports how the
// TypeScript client surfaced it: {code: "STATUS CODE" of the typed error}.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { Client, PortcullisError } from '../../sdk/typescript/index.js';

const answers = JSON.parse(readFileSync(process.argv[2], 'utf8'));
let current;
const srv = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(current.status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ decision: 'DENY', decision_id: 'dec_1', action: 'block', error: { code: current.code, message: 'm' } }));
  });
});
await new Promise((ok) => srv.listen(0, '127.0.0.1', ok));
const client = new Client(`http://127.0.0.1:${srv.address().port}`, { apiKey: 'k', retries: 0 });
const got = {};
for (const a of answers) {
  current = a;
  for (const call of [() => client.decide({ tool: 't' }), () => client.outcome({ decision: 'dec_1' })]) {
    try {
      await call();
      got[a.code] = 'no error';
    } catch (e) {
      const seen = e instanceof PortcullisError ? `${e.status} ${e.code}` : `untyped ${e}`;
      if (got[a.code] && got[a.code] !== seen) got[a.code] += ` / ${seen}`;
      else got[a.code] = seen;
    }
  }
}
srv.close();
process.stdout.write(JSON.stringify(got) + '\n');

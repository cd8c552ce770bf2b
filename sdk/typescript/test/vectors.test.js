// The shared RFC 9421 vectors (sdk/testvectors/httpsig.json): this client signs each exactly as
// the Go signer does, including RFC 9421 Appendix B.2.6.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Signer, signatureBase, contentDigest, signBase, DEFAULT_COMPONENTS } from '../httpsig.js';

const vectors = JSON.parse(readFileSync(new URL('../../testvectors/httpsig.json', import.meta.url), 'utf8'));

test('the vectors are there', () => assert.ok(vectors.cases.length >= 5));

for (const c of vectors.cases) {
  test(`vector ${c.name}`, () => {
    const key = vectors.keys[c.key].private_key;
    const req = { method: c.request.method, url: c.request.url, headers: c.request.headers, body: c.request.body };
    if (c.signer) {
      const s = new Signer({ keyId: c.signer.key_id, privateKey: key, label: c.signer.label, tag: c.signer.tag,
        now: () => c.signer.created * 1000, nonce: () => c.signer.nonce });
      const h = s.sign(req);
      assert.equal(h['Content-Digest'], c.content_digest);
      assert.equal(h['Signature-Input'], c.signature_input);
      assert.equal(h['Signature'], c.signature);
      const params = [['created', c.signer.created], ['keyid', c.signer.key_id], ['nonce', c.signer.nonce], ['alg', 'ed25519']];
      if (c.signer.tag) params.push(['tag', c.signer.tag]);
      const { base } = signatureBase({ ...req, headers: [...req.headers, ['Content-Digest', contentDigest(req.body)]] }, DEFAULT_COMPONENTS, params);
      assert.equal(base, c.signature_base);
    } else {
      const { base, signatureParams } = signatureBase(req, c.components, c.params);
      assert.equal(base, c.signature_base);
      assert.equal(`${c.label}=${signatureParams}`, c.signature_input);
      assert.equal(`${c.label}=:${signBase(key, base)}:`, c.signature);
    }
  });
}

test('RFC 9421 B.2.6 signature as published', () => {
  const c = vectors.cases.find((x) => x.name === 'rfc9421-b.2.6');
  assert.equal(c.signature, 'sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:');
});

test('a field with a line break, a non-ASCII key id and a duplicated component are refused', () => {
  assert.throws(() => signatureBase({ method: 'GET', url: 'http://x/', headers: [['X-A', 'a\r\nb']] }, ['x-a'], []));
  assert.throws(() => signatureBase({ method: 'GET', url: 'http://x/', headers: [] }, ['@method'], [['keyid', 'k\u00e9']]));
  assert.throws(() => signatureBase({ method: 'GET', url: 'http://x/', headers: [] }, ['@method', '@method'], []));
});

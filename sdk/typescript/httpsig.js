// HTTP Message Signatures (RFC 9421) with Ed25519 and Content-Digest (RFC 9530, sha-256): the
// same signature base as the Go SDK's sdk/httpsig, checked against shared test vectors.
import { createHash, createPrivateKey, randomBytes, sign as edSign, KeyObject } from 'node:crypto';

export const ALGORITHM = 'ed25519';
export const DEFAULT_COMPONENTS = Object.freeze(['@method', '@authority', '@path', '@query', 'content-digest']);

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** Reads an Ed25519 private key: a KeyObject, base64 of the 32-byte seed, or a PEM PKCS #8 block. */
export function parsePrivateKey(key) {
  if (key instanceof KeyObject) {
    if (key.type !== 'private' || key.asymmetricKeyType !== 'ed25519') throw new TypeError('httpsig: want an Ed25519 private key');
    return key;
  }
  if (typeof key !== 'string') throw new TypeError('httpsig: private key must be a KeyObject or a string');
  const s = key.trim();
  let k;
  if (s.startsWith('-----BEGIN')) {
    k = createPrivateKey({ key: s, format: 'pem' });
  } else {
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s)) throw new TypeError('httpsig: private key is neither base64 nor PEM');
    const seed = Buffer.from(s, 'base64');
    if (seed.length !== 32) throw new TypeError(`httpsig: private key seed is ${seed.length} bytes, want 32`);
    k = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  }
  if (k.asymmetricKeyType !== 'ed25519') throw new TypeError(`httpsig: private key is ${k.asymmetricKeyType}, want ed25519`);
  return k;
}

/** The Content-Digest field value for body (sha-256). */
export function contentDigest(body) {
  return 'sha-256=:' + createHash('sha256').update(toBytes(body)).digest('base64') + ':';
}

/** 16 random bytes, base64url without padding. */
export function randomNonce() {
  return randomBytes(16).toString('base64url');
}

function toBytes(body) {
  if (body === undefined || body === null) return Buffer.alloc(0);
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body instanceof Uint8Array) return body;
  throw new TypeError('httpsig: body must be a string or bytes');
}

function sfString(s) {
  if (typeof s !== 'string' || !/^[\x20-\x7e]*$/.test(s)) throw new TypeError(`httpsig: ${JSON.stringify(s)} is not a printable ASCII string`);
  return '"' + s.replace(/[\\"]/g, (c) => '\\' + c) + '"';
}

function sfItem(v) {
  if (typeof v === 'number' || typeof v === 'bigint') {
    if (typeof v === 'number' && !Number.isSafeInteger(v)) throw new TypeError('httpsig: parameter is not an integer');
    return String(v);
  }
  return sfString(v);
}

/** Serialises the Signature-Input inner list: ("c1" "c2");created=…;keyid="…". */
export function signatureParams(components, params) {
  let out = '(' + components.map(sfString).join(' ') + ')';
  for (const [k, v] of params) out += ';' + k + '=' + sfItem(v);
  return out;
}

function headerValues(headers, name) {
  const out = [];
  for (const [k, v] of headerEntries(headers)) if (k.toLowerCase() === name) out.push(v);
  return out;
}

function headerEntries(headers) {
  if (!headers) return [];
  if (typeof headers.entries === 'function' && !Array.isArray(headers)) {
    // Headers joins repeated fields with ", " already.
    return Array.from(headers.entries());
  }
  if (Array.isArray(headers)) return headers;
  const out = [];
  for (const [k, v] of Object.entries(headers)) {
    for (const one of Array.isArray(v) ? v : [v]) out.push([k, String(one)]);
  }
  return out;
}

function authority(url) {
  let h = url.host.toLowerCase(); // URL drops the scheme's default port
  if (!h.endsWith(']')) h = h.replace(/:(443|80)$/, '');
  return h;
}

function componentValue(req, url, name) {
  switch (name) {
    case '@method': return req.method.toUpperCase();
    case '@authority': {
      const a = authority(url);
      if (!a) throw new Error('httpsig: @authority is not present');
      return a;
    }
    case '@scheme': return url.protocol.replace(/:$/, '').toLowerCase();
    case '@path': return url.pathname || '/';
    case '@query': return '?' + url.search.replace(/^\?/, '');
    case '@request-target': return (url.pathname || '/') + url.search;
    case '@target-uri': return url.protocol.replace(/:$/, '').toLowerCase() + '://' + authority(url) + (url.pathname || '/') + url.search;
  }
  if (name.startsWith('@')) throw new Error(`httpsig: unsupported derived component ${JSON.stringify(name)}`);
  if (name === '' || name !== name.toLowerCase()) throw new Error(`httpsig: field name ${JSON.stringify(name)} is not lower case`);
  const vals = headerValues(req.headers, name);
  if (vals.length === 0) throw new Error(`httpsig: component ${JSON.stringify(name)} is not present`);
  return vals.map((v) => {
    if (/[\r\n]/.test(v)) throw new Error(`httpsig: field ${JSON.stringify(name)} contains a line break`);
    return v.replace(/^[ \t]+|[ \t]+$/g, '');
  }).join(', ');
}

/**
 * The RFC 9421 §2.5 signature base of req ({method, url, headers}) over components with the
 * signature parameters params ([[key, value], …], in order).
 */
export function signatureBase(req, components, params) {
  const url = new URL(req.url);
  const seen = new Set();
  let base = '';
  for (const c of components) {
    if (seen.has(c)) throw new Error(`httpsig: component ${JSON.stringify(c)} listed twice`);
    seen.add(c);
    base += sfString(c) + ': ' + componentValue(req, url, c) + '\n';
  }
  const sp = signatureParams(components, params);
  return { base: base + '"@signature-params": ' + sp, signatureParams: sp };
}

/** Signs requests with one Ed25519 key. */
export class Signer {
  constructor({ keyId, privateKey, label = 'sig', components = DEFAULT_COMPONENTS, now = () => Date.now(), nonce = randomNonce, tag } = {}) {
    if (!keyId) throw new TypeError('httpsig: empty key id');
    this.keyId = keyId;
    this.key = parsePrivateKey(privateKey);
    this.label = label;
    this.components = [...components];
    this.now = now;
    this.nonce = nonce;
    this.tag = tag;
  }

  /**
   * Returns the headers to add to req ({method, url, headers, body}): Content-Digest (when
   * covered), Signature-Input and Signature. body must be exactly the bytes that are sent.
   */
  sign(req) {
    const headers = headerEntries(req.headers).filter(([k]) => k.toLowerCase() !== 'content-digest');
    const added = {};
    if (this.components.includes('content-digest')) {
      added['Content-Digest'] = contentDigest(req.body);
      headers.push(['Content-Digest', added['Content-Digest']]);
    }
    const params = [['created', Math.floor(this.now() / 1000)], ['keyid', this.keyId], ['nonce', this.nonce()], ['alg', ALGORITHM]];
    if (this.tag) params.push(['tag', this.tag]);
    const { base, signatureParams: sp } = signatureBase({ method: req.method, url: req.url, headers }, this.components, params);
    const sig = edSign(null, Buffer.from(base, 'utf8'), this.key).toString('base64');
    added['Signature-Input'] = `${this.label}=${sp}`;
    added['Signature'] = `${this.label}=:${sig}:`;
    return added;
  }
}

/** Signs base with key (for test vectors). */
export function signBase(key, base) {
  return edSign(null, Buffer.from(base, 'utf8'), parsePrivateKey(key)).toString('base64');
}

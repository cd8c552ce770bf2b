"""HTTP Message Signatures (RFC 9421) with Ed25519 and Content-Digest (RFC 9530, sha-256).

The same signature base as the Go SDK's sdk/httpsig, checked against shared test vectors.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from typing import Callable, Iterable, Mapping, Sequence, Union
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ALGORITHM = "ed25519"
DEFAULT_COMPONENTS = ("@method", "@authority", "@path", "@query", "content-digest")

Headers = Union[Mapping[str, Union[str, Sequence[str]]], Iterable[tuple]]
Param = tuple  # (key, value): int for created/expires, str otherwise


def parse_private_key(key) -> Ed25519PrivateKey:
    """An Ed25519 private key from a key object, base64 of the 32-byte seed, or PEM PKCS #8."""
    if isinstance(key, Ed25519PrivateKey):
        return key
    if isinstance(key, bytes):
        key = key.decode("ascii")
    if not isinstance(key, str):
        raise TypeError("httpsig: private key must be an Ed25519PrivateKey or a string")
    s = key.strip()
    if s.startswith("-----BEGIN"):
        k = serialization.load_pem_private_key(s.encode("ascii"), password=None)
        if not isinstance(k, Ed25519PrivateKey):
            raise ValueError("httpsig: private key is not Ed25519")
        return k
    try:
        seed = base64.b64decode(s, validate=True)
    except ValueError as e:
        raise ValueError("httpsig: private key is neither base64 nor PEM") from e
    if len(seed) != 32:
        raise ValueError(f"httpsig: private key seed is {len(seed)} bytes, want 32")
    return Ed25519PrivateKey.from_private_bytes(seed)


def _bytes(body) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    return bytes(body)


def content_digest(body) -> str:
    """The Content-Digest field value for body (sha-256)."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(_bytes(body)).digest()).decode() + ":"


def random_nonce() -> str:
    """16 random bytes, base64url without padding."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()


_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")


def _sf_string(s) -> str:
    if not isinstance(s, str) or not _PRINTABLE.match(s):
        raise ValueError(f"httpsig: {s!r} is not a printable ASCII string")
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sf_item(v) -> str:
    if isinstance(v, bool):
        raise ValueError("httpsig: boolean parameters are not used")
    if isinstance(v, int):
        return str(v)
    return _sf_string(v)


def signature_params(components: Sequence[str], params: Sequence[Param]) -> str:
    """The Signature-Input inner list: ("c1" "c2");created=…;keyid="…"."""
    out = "(" + " ".join(_sf_string(c) for c in components) + ")"
    for k, v in params:
        out += ";" + k + "=" + _sf_item(v)
    return out


def _header_items(headers) -> list:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        out = []
        for k, v in headers.items():
            for one in ([v] if isinstance(v, str) else v):
                out.append((k, str(one)))
        return out
    return [(k, v) for k, v in headers]


def _authority(netloc: str) -> str:
    h = netloc.rsplit("@", 1)[-1].lower()
    if not h.endswith("]"):
        for port in (":443", ":80"):
            if h.endswith(port):
                h = h[: -len(port)]
                break
    return h


def _component(method: str, url, headers: list, name: str) -> str:
    path = url.path or "/"
    if name == "@method":
        return method.upper()
    if name == "@authority":
        a = _authority(url.netloc)
        if not a:
            raise ValueError("httpsig: @authority is not present")
        return a
    if name == "@scheme":
        return url.scheme.lower()
    if name == "@path":
        return path
    if name == "@query":
        return "?" + url.query
    if name == "@request-target":
        return path + ("?" + url.query if url.query else "")
    if name == "@target-uri":
        return url.scheme.lower() + "://" + _authority(url.netloc) + path + ("?" + url.query if url.query else "")
    if name.startswith("@"):
        raise ValueError(f"httpsig: unsupported derived component {name!r}")
    if not name or name != name.lower():
        raise ValueError(f"httpsig: field name {name!r} is not lower case")
    vals = [v for k, v in headers if k.lower() == name]
    if not vals:
        raise ValueError(f"httpsig: component {name!r} is not present")
    out = []
    for v in vals:
        if "\r" in v or "\n" in v:
            raise ValueError(f"httpsig: field {name!r} contains a line break")
        out.append(v.strip(" \t"))
    return ", ".join(out)


def signature_base(method: str, url: str, headers, components: Sequence[str], params: Sequence[Param]):
    """The RFC 9421 §2.5 signature base, and the serialised signature parameters."""
    u = urlsplit(url)
    items = _header_items(headers)
    seen = set()
    lines = []
    for c in components:
        if c in seen:
            raise ValueError(f"httpsig: component {c!r} listed twice")
        seen.add(c)
        lines.append(_sf_string(c) + ": " + _component(method, u, items, c))
    sp = signature_params(components, params)
    lines.append('"@signature-params": ' + sp)
    return "\n".join(lines), sp


def sign_base(key, base: str) -> str:
    """Signs a signature base; base64 of the Ed25519 signature."""
    return base64.b64encode(parse_private_key(key).sign(base.encode("utf-8"))).decode()


class Signer:
    """Signs requests with one Ed25519 key (a fresh nonce per request)."""

    def __init__(
        self,
        key_id: str,
        private_key,
        *,
        label: str = "sig",
        components: Sequence[str] = DEFAULT_COMPONENTS,
        now: Callable[[], float] = time.time,
        nonce: Callable[[], str] = random_nonce,
        tag: str | None = None,
    ):
        if not key_id:
            raise ValueError("httpsig: empty key id")
        self.key_id = key_id
        self._key = parse_private_key(private_key)
        self.label = label
        self.components = tuple(components)
        self._now = now
        self._nonce = nonce
        self.tag = tag

    def sign(self, method: str, url: str, headers, body) -> dict:
        """The headers to add: Content-Digest (when covered), Signature-Input, Signature.

        body must be exactly the bytes that are sent.
        """
        items = [(k, v) for k, v in _header_items(headers) if k.lower() != "content-digest"]
        added = {}
        if "content-digest" in self.components:
            added["Content-Digest"] = content_digest(body)
            items.append(("Content-Digest", added["Content-Digest"]))
        params = [("created", int(self._now())), ("keyid", self.key_id), ("nonce", self._nonce()), ("alg", ALGORITHM)]
        if self.tag:
            params.append(("tag", self.tag))
        base, sp = signature_base(method, url, items, self.components, params)
        sig = base64.b64encode(self._key.sign(base.encode("utf-8"))).decode()
        added["Signature-Input"] = f"{self.label}={sp}"
        added["Signature"] = f"{self.label}=:{sig}:"
        return added

"""Client of the Portcullis decision API: ask before every tool call, report what happened, and
hand the model only what the gateway passed. Every failure is a denial."""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from .httpsig import Signer

ALLOW, DENY, CONSTRAIN, LOG = "ALLOW", "DENY", "CONSTRAIN", "LOG"
MAX_ANSWER_BYTES = 8 << 20


class PortcullisError(Exception):
    """An error answer from the gateway (status and the API's stable code), or a transport failure
    (status 0, code "transport"). Either way: do not run the tool."""

    def __init__(self, message: str, *, status: int = 0, code: str = "transport", decision_id: str | None = None, body: Any = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.decision_id = decision_id
        self.body = body

    @property
    def from_gateway(self) -> bool:
        return self.status != 0


class DeniedError(Exception):
    """The call may not run (DENY, an approval that did not come) or its result was withheld."""

    def __init__(self, decision: "Decision", message: str | None = None):
        super().__init__(message or f"portcullis: {decision.decision}: {decision.message or 'the tool is unavailable'}")
        self.decision = decision


class Cancelled(Exception):
    """The caller's cancel event was set."""


@dataclass
class Decision:
    decision: str
    decision_id: Optional[str] = None
    message: Optional[str] = None
    approval_id: Optional[str] = None
    outcome_token: Optional[str] = None  # binds the outcome to this decision; passed back by outcome()
    raw: dict = field(default_factory=dict)  # every field the gateway sent

    @classmethod
    def from_answer(cls, raw: Any) -> "Decision":
        if not isinstance(raw, dict) or not isinstance(raw.get("decision"), str):
            raise PortcullisError("portcullis: the answer has no decision", code="bad_answer")
        return cls(raw["decision"], raw.get("decision_id"), raw.get("message"), raw.get("approval_id"), raw.get("outcome_token"), raw)

    @property
    def allowed(self) -> bool:
        return self.decision in (ALLOW, LOG)

    @property
    def pending(self) -> bool:
        return self.decision == CONSTRAIN


@dataclass
class OutcomeResult:
    decision_id: str
    action: str  # "pass" | "redact" | "block"
    result: Any
    raw: dict


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


def _not_sent(err: BaseException) -> bool:
    """The request certainly never reached the gateway: a retry cannot run anything twice."""
    r = getattr(err, "reason", err)
    if isinstance(r, socket.gaierror):
        return True
    return isinstance(r, ConnectionRefusedError) or getattr(r, "errno", None) in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH)


class Client:
    """Talks to one gateway as one agent. Give exactly one of api_key, bearer_token and signer."""

    def __init__(self, base_url: str, *, api_key: str | None = None, bearer_token: str | None = None, signer: Signer | None = None,
                 agent_id: str | None = None, timeout: float = 30.0, retries: int = 2, retry_delay: float = 0.1):
        if sum(1 for c in (api_key, bearer_token, signer) if c) != 1:
            raise ValueError("portcullis: give exactly one of api_key, bearer_token and signer")
        if urlsplit(base_url).scheme not in ("http", "https"):
            raise ValueError("portcullis: base_url must be http(s)")
        self.base = base_url.rstrip("/")
        self._auth = "Bearer " + (api_key or bearer_token) if (api_key or bearer_token) else None
        self.signer = signer
        self.agent_id = agent_id
        self.timeout = timeout
        self.retries = retries
        self.retry_delay = retry_delay
        self._opener = urllib.request.build_opener(_NoRedirect)

    def decide(self, tool: str, params: dict | None = None, *, user_token: str | None = None, user: dict | None = None,
               approval_id: str | None = None, wait_seconds: int | None = None, request_id: str | None = None) -> Decision:
        """Asks about one tool call. Raises PortcullisError on an error answer or a transport failure."""
        body: dict = {"tool": tool, "params": {} if params is None else params}
        if self.agent_id:
            body["agent_id"] = self.agent_id
        for k, v in (("user_token", user_token), ("user", user), ("approval_id", approval_id), ("wait_seconds", wait_seconds), ("request_id", request_id)):
            if v:
                body[k] = v
        # Retried only when the gateway refused before deciding (429 too_many_concurrent) or
        # cannot decide now (503): each retry is a new, recorded decision.
        raw = self._post("/v1/decide", body, self.timeout + (wait_seconds or 0),
                         lambda s, code: s == 503 or (s == 429 and code == "too_many_concurrent"))
        return Decision.from_answer(raw)

    def wait_for_approval(self, tool: str, params: dict | None, approval_id: str, *, wait_seconds: int = 30,
                          max_wait: float | None = None, cancel: threading.Event | None = None, **kw) -> Decision:
        """Asks again with approval_id and wait_seconds until the answer is not CONSTRAIN, max_wait
        seconds pass (the last CONSTRAIN is returned) or cancel is set (Cancelled)."""
        until = None if max_wait is None else time.monotonic() + max_wait
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled("portcullis: approval wait cancelled")
            asked = time.monotonic()
            w = wait_seconds if until is None else max(1, min(wait_seconds, int(until - asked + 0.999)))
            d = self.decide(tool, params, approval_id=approval_id, wait_seconds=w, **kw)
            if not d.pending or d.approval_id != approval_id or (until is not None and time.monotonic() >= until):
                return d
            # A gateway that answers at once (no wait configured) is asked at most once a second.
            pause = 1.0 - (time.monotonic() - asked)
            if until is not None:
                pause = min(pause, until - time.monotonic())
            if pause > 0:
                if cancel is not None:
                    cancel.wait(pause)
                else:
                    time.sleep(pause)

    def outcome(self, decision, *, ran: bool = True, success: bool = True, error: str | None = None,
                duration_ms: int | None = None, result: Any = None, outcome_token: str | None = None) -> OutcomeResult:
        """Reports what happened after an allowed decision. action: "pass" (use your result),
        "redact" (use .result) or "block" (withhold it from the model)."""
        decision_id = decision.decision_id if isinstance(decision, Decision) else decision
        if not decision_id:
            raise ValueError("portcullis: outcome needs a decision")
        token = outcome_token or (decision.outcome_token if isinstance(decision, Decision) else None)
        body: dict = {"decision_id": decision_id}
        if token:
            body["outcome_token"] = token
        body["ran"], body["success"] = ran, success
        if error:
            body["error"] = error
        if duration_ms:
            body["duration_ms"] = int(duration_ms)
        if result is not None:
            body["result"] = result
        # Accepted once: retried only when it certainly was not sent.
        raw = self._post("/v1/outcome", body, self.timeout, lambda s, code: False)
        return OutcomeResult(raw.get("decision_id", decision_id), raw.get("action", "block"), raw.get("result"), raw)

    def guard(self, tool: str, params: dict, fn: Callable[[dict], Any], *, approval_wait: int | None = None, **kw) -> Any:
        """Runs fn(params) under the gateway's control: decide, run only if allowed (after waiting
        for approval when held and approval_wait is set), report the outcome, return the result
        the gateway passed. Raises DeniedError when the call may not run or the result is withheld."""
        d = self.decide(tool, params, **kw)
        if d.pending and approval_wait:
            d = self.wait_for_approval(tool, params, d.approval_id, wait_seconds=approval_wait, **kw)
        if not d.allowed:
            raise DeniedError(d)
        start = time.monotonic()
        try:
            result = fn(params)
        except Exception as e:
            try:
                self.outcome(d, success=False, error=str(e)[:1024], duration_ms=int((time.monotonic() - start) * 1000))
            except PortcullisError:
                pass
            raise
        o = self.outcome(d, result=result, duration_ms=int((time.monotonic() - start) * 1000))
        if o.action == "pass":
            return result
        if o.action == "redact":
            return o.result
        raise DeniedError(d, "portcullis: the tool result was withheld")

    def _post(self, path: str, body: dict, timeout: float, retry_status) -> dict:
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
        url = self.base + path
        attempt = 0
        while True:
            headers = {"Content-Type": "application/json"}
            if self._auth:
                headers["Authorization"] = self._auth
            if self.signer:
                headers.update(self.signer.sign("POST", url, headers, data))  # a fresh nonce each attempt
            req = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with self._opener.open(req, timeout=timeout) as resp:
                    status, text = resp.status, _read(resp)
            except urllib.error.HTTPError as e:
                status, text = e.code, _read(e)
            except (urllib.error.URLError, OSError) as e:
                if attempt < self.retries and _not_sent(e):
                    time.sleep(self.retry_delay * 2 ** attempt)
                    attempt += 1
                    continue
                raise PortcullisError(f"portcullis: {e}") from e
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = None
            if status != 200:
                err = parsed.get("error") if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict) else {}
                code = err.get("code") or f"http_{status}"
                if attempt < self.retries and retry_status(status, code):
                    time.sleep(self.retry_delay * 2 ** attempt)
                    attempt += 1
                    continue
                raise PortcullisError(f"portcullis: {status} {code}: {err.get('message', '')}", status=status, code=code,
                                      decision_id=parsed.get("decision_id") if isinstance(parsed, dict) else None, body=parsed)
            if not isinstance(parsed, dict):
                raise PortcullisError("portcullis: the answer is not a JSON object", status=200, code="bad_answer")
            return parsed


def _read(resp) -> str:
    raw = resp.read(MAX_ANSWER_BYTES + 1)
    if len(raw) > MAX_ANSWER_BYTES:
        raise PortcullisError("portcullis: answer too large", status=getattr(resp, "status", 0) or getattr(resp, "code", 0), code="bad_answer")
    return raw.decode("utf-8", errors="replace")


class AsyncClient:
    """The same surface for asyncio. Each call runs the blocking client in a worker thread
    (asyncio.to_thread); cancelling the awaiting task stops waiting at once, and an approval wait
    stops between polls (each poll is bounded by wait_seconds)."""

    def __init__(self, base_url: str, **kw):
        self.sync = Client(base_url, **kw)

    async def decide(self, tool: str, params: dict | None = None, **kw) -> Decision:
        return await asyncio.to_thread(self.sync.decide, tool, params, **kw)

    async def outcome(self, decision, **kw) -> OutcomeResult:
        return await asyncio.to_thread(self.sync.outcome, decision, **kw)

    async def wait_for_approval(self, tool: str, params: dict | None, approval_id: str, *, wait_seconds: int = 30,
                                max_wait: float | None = None, **kw) -> Decision:
        loop = asyncio.get_running_loop()
        until = None if max_wait is None else loop.time() + max_wait
        while True:
            asked = loop.time()
            w = wait_seconds if until is None else max(1, min(wait_seconds, int(until - asked + 0.999)))
            d = await self.decide(tool, params, approval_id=approval_id, wait_seconds=w, **kw)
            if not d.pending or d.approval_id != approval_id or (until is not None and loop.time() >= until):
                return d
            pause = 1.0 - (loop.time() - asked)
            if until is not None:
                pause = min(pause, until - loop.time())
            if pause > 0:
                await asyncio.sleep(pause)

    async def guard(self, tool: str, params: dict, fn, *, approval_wait: int | None = None, **kw) -> Any:
        """guard for async tools: fn(params) may return an awaitable."""
        d = await self.decide(tool, params, **kw)
        if d.pending and approval_wait:
            d = await self.wait_for_approval(tool, params, d.approval_id, wait_seconds=approval_wait, **kw)
        if not d.allowed:
            raise DeniedError(d)
        start = time.monotonic()
        try:
            result = fn(params)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await result
        except Exception as e:
            try:
                await self.outcome(d, success=False, error=str(e)[:1024], duration_ms=int((time.monotonic() - start) * 1000))
            except PortcullisError:
                pass
            raise
        o = await self.outcome(d, result=result, duration_ms=int((time.monotonic() - start) * 1000))
        if o.action == "pass":
            return result
        if o.action == "redact":
            return o.result
        raise DeniedError(d, "portcullis: the tool result was withheld")

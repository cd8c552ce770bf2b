"""Portcullis client: decide before every tool call, report the outcome, RFC 9421 signing."""

from .client import ALLOW, CONSTRAIN, DENY, LOG, AsyncClient, Cancelled, Client, Decision, DeniedError, OutcomeResult, PortcullisError
from .httpsig import Signer, content_digest, parse_private_key, signature_base

__all__ = ["ALLOW", "CONSTRAIN", "DENY", "LOG", "AsyncClient", "Cancelled", "Client", "Decision", "DeniedError",
           "OutcomeResult", "PortcullisError", "Signer", "content_digest", "parse_private_key", "signature_base"]

"""Bearer tokens -> owners. Locally from LOCAL_API_TOKENS; in AWS from hashed token items."""
from __future__ import annotations

import hashlib
import hmac
import re

from ..domain.validation import unicode_problem

_BEARER = re.compile(r"^\s*Bearer\s+(\S+)\s*$", re.IGNORECASE)


def bearer_token(header: str | None) -> str | None:
    match = _BEARER.match(header or "")
    return match.group(1) if match else None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenResolver:
    def __init__(self, local_tokens: dict[str, str], repository=None):
        self.local = dict(local_tokens)
        self.repository = repository

    def owner_for(self, token: str | None) -> str | None:
        if not token or unicode_problem(token):  # could never be hashed, so never issued
            return None
        owner = None
        for known, who in self.local.items():
            # compare every entry in constant time: no early exit on a prefix match
            if hmac.compare_digest(known.encode(), token.encode()):
                owner = who
        if owner is None and self.repository is not None:
            owner = self.repository.owner_for_token(token_hash(token))
        return owner

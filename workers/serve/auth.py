"""Bearer tokens: loaded from a secret file or the environment, each with a name and scopes, checked in
constant time. A token is never logged or echoed: requests are logged by the token's name."""

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from workers.core.settings import Settings

SCOPES = frozenset({"submit", "read"})
MIN_TOKEN_CHARS = 16


class AuthError(Exception):
    """A request that may not go on: `status` 401 (no or unknown token) or 403 (token without the scope)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class TokenConfigError(ValueError):
    """The token file or variable is malformed; the message names the entry by number, never its token."""


@dataclass(frozen=True)
class Token:
    """One client's token: its name (what logs say), its scopes and the SHA-256 digest of its secret."""

    name: str
    scopes: frozenset[str]
    digest: bytes


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def parse_tokens(text: str, where: str) -> list[Token]:
    """Entries `NAME SCOPES TOKEN`, one per line or separated by ';' (blank lines and `#` comments
    skipped); TokenConfigError on a malformed entry, naming `where` and the entry's number (pure)."""
    tokens: list[Token] = []
    entries = [e.strip() for line in text.splitlines() for e in line.split(";")]
    for number, entry in enumerate((e for e in entries if e and not e.startswith("#")), 1):
        parts = entry.split()
        if len(parts) != 3:
            raise TokenConfigError(f"{where}: entry {number} is not NAME SCOPES TOKEN")
        name, scopes_text, secret = parts
        scopes = frozenset(s.strip() for s in scopes_text.split(",") if s.strip())
        if not scopes or not scopes <= SCOPES:
            raise TokenConfigError(
                f"{where}: entry {number} ({name}): scopes must be among {', '.join(sorted(SCOPES))}"
            )
        if len(secret) < MIN_TOKEN_CHARS:
            raise TokenConfigError(
                f"{where}: entry {number} ({name}): the token is shorter than {MIN_TOKEN_CHARS} characters"
            )
        tokens.append(Token(name, scopes, _digest(secret)))
    return tokens


def load_tokens(settings: Settings) -> list[Token]:
    """The tokens of NEWSFLOW_SERVE_TOKENS_FILE and NEWSFLOW_SERVE_TOKENS together."""
    tokens: list[Token] = []
    if settings.serve_tokens_file:
        path = Path(settings.serve_tokens_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TokenConfigError(
                f"NEWSFLOW_SERVE_TOKENS_FILE: cannot read {path}: {exc.strerror or type(exc).__name__}"
            ) from None
        tokens += parse_tokens(text, str(path))
    if settings.serve_tokens is not None:
        tokens += parse_tokens(settings.serve_tokens.get_secret_value(), "NEWSFLOW_SERVE_TOKENS")
    return tokens


def authorize(header: str | None, scope: str, tokens: list[Token]) -> Token:
    """The token an `Authorization: Bearer ...` header carries, if it has `scope`; AuthError otherwise
    (401 no or unknown token, 403 a known token without the scope). Every known token is compared, each
    in constant time, so the time taken tells nothing of which one matched or how much of it."""
    scheme, _, secret = (header or "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise AuthError(401, "a bearer token is required (Authorization: Bearer TOKEN)")
    given = _digest(secret)
    found: Token | None = None
    for token in tokens:
        if hmac.compare_digest(given, token.digest) and found is None:
            found = token
    if found is None:
        raise AuthError(401, "unknown token")
    if scope not in found.scopes:
        raise AuthError(403, f"this token may not {scope}")
    return found

"""Secrets out of text that leaves the gateway: relayed upstream messages, error messages, logs.

An upstream (or a proxy in front of it) may echo what it received, the gateway's own
``Authorization`` header included, in an error message the gateway passes on. ``scrub`` removes
two kinds of thing before such text reaches a client or a log line:

- every secret the gateway holds, registered with ``remember`` where it is loaded (provider keys
  and service-account keys from the settings or the provider secret, Google access tokens as
  they are fetched, client keys configured in plain text, the link-signing secret);
- anything shaped like a credential, known or not: ``Bearer ...``, OpenAI-style ``sk-...`` keys,
  AWS access key ids (``AKIA``/``ASIA``), Google API keys (``AIza...``) and OAuth tokens
  (``ya29....``), JWTs, PEM private keys, and the values of ``x-...-key``, ``api_key``,
  ``token``, ``secret``, ``password`` and ``signature``-like fields and query parameters.

Pure text in, text out; no I/O. The registry is per process and only grows with what the
process was configured with (a handful of strings).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable, Mapping

REDACTED = "[redacted]"
# Shorter strings are not secrets worth a global replace (and would mangle ordinary words).
MIN_SECRET_CHARS = 8

# Names whose values are secrets, in JSON, headers, query strings and "name=value" prose.
_CREDENTIAL_FIELDS = (
    r"(?:x-[a-z0-9-]*key|[a-z0-9_-]*api[_-]?key|authorization|proxy-authorization|"
    r"[a-z0-9_-]*token|[a-z0-9_-]*secret(?:[_-]?(?:access)?[_-]?key)?|password|passwd|"
    r"private[_-]?key|client[_-]?secret|x-amz-signature|x-amz-credential|"
    r"x-amz-security-token|signature|sig|key)"
)


@functools.cache
def _patterns() -> tuple[re.Pattern[str], ...]:
    # Compiled on the first scrub, not at import: a cold start that raises nothing skips them.
    return (
        # PEM private keys, whole (or to the end of a cut-off message).
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S
        ),
        # A secret-named field and its value: "x-goog-api-key: AIza...", '"api_key": "..."',
        # "?key=...", "token=...". The name stays, so the message still says what was wrong.
        re.compile(
            r"(?i)(?P<name>\b" + _CREDENTIAL_FIELDS + r")(?P<sep>\\?[\"']?\s*[:=]\s*\\?[\"']?)"
            r"(?P<value>(?:bearer\s+|basic\s+)?[^\s\"'&,;)\]}\\]{4,})"
        ),
        re.compile(r"(?i)\b(?:bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"),
        re.compile(r"\b(?:sk|rk)[-_][A-Za-z0-9_-]{8,}"),
        re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[0-9A-Z]{16}\b"),
        re.compile(r"\bAIza[0-9A-Za-z_-]{20,}"),
        re.compile(r"\bya29\.[0-9A-Za-z._-]+"),
        re.compile(r"\beyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*"),
    )


_lock = threading.Lock()
_known: set[str] = set()
_known_pattern: re.Pattern[str] | None = None


def remember(*secrets: str | None) -> None:
    """Add secrets the process holds; ``scrub`` removes them from any text from now on."""
    global _known_pattern
    fresh = {
        secret
        for secret in secrets
        if isinstance(secret, str) and len(secret.strip()) >= MIN_SECRET_CHARS
    }
    with _lock:
        if fresh <= _known:
            return
        _known.update(fresh)
        # Longest first: a key that contains another is removed whole.
        ordered = sorted(_known, key=len, reverse=True)
        _known_pattern = re.compile("|".join(re.escape(secret) for secret in ordered))


# Config fields whose values are secrets (the provider secret's entries, at any depth).
_SECRET_FIELD = re.compile(r"(?i)(key|token|secret|password|credential)")


def remember_config(config: Mapping[str, object]) -> None:
    """Remember every string under a secret-named field of a provider's config, at any depth."""
    remember(*_secret_values(config, inherited=False))


def _secret_values(value: object, *, inherited: bool) -> Iterable[str]:
    if isinstance(value, str):
        # Endpoints (a service account's token_uri) are addresses, not secrets.
        if inherited and not value.startswith(("https://", "http://")):
            yield value
        return
    if isinstance(value, Mapping):
        for name, item in value.items():
            yield from _secret_values(
                item, inherited=inherited or bool(_SECRET_FIELD.search(str(name)))
            )
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secret_values(item, inherited=inherited)


def _named_value(match: re.Match[str]) -> str:
    return f"{match.group('name')}{match.group('sep')}{REDACTED}"


def scrub(text: str) -> str:
    """``text`` without the secrets the process holds and without credential-shaped strings."""
    pattern = _known_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for index, shape in enumerate(_patterns()):
        text = shape.sub(_named_value if index == 1 else REDACTED, text)
    return text

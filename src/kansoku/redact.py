"""One scrubber for everything that leaves the process: logs, error events, snapshots, spans, alerts.

Two kinds of secret are removed:

- values under sensitive keys, at any depth (``password``, ``token``, ``authorization``...);
- secrets inside strings wherever they appear: Bearer and Basic credentials, JWTs, PEM private
  keys, cloud access keys, ``password=...`` pairs, card numbers that pass the Luhn check, and
  e-mail addresses unless PII is allowed.

The result is also bounded: long strings are cut with a marker, depth and list length capped, and
anything that is not JSON data becomes its (bounded) ``repr``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = ["DEFAULT_KEYS", "REDACTED", "Redactor", "luhn_valid"]

REDACTED: Final = "[REDACTED]"

DEFAULT_KEYS: Final = frozenset(
    {
        "password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "authorization",
        "cookie", "set_cookie", "session", "csrf", "xsrf", "private_key", "card_number",
        "cardnumber", "credit_card", "cvv", "cvc", "ssn", "access_key", "secret_key", "dsn",
        "proxy_authorization", "x_api_key", "client_secret", "refresh_token", "access_token",
        "id_token", "auth_token", "credentials", "passphrase", "pin",
    }
)
# Context fields that contain a sensitive word but are ids, not secrets.
_SAFE_KEYS: Final = frozenset(
    {"session_id", "request_id", "trace_id", "span_id", "event_id", "user_id", "token_type",
     "csrf_field", "max_tokens", "token_count"}
)
_KEY_SPLIT = re.compile(r"[^a-z0-9]+")

_CARD = r"(?<![\d.])(?:\d[ -]?){12,}\d(?![\d.])"
_PATTERNS: Final = (
    (re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S),
     "[REDACTED PRIVATE KEY]"),
    (re.compile(r"\b(Bearer|Basic|Token|Digest)\s+[A-Za-z0-9\-._~+/=]{6,}", re.I), r"\1 " + REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), REDACTED),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), REDACTED),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"), REDACTED),
    (re.compile(r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{10,}"), REDACTED),
    (re.compile(
        r"(?i)\b(password|passwd|pwd|pw|pass|secret|token|api[_-]?key|access[_-]?token|client[_-]?secret"
        r"|auth|sig|signature)([\"']?\s*[=:]\s*[\"']?)([^\s&\"',;]+)"),
     r"\1\2" + REDACTED),
    (re.compile(r"(://[^/\s:@]*:)[^/\s@]+@"), r"\1" + REDACTED + "@"),  # user:password@host
)
_CARD_RE: Final = re.compile(_CARD)
_EMAIL_RE: Final = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# A cheap pre-check on the lower-cased string: one that matches none of these cannot hold a secret
# we look for. Written as a prefix tree because Python's regex engine scans that much faster.
_SUSPECT: Final = re.compile(
    r"b(?:earer|asic)|t(?:oken)|d(?:igest)|e(?:yj)|a(?:kia|sia|iza|pi.?key|uth)|x(?:ox)|gh[pousr]_"
    r"|[sr]k_|p(?:ass|wd?)|s(?:ecret|ig)|://|@|-----begin|\d{4}[ -]?\d{4}"
)
# Fields that kansoku itself writes and that cannot carry a user's secret.
_OWN_FIELDS: Final = frozenset(
    {"timestamp", "level", "logger", "category", "service", "environment", "version", "trace_id",
     "span_id", "request_id", "duration_ms", "status"}
)


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check that card numbers satisfy."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    """Mask the card number inside a run of digits; the run may carry other numbers around it."""
    text = match.group(0)
    groups = [(m.start(), m.end()) for m in re.finditer(r"\d+", text)]
    for i in range(len(groups)):  # try runs of whole digit groups, longest first
        digits = ""
        for j in range(i, len(groups)):
            digits += text[groups[j][0]:groups[j][1]]
            if len(digits) > 19:
                break
            if len(digits) >= 13 and luhn_valid(digits):
                return f"{text[:groups[i][0]]}[REDACTED CARD]{_mask_rest(text[groups[j][1]:])}"
    return text


def _mask_rest(text: str) -> str:
    return _CARD_RE.sub(_mask_card, text) if text else text


class Redactor:
    """Removes secrets from data and bounds its size. One instance per configuration.

    `redact(value)` returns a JSON-ready copy; `redact_text(s)` scrubs one string; calling the
    instance makes it a structlog processor.
    """

    def __init__(
        self,
        extra_keys: Iterable[str] = (),
        *,
        allow_pii: bool = False,
        max_string: int = 4096,
        max_depth: int = 8,
        max_items: int = 100,
        mask: str = REDACTED,
    ) -> None:
        self.keys = DEFAULT_KEYS | {self._normalise(k) for k in extra_keys}
        self.allow_pii = allow_pii
        self.max_string = max_string
        self.max_depth = max_depth
        self.max_items = max_items
        self.mask = mask
        self._key_cache: dict[str, bool] = {}
        self._text_cache: dict[str, str] = {}
        self._key_kind: dict[str, int] = {}

    @staticmethod
    def _normalise(key: str) -> str:
        return _KEY_SPLIT.sub("_", key.lower()).strip("_")

    def is_sensitive_key(self, key: object) -> bool:
        """Whether values under this key are secrets (cached per key)."""
        if not isinstance(key, str):
            return False
        cached = self._key_cache.get(key)
        if cached is None:
            norm = self._normalise(key)
            if norm in _SAFE_KEYS:
                cached = False
            else:
                parts = norm.split("_")
                cached = norm in self.keys or any(p in self.keys for p in parts) or any(
                    "_".join(parts[i:i + 2]) in self.keys for i in range(len(parts) - 1)
                )
            if len(self._key_cache) < 10_000:
                self._key_cache[key] = cached
        return cached

    def redact_text(self, text: str) -> str:
        """Scrub secrets inside one string and truncate it to the configured length."""
        if len(text) > self.max_string:
            text = f"{text[:self.max_string]}...[truncated {len(text) - self.max_string} chars]"
        if len(text) <= 256:
            cached = self._text_cache.get(text)
            if cached is not None:
                return cached
            result = self._scrub(text)
            if len(self._text_cache) >= 4096:  # bounded; repeated messages refill it at once
                self._text_cache.clear()
            self._text_cache[text] = result
            return result
        return self._scrub(text)

    def _scrub(self, text: str) -> str:
        if _SUSPECT.search(text.lower()) is None:
            return text
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        text = _CARD_RE.sub(_mask_card, text)
        if not self.allow_pii:
            text = _EMAIL_RE.sub("[REDACTED EMAIL]", text)
        return text

    def redact(self, value: Any, _depth: int = 0) -> Any:
        """A redacted, size-bounded, JSON-ready copy of `value`."""
        if isinstance(value, str):
            return self.redact_text(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if _depth >= self.max_depth:
            return "[depth limit]"
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for count, (key, item) in enumerate(value.items()):
                if count >= self.max_items:
                    out["..."] = f"[{len(value) - self.max_items} more keys]"
                    break
                name = key if isinstance(key, str) else str(key)
                out[name] = self.mask if self.is_sensitive_key(name) else self.redact(item, _depth + 1)
            return out
        if isinstance(value, list | tuple | set | frozenset):
            items = [self.redact(item, _depth + 1) for item in list(value)[: self.max_items]]
            if len(value) > self.max_items:
                items.append(f"[{len(value) - self.max_items} more items]")
            return items
        if isinstance(value, bytes):
            return self.redact_text(value[: self.max_string].decode("utf-8", "replace"))
        return self.redact_text(_safe_repr(value))

    def __call__(self, logger: Any, method_name: str, event_dict: Any) -> Any:
        """structlog processor: redact every field of the event dict in place.

        The hot path of every log line: one dict lookup classifies each key, repeated strings hit
        a cache, numbers pass untouched.
        """
        kinds = self._key_kind
        cache = self._text_cache
        for key, value in event_dict.items():
            kind = kinds.get(key)
            if kind is None:
                kind = self._classify(key)
            if kind == _SKIP:
                continue
            if kind == _MASK:
                event_dict[key] = self.mask
                continue
            cls = value.__class__
            if cls is str:
                clean = cache.get(value)
                if clean is None:
                    clean = self.redact_text(value)
                if clean is not value:
                    event_dict[key] = clean
            elif not (cls is int or cls is float or cls is bool or value is None):
                event_dict[key] = self.redact(value, 1)
        return event_dict

    def clean_mapping(self, fields: Mapping[str, Any]) -> Mapping[str, Any]:
        """`fields` itself when nothing in it needs redacting, else a redacted copy (never mutates)."""
        kinds = self._key_kind
        for key, value in fields.items():
            kind = kinds.get(key)
            if kind is None:
                kind = self._classify(key)
            if kind == _SKIP:
                continue
            cls = value.__class__
            if kind == _SCAN and (cls is int or cls is float or cls is bool or value is None):
                continue
            if kind == _SCAN and cls is str and self._text_cache.get(value) == value:
                continue  # seen before, and clean
            redacted: dict[str, Any] = self(None, "", dict(fields))
            return redacted
        return fields

    def _classify(self, key: object) -> int:
        kind = _SKIP if key in _OWN_FIELDS else _MASK if self.is_sensitive_key(key) else _SCAN
        if len(self._key_kind) < 10_000 and isinstance(key, str):
            self._key_kind[key] = kind
        return kind


_SKIP, _MASK, _SCAN = 0, 1, 2


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception as exc:  # a broken __repr__ must not break logging
        return f"<{type(value).__name__} (repr failed: {type(exc).__name__})>"

"""One scrubber for everything that leaves the process: logs, error events, snapshots, spans, alerts.

What is removed:

- values under sensitive keys, at any depth and however spelt (``password``, ``apiKey``,
  ``X-Auth-Token``, ``aws_secret_access_key``, ``AccountKey``, ``sessionid``...), plus the extra
  keys of the ``redact_keys`` setting (the denylist);
- the same ``key=value`` / ``key: value`` / ``"key": "value"`` pairs inside free text: messages,
  query strings, cookie and connection strings, JSON held in a string (which stays valid JSON);
- provider tokens wherever they appear (the kinds in `kansoku._secrets.KINDS`: GitHub, GitLab,
  Slack, Stripe, OpenAI, Anthropic, AWS, Google, npm, PyPI... ), Bearer/Basic credentials, JWTs,
  PEM private keys, and passwords in URLs;
- PII numbers whose check passes: card numbers (Luhn), IBANs (mod 97), US SSNs, Japanese My
  Numbers (check digit); e-mail addresses unless PII is allowed.

Numbers under keys that name an id (``order_id``, ``trace_id``, ``sku``, ``invoice_number``...)
are not taken for cards or My Numbers; keys of the ``redact_allow_keys`` setting (the allowlist)
are neither masked nor scanned for PII numbers (provider tokens are still removed).

The result is also bounded: long strings are cut with a marker, depth and list length capped, and
anything that is not JSON data becomes its (bounded) ``repr``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, unquote

from kansoku._secrets import (
    HINTS,
    LATE_TOKENS,
    TOKENS,
    at_boundary,
    card_shape,
    iban_valid,
    luhn_valid,
    my_number_valid,
    trie_pattern,
)

if TYPE_CHECKING:
    from kansoku.settings import Settings

__all__ = ["DEFAULT_KEYS", "REDACTED", "Redactor", "luhn_valid", "redactor_for"]

REDACTED: Final = "[REDACTED]"

DEFAULT_KEYS: Final = frozenset(
    {
        "password", "passwd", "pwd", "pw", "pass", "secret", "token", "api_key", "apikey", "authorization",
        "cookie", "set_cookie", "session", "sessionid", "session_key", "csrf", "xsrf", "csrftoken",
        "private_key", "card_number", "cardnumber", "credit_card", "cvv", "cvc", "ssn", "access_key",
        "secret_key", "account_key", "accountkey", "shared_access_key", "dsn", "proxy_authorization",
        "x_api_key", "client_secret", "refresh_token", "access_token", "id_token", "auth_token",
        "credentials", "passphrase", "pin", "signature", "sig", "auth", "jwt", "otp", "iban",
        "account_number", "bank_account", "my_number", "mynumber", "social_security", "webhook_url",
        "connection_string", "security_code", "encryption_key", "signing_key", "master_key", "license_key",
    }
)
# Context fields that contain a sensitive word but are ids or counts, not secrets.
_SAFE_KEYS: Final = frozenset(
    {"session_id", "request_id", "trace_id", "span_id", "event_id", "user_id", "token_type",
     "csrf_field", "max_tokens", "token_count", "auth_type", "auth_method", "signature_version"}
)
# Compound words spelt without a separator (`csrftoken`, `dbpassword`): a part that ends in one.
_SUFFIX_KEYS: Final = ("password", "passwd", "secret", "token", "apikey", "cookie", "credentials",
                       "passphrase", "privatekey", "accesskey", "secretkey", "accountkey", "sessionid")
# The last word of a key that names an id or a count: its numbers are not cards nor My Numbers.
_ID_WORDS: Final = frozenset(
    {"id", "ids", "uuid", "guid", "sku", "skus", "number", "numbers", "no", "num", "nr", "ref", "reference",
     "ean", "upc", "isbn", "gtin", "serial", "count", "total", "amount", "qty", "quantity", "ts", "time",
     "timestamp", "version", "code", "seq", "offset", "size", "bytes", "ms", "ns"}
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_KEY_SPLIT = re.compile(r"[^a-z0-9]+")

_PEM: Final = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S)
_SCHEME: Final = re.compile(r"\b(Bearer|Basic|Token|Digest)\s+[A-Za-z0-9\-._~+/=]{6,}", re.I)
_USERINFO: Final = re.compile(r"(://[^/\s:@]*:)[^/\s@]+@")  # user:password@host
_DSN_KEY: Final = re.compile(r"(://)[0-9a-f]{32}(?::[0-9a-f]{32})?@")  # Sentry DSNs: the key is the user
# Runs of 12+ digits (spaces or dashes between groups): cards and My Numbers are looked for inside.
_DIGITS: Final = re.compile(r"(?<![\w.-])(?:\d[ -]?){11,}\d(?![\w.])")  # not inside UUIDs, hashes
_GROUPS: Final = re.compile(r"\d+")
_IBAN: Final = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_SSN: Final = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
_EMAIL_RE: Final = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_ENCODED: Final = re.compile(r"[^\s\"'<>]*%[0-9A-Fa-f]{2}[^\s\"'<>]*")
_SEPARATOR_NEXT: Final = re.compile(r"\s{0,3}(?:=|:(?!//))")
_KEY_BEFORE: Final = re.compile(r"([A-Za-z0-9_.-]{1,64})[\"']?\s{0,3}[=:]\s{0,3}[\"']?\Z")
# Fields that kansoku itself writes and that cannot carry a user's secret.
_OWN_FIELDS: Final = frozenset(
    {"timestamp", "level", "logger", "category", "service", "environment", "version", "trace_id",
     "span_id", "request_id", "duration_ms", "status"}
)
_SKIP, _MASK, _SCAN, _ID = 0, 1, 2, 3
# Every PII number has eight digits with at most a space or dash in the middle, or is an SSN.
_NUMBER_HINT: Final = re.compile(r"\d(?:\d{3}[ -]?\d{4}|\d\d-\d\d-\d{4})")


def _key_words(keys: Iterable[str]) -> list[str]:
    """Regex fragments for sensitive key words inside identifiers (`api_key` also as `api-key`, `apiKey`)."""
    return [r"[_.\-]?".join(re.escape(part) for part in key.split("_")) for key in sorted(keys)]


class Redactor:
    """Removes secrets from data and bounds its size. One instance per configuration.

    `redact(value)` returns a JSON-ready copy; `redact_text(s)` scrubs one string;
    `redact_value(key, value)` one value under its key; calling the instance makes it a structlog
    processor.
    """

    def __init__(
        self,
        extra_keys: Iterable[str] = (),
        *,
        allow_keys: Iterable[str] = (),
        allow_pii: bool = False,
        max_string: int = 4096,
        max_depth: int = 8,
        max_items: int = 100,
        mask: str = REDACTED,
    ) -> None:
        self.keys = DEFAULT_KEYS | {self._normalise(k) for k in extra_keys}
        self.allow_keys = frozenset(self._normalise(k) for k in allow_keys)
        self.allow_pii = allow_pii
        self.max_string = max_string
        self.max_depth = max_depth
        self.max_items = max_items
        self.mask = mask
        self._key_cache: dict[str, bool] = {}
        self._id_cache: dict[str, bool] = {}
        self._text_cache: dict[str, str] = {}
        self._key_kind: dict[str, int] = {}
        words = _key_words(self.keys)
        # Pre-checks: each stage of the scrub runs only when a cheap test says it may find
        # something, and most strings pass none (see `_scrub`). The tests that read the text
        # char by char are prefix trees of literals (Python's regex engine skips every position
        # whose character starts no branch).
        self._gate = re.compile(trie_pattern([*HINTS, *(w.lower() for w in words), "://", "-----begin",
                                              "bearer", "basic", "token", "digest", "@"]))
        # a sensitive word in an identifier that a separator follows (`db_password =`, `"pin":`)
        self._key_hint = re.compile(f"(?:{trie_pattern([w.lower() for w in words])})"
                                    r"[a-z0-9_.-]{0,40}+[\"']?\s{0,3}(?:=|:(?!//))")
        # key=value, key: value and "key": "value" pairs; the key decides (`_mask_pair`).
        self._pair = re.compile(
            r"(?<![A-Za-z0-9_.-])(?P<key>[A-Za-z0-9_.-]{1,80}+)"
            r"(?P<kq>[\"']?)(?P<sep>\s{0,3}(?:=>|=|:(?!//))\s{0,3})"
            r"(?:(?P<q>[\"'])(?P<qv>(?:\\.|[^\\])*?)(?P=q)|(?P<v>[^\s\"'&,;{}\[\]<>()]+))",
        )

    @staticmethod
    def _normalise(key: str) -> str:
        return _KEY_SPLIT.sub("_", _CAMEL.sub("_", key).lower()).strip("_")

    def is_sensitive_key(self, key: object) -> bool:
        """Whether values under this key are secrets (cached per key)."""
        if not isinstance(key, str):
            return False
        cached = self._key_cache.get(key)
        if cached is None:
            norm = self._normalise(key)
            if norm in _SAFE_KEYS or norm in self.allow_keys:
                cached = False
            else:
                parts = norm.split("_")
                keys = self.keys
                cached = norm in keys or any(p in keys or p.endswith(_SUFFIX_KEYS) for p in parts) or any(
                    "_".join(parts[i:i + 2]) in keys for i in range(len(parts) - 1)
                )
            if len(self._key_cache) < 10_000:
                self._key_cache[key] = cached
        return cached

    def is_id_key(self, key: object) -> bool:
        """Whether the key names an id or a count (or is allowed): its numbers are not PII numbers."""
        if not isinstance(key, str):
            return False
        cached = self._id_cache.get(key)
        if cached is None:
            norm = self._normalise(key)
            cached = norm in self.allow_keys or (
                norm.rpartition("_")[2] in _ID_WORDS and not self.is_sensitive_key(key))
            if len(self._id_cache) < 10_000:
                self._id_cache[key] = cached
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

    def redact_value(self, key: object, value: Any) -> Any:
        """`value` as it may leave the process under `key` (which is not itself sensitive)."""
        if value.__class__ is str:
            if self.is_id_key(key):
                text = value if len(value) <= self.max_string else self.redact_text(value)
                return self._scrub(text, numbers=False)
            return self.redact_text(value)
        if value.__class__ is int and value >= 100_000_000_000 and not self.is_id_key(key):
            text = str(value)
            clean = self._numbers(text)
            return value if clean == text else clean
        return self.redact(value)

    def _scrub(self, text: str, *, numbers: bool = True) -> str:
        if "%" in text and _ENCODED.search(text) is not None:  # a URL's query, percent-encoded
            text = _ENCODED.sub(lambda match: self._scrub_encoded(match, numbers), text)
        lower = text.lower()
        words = self._gate.search(lower) is not None
        if not words and not (numbers and _NUMBER_HINT.search(text) is not None):
            return text  # the common case: one scan of the text, or two with digits in it
        if words:
            if "-----begin" in lower:
                text = _PEM.sub("[REDACTED PRIVATE KEY]", text)
            if "bearer" in lower or "basic" in lower or "token" in lower or "digest" in lower:
                text = _SCHEME.sub(r"\1 " + REDACTED, text)
            text = TOKENS.sub(_mask_token, text)
            for hint, pattern in LATE_TOKENS:
                if hint in text:
                    text = pattern.sub(_mask_token, text)
            if "://" in text:
                text = _USERINFO.sub(r"\1" + REDACTED + "@", text)
                text = _DSN_KEY.sub(r"\1" + REDACTED + "@", text)
            if ("=" in text or ":" in text) and self._key_hint.search(lower) is not None:
                text = self._mask_pairs(text)
            if not self.allow_pii and "@" in text:
                text = _EMAIL_RE.sub("[REDACTED EMAIL]", text)
        if numbers and _NUMBER_HINT.search(text) is not None:
            text = self._numbers(text)
        return text

    def _scrub_encoded(self, match: re.Match[str], numbers: bool) -> str:
        """Scrub a percent-encoded run decoded; it stays as it was when nothing in it is secret."""
        raw = match.group(0)
        decoded = unquote(raw)
        clean = self._scrub(decoded, numbers=numbers)
        return raw if clean == decoded else quote(clean, safe="/:?&=@[]!$'()*+,;~-._")

    def _mask_pairs(self, text: str) -> str:
        """Mask the values of `key=value`-like pairs whose key is sensitive; other pairs are
        scanned on from their value on (a URL's query, a cookie string inside a message)."""
        pieces: list[str] = []
        position = 0
        search = self._pair.search
        while (match := search(text, position)) is not None:
            quote_char = match["q"]
            # The "value" may be the next key (`token: "api_key": "..."`): then that pair decides.
            next_key = (match["v"] or "").endswith(":") or (
                quote_char and _SEPARATOR_NEXT.match(text, match.end()) is not None)
            if next_key or not self.is_sensitive_key(match["key"]):
                pieces.append(text[position:match.end("sep")])
                position = match.end("sep")
                continue
            pieces.append(text[position:match.end("sep")])
            if quote_char:
                pieces.append(f"{quote_char}{self.mask}{quote_char}")
            elif match["kq"] == '"':  # a JSON number or literal: the mask must stay a JSON string
                pieces.append(f'"{self.mask}"')
            else:
                pieces.append(self.mask)
            position = match.end()
        if not pieces:
            return text
        pieces.append(text[position:])
        return "".join(pieces)

    def _numbers(self, text: str) -> str:
        """Mask PII numbers (cards, My Numbers, IBANs, SSNs) unless a key naming an id precedes them."""
        text = _IBAN.sub(self._mask_iban, text)
        if "-" in text:
            text = _SSN.sub("[REDACTED SSN]", text)
        return _DIGITS.sub(self._mask_digits, text)

    def _after_id_key(self, text: str, start: int) -> bool:
        before = _KEY_BEFORE.search(text, max(0, start - 72), start)
        return before is not None and self.is_id_key(before.group(1))

    def _mask_iban(self, match: re.Match[str]) -> str:
        if iban_valid(match.group(0)) and not self._after_id_key(match.string, match.start()):
            return "[REDACTED IBAN]"
        return match.group(0)

    def _mask_digits(self, match: re.Match[str]) -> str:
        """Mask the card number or My Number inside a run of digits (it may carry other numbers)."""
        text = match.group(0)
        if self._after_id_key(match.string, match.start()):
            return text
        groups = [(m.start(), m.end()) for m in _GROUPS.finditer(text)]
        for i in range(len(groups)):  # runs of whole digit groups from each group on, longest first
            found = None
            digits = ""
            for j in range(i, len(groups)):
                digits += text[groups[j][0]:groups[j][1]]
                if len(digits) > 19:
                    break
                whole = i == 0 and j == len(groups) - 1
                kind = _pii_number(digits, [end - begin for begin, end in groups[i:j + 1]], whole)
                if kind is not None:
                    found = (j, kind)
            if found is not None:
                j, kind = found
                rest = text[groups[j][1]:]
                rest = _DIGITS.sub(self._mask_digits, rest) if rest else rest
                return f"{text[:groups[i][0]]}{kind}{rest}"
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
                if self.is_sensitive_key(name):
                    out[name] = self.mask
                elif item.__class__ is str or item.__class__ is int:
                    out[name] = self.redact_value(name, item)
                else:
                    out[name] = self.redact(item, _depth + 1)
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
        a cache, small numbers pass untouched.
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
                clean = cache.get(value) if kind == _SCAN else None
                if clean is None:
                    clean = self.redact_value(key, value)
                if clean is not value:
                    event_dict[key] = clean
            elif cls is int:
                if value >= 100_000_000_000 and kind == _SCAN:
                    event_dict[key] = self.redact_value(key, value)
            elif not (cls is float or cls is bool or value is None):
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
            if kind != _MASK and (cls is float or cls is bool or value is None
                                  or (cls is int and (value < 100_000_000_000 or kind == _ID))):
                continue
            if kind == _SCAN and cls is str and self._text_cache.get(value) == value:
                continue  # seen before, and clean
            redacted: dict[str, Any] = self(None, "", dict(fields))
            return redacted
        return fields

    def _classify(self, key: object) -> int:
        kind = (_SKIP if key in _OWN_FIELDS else _MASK if self.is_sensitive_key(key)
                else _ID if self.is_id_key(key) else _SCAN)
        if len(self._key_kind) < 10_000 and isinstance(key, str):
            self._key_kind[key] = kind
        return kind


def _mask_token(match: re.Match[str]) -> str:
    return REDACTED if at_boundary(match) else match.group(0)


def _pii_number(digits: str, sizes: list[int], whole: bool) -> str | None:
    """The mask for a card number (anywhere in a run of digit groups) or a My Number (a whole run)
    written in groups of these `sizes`, else None."""
    if len(digits) >= 13 and digits[0] in "23456" and card_shape(sizes) and luhn_valid(digits):
        return "[REDACTED CARD]"
    if whole and len(digits) == 12 and sizes in ([12], [4, 4, 4]) and my_number_valid(digits):
        return "[REDACTED MY NUMBER]"
    return None


def redactor_for(settings: Settings, **bounds: Any) -> Redactor:
    """The redactor of `settings` (extra and allowed keys, PII, string length); `bounds` override
    the size limits (`max_string`, `max_depth`, `max_items`) or the mask."""
    options: dict[str, Any] = {"max_string": settings.max_string_length, **bounds}
    return Redactor(settings.redact_keys, allow_keys=settings.redact_allow_keys, allow_pii=settings.allow_pii,
                    **options)


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception as exc:  # a broken __repr__ must not break logging
        return f"<{type(value).__name__} (repr failed: {type(exc).__name__})>"

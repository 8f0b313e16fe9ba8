"""Grouping: which events are "the same error".

The default key is the exception type plus the in-app frames (module and function, never line
numbers), for every exception of the chain: editing a file above the bug keeps its group, two call
sites make two groups. With no in-app frame to go by, the message decides, with its variable parts
(numbers, UUIDs, hex ids, e-mails, IPs, URLs, dates, quoted values) replaced by placeholders.
A fingerprint given to the call, or by the first matching rule, replaces (or, with
`{{ default }}`, refines) the default. The parts that made the key are kept with the group, so
the dashboard can show why events were grouped together.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from kansoku.exceptions import ConfigError

__all__ = ["ChainFrames", "FingerprintRule", "Fingerprinter", "group_key", "normalise_message", "parse_rules"]

DEFAULT: Final = "{{ default }}"
_MAX_MESSAGE: Final = 1000
_PATTERNS: Final = tuple((re.compile(p, re.I), r) for p, r in (
    (r"[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}", "<email>"),
    (r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", "<url>"),
    (r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<uuid>"),
    (r"\b\d{4}-\d{2}-\d{2}(?:[t ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:z|[+-]\d{2}:?\d{2})?)?\b", "<date>"),
    (r"\b\d{1,2}/\d{1,2}/\d{2,4}\b", "<date>"),
    (r"\b\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\b", "<time>"),
    (r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b", "<ip>"),
    (r"(?<![\w:])(?:(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}"
     r"|(?:[0-9a-f]{1,4}:){0,6}[0-9a-f]{0,4}::(?:[0-9a-f]{1,4}:){0,6}[0-9a-f]{0,4})(?![\w:])", "<ip>"),
    (r"\b0x[0-9a-f]+\b", "<hex>"),
    (r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,128}\b", "<hex>"),
    (r"(?<![\w'])'[^'\n]{0,200}'(?![\w'])", "<quoted>"),
    (r"(?<![\w\"])\"[^\"\n]{0,200}\"(?![\w\"])", "<quoted>"),
    (r"\b\d+(?:\.\d+)?(?:ms|us|µs|ns|s|m|h|d)\b", "<duration>"),
    (r"\b\d+\.\d+\b", "<float>"),
    (r"\b\d+\b", "<int>"),
))


def normalise_message(message: str) -> str:
    """The message with its variable parts replaced: `user 42 not found` -> `user <int> not found`."""
    text = message[:_MAX_MESSAGE]
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return " ".join(text.split())


def group_key(service: str, environment: str, parts: Iterable[str]) -> str:
    """The group's key: a hash of the parts, within one service and environment (64 hex digits)."""
    digest = hashlib.sha256(f"{service}\x00{environment}".encode())
    for part in parts:
        digest.update(b"\x00" + part.encode("utf-8", "replace"))
    return digest.hexdigest()


class ChainFrames(NamedTuple):
    """What grouping needs of one exception of the chain: its type and its frames."""

    type_name: str
    frames: Sequence[tuple[str, str, bool]]  # (module, function, in_app), innermost last


def default_parts(chain: Sequence[ChainFrames], message: str) -> list[str]:
    """Type + in-app frames of every exception of the chain; or type + normalised message.

    Pass the message already redacted: a secret in it must neither reach the stored parts nor
    split the group.
    """
    parts: list[str] = []
    any_frames = False
    for link in chain:
        parts.append(f"type:{link.type_name}")
        previous = None
        for module, function, in_app in link.frames:
            name = f"{module}.{function}" if module else function
            if in_app and name != previous:  # recursion collapses to one frame
                parts.append(f"frame:{name}")
                any_frames = True
                previous = name
    if any_frames:
        return parts
    return [f"type:{chain[-1].type_name}" if chain else "type:Error", f"message:{normalise_message(message)}"]


@dataclass(frozen=True)
class FingerprintRule:
    """A rule giving a fingerprint to matching events; every condition given must match.

    `type` and `message` are globs (`*`), matched case-insensitively against the exception's
    qualified or bare type name and the message; `module` and `function` against any in-app frame.
    `fingerprint` may use `{{ default }}`, `{{ type }}`, `{{ module }}`, `{{ function }}` and
    `{{ message }}` (the normalised message).
    """

    fingerprint: tuple[str, ...]
    name: str = ""
    type: str | None = None
    message: str | None = None
    module: str | None = None
    function: str | None = None

    def matches(self, chain: Sequence[ChainFrames], message: str) -> bool:
        """Whether the event (its raised exception and frames) satisfies every condition."""
        raised = chain[-1] if chain else ChainFrames("Error", ())
        if self.type and not (_glob(self.type, raised.type_name) or
                              _glob(self.type, raised.type_name.rsplit(".", 1)[-1])):
            return False
        if self.message and not _glob(self.message, message):
            return False
        in_app = [(m, f) for m, f, app in raised.frames if app] or [(m, f) for m, f, _ in raised.frames]
        if self.module and not any(_glob(self.module, m) for m, _ in in_app):
            return False
        return not (self.function and not any(_glob(self.function, f) for _, f in in_app))


def _glob(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


def parse_rules(raw: Iterable[Mapping[str, Any]]) -> list[FingerprintRule]:
    """Rules from configuration (`[[errors.fingerprint_rules]]`); ConfigError names a bad one."""
    rules = []
    for index, item in enumerate(raw):
        where = f"errors.fingerprint_rules[{index}]"
        unknown = set(item) - {"fingerprint", "name", "type", "message", "module", "function"}
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}; "
                              "use fingerprint, name, type, message, module, function")
        value = item.get("fingerprint")
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{where}: 'fingerprint' must be a non-empty list of strings")
        fields = {k: item.get(k) for k in ("type", "message", "module", "function")}
        if not any(fields.values()):
            raise ConfigError(f"{where}: give at least one of type, message, module, function to match")
        rules.append(FingerprintRule(fingerprint=tuple(value), name=str(item.get("name") or f"rule {index}"),
                                     **{k: str(v) for k, v in fields.items() if v}))
    return rules


class Fingerprinter:
    """Computes (group key, parts) for an event; the default grouping is cached per code location."""

    def __init__(
        self,
        service: str,
        environment: str,
        rules: Sequence[FingerprintRule] = (),
        *,
        scrub: Callable[[str], str] = str,
    ) -> None:
        self.service = service
        self.environment = environment
        self.rules = list(rules)
        self.scrub = scrub  # the redactor's redact_text: messages in the parts are stored
        self._cache: dict[Any, tuple[Any, tuple[str, list[str]]]] = {}

    def compute(
        self,
        chain: Sequence[ChainFrames] | Callable[[], Sequence[ChainFrames]],
        message: str,
        custom: Sequence[str] | None = None,
        *,
        cache_key: tuple[Any, Any] | None = None,
    ) -> tuple[str, list[str]]:
        """The group key and the parts that made it.

        `chain` may be a function making it, called only when the cache cannot answer.
        `cache_key` is (key of the chain's code locations, objects to keep alive with the entry);
        when given, the default grouping of frame-grouped events is computed once per location.
        """
        if custom is None and not self.rules and cache_key is not None:
            cached = self._cache.get(cache_key[0])
            if cached is not None:
                return cached[1]
        if custom is not None and not any("{{" in value for value in custom):
            return self._literal(tuple(custom))
        if callable(chain):
            chain = chain()
        if custom is None:
            for rule in self.rules:
                if rule.matches(chain, message):
                    parts = [f"rule:{rule.name}", *self._expand(rule.fingerprint, chain, message)]
                    return group_key(self.service, self.environment, parts), parts
            return self._default(chain, message, cache_key)
        parts = self._expand(custom, chain, message)
        return group_key(self.service, self.environment, parts), parts

    def _default(
        self, chain: Sequence[ChainFrames], message: str, cache_key: tuple[Any, Any] | None
    ) -> tuple[str, list[str]]:
        parts = default_parts(chain, self.scrub(message))
        result = group_key(self.service, self.environment, parts), parts
        # A message-grouped result depends on the message, not only on the code: never cached.
        if cache_key is not None and not parts[-1].startswith("message:"):
            if len(self._cache) >= 10_000:
                self._cache.clear()
            self._cache[cache_key[0]] = (cache_key[1], result)
        return result

    def _literal(self, values: tuple[str, ...]) -> tuple[str, list[str]]:
        """A custom fingerprint without placeholders: the same key every time (cached)."""
        cached = self._cache.get(values)
        if cached is None:
            parts = [f"custom:{value}" for value in values]
            if len(self._cache) >= 10_000:
                self._cache.clear()
            cached = self._cache[values] = (None, (group_key(self.service, self.environment, parts), parts))
        return cached[1]

    def _expand(self, values: Sequence[str], chain: Sequence[ChainFrames], message: str) -> list[str]:
        parts: list[str] = []
        for value in values:
            if value.strip() == DEFAULT:
                parts.extend(default_parts(chain, self.scrub(message)))
            elif "{{" in value:
                parts.append(f"custom:{_substitute(value, chain, self.scrub(message))}")
            else:
                parts.append(f"custom:{value}")
        return parts


_VARIABLE: Final = re.compile(r"\{\{\s*(type|module|function|message)\s*\}\}")


def _substitute(value: str, chain: Sequence[ChainFrames], message: str) -> str:
    raised = chain[-1] if chain else ChainFrames("Error", ())
    frames = [f for f in raised.frames if f[2]] or list(raised.frames)
    top = frames[-1] if frames else ("", "", False)
    values = {"type": raised.type_name, "module": top[0], "function": top[1]}

    def value_of(match: re.Match[str]) -> str:
        name = match.group(1)
        return normalise_message(message) if name == "message" else values[name]

    return _VARIABLE.sub(value_of, value)

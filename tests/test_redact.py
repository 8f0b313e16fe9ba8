"""Redaction: keys at any depth, secrets inside strings, size bounds; property-tested."""

from __future__ import annotations

import string
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kansoku.redact import REDACTED, Redactor, luhn_valid

CARDS = ["4111111111111111", "5500 0000 0000 0004", "3400-0000-0000-009", "4242424242424242"]
r = Redactor()


def test_sensitive_keys_are_masked_at_any_depth() -> None:
    """password, tokens, authorization, cookies... are masked however deep and however spelt."""
    data = {"user": {"Password": "p", "profile": [{"api-key": "k", "X-Auth-Token": "t"}]},
            "Authorization": "Basic abc", "set-cookie": "sid=1", "db_password": "pw", "card_number": "4"}
    assert r.redact(data) == {
        "user": {"Password": REDACTED, "profile": [{"api-key": REDACTED, "X-Auth-Token": REDACTED}]},
        "Authorization": REDACTED, "set-cookie": REDACTED, "db_password": REDACTED, "card_number": REDACTED,
    }


def test_ids_that_contain_sensitive_words_are_kept() -> None:
    """session_id, request_id and friends are context, not secrets."""
    assert r.redact({"session_id": "s1", "request_id": "r1"}) == {"session_id": "s1", "request_id": "r1"}


def test_configured_extra_keys_are_masked() -> None:
    """Keys added by configuration are masked too."""
    assert Redactor(["tax_id"]).redact({"tax_id": "123"}) == {"tax_id": REDACTED}


def test_secrets_inside_strings_are_scrubbed() -> None:
    """Bearer/Basic credentials, JWTs, PEM keys, cloud keys, key=value pairs and URL passwords go."""
    text = ("auth Bearer abc.def-123456 basic Basic dXNlcjpwYXNz jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig "
            "aws AKIAIOSFODNN7EXAMPLE url https://bob:hunter2@db.local/x?token=abc123&x=1 "
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- password=hunter2")
    out = r.redact_text(text)
    for secret in ("abc.def-123456", "dXNlcjpwYXNz", "eyJhbGciOiJIUzI1NiJ9", "AKIAIOSFODNN7EXAMPLE",
                   "hunter2", "abc123", "MIIE"):
        assert secret not in out, secret
    assert "x=1" in out


def test_card_numbers_are_masked_only_when_luhn_valid() -> None:
    """A 16-digit number that passes Luhn is masked; one that fails (an order number) is kept."""
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert r.redact_text("card 4111 1111 1111 1111 ok") == "card [REDACTED CARD] ok"
    assert r.redact_text("order 4111111111111112") == "order 4111111111111112"


def test_emails_masked_unless_pii_allowed() -> None:
    """E-mail addresses are PII: masked by default, kept when PII is allowed."""
    assert "bob@example.com" not in r.redact_text("mail bob@example.com")
    assert Redactor(allow_pii=True).redact_text("mail bob@example.com") == "mail bob@example.com"


def test_sizes_are_bounded() -> None:
    """Long strings are cut with a marker; depth and list length are capped."""
    small = Redactor(max_string=100, max_depth=3, max_items=5)
    assert small.redact_text("x" * 500).endswith("...[truncated 400 chars]")
    nested: Any = {"a": {"b": {"c": {"d": 1}}}}
    assert small.redact(nested) == {"a": {"b": {"c": "[depth limit]"}}}
    assert small.redact(list(range(8))) == [0, 1, 2, 3, 4, "[3 more items]"]


def test_unserialisable_values_become_bounded_reprs() -> None:
    """Objects become their repr; a broken __repr__ does not raise."""

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert r.redact(Broken()).startswith("<Broken (repr failed")


# --- properties -----------------------------------------------------------------------------

SECRET_KEYS = st.sampled_from(["password", "api_key", "Authorization", "client-secret", "refresh_token", "cvv"])
SECRETS = st.text(alphabet=string.ascii_letters + string.digits, min_size=12, max_size=30).map(lambda s: "Zq" + s)
EMBEDDED = st.sampled_from([
    lambda s: f"Bearer {s}", lambda s: f"token={s}", lambda s: "eyJhbGciOi." + s + ".c2ln",
    lambda s: f"https://user:{s}@host/", lambda s: f"password: {s}",
])
FILLER = st.text(alphabet=string.ascii_letters + " .,-", max_size=20)


@st.composite
def nested_with_secret(draw: st.DrawFn) -> tuple[Any, str]:
    """A random structure with one secret placed at a random depth, under a key or inside text."""
    secret = draw(SECRETS)
    if draw(st.booleans()):
        leaf: Any = {draw(SECRET_KEYS): secret}
    else:
        leaf = draw(FILLER) + " " + draw(EMBEDDED)(secret) + " " + draw(FILLER)
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            leaf = {draw(st.sampled_from(["data", "items", "x", "payload"])): leaf, "n": draw(st.integers())}
        else:
            leaf = [draw(FILLER), leaf]
    return leaf, secret


@settings(max_examples=300, deadline=None)
@given(nested_with_secret())
def test_property_secrets_never_survive(case: tuple[Any, str]) -> None:
    """Secrets at random depths and positions never appear anywhere in the redacted output."""
    data, secret = case
    assert secret not in repr(r.redact(data))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(SECRETS, st.sampled_from(CARDS)), min_size=1, max_size=3), FILLER)
def test_property_card_numbers_never_survive(pairs: list[tuple[str, str]], filler: str) -> None:
    """Luhn-valid card numbers embedded anywhere in text are always masked."""
    text = filler.join(f"{a} {card} " for a, card in pairs)
    out = r.redact_text(text)
    for _, card in pairs:
        assert card not in out


def test_short_password_keys_in_text_are_scrubbed() -> None:
    """pw=..., pwd=... and pass: ... pairs in free text lose their values."""
    out = r.redact_text("login pw=s3cret1 then pwd=hunter22 and pass: opensesame")
    assert "s3cret1" not in out and "hunter22" not in out and "opensesame" not in out

"""Detection across the field: provider tokens, labelled secrets, PII by checksum; ids and benign data kept."""

from __future__ import annotations

import json

import pytest

from kansoku._secrets import KINDS, iban_valid, my_number_valid
from kansoku.redact import REDACTED, Redactor, redactor_for
from kansoku.settings import load_settings

from .corpus import BENIGN, LABELLED, LABELLED_VALUES, SECRETS, secret_core

r = Redactor()
FORMS = {
    "text": lambda s: f"charge failed with {s}, retrying",
    "json": lambda s: json.dumps({"note": s, "n": 1}),
    "query": lambda s: f"/search?q={s}&page=2",
    "quoted": lambda s: f"got '{s}'",
}


def test_at_least_forty_provider_kinds_are_covered() -> None:
    """The token rules and the corpus each cover 40+ kinds."""
    assert len(KINDS) >= 40
    assert len(SECRETS) + len(LABELLED) >= 40


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", SECRETS)
def test_every_secret_kind_is_masked_in_every_form(kind: str, form: str) -> None:
    """Each fake secret is gone from free text, a JSON string, a query string and a quoted string."""
    out = r.redact_text(FORMS[form](SECRETS[kind]))
    assert secret_core(kind) not in out
    assert "[REDACTED" in out


@pytest.mark.parametrize("kind", LABELLED)
def test_labelled_secrets_in_free_text_are_masked(kind: str) -> None:
    """key=value, key: value and "key": "value" pairs with a sensitive key lose their value."""
    out = r.redact_text(f"config: {LABELLED[kind]} loaded")
    assert LABELLED_VALUES[kind] not in out and REDACTED in out


@pytest.mark.parametrize("kind", BENIGN)
def test_benign_values_come_out_intact(kind: str) -> None:
    """UUIDs, hashes, timestamps, phone numbers, amounts... are not taken for secrets."""
    value = BENIGN[kind]
    assert r.redact_text(f"value {value} end") == f"value {value} end"
    assert r.redact({"field": value, "nested": [value]}) == {"field": value, "nested": [value]}


def test_numbers_under_id_keys_are_not_cards() -> None:
    """A Luhn-valid order id stays under order_id, trace_id, sku... in data and in free text."""
    card = "4111111111111111"
    data = {"order_id": card, "orderId": int(card), "sku": card, "invoice_number": card, "note": card}
    assert r.redact(data) == {**data, "note": "[REDACTED CARD]"}
    assert r.redact_text(f"order_id={card} sku: {card} paid with {card}") == (
        f"order_id={card} sku: {card} paid with [REDACTED CARD]")


def test_a_card_number_held_as_an_int_under_a_neutral_key_is_masked() -> None:
    """Numbers are checked too, not only strings."""
    assert r.redact({"value": 4111111111111111, "count": 3}) == {"value": "[REDACTED CARD]", "count": 3}
    event = r(None, "info", {"event": "x", "value": 4111111111111111, "n": 7})
    assert event == {"event": "x", "value": "[REDACTED CARD]", "n": 7}


def test_json_in_a_string_stays_valid_json() -> None:
    """Masking inside a JSON document keeps it parseable (nested objects, numbers, quotes)."""
    doc = json.dumps({"auth": {"client": "web", "password": "p\"w", "pin": 1234},
                      "token": "abc123", "order_id": 4111111111111111, "card": "4111 1111 1111 1111",
                      "items": [{"secret": True}, {"api_key": None}]})
    parsed = json.loads(r.redact_text(doc))
    assert parsed == {"auth": {"client": "web", "password": REDACTED, "pin": REDACTED}, "token": REDACTED,
                      "order_id": 4111111111111111, "card": "[REDACTED CARD]",
                      "items": [{"secret": REDACTED}, {"api_key": REDACTED}]}


def test_key_spellings_are_recognised() -> None:
    """camelCase, dashes, compounds and prefixes name the same sensitive keys."""
    keys = ["apiKey", "X-Api-Key", "AccountKey", "aws_secret_access_key", "csrftoken", "dbPassword",
            "private_key_id", "sessionid", "client-secret", "authToken"]
    assert r.redact(dict.fromkeys(keys, "v")) == dict.fromkeys(keys, REDACTED)
    kept = ["max_tokens", "token_count", "session_id", "author", "signal", "shipping", "input_tokens"]
    assert r.redact(dict.fromkeys(kept, "v")) == dict.fromkeys(kept, "v")


def test_checksums_decide_pii_numbers() -> None:
    """IBAN by mod 97, My Number by its check digit, SSN by its issued ranges, cards by Luhn."""
    assert iban_valid("DE89 3704 0044 0532 0130 00") and not iban_valid("DE89 3704 0044 0532 0130 01")
    assert my_number_valid("123456789018") and not my_number_valid("123456789012")
    assert r.redact_text("DE89 3704 0044 0532 0130 02 and 1234 5678 9012") == (
        "DE89 3704 0044 0532 0130 02 and 1234 5678 9012")
    assert r.redact_text("ssn 536-22-8140, not 000-22-8140 nor 666-22-8140") == (
        "ssn [REDACTED SSN], not 000-22-8140 nor 666-22-8140")
    assert r.redact_text("card 4111111111111112") == "card 4111111111111112"


def test_allow_and_deny_lists_come_from_settings() -> None:
    """redact_keys masks more keys (in data and text); redact_allow_keys keeps a key's value as it is."""
    redactor = redactor_for(load_settings(redact_keys=("tax_id",), redact_allow_keys=("pin", "ref_card")))
    assert redactor.redact({"tax_id": "123", "pin": "4711", "ref_card": "4111111111111111"}) == {
        "tax_id": REDACTED, "pin": "4711", "ref_card": "4111111111111111"}
    assert redactor.redact_text("tax_id=DE123 pin=4711") == f"tax_id={REDACTED} pin=4711"
    assert redactor.redact({"ref_card": "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"}) == {"ref_card": REDACTED}


def test_redaction_is_idempotent() -> None:
    """Redacting twice changes nothing more (stored data redacted again on display stays the same)."""
    text = " ".join(FORMS["text"](value) for value in SECRETS.values())
    once = r.redact_text(text)
    assert r.redact_text(once) == once

"""Fake secrets of many kinds, and benign values that must come out of redaction intact.

Every secret is made up here (random-looking, in the provider's documented format); none is real.
`SECRETS` maps a kind to one value; `LABELLED` holds secrets that are only recognisable by the key
in front of them, written as they appear in free text.
"""

from __future__ import annotations

from typing import Final

_A = "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v2W3x4Y5z6"
_HEX = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0"

SECRETS: Final[dict[str, str]] = {
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTQyIiwiZXhwIjoxNzAwMDAwMDAwfQ.Qm9ndXNTaWduYXR1cmVWYWx1ZQ",
    "aws-access-key-id": "AKIAQX7T4ZKD2M5NB3WY",
    "aws-temporary-key-id": "ASIAZK4M7QW2X9D3B6TP",
    "google-api-key": "AIzaSyD" + "x7Qm2Zp4Rk9Wv3Lt6Hn8Jc1Bf5Gd0Ys2Ea",
    "google-oauth-secret": "GOCSPX-" + "q7Zt2Kp9Wm4Rx6Lv3Hn8Jc1Bf5Gd",
    "google-oauth-token": "ya29.a0AfB_" + "byC7q9Zt2Kp9Wm4Rx6Lv3Hn8Jc1Bf5Gd0",
    "slack-bot-token": "xoxb-" + "1234567890123-1234567890123-" + "q7Zt2Kp9Wm4Rx6Lv3Hn8Jc1B",
    "slack-app-token": "xapp-1-" + "A0123456789-1234567890123-" + _HEX[:32],
    "slack-webhook": "https://hooks.slack.com/services/" + "T0ABCDEFG/B0ABCDEFG/q7Zt2Kp9Wm4Rx6Lv3Hn8Jc1B",
    "discord-webhook": "https://discord.com/api/webhooks/123456789012345678/" + "q7Zt2Kp9Wm4Rx6Lv3Hn8Jc1Bf5Gd0Ys2Ea",
    "github-pat": "ghp_" + _A[:36],
    "github-oauth": "gho_" + _A[1:37],
    "github-fine-grained": "github_pat_" + "11ABCDEFG0" + _A[:12] + "_" + _A[:59],
    "gitlab-pat": "glpat-" + "q7Zt2Kp9Wm4Rx6Lv3Hn8",
    "gitlab-runner": "glrt-" + "t2_q7Zt2Kp9Wm4Rx6Lv3Hn8J",
    "stripe-secret": "sk_live_" + "51HxQz9T8c7R6a5B4n3M2k1J",
    "stripe-restricted": "rk_test_" + "51HxQz9T8c7R6a5B4n3M2k1J",
    "stripe-webhook": "whsec_" + "q7Zt2Kp9Wm4Rx6Lv3Hn8Jc1Bf5Gd0Ys",
    "twilio-api-key": "SK" + _HEX[:32],
    "sendgrid": "SG." + "q7Zt2Kp9Wm4Rx6Lv3Hn8Jc" + "." + "q7Zt2Kp9Wm4Rx6Lv3Hn8Jc1Bf5Gd0Ys2Ea9Uo4Ii6Pl",
    "openai-project": "sk-proj-" + _A + "T3BlbkFJ" + _A[:20],
    "openai-legacy": "sk-" + _A[:20] + "T3BlbkFJ" + _A[20:40],
    "anthropic": "sk-ant-api03-" + _A + _A[:41] + "AA",
    "npm": "npm_" + _A[:36],
    "pypi": "pypi-AgEIcHlwaS5vcmc" + "CJDRhZDQ5YTI4LWNhNDItNDY3Mi1hZGM3LWQ1MWM0ZjE2ZDQ5OQACKlsz",
    "huggingface": "hf_" + "qZtKpWmRxLvHnJcBfGdYsEaUoIiPlKjHgF",
    "digitalocean": "dop_v1_" + _HEX,
    "shopify": "shpat_" + _HEX[:32],
    "databricks": "dapi" + _HEX[:32],
    "doppler": "dp.pt." + _A[:43],
    "dynatrace": "dt0c01." + "Q7ZT2KP9WM4RX6LV3HN8JC1B" + "."
                 + "Q7ZT2KP9WM4RX6LV3HN8JC1BF5GD0YS2EA9UO4II6PL3KJ7HG8FD1SA2QW3ER4TY",
    "grafana-cloud": "glc_" + _A[:40],
    "vault": "hvs." + "CAESI" + _A + _A[:40],
    "linear": "lin_api_" + _A[:40],
    "postman": "PMAK-" + _HEX[:24] + "-" + _HEX[:34],
    "pulumi": "pul-" + _HEX[:40],
    "sentry-user": "sntryu_" + _HEX,
    "perplexity": "pplx-" + _A[:48],
    "square": "sq0atp-" + "q7Zt2Kp9Wm4Rx6Lv3Hn8Jc",
    "telegram": "123456789:AA" + "Hq7Zt2Kp9Wm4Rx6Lv3Hn8Jc1Bf5Gd0Ys2",
    "age": "AGE-SECRET-KEY-1" + "QX7T4ZKD2M5NB3WYQX7T4ZKD2M5NB3WYQX7T4ZKD2M5NB3WYQX7T4ZKD2M",
    "heroku": "HRKU-AA" + _A + "q7Zt2Kp9",
    "planetscale": "pscale_tkn_" + _A[:40],
    "rubygems": "rubygems_" + _HEX[:48],
    "azure-ad-secret": "Abc8Q~" + "q7Zt2Kp9Wm4Rx6Lv3Hn8Jc1Bf5Gd0Ys2E",
    "new-relic": "NRAK-" + "Q7ZT2KP9WM4RX6LV3HN8JC1BF5G",
    "docker-hub": "dckr_pat_" + "q7Zt2Kp9Wm4Rx6Lv3Hn8Jc1Bf5Gd0",
    "groq": "gsk_" + _A[:52],
    "bearer": "Bearer " + "q7Zt2Kp9Wm4Rx6Lv3Hn8Jc1Bf5",
    "basic-auth": "Basic " + "YWxpY2U6czNjcjN0LXBhc3M=",
    "url-password": "postgresql://app:Hq7Zt2Kp9Wm@db.internal:5432/shop",
    "sentry-dsn": "https://" + _HEX[:32] + "@o123456.ingest.sentry.io/4505",
    "pem-private-key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
    "card-visa": "4539 1488 0343 6467",
    "card-mastercard": "5425233430109903",
    "card-amex": "3714-496353-98431",
    "iban-de": "DE89 3704 0044 0532 0130 00",
    "iban-gb": "GB82WEST12345698765432",
    "us-ssn": "536-22-8140",
    "my-number": "1234 5678 9018",
}

# Secrets that only the key in front of them gives away, as they appear in free text.
LABELLED: Final[dict[str, str]] = {
    "aws-secret": "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq7Zt2Kp9W",
    "azure-account-key": "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOt==",
    "session-cookie": "sessionid=q7zt2kp9wm4rx6lv3hn8jc1bf5gd0ys2",
    "gcp-private-key-id": '"private_key_id": "3f8e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e"',
    "twilio-auth-token": "twilio_auth_token: 7f6e5d4c3b2a19087f6e5d4c3b2a1908",
    "password-pair": "password=Tr0ub4dor-and-3",
    "client-secret-json": '{"client_secret": "q7Zt2Kp9-Wm4Rx6Lv3Hn8"}',
    "x-api-key-header": "X-Api-Key: 7Fq2Zt9Kp4Wm6Rx3Lv8Hn1Jc",
}

# The part of each labelled secret that must not survive.
LABELLED_VALUES: Final[dict[str, str]] = {
    "aws-secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq7Zt2Kp9W",
    "azure-account-key": "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq",
    "session-cookie": "q7zt2kp9wm4rx6lv3hn8jc1bf5gd0ys2",
    "gcp-private-key-id": "3f8e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e",
    "twilio-auth-token": "7f6e5d4c3b2a19087f6e5d4c3b2a1908",
    "password-pair": "Tr0ub4dor-and-3",
    "client-secret-json": "q7Zt2Kp9-Wm4Rx6Lv3Hn8",
    "x-api-key-header": "7Fq2Zt9Kp4Wm6Rx3Lv8Hn1Jc",
}


def secret_core(kind: str) -> str:
    """The part of `SECRETS[kind]` that must not survive (a scheme word or a URL host may)."""
    value = SECRETS[kind]
    if kind in ("bearer", "basic-auth"):
        return value.split(" ", 1)[1]
    if kind == "url-password":
        return "Hq7Zt2Kp9Wm"
    if kind == "sentry-dsn":
        return _HEX[:32]
    if kind == "pem-private-key":
        return "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
    return value


ALL_CORES: Final = tuple(secret_core(kind) for kind in SECRETS) + tuple(LABELLED_VALUES.values())

# Values that are not secrets and must come out exactly as they went in.
BENIGN: Final[dict[str, str]] = {
    "uuid": "123e4567-e89b-12d3-a456-426614174000",
    "sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "git-short": "23cfbb7",
    "timestamp-iso": "2026-12-02T13:31:37.123456+00:00",
    "timestamp-ms": "1764682297123",
    "timestamp-s": "1764682297",
    "phone-us": "+1 (415) 555-2671",
    "phone-jp": "+81-90-1234-5678",
    "phone-uk": "+44 20 7946 0958",
    "amount": "1234567.89",
    "price": "EUR 4,111.11",
    "trace-id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "version": "2.41.0-rc.1",
    "ip": "203.0.113.42",
    "date": "2026-12-02",
    "isbn": "978-3-16-148410-0",
    "path": "/api/v1/orders/981273/items",
    "sentence": "the shipping mapping signal passed, author bypassed the compass",
    "counts": "max_tokens=4096 token_count=128 session_id=s-42",
}

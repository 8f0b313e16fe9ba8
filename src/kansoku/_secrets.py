"""What the redactor looks for inside strings: provider tokens, and the checks of PII numbers.

The provider patterns are kansoku's own, written after reading the rule sets that secret scanners
maintain (gitleaks' `config/gitleaks.toml`, detect-secrets' plugins, trufflehog's detectors): each
matches a token format that a provider documents by its prefix (`ghp_`, `glpat-`, `sk-ant-`,
`SG.`...), tight enough that ordinary words, ids and hashes do not match.

PII numbers are masked only when their check passes: card numbers by Luhn (and a card's first
digit and grouping), IBANs by ISO 7064 mod 97, Japanese My Number by its check digit; US SSNs by
their dashed form and the ranges the SSA never issues.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

__all__ = ["HINTS", "KINDS", "LATE_TOKENS", "TOKENS", "at_boundary", "card_shape", "iban_valid", "luhn_valid",
           "my_number_valid", "trie_pattern"]

# (kind, patterns): a pattern starts with the literal prefix the provider documents (`ghp_`,
# `glpat-`, `sk-ant-`...), so that all of them form one prefix tree (`trie_pattern`) that the
# regex engine scans quickly; a match must also start a word (`at_boundary`). The few formats with
# no prefix are (hint, pattern): the pattern runs only on a string that holds the hint.
_TOKEN_KINDS: Final[tuple[tuple[str, tuple[str | tuple[str, str], ...]], ...]] = (
    ("JSON Web Token", (r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",)),
    ("AWS access key id", (r"AKIA[A-Z0-9]{16}\b", r"ASIA[A-Z0-9]{16}\b", r"ABIA[A-Z0-9]{16}\b",
                           r"ACCA[A-Z0-9]{16}\b", r"A3T[A-Z0-9][A-Z0-9]{16}\b")),
    ("Google API key", (r"AIza[\w-]{35}",)),
    ("Google OAuth client secret", (r"GOCSPX-[\w-]{20,}",)),
    ("Google OAuth access token", (r"ya29\.[\w-]{20,}",)),
    ("Slack token", (r"xox[abposre]-[A-Za-z0-9-]{10,}", r"xapp-\d-[A-Za-z0-9-]{10,}")),
    ("Slack webhook URL", (r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{16,}",)),
    ("Discord webhook URL", (r"discord(?:app)?\.com/api/webhooks/\d+/[\w-]{20,}",)),
    ("Microsoft Teams webhook URL", ((".webhook.office.com", r"[\w-]+\.webhook\.office\.com/webhook[\w/@.-]{40,}"),)),
    ("GitHub token", (r"gh[pousr]_[A-Za-z0-9]{30,}",)),
    ("GitHub fine-grained token", (r"github_pat_[A-Za-z0-9_]{40,}",)),
    ("GitLab token", (r"gl(?:pat|dt|rt|ptt|soat|cbt|ft|imt|agent|oas|ffct)-[\w-]{20,}",)),
    ("GitLab runner registration token", (r"GR1348941[\w-]{20,}",)),
    ("Stripe key", (r"sk_(?:live|test|prod)_[A-Za-z0-9]{10,}", r"rk_(?:live|test|prod)_[A-Za-z0-9]{10,}",
                    r"whsec_[A-Za-z0-9]{24,}")),
    ("Twilio API key", (r"SK[0-9a-fA-F]{32}\b",)),
    ("SendGrid API key", (r"SG\.[\w-]{16,32}\.[\w-]{16,64}",)),
    ("OpenAI or Anthropic API key", (r"sk-(?:ant-|proj-|svcacct-|admin-)?[\w-]{20,}",)),
    ("npm token", (r"npm_[A-Za-z0-9]{36}\b",)),
    ("PyPI token", (r"pypi-AgE[\w-]{30,}",)),
    ("Hugging Face token", (r"hf_[A-Za-z]{30,}", r"api_org_[A-Za-z]{30,}")),
    ("DigitalOcean token", (r"do[opr]_v1_[a-f0-9]{64}",)),
    ("Shopify token", (r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",)),
    ("Databricks token", (r"dapi[a-f0-9]{32}",)),
    ("Doppler token", (r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}",)),
    ("Dynatrace token", (r"dt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}",)),
    ("Grafana token", (r"glc_[A-Za-z0-9+/]{32,}={0,3}", r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}")),
    ("HashiCorp Vault token", (r"hv[sb]\.[\w-]{90,}",)),
    ("Terraform Cloud token", ((".atlasv1.", r"[A-Za-z0-9]{14}\.atlasv1\.[\w=-]{60,70}"),)),
    ("Linear API key", (r"lin_api_[A-Za-z0-9]{40}",)),
    ("Postman API key", (r"PMAK-[a-fA-F0-9]{24}-[a-fA-F0-9]{34}",)),
    ("Pulumi token", (r"pul-[a-f0-9]{40}",)),
    ("Sentry token", (r"sntry[su]_[A-Za-z0-9+/=_]{40,}",)),
    ("Perplexity API key", (r"pplx-[A-Za-z0-9]{40,}",)),
    ("Mailgun key", (r"key-[a-f0-9]{32}\b", r"pubkey-[a-f0-9]{32}\b")),
    ("Mailchimp API key", (("-us", r"[a-f0-9]{32}-us\d{1,2}\b"),)),
    ("Square token", (r"EAAA[\w-]{22,60}", r"sq0atp-[\w-]{22,60}", r"sq0csp-[\w-]{22,60}")),
    ("Telegram bot token", ((":AA", r"\d{8,10}:AA[\w-]{33}\b"),)),
    ("age secret key", (r"AGE-SECRET-KEY-1[0-9A-Z]{58}",)),
    ("1Password key", (r"A3-[A-Z0-9]{6}-[A-Z0-9-]{23,29}\b", r"ops_eyJ[A-Za-z0-9+/]{100,}={0,3}")),
    ("Heroku API key", (r"HRKU-[\w-]{60,}",)),
    ("PlanetScale token", (r"pscale_(?:tkn|oauth|pw)_[\w=.-]{32,64}",)),
    ("RubyGems token", (r"rubygems_[a-f0-9]{48}",)),
    ("Fly.io token", (r"fo1_[\w-]{43}",)),
    ("Atlassian API token", (r"ATATT3[\w=-]{100,}",)),
    ("Azure AD client secret", (("Q~", r"[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}"),)),
    ("New Relic key", (r"NRAK-[A-Za-z0-9-]{19,32}", r"NRII-[A-Za-z0-9-]{19,32}", r"NRJS-[A-Za-z0-9-]{19,32}")),
    ("Docker Hub token", (r"dckr_pat_[\w-]{27,}",)),
    ("Bitbucket app password", (r"ATBB[A-Za-z0-9_=.-]{32,}",)),
    ("Mapbox secret token", (r"sk\.eyJ[\w.-]{40,}",)),
    ("Groq API key", (r"gsk_[A-Za-z0-9]{48,}",)),
    ("xAI API key", (r"xai-[A-Za-z0-9]{60,}",)),
    ("Replicate token", (r"r8_[A-Za-z0-9]{37}\b",)),
    ("Supabase token", (r"sbp_[a-f0-9]{40}",)),
    ("Notion token", (r"ntn_[0-9]{11}[A-Za-z0-9]{35}",)),
)

#: The provider token kinds recognised anywhere in a string (for the docs and the tests).
KINDS: Final = tuple(kind for kind, _ in _TOKEN_KINDS)
_LITERAL_FIRST: Final = [p for _, patterns in _TOKEN_KINDS for p in patterns if isinstance(p, str)]
#: Lower-case regex fragments, each starting with a literal, one of which every token holds.
def _head(pattern: str) -> str:
    """The start of `pattern` up to its first group or quantifier (outside a character class)."""
    in_class = escaped = False
    for index, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char in "{(*+?|":
            return pattern[:index]
    return pattern


HINTS: Final = tuple(
    [_head(p).lower() for p in _LITERAL_FIRST]
    + [p[0].lower() for _, patterns in _TOKEN_KINDS for p in patterns if not isinstance(p, str)]
)
#: The formats with no prefix: (a substring every match holds, the pattern).
LATE_TOKENS: Final = tuple((p[0], re.compile(p[1])) for _, patterns in _TOKEN_KINDS for p in patterns
                           if not isinstance(p, str))


def trie_pattern(fragments: Iterable[str]) -> str:
    """One alternation of `fragments` (each starting with a literal character) grouped by it.

    Python's regex engine tries every branch of an alternation at every position; grouped by the
    first character, it tries one group, and when every branch starts with a literal (no `\\d`,
    no IGNORECASE) it skips the positions whose character starts none of them.
    """
    groups: dict[str, set[str]] = {}
    for fragment in fragments:
        if fragment[:1] in "\\[(":
            raise ValueError(f"a fragment must start with a literal character: {fragment!r}")
        groups.setdefault(fragment[:1], set()).add(fragment[1:])
    parts = []
    for head in sorted(groups):
        rests = sorted(groups[head], key=lambda rest: (-len(rest), rest))
        parts.append(re.escape(head) if rests == [""] else f"{re.escape(head)}(?:{'|'.join(rests)})")
    return "|".join(parts)


#: One pattern for every provider token (check `at_boundary` before masking a match).
TOKENS: Final = re.compile(trie_pattern(_LITERAL_FIRST))


def at_boundary(match: re.Match[str]) -> bool:
    """Whether a token match starts a word (a prefix inside a longer word is no token)."""
    start = match.start()
    if start == 0:
        return True
    before = match.string[start - 1]
    return not (before.isalnum() or before in "_~.")


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


def card_shape(groups: list[int]) -> bool:
    """Whether digit groups of these lengths are written the way cards are (13-19 digits).

    One run, groups of four (the last one to four), or American Express's 4-6-5 (Diners 4-6-4).
    Phone numbers and most ids are grouped otherwise.
    """
    total = sum(groups)
    if not 13 <= total <= 19:
        return False
    if len(groups) == 1:
        return True
    return (all(size == 4 for size in groups[:-1]) and 1 <= groups[-1] <= 4) or groups in ([4, 6, 5], [4, 6, 4])


def my_number_valid(digits: str) -> bool:
    """Whether 12 digits are a Japanese individual number (My Number): the last is its check digit."""
    if len(digits) != 12 or not digits.isdigit():
        return False
    body = digits[:11]
    total = 0
    for n in range(1, 12):  # P_n counts from the digit left of the check digit
        weight = n + 1 if n <= 6 else n - 5
        total += (ord(body[11 - n]) - 48) * weight
    remainder = total % 11
    check = 0 if remainder <= 1 else 11 - remainder
    return check == ord(digits[11]) - 48


# ISO 13616 lengths per country (the ones in the SWIFT registry).
_IBAN_LENGTHS: Final = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}


def iban_valid(text: str) -> bool:
    """Whether `text` (spaces allowed) is an IBAN: its country's length and ISO 7064 mod 97 = 1."""
    iban = text.replace(" ", "")
    if _IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1

"""Grouping: the must-show table (ids in messages, call sites, moved code, custom fingerprints, why)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kansoku.errors import ErrorTracker, normalise_message
from kansoku.errors.fingerprint import Fingerprinter, parse_rules
from kansoku.exceptions import ConfigError
from kansoku.store import Store, queries

from .conftest import load_module

SHOP = '''
def lookup(user_id):
    raise KeyError(f"user {user_id} not found")


def site_a(user_id):
    return lookup(user_id)


def site_b(user_id):
    return lookup(user_id)


def run(fn, *args):
    try:
        fn(*args)
    except Exception as exc:
        return exc
'''


def _groups(store: Store) -> dict[str, dict[str, Any]]:
    items = queries.list_groups(store.engine, limit=200)["items"]
    return {g["group_key"]: g for g in items}


def test_grouping_table(tmp_path: Path, store: Store, make_tracker: Callable[..., ErrorTracker],
                        no_internal_errors: None) -> None:
    """Ids in messages share a group, call sites split, moved code keeps, custom wins, parts say why."""
    tracker = make_tracker()
    shop = load_module(tmp_path / "shopmod.py", SHOP, "shopmod")
    ids: dict[str, str] = {}

    def capture(label: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> None:
        ids[label] = tracker.capture(shop.run(fn, *args), **kw)

    capture("a1", shop.site_a, 1)
    capture("a2", shop.site_a, 2)
    capture("a-uuid", shop.site_a, "1b4e28ba-2fa1-11d2-883f-0016d3cca427")
    capture("b1", shop.site_b, 1)
    moved = load_module(tmp_path / "shopmod.py", "\n" * 10 + SHOP, "shopmod")  # the same file, ten lines down
    ids["moved"] = tracker.capture(moved.run(moved.site_a, 4))
    capture("custom-a", shop.site_a, 5, fingerprint=["lookup-failed"])
    capture("custom-b", shop.site_b, 6, fingerprint=["lookup-failed"])
    ids["msg-1"] = tracker.capture(ValueError("user 7 not found at 2025-11-28 from 10.0.0.1"))  # never raised
    ids["msg-2"] = tracker.capture(ValueError("user 8 not found at 2025-11-29 from 10.0.0.2"))
    assert tracker.flush(10)

    key = {label: queries.get_group(store.engine, event_id)["group_key"] for label, event_id in ids.items()}
    assert key["a1"] == key["a2"] == key["a-uuid"] == key["moved"]  # same bug, different ids; moved code
    assert key["b1"] != key["a1"]  # another call site
    assert key["custom-a"] == key["custom-b"] != key["a1"]  # the custom fingerprint wins over frames
    assert key["msg-1"] == key["msg-2"]  # no frames: the normalised message groups
    assert len(set(key.values())) == 4

    groups = _groups(store)
    table = {label: (groups[key[label]]["count"], groups[key[label]]["fingerprint_parts"])
             for label in ("a1", "b1", "custom-a", "msg-1")}
    assert table == {
        "a1": (4, ["type:KeyError", "frame:shopmod.run", "frame:shopmod.site_a", "frame:shopmod.lookup"]),
        "b1": (1, ["type:KeyError", "frame:shopmod.run", "frame:shopmod.site_b", "frame:shopmod.lookup"]),
        "custom-a": (2, ["custom:lookup-failed"]),
        "msg-1": (2, ["type:ValueError", "message:user <int> not found at <date> from <ip>"]),
    }
    moved_event = queries.get_group(store.engine, ids["moved"], events=50)
    linenos = {e["event_id"]: e["exceptions"][-1]["frames"][-1]["lineno"] for e in moved_event["events"]}
    assert linenos[ids["moved"]] == linenos[ids["a1"]] + 10  # the line moved, the group did not


def test_fingerprint_rule_applies_and_per_call_fingerprint_beats_it(
        tmp_path: Path, store: Store, make_tracker: Callable[..., ErrorTracker]) -> None:
    """A configured rule groups matching errors; a fingerprint given to the call wins over the rule."""
    rules = [{"name": "lookups", "type": "KeyError", "function": "lookup",
              "fingerprint": ["{{ type }}", "users"]}]
    tracker = make_tracker(errors={"fingerprint_rules": rules})
    shop = load_module(tmp_path / "shopmod2.py", SHOP, "shopmod2")
    a = tracker.capture(shop.run(shop.site_a, 1))
    b = tracker.capture(shop.run(shop.site_b, 2))
    c = tracker.capture(shop.run(shop.site_b, 3), fingerprint="special")
    assert tracker.flush(10)
    ga, gb, gc = (queries.get_group(store.engine, i) for i in (a, b, c))
    assert ga is not None and gb is not None and gc is not None
    assert ga["id"] == gb["id"] != gc["id"]
    assert ga["fingerprint_parts"] == ["rule:lookups", "custom:KeyError", "custom:users"]
    assert gc["fingerprint_parts"] == ["custom:special"]


def test_default_placeholder_refines_the_default_grouping(tmp_path: Path) -> None:
    """`{{ default }}` in a custom fingerprint keeps the default parts and adds to them."""
    fp = Fingerprinter("shop", "test")
    from kansoku.errors.fingerprint import ChainFrames

    chain = [ChainFrames("KeyError", [("app", "handler", True), ("lib", "get", False)])]
    key, parts = fp.compute(chain, "x", ["{{ default }}", "tenant-{{ function }}"])
    assert parts == ["type:KeyError", "frame:app.handler", "custom:tenant-handler"]
    assert key != fp.compute(chain, "x")[0]


def test_recursion_collapses_and_library_frames_do_not_count() -> None:
    """Repeated frames (recursion) count once; frames that are not in-app are left out."""
    from kansoku.errors.fingerprint import ChainFrames, default_parts

    frames = [("app", "walk", True)] * 50 + [("json", "loads", False), ("app", "parse", True)]
    assert default_parts([ChainFrames("RecursionError", frames)], "") == [
        "type:RecursionError", "frame:app.walk", "frame:app.parse"]


def test_chained_exceptions_all_count() -> None:
    """The cause's type and frames are part of the key, so two root causes make two groups."""
    from kansoku.errors.fingerprint import ChainFrames, default_parts

    cause = ChainFrames("KeyError", [("app.repo", "get", True)])
    raised = ChainFrames("app.NotFound", [("app.api", "show", True)])
    assert default_parts([cause, raised], "") == [
        "type:KeyError", "frame:app.repo.get", "type:app.NotFound", "frame:app.api.show"]


@pytest.mark.parametrize(("message", "normalised"), [
    ("user 42 not found", "user <int> not found"),
    ("order 1b4e28ba-2fa1-11d2-883f-0016d3cca427 failed", "order <uuid> failed"),
    ("object at 0x7f3a2b1c4d50 is broken", "object at <hex> is broken"),
    ("commit 9fceb02d0ae598e95dc970b74767f19372d61af8 missing", "commit <hex> missing"),
    ("mail to bob.smith+x@example.co.jp bounced", "mail to <email> bounced"),
    ("cannot reach 192.168.1.20:5432", "cannot reach <ip>"),
    ("cannot reach 2001:db8::8a2e:370:7334", "cannot reach <ip>"),
    ("expired on 2025-11-28T10:20:30.123Z", "expired on <date>"),
    ("due 28/11/2025 at 10:20", "due <date> at <time>"),
    ("price 12.50 too high", "price <float> too high"),
    ("took 1500ms", "took <duration>"),
    ("no such key 'user_42' in cache", "no such key <quoted> in cache"),
    ('field "email" is required', "field <quoted> is required"),
    ("can't open user's file", "can't open user's file"),
    ("GET https://api.example.com/v1/users?id=5 failed", "GET <url> failed"),
])
def test_message_normalisation(message: str, normalised: str) -> None:
    """Variable parts of messages are replaced by placeholders; ordinary words are kept."""
    assert normalise_message(message) == normalised


def test_fingerprint_rules_are_checked() -> None:
    """A bad rule is a ConfigError that names the rule and the fix."""
    with pytest.raises(ConfigError, match=r"fingerprint_rules\[0\].*at least one"):
        parse_rules([{"fingerprint": ["x"]}])
    with pytest.raises(ConfigError, match=r"fingerprint_rules\[1\].*unknown key 'colour'"):
        parse_rules([{"fingerprint": ["x"], "type": "E"}, {"fingerprint": ["y"], "colour": "red"}])


def test_grouping_is_cached_per_code_location(tmp_path: Path) -> None:
    """The second capture at the same location reuses the cached key (same object, no recompute)."""
    fp = Fingerprinter("shop", "test")
    from kansoku.errors.fingerprint import ChainFrames

    chain = [ChainFrames("E", [("m", "f", True)])]
    first = fp.compute(chain, "a", cache_key=("E", 1))
    assert fp.compute(chain, "b", cache_key=("E", 1)) is first
    assert next(itertools.islice([first], 1)) == first

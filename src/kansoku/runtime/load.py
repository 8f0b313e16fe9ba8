"""The app that `kansoku run` hands to uvicorn: the user's app, imported in each worker, instrumented.

`kansoku run myapp:app --workers 4` cannot pass an app object to worker processes, so it serves
the factory `kansoku.runtime.load:create_app` and tells it the target through environment variables that
every worker inherits. Each worker imports the target, instruments it (once: an app that already
called `kansoku.instrument` is left as it is), and serves it; the app's own lifespan runs as before.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from typing import Any, Final, cast

from kansoku.typing import ASGIApp

__all__ = [
    "ENV_APP_DIR", "ENV_BANNER", "ENV_FACTORY", "ENV_TARGET", "LoadError", "create_app", "instrument_app",
    "load_target",
]

# How the `kansoku run` process talks to its workers; not settings (underscore: not for users).
ENV_TARGET: Final = "_KANSOKU_RUN_TARGET"
ENV_FACTORY: Final = "_KANSOKU_RUN_FACTORY"
ENV_APP_DIR: Final = "_KANSOKU_RUN_APP_DIR"
ENV_BANNER: Final = "_KANSOKU_RUN_BANNER"  # printed once the app is loaded: "serving" is then true
STARTUP_FAILURE: Final = 3  # uvicorn's code: the supervisor stops instead of restarting the worker


class LoadError(Exception):
    """The target could not be loaded; the message says why and what to do."""


def create_app() -> ASGIApp:
    """Import the target named by `kansoku run` and return it instrumented (uvicorn factory)."""
    target = os.environ.get(ENV_TARGET)
    if not target:
        sys.exit("kansoku.runtime.load serves the app named by `kansoku run module:app`; start it that way")
    app_dir = os.environ.get(ENV_APP_DIR)
    if app_dir and app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    try:
        app = load_target(target, factory=os.environ.get(ENV_FACTORY) == "1")
    except LoadError as exc:
        print(f"kansoku run: {exc}", file=sys.stderr, flush=True)
        sys.exit(STARTUP_FAILURE)
    instrumented = instrument_app(app)
    banner = os.environ.get(ENV_BANNER)
    if banner:
        print(banner.replace("{pid}", str(os.getpid())), file=sys.stderr, flush=True)
    return instrumented


def split_target(target: str) -> tuple[str, str]:
    """'pkg.module:attr.sub' -> ('pkg.module', 'attr.sub'); LoadError when not of that form."""
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr or ":" in attr:
        raise LoadError(f"{target!r} is not of the form 'module:attribute', for example 'myapp.main:app'")
    return module, attr


def find_module(target: str) -> None:
    """Check that the target's module can be found, without running it; LoadError otherwise."""
    module, _ = split_target(target)
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        spec = None
    if spec is None:
        raise LoadError(
            f"no module named {module!r} (searched {sys.path[0]!r} and the installed packages); "
            "run from the directory that holds it, or pass --app-dir DIR"
        )


def load_target(target: str, *, factory: bool = False) -> Any:
    """Import `module:attr`; with `factory`, call it and return what it builds."""
    module_name, attr = split_target(target)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:  # the module itself failed to import something
            raise LoadError(_import_failure(module_name, exc)) from None
        raise LoadError(f"no module named {module_name!r}; run from its directory or pass --app-dir") from None
    except Exception as exc:
        raise LoadError(_import_failure(module_name, exc)) from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise LoadError(
                f"module {module_name!r} has no attribute {attr!r}; name the ASGI app object "
                f"(for example '{module_name}:app'), or an app factory with --factory"
            ) from None
    if factory:
        if not callable(obj):
            raise LoadError(f"{target!r} is not callable, so it cannot be an app factory; drop --factory")
        obj = obj()
    elif _looks_like_factory(obj):
        raise LoadError(f"{target!r} takes no arguments, so it looks like an app factory; pass --factory")
    if not callable(obj):
        kind = type(obj).__name__
        raise LoadError(f"{target!r} is {_article(kind)} {kind}, not an ASGI application")
    return obj


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _import_failure(module_name: str, exc: BaseException) -> str:
    """The module's own error, with its traceback cut to the frames of the app's code (no importlib's)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith("<frozen") and f.filename not in (__file__, importlib.__file__)]
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc)
    return f"importing {module_name!r} failed:\nTraceback (most recent call last):\n{''.join(lines).rstrip()}"


def _looks_like_factory(obj: Any) -> bool:
    if not inspect.isfunction(obj):
        return False
    return not inspect.signature(obj).parameters


def instrument_app(app: Any) -> ASGIApp:
    """`app` with kansoku around it: changed in place (FastAPI, Starlette) or wrapped (any ASGI app).

    An app that called `kansoku.instrument` itself at import is returned as it is.
    """
    import kansoku

    return cast(ASGIApp, kansoku.instrument(app))

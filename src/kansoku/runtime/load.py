"""The app that `kansoku run` serves: the user's app, imported in each worker, instrumented.

`kansoku run myapp:app --workers 4` cannot pass an app object to worker processes, so it tells
them the target through environment variables that every worker inherits. An ASGI app is served
by uvicorn through the factory `kansoku.runtime.load:create_app`; a WSGI app (Flask, Django's
`wsgi.py`) by gunicorn (`serve_wsgi`), whose workers call `create_wsgi_app`. Each worker imports
the target, instruments it (once: an app that already called `kansoku.instrument` is left as it
is), and serves it; an ASGI app's own lifespan runs as before.

`kansoku run` imports the target once itself first (`detect`), to tell ASGI from WSGI and to stop
with the import's own error before anything is served. Gunicorn forks its workers from that
process, as with its `--preload`; kansoku builds its runtime in each worker, after the fork.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from typing import Any, Final, cast

from kansoku.integrations import Interface, interface_of
from kansoku.typing import ASGIApp

__all__ = ["ENV_APP_DIR", "ENV_BANNER", "ENV_FACTORY", "ENV_TARGET", "LoadError", "create_app", "create_wsgi_app",
           "detect", "instrument_app", "load_target", "serve_wsgi"]

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
    return cast(ASGIApp, _load_from_environment())


def create_wsgi_app() -> Any:
    """Import the target named by `kansoku run` and return it instrumented (in a gunicorn worker)."""
    return _load_from_environment()


def _load_from_environment() -> Any:
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


def detect(target: str, *, factory: bool = False) -> Interface:
    """Import the target (calling the factory) and tell whether it is an ASGI or a WSGI app."""
    return interface_of(load_target(target, factory=factory))


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
                f"module {module_name!r} has no attribute {attr!r}; name the ASGI or WSGI app object "
                f"(for example '{module_name}:app'), or an app factory with --factory"
            ) from None
    if factory:
        if not callable(obj):
            raise LoadError(f"{target!r} is not callable, so it cannot be an app factory; drop --factory")
        obj = obj()
    elif _looks_like_factory(obj):
        raise LoadError(f"{target!r} takes no arguments, so it looks like an app factory; pass --factory")
    try:
        interface_of(obj)
    except TypeError:
        kind = type(obj).__name__
        raise LoadError(f"{target!r} is {_article(kind)} {kind} ({_short(obj)}), not an ASGI or WSGI application; "
                        "name the app object, for example 'mysite.wsgi:application' or 'main:app'") from None
    return obj


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _short(obj: Any) -> str:
    shown = repr(obj)
    return shown if len(shown) <= 60 else shown[:57] + "..."


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


def instrument_app(app: Any) -> Any:
    """`app` with kansoku around it: changed in place (FastAPI, Starlette, Flask, Litestar) or wrapped.

    An app that called `kansoku.instrument` itself at import is returned as it is.
    """
    import kansoku

    return kansoku.instrument(app)


def serve_wsgi(*, host: str, port: int, workers: int, reload: bool = False) -> None:
    """Serve the target named in the environment with gunicorn (sync workers); returns at shutdown."""
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError:
        raise LoadError("serving a WSGI app needs gunicorn: pip install 'kansoku[gunicorn]'") from None
    from kansoku.integrations import gunicorn as hooks

    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    options = {"bind": [bind], "workers": workers, "reload": reload, "child_exit": hooks.child_exit,
               "accesslog": None, "proc_name": f"kansoku run {os.environ.get(ENV_TARGET, '')}"}

    class Gunicorn(BaseApplication):  # type: ignore[misc]  # gunicorn's documented custom application
        def load_config(self) -> None:
            if "control_socket_disable" in self.cfg.settings:  # gunicorn 25.1+: one per machine
                options["control_socket_disable"] = True  # by default; `kansoku run` needs none
            for name, value in options.items():
                self.cfg.set(name, value)

        def load(self) -> Any:
            return create_wsgi_app()

    Gunicorn().run()

"""A Flask app as a team writes it, with no kansoku in it: a blueprint, a failure, a stream."""

import os
import pathlib
import time

import flask

app = flask.Flask(__name__)
shop = flask.Blueprint("shop", __name__, url_prefix="/shop")


@shop.get("/items/<int:item_id>")
def item(item_id: int) -> flask.Response:
    """A templated route under a blueprint prefix; its own status and header."""
    response = flask.jsonify({"item": item_id, "pid": os.getpid()})
    response.status_code = 201
    response.headers["X-App"] = "flask"
    return response


@app.get("/boom")
def boom() -> str:
    """Flask turns this into its own 500 page."""
    raise ValueError("flask view failed")


@app.get("/upstream")
def upstream() -> tuple[str, int]:
    """A 503 answered without an exception."""
    return "upstream down", 503


@app.get("/stream")
def stream() -> flask.Response:
    """Two chunks; the second only once the client has the first (the `gate` file appears)."""
    gate = pathlib.Path(flask.request.args["gate"])

    def chunks():  # type: ignore[no-untyped-def]
        yield b"first;"
        deadline = time.monotonic() + 10
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        yield b"second"

    return flask.Response(chunks(), mimetype="text/plain")


app.register_blueprint(shop)

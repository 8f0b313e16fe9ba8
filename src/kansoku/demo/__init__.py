"""The demo: the chapter's example services as one instrumented FastAPI app, and its traffic.

`kansoku demo` runs it (`kansoku.demo.runner`); `kansoku.demo.app.create_app()` is the bare app,
which any deployment can serve with `kansoku run kansoku.demo.app:create_app --factory`.
"""

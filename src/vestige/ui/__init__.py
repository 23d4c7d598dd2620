"""The web UI of `vestige ui`: a shell over the library, like the CLI.

Server-rendered pages (Starlette, Jinja2 templates in `templates/`, small scripts of our
own in `static/`), every read through `Repo` and the index's query groups, every view at
a URL that can be shared. Needs the `ui` extra (starlette, uvicorn, jinja2, plotly);
nothing imports this package but `vestige ui` (cli/cmd_ui.py) and the tests, and it may
import every layer below it (repo, index, store, history, api...), never the cli. `app.py`
makes the app; each page is a module with its `routes` (runs.py, run.py, artefacts.py),
so a new page is a module and one line in app.py.
"""

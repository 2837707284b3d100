"""The ``tiervec`` command line: a thin layer over the library (:mod:`tiervec.ingest`,
:mod:`tiervec.hits`, :mod:`tiervec.eval`, :mod:`tiervec.plan`), the same functions the
server calls.

Commands by module: :mod:`~tiervec.cli.read` (index, search, info),
:mod:`~tiervec.cli.measure` (eval, plan), :mod:`~tiervec.cli.tune` (tune),
:mod:`~tiervec.cli.write` (add, delete, compact, index-field, lexical),
:mod:`~tiervec.cli.serve` (serve), :mod:`~tiervec.cli.models` (models).
"""

# the commands register in this order (read, measure, write): `tiervec --help` lists them so
from tiervec.cli import read  # noqa: I001
from tiervec.cli import measure, tune, write, serve, models
from tiervec.cli._app import app

__all__ = ["app", "main", "measure", "models", "read", "serve", "tune", "write"]


def main() -> None:
    """Entry point of the ``tiervec`` script."""
    app()

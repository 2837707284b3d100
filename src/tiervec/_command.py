"""The ``tiervec`` script: the command line, or the pip line that installs it."""

from __future__ import annotations

import sys


def main() -> None:
    """Run the CLI (``tiervec[cli]``); without typer and rich, say how to install them."""
    try:
        import rich  # noqa: F401
        import typer  # noqa: F401
    except ImportError as exc:
        sys.stderr.write(f"the tiervec command needs the CLI extra ({exc}); install it with: "
                         "pip install 'tiervec[cli]'\n")
        raise SystemExit(1) from None
    from tiervec.cli import main as run

    run()

"""``tiervec serve``: the HTTP API and web page over a data directory of collections."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from tiervec.cli._app import _run, app, console


@app.command()
def serve(
    data_dir: Annotated[Path, typer.Argument(
        help="Folder whose sub-folders are collections (created if absent).")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    api_key: Annotated[str | None, typer.Option(
        envvar="TIERVEC_API_KEY", show_envvar=True,
        help="Require this key (Authorization: Bearer KEY, or api-key: KEY) on every /v1 "
        "endpoint. Without one the server is open to anyone who reaches it, so it serves "
        "a non-loopback --host only with --insecure.")] = None,
    read_key: Annotated[str | None, typer.Option(
        envvar="TIERVEC_READ_KEY", show_envvar=True,
        help="A second key that may search and read but not write (needs --api-key).")] = None,
    insecure: Annotated[bool, typer.Option(
        "--insecure", help="Serve a non-loopback --host without an API key (a trusted "
        "network only).")] = False,
    cors_origin: Annotated[list[str] | None, typer.Option(
        "--cors-origin", help="A web origin (e.g. https://app.example.com) whose pages may "
        "call the API from a browser; repeat for more. None by default.",
        show_default=False)] = None,
    max_body_mb: Annotated[float, typer.Option(help="Largest request body, MiB.")] = 32,
    max_documents: Annotated[int, typer.Option(help="Documents per write request.")] = 20_000,
    max_text_chars: Annotated[int, typer.Option(
        help="Characters per document or query text.")] = 100_000,
    max_k: Annotated[int, typer.Option(help="Largest k of a search.")] = 1_000,
    batching: Annotated[bool, typer.Option(
        help="Batch concurrent searches into one encoder and one kernel call.")] = True,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
    ray: Annotated[bool, typer.Option(
        "--ray", help="Serve the sharded collections too (tiervec index --ray), their shards' "
        "actors on Ray.")] = False,
    address: Annotated[str | None, typer.Option(
        "--address", help="--ray: the Ray cluster (default RAY_ADDRESS or a local one).",
        show_default=False)] = None,
    partial: Annotated[bool, typer.Option(
        "--partial", help="--ray: a search answers from the shards that are up when others "
        "stay down (the response's shards.failed names them) instead of 503; a request's "
        "partial overrides it.")] = False,
    replicas: Annotated[int, typer.Option(
        "--replicas", min=1, max=8, help="--ray: actors per shard, each serving the shard's "
        "folder; a search goes to a live one, so a killed actor costs no error.")] = 1,
) -> None:
    """Serve every collection in DATA_DIR over HTTP: the JSON API under /v1 (OpenAPI at
    /openapi.json, interactive docs at /docs) and a search page at /.

    Stops cleanly on Ctrl-C or SIGTERM (requests in flight are answered, collections closed).

    Example: tiervec serve collections --port 8080, then open http://127.0.0.1:8080/
    """

    def go() -> None:
        from tiervec.serve import Limits, ServerConfig, run

        def key(given: str | None, variable: str) -> str | None:
            # click takes an empty variable for an unset one: for a key, that would open the
            # server, so the empty string goes on to be refused
            return "" if given is None and os.environ.get(variable) == "" else given

        limits = Limits(max_body_bytes=int(max_body_mb * 1024 * 1024),
                        max_documents=max_documents, max_text_chars=max_text_chars,
                        max_k=max_k)
        config = ServerConfig(api_key=key(api_key, "TIERVEC_API_KEY"),
                              read_key=key(read_key, "TIERVEC_READ_KEY"), insecure=insecure,
                              cors_origins=tuple(cors_origin or ()), limits=limits,
                              batching=batching, ray_address=(address or "") if ray else None,
                              partial=partial, replicas=replicas)
        config.check_address(host)  # before joining a Ray cluster (run() warns of no key)
        if ray:  # joined here, in the main thread, before uvicorn sets its signal handlers
            from tiervec.distribute.cluster import connect

            connect(address)
        where = f"http://{host}:{port}/"
        console.print(f"tiervec: serving {data_dir} at "
                      f"{where} (API docs at {where}docs)")
        run(str(data_dir), host=host, port=port, config=config, log_level=log_level)

    _run(go)

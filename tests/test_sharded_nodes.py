"""Placement on a real multi-node Ray cluster: a second node started on this machine with its
own raylet and resources. One shard's replicas never share a node; shards spread."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.ray

pytest.importorskip("ray")

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from ray.cluster_utils import Cluster
    import tiervec
    from tiervec import Document
    from tiervec.distribute.cluster import connect

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray = connect(cluster.address)
    x = np.random.default_rng(0).standard_normal((200, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with tiervec.create_sharded(sys.argv[1], shards=2, model=None, dim=8, tiers="float32",
                                replicas=2, address=cluster.address) as col:
        col.add([Document(id=str(i), text="") for i in range(200)], vectors=x)
        nodes = {s: [ray.get(a.node.remote()) for a in [col.actor(s), *col._replicas[s]]]
                 for s in range(2)}
        found = col.search_vectors(x[:5], 1).ids[:, 0].tolist()
    print(json.dumps({"nodes": nodes, "alive": len([n for n in ray.nodes() if n["Alive"]]),
                      "found": found}))
    ray.shutdown()
    cluster.shutdown()
""")


def test_replicas_of_a_shard_go_to_different_nodes(tmp_path):
    import json

    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "c")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["alive"] == 2
    nodes = answer["nodes"]
    for shard, where in nodes.items():
        assert len(set(where)) == 2, f"shard {shard}'s replicas share a node: {where}"
    assert {nodes["0"][0], nodes["1"][0]} == set(nodes["0"]), nodes  # writers on both nodes
    assert answer["found"] == ["0", "1", "2", "3", "4"]

"""The cluster wing: the engine as Ray Serve replicas behind the same front door (`pip install 'continuo[cluster]'`).

Glue between the jobs wing and inference/: the gateway's worker talks to `proxy.ClusterEngine` (an Engine),
which streams each take from a `replica.EngineReplica` deployment. Ray is imported only when `--cluster` is set.
"""

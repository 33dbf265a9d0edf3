"""The cluster wing: the engine as Ray Serve replicas behind the same front door (`pip install 'continuo[cluster]'`).

What runs where: the gateway (`continuo serve --cluster`) keeps everything a client touches: the transports,
admission, the journal, the queue, the input and output roots, rendering (effects, loudness, stems) and the files;
only the engine moves. bridge/daemon.py:load_model returns a `proxy.ClusterEngine` (an Engine: the worker does not
know) whose takes run in `replica.EngineReplica`, a Ray Serve deployment, one replica per GPU
(`cluster_gpus_per_replica`, fractions allowed), CPU replicas where there is none. The pool runs one worker per
replica (`ClusterEngine.concurrent_jobs`), all on the one queue, so priorities and slots hold. Durable state is
the gateway's journal and output root alone; replicas hold no job state. Each replica loads its engine with the
gateway's `max_batch`, but takes one request at a time, so jobs batch inside one engine only in process; run-time
model switching is refused with `--cluster` (multiplexing is there for several gateways sharing one cluster).
A train_style job trains on a replica too (`ClusterEngine.train_style`, `EngineReplica.train_style`): the gateway
prepares the clips from its input roots and keeps the checkpoints and the adapter in its lora_dir.

The wing imports nothing of jobs/; the daemon alone imports it, lazily: the core package runs without Ray, and
`--cluster` without it is a ConfigError naming the install command (`spec.require_ray`).
"""

"""`fitagent fleet`: where can a model run right now, and how fast, across many hosts.

Two ways to read the fleet, one shape of answer:

- ``prometheus``: the fleet's Prometheus (discovery and liveness from ``up`` and the
  ``fitagent_*`` series it scraped);
- ``targets``: each agent's ``/metrics`` directly, concurrently, with a timeout (small fleets
  without Prometheus).

Either way each host becomes a ``HostFacts`` (``facts``): up or down, last scan, GPUs, and the
estimator's ``Budget`` rebuilt from the exported series. ``answers`` then runs the same pure
estimator the agents run, locally, so any model × quantization × context can be asked about,
not only the few that have model series, and a host reachable only through Prometheus is
answered for too.
"""

"""The Redis layer (used when ``REDIS_URL`` is set; the embedded default needs none of it).

* :mod:`~pulseplan.cache.client`: one pooled client per app, key namespace, outage accounting;
* :mod:`~pulseplan.cache.locks`: owner-checked Redis leases, layered in front of the database lock;
* :mod:`~pulseplan.cache.flows`: OAuth flow state with an atomic single-use take (``GETDEL``);
* :mod:`~pulseplan.cache.rows`: a ciphertext-only cache of connection rows, invalidated on writes
  (on :mod:`~pulseplan.cache.delegate`, a storage wrapper that forwards everything else);
* :mod:`~pulseplan.cache.layer`: assembly, the ``redis`` health check, degraded mode.

Redis is never the source of truth: with Redis down the service serves from the database.
"""

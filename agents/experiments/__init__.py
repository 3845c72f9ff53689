"""Experiments: A/B tests of an agent's published versions.

- ``assignment``: which arm a caller gets (sticky weighted rendezvous hashing; no Django).
- ``stats``: the tests and intervals the results use (pure Python).
- ``services``: create / start / set weights / end (promoting the winner), and
  ``choose_version``, the one place a new call's version is picked.
- ``results``: per-arm metrics read from the experiment's own calls.
The models (``Experiment``, ``ExperimentArm``) live in ``agents.models``.
"""

"""Evaluation-only code: what the quality bench (bench/knowledge_quality.py, bench/embedding_models.py) and the
knowledge tests use to measure search, and that production never imports (voiceplatform/tests/test_guards.py,
`test_production_never_imports_evaluation_code`, checks it).

- `corpus`: the Debian Reference read from Debian's packages and the question sets (`questions/`);
- `run`: ingesting that corpus through the production path and scoring `search_knowledge` against the questions;
- `adapter`: the per-base query adapter of the sixth pass (knowledge/BENCH.md), measured in the bench only and
  trained with torch, which production search must not load.
"""

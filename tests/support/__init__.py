"""Helpers shared by the tests, imported as `support.<module>` (pyproject.toml puts tests/ on
sys.path through pytest's `pythonpath`; test files are imported in importlib mode, so no test
folder is on sys.path and only this package is importable by name).

- models: the tiny model configurations, a tiny random FaceModel, small models in the original's
  architecture, and non-trivial batch-norm statistics.
- images: PNG bytes, PNG decoding, and a "photo": a face pasted into a larger picture.
- network: a free 127.0.0.1 port.
- server: pipelines that hold or slow decoding, and a launcher for a real server process.
- training: a tiny prepared cache and tiny run configurations, a DDP step for spawned ranks.
"""

"""Every numeric option is bounded like the REST API's fields (facevae.limits), and refused
before any model loads (issue 19, item 8)."""

from __future__ import annotations

import argparse

import pytest

from facevae import limits
from facevae.cli.main import build_parser, main


def _parsers(parser: argparse.ArgumentParser, path: str = "") -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _parsers(sub, f"{path} {name}".strip())
    return found


def test_no_numeric_option_takes_an_unbounded_number() -> None:
    unbounded = [f"{path} {action.option_strings or action.dest}"
                 for path, parser in _parsers(build_parser())
                 for action in parser._actions
                 if action.type in (int, float) and not action.choices]
    assert unbounded == []


@pytest.mark.parametrize("argv, message", [
    (["generate", "--scale", "100000"], "--scale: 100000 is outside 1..8"),
    (["generate", "--seed", "99999999999999999999999"], "--seed: 99999999999999999999999 is outside 0.."),
    (["generate", "-n", "100000"], f"-n: 100000 is outside 1..{limits.MAX_CLI_FACES}"),
    (["generate", "--temperature", "nan"], "--temperature: nan is outside 0..5"),
    (["morph", "--steps", "1000000000"], "--steps: 1000000000 is outside 2..64"),
    (["edit", "x.jpg", "--refine-steps", "100000"], "--refine-steps: 100000 is outside 0..500"),
    (["reconstruct", "x.jpg", "--tune-steps", "100000"], "--tune-steps: 100000 is outside 0..200"),
    (["arithmetic", "Smiling", "--strengths=-1e9,0"], "at most 64 strengths, each within +-10"),
    (["classifier", "train", "--data", "d", "--out", "o", "--lr", "inf"], "--lr: inf is outside (0, 1]"),
    (["prepare", "d", "--workers", "-3"], "--workers: -3 is outside 0..1,024"),
    (["evaluate", "m", "--data", "d", "--out", "o", "--max-images", "0"], "--max-images: 0 is outside 1.."),
    (["directions", "--count", "1000000"], "--count: 1000000 is outside 1..64"),
    (["train", "--data", "d", "--out", "o", "--max-steps", "0"], "--max-steps: 0 is outside 1.."),
    (["train", "--data", "d", "--out", "o", "--minutes", "nan"], "--minutes: nan is outside (0, 1e+06]"),
    (["serve", "--max-batch", "100000000"], "--max-batch: 100000000 is outside 1..4,096"),
    (["serve", "--timeout-s", "0"], "--timeout-s: 0 is outside (0, 86400]"),
])
def test_out_of_bounds_values_are_usage_errors(argv: list[str], message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err and "Traceback" not in err


def test_the_api_reads_the_same_bounds() -> None:
    pytest.importorskip("pydantic")
    from facevae.app.server import schemas

    assert (schemas.MAX_SEED, schemas.MAX_SCALE, schemas.MAX_FACES) == (limits.MAX_SEED, limits.MAX_SCALE,
                                                                        limits.MAX_FACES)

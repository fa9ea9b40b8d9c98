"""`facevae serve`: option checking and defaults (the server itself: tests/app/test_server_live.py)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from facevae.cli.main import build_parser, main
from facevae.cli.serve import settings_from_args
from facevae.errors import UserError


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *argv])


def test_cpu_defaults_use_every_core_with_one_thread_per_decoder_call():
    settings = settings_from_args(parse())
    cores = os.cpu_count() or 1
    assert settings.inference_threads == cores and settings.compute_threads == 1
    assert settings.chunk == 1 and settings.batching and settings.backend == "torch" and settings.precision == "auto"
    two_workers = settings_from_args(parse("--workers", "2"))
    assert two_workers.inference_threads == max(1, cores // 2) and two_workers.compute_threads == 1


def test_gpu_defaults_batch_in_one_call():
    settings = settings_from_args(parse("--device", "cuda", "--max-batch", "32"))
    assert settings.chunk == 32 and settings.inference_threads == 1 and settings.compute_threads is None


def test_explicit_options_reach_the_settings():
    settings = settings_from_args(parse("--backend", "onnx", "--threads", "1", "--chunk", "4", "--queue-size", "8",
                                        "--timeout-s", "5", "--batch-wait-ms", "0", "--no-batching"))
    assert (settings.backend, settings.inference_threads, settings.chunk, settings.queue_size) == ("onnx", 1, 4, 8)
    assert settings.timeout_s == 5 and settings.batch_wait_ms == 0 and not settings.batching
    assert settings.compute_threads == max(1, os.cpu_count() or 1)


@pytest.mark.parametrize("argv, message", [
    (["--backend", "onnx", "--device", "cuda"], "runs on the CPU"),
    (["--backend", "onnx", "--precision", "bf16"], "float32"),
])
def test_bad_option_combinations_are_user_errors(argv: list[str], message: str):
    with pytest.raises(UserError, match=message):
        settings_from_args(parse(*argv))


@pytest.mark.parametrize("argv, message", [
    (["--workers", "0"], "--workers: 0 is outside 1..64"), (["--queue-size", "0"], "--queue-size: 0 is outside"),
    (["--timeout-s", "0"], "--timeout-s: 0 is outside"), (["--chunk", "-1"], "--chunk: -1 is outside"),
    (["--port", "70000"], "--port: 70000 is outside"),
])
def test_out_of_range_numbers_are_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as stop:
        parse(*argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_a_missing_model_fails_before_the_server_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["serve", "--model", str(tmp_path / "nothing-here"), "--port", "1"]) == 2
    assert "not a path and not a registered model" in capsys.readouterr().err

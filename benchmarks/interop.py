"""Running the original CelebA decoder three ways: Keras 3 on its PyTorch backend (the
baseline), facevae's PyTorch port, and facevae's ONNX export in ONNX Runtime; plus the
one-off costs of getting there (converting decoder.keras, exporting ONNX).

    python benchmarks/interop.py [--keras-file decoder.keras] [--batches 1 64 256] [--repeat 20]
                                 [--threads N] [--quick]

Default decoder: ../shared/pretrained/original-celeba64/decoder.keras. Keras runs on its
PyTorch backend (KERAS_BACKEND=torch) with stand-ins of the original classes from
facevae/testing/keras_oracle.py. That is not the original's runtime (Keras on TensorFlow,
which is not installed here): the baseline row measures Keras's layers over PyTorch's
kernels, so it says nothing about TensorFlow's speed. Every runtime decodes the same latent codes; the table
shows the median time per batch and the largest difference from Keras's output.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

REPO = Path(__file__).resolve().parents[1]
SHARED_DECODER = REPO.parent / "shared" / "pretrained" / "original-celeba64" / "decoder.keras"


def median_seconds(function, repeat: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keras-file", type=Path, default=SHARED_DECODER)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 256])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch / ONNX Runtime threads (0: default)")
    parser.add_argument("--quick", action="store_true", help="batches 1 and 16, 5 repeats")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.repeat = [1, 16], 5
    if not args.keras_file.is_file():
        sys.exit(f"no decoder at {args.keras_file}; pass --keras-file")

    import numpy as np
    import onnxruntime
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    import keras

    from _machine import machine_line  # benchmarks/_machine.py (the script's folder is on sys.path)
    from facevae.interop.keras import import_keras
    from facevae.interop.onnx import export_onnx
    from facevae.testing import keras_oracle

    start = time.perf_counter()
    model = import_keras(args.keras_file)
    convert_s = time.perf_counter() - start
    start = time.perf_counter()
    keras_decoder = keras_oracle.Decoder(shape_before_flattening=(4, 4, 128), num_channels=128)
    keras_decoder(np.zeros((1, model.latent_dim), np.float32))
    keras_decoder.load_weights(str(args.keras_file))
    keras_load_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        export_onnx(model, Path(tmp) / "onnx")
        onnx_export_s = time.perf_counter() - start
        options = onnxruntime.SessionOptions()
        if args.threads:
            options.intra_op_num_threads = args.threads
        session = onnxruntime.InferenceSession(str(Path(tmp) / "onnx" / "decoder.onnx"), options,
                                               providers=["CPUExecutionProvider"])

    print(f"decoder: {args.keras_file}; torch {torch.__version__}, keras {keras.__version__}, "
          f"onnxruntime {onnxruntime.__version__}\n{machine_line()}")
    print(f"one-off: import decoder.keras -> facevae {convert_s * 1e3:.0f} ms; Keras build + load_weights "
          f"{keras_load_s * 1e3:.0f} ms; ONNX export + check {onnx_export_s:.1f} s\n")
    print("| batch | runtime | ms / batch | images / s | speed-up vs Keras | max abs diff vs Keras |")
    print("|---:|---|---:|---:|---:|---:|")
    for batch in args.batches:
        latents = torch.randn(batch, model.latent_dim, generator=torch.Generator().manual_seed(batch))
        numpy_latents = latents.numpy()
        reference = keras.ops.convert_to_numpy(keras_decoder(numpy_latents)).transpose(0, 3, 1, 2)

        def run_keras():
            with torch.inference_mode():
                return keras_decoder(numpy_latents, training=False)

        def run_facevae():  # the bundle's own float32 decoder, as exported
            with torch.inference_mode():
                return model.decoder(latents)

        runs = {
            "Keras 3 (torch backend), baseline": (run_keras, None),
            "facevae PyTorch": (run_facevae, lambda: run_facevae().numpy()),
            "facevae ONNX Runtime": (lambda: session.run(None, {"latents": numpy_latents}),
                                     lambda: session.run(None, {"latents": numpy_latents})[0]),
        }
        baseline = None
        for name, (function, output) in runs.items():
            seconds = median_seconds(function, args.repeat)
            baseline = baseline or seconds
            diff = "-" if output is None else f"{np.abs(output() - reference).max():.1e}"
            print(f"| {batch} | {name} | {seconds * 1e3:.2f} | {batch / seconds:,.0f} | "
                  f"{baseline / seconds:.2f}x | {diff} |")


if __name__ == "__main__":
    main()

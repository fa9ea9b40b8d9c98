"""`facevae evaluate` on two tiny models (one with an encoder, one decoder-only) with a
classifier trained on planted attributes; numbers recomputed independently."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facevae.cli.main import main
from facevae.config import ModelConfig
from facevae.data.cache import ImageCache
from facevae.evaluation import image_metrics
from facevae.evaluation.edits import face_mask
from facevae.inference.pipeline import FacePipeline
from facevae.model import classifier as clf
from facevae.model.bundle import FaceModel, Preprocessing, save_bundle
from facevae.model.vae import Decoder, Encoder

TINY = ModelConfig(image_size=32, channels=(8, 16, 16), latent_dim=16, leaky_slope=0.2, bn_eps=1e-5,
                   padding="symmetric", flatten_order="channels_first", head_activation="none")


def _bundle(path: Path, seed: int, encoder: bool, names: tuple[str, ...]) -> Path:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    vectors = {name: torch.randn(TINY.latent_dim, generator=generator) for name in names}
    vectors["Random"] = torch.zeros(TINY.latent_dim)  # an edit that changes nothing
    model = FaceModel(TINY, Decoder(TINY), Encoder(TINY) if encoder else None, vectors,
                      preprocessing=Preprocessing(image_size=32), provenance={"source": "tests: random weights"})
    return save_bundle(model, path)


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("models")
    return (_bundle(root / "with-encoder", 0, True, ("Smiling", "Eyeglasses", "Smiling_fitted")),
            _bundle(root / "decoder-only", 1, False, ("Smiling", "Blond_Hair")))


@pytest.fixture(scope="module")
def report(two_models: tuple[Path, Path], planted_cache: ImageCache, planted_classifier: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "report"
    code = main(["evaluate", str(two_models[0]), str(two_models[1]), "--data", str(planted_cache.path),
                 "--classifier", str(planted_classifier), "--out", str(out), "--max-images", "24",
                 "--edit-images", "12", "--invert-steps", "5", "--quiet"])
    assert code == 0
    return out


@pytest.mark.slow
def test_files_and_tables(report: Path) -> None:
    names = {path.name for path in report.iterdir()}
    assert {"report.md", "metrics.json", "reconstruction.csv", "edits.csv", "success_vs_leak.png",
            "strength_with-encoder.png", "strength_decoder-only.png", "reconstructions_with-encoder.png",
            "reconstructions_decoder-only.png"} <= names
    assert not any(name.startswith(".") for name in names)
    for png in report.glob("*.png"):
        with Image.open(png) as image:
            assert image.size[0] > 100 and len(image.getcolors(1 << 16) or range(300)) > 2
    text = (report / "report.md").read_text()
    assert "| with-encoder |" in text and "| decoder-only |" in text
    assert "bounded inversion" in text and "5 Adam steps" in text
    rows = list(csv.DictReader((report / "reconstruction.csv").open()))
    assert [row["model"] for row in rows] == ["with-encoder", "decoder-only"]
    edits = list(csv.DictReader((report / "edits.csv").open()))
    # Each model's vectors that the classifier knows: Random plus two planted ones (and a fitted variant).
    assert sorted((row["model"], row["attribute"]) for row in edits) == sorted(
        [("with-encoder", a) for a in ("Eyeglasses", "Smiling", "Smiling_fitted", "Random")]
        + [("decoder-only", a) for a in ("Smiling", "Blond_Hair", "Random")])


@pytest.mark.slow
def test_reconstruction_numbers_recomputed(report: Path, two_models: tuple[Path, Path],
                                           planted_cache: ImageCache) -> None:
    metrics = json.loads((report / "metrics.json").read_text())
    first, second = metrics["models"]
    rows = planted_cache.split_indices("test")[:24]
    images = torch.from_numpy(np.asarray(planted_cache.images[rows])).permute(0, 3, 1, 2).float() / 255
    pipe = FacePipeline.load(two_models[0])
    mean, log_var = pipe.model.encode(images)
    recon = pipe.decode_tensor(mean).float().clamp(0, 1)
    errors = ((recon - images) ** 2).flatten(1).mean(1).numpy()
    result = first["reconstruction"]
    assert result["images"] == 24 and result["method"] == "encoder mean" and not result["decoder_only"]
    assert result["mse"] == pytest.approx(errors.mean(), rel=1e-4)
    assert result["psnr"] == pytest.approx(np.mean(10 * np.log10(1 / errors)), rel=1e-4)
    kl = 0.5 * (mean**2 + log_var.exp() - 1 - log_var).sum(1).mean()
    assert result["kl"] == pytest.approx(float(kl), rel=1e-4)
    assert -1 <= result["ssim"] <= 1 and result["encode_images_per_s"] > 0 and result["decode_images_per_s"] > 0
    # The decoder-only model is inverted with the asked-for number of steps; it has no KL.
    inverted = second["reconstruction"]
    assert inverted["decoder_only"] and inverted["kl"] is None
    other = FacePipeline.load(two_models[1])
    codes = other.encode(images, refine_steps=5).codes
    redone = other.decode_tensor(codes).float().clamp(0, 1)
    assert inverted["mse"] == pytest.approx(image_metrics.mse(redone.numpy(), images.numpy()).mean(), rel=1e-3)
    assert inverted["ssim"] == pytest.approx(image_metrics.ssim(redone.numpy(), images.numpy()).mean(), abs=1e-3)


@pytest.mark.slow
def test_edit_numbers_recomputed(report: Path, two_models: tuple[Path, Path], planted_cache: ImageCache,
                                 planted_classifier: Path) -> None:
    edits = {e["attribute"]: e for e in json.loads((report / "metrics.json").read_text())["models"][0]["edits"]}
    judge = clf.load(planted_classifier)
    pipe = FacePipeline.load(two_models[0])
    rows = planted_cache.split_indices("test")[:12]
    images = torch.from_numpy(np.asarray(planted_cache.images[rows])).permute(0, 3, 1, 2).float() / 255
    codes = pipe.model.encode(images)[0]
    vector = pipe.model.attributes["Smiling"]
    low, high = (pipe.decode_tensor(codes + s * vector).float().clamp(0, 1) for s in (-2.0, 2.0))
    change = (judge.probabilities(high) - judge.probabilities(low)).mean(0)
    smiling = judge.attribute_names.index("Smiling")
    assert edits["Smiling"]["success"] == pytest.approx(float(change[smiling]), abs=1e-5)
    others = [float(change[i].abs()) for i in range(len(change)) if i != smiling]
    assert edits["Smiling"]["leak_mean"] == pytest.approx(np.mean(others), abs=1e-5)
    assert edits["Smiling"]["leak_worst"] == pytest.approx(max(others), abs=1e-5)
    assert edits["Smiling"]["leak_worst_attribute"] != "Smiling"
    outside = ((high - low).abs().mean((0, 1)) * 255)[~face_mask(32)].mean()
    assert edits["Smiling"]["outside_change"] == pytest.approx(float(outside), rel=1e-4)
    curve = edits["Smiling"]["curve"]
    assert curve[0] == pytest.approx(float(judge.probabilities(low)[:, smiling].mean()), abs=1e-5)
    # A classifier-fitted variant is judged by its base attribute's output, beside the mean difference.
    fitted = pipe.model.attributes["Smiling_fitted"]
    low, high = (pipe.decode_tensor(codes + s * fitted).float().clamp(0, 1) for s in (-2.0, 2.0))
    change = (judge.probabilities(high) - judge.probabilities(low)).mean(0)
    assert edits["Smiling_fitted"]["success"] == pytest.approx(float(change[smiling]), abs=1e-5)
    # A zero vector edits nothing: no success, no leak, no pixel change.
    assert edits["Random"]["success"] == 0 and edits["Random"]["leak_worst"] == 0
    assert edits["Random"]["outside_change"] == 0 and edits["Random"]["inside_change"] == 0


def test_bad_inputs_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = _bundle(tmp_path / "m", 0, True, ("Smiling",))
    code = main(["evaluate", str(tiny), "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "out")])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    code = main(["evaluate", str(tiny), "--data", str(tmp_path), "--classifier", str(tmp_path / "none"),
                 "--out", str(tmp_path / "out")])
    assert code == 2 and "classifier train" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    code = main(["evaluate", str(tiny), "--data", str(tmp_path), "--out", str(tmp_path / "mine")])
    assert code == 2 and "holds other files" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


@pytest.mark.slow
def test_linear_and_guided_side_by_side_warns_when_the_judge_steered(
        two_models: tuple[Path, Path], planted_cache: ImageCache, planted_classifier: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    code = main(["evaluate", str(two_models[0]), "--data", str(planted_cache.path), "--classifier",
                 str(planted_classifier), "--guide", str(planted_classifier), "--methods", "linear,guided",
                 "--out", str(out), "--max-images", "8", "--edit-images", "4", "--quiet"])
    assert code == 0
    rows = list(csv.DictReader((out / "edits.csv").open()))
    names = [row["attribute"] for row in rows]
    assert names.index("Smiling (guided)") == names.index("Smiling") + 1  # side by side
    assert "Smiling_fitted (guided)" not in names  # the guide has no output of a variant's own
    assert "WARNING: the judging classifier" in (out / "report.md").read_text()
    assert json.loads((out / "metrics.json").read_text())["methods"] == ["linear", "guided"]
    assert main(["evaluate", str(two_models[0]), "--data", str(planted_cache.path), "--methods", "guided",
                 "--out", str(tmp_path / "other")]) == 2  # guided edits need a judge


def test_the_shipped_classifier_is_a_judge_by_name() -> None:
    from facevae.evaluation.evaluate import _judge
    from facevae.model.shipped import load_shipped

    judge = _judge("shipped")
    assert judge.attribute_names == load_shipped().attribute_names and _judge(None) is None


@pytest.mark.slow
def test_record_quality_stores_the_linear_scores_in_the_bundle(two_models: tuple[Path, Path],
                                                              planted_cache: ImageCache, planted_classifier: Path,
                                                              tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from facevae.inference.edit_quality import QUALITY_FILE, weak_attributes

    bundle = Path(shutil.copytree(two_models[0], tmp_path / "mine"))
    out = tmp_path / "report"
    assert main(["evaluate", str(bundle), "--data", str(planted_cache.path), "--classifier", str(planted_classifier),
                 "--out", str(out), "--max-images", "12", "--edit-images", "8", "--invert-steps", "3", "--quiet",
                 "--record-quality"]) == 0
    record = json.loads((bundle / QUALITY_FILE).read_text())
    edits = {e["attribute"]: e for e in json.loads((out / "metrics.json").read_text())["models"][0]["edits"]}
    assert record["faces"] == 8 and set(record["attributes"]) == set(edits)
    for name, figures in record["attributes"].items():
        assert figures["success"] == pytest.approx(edits[name]["success"], abs=1e-3)
        assert figures["leak_worst_attribute"] == edits[name]["leak_worst_attribute"]
    weak = weak_attributes(FacePipeline.load(bundle).model)
    assert "Random" in weak  # a zero vector draws nothing: marked weak wherever it is offered
    assert "edit quality recorded in" in (out / "report.md").read_text()
    assert main(["evaluate", str(bundle), "--data", str(planted_cache.path), "--out", str(tmp_path / "r2"),
                 "--record-quality", "--quiet"]) == 2  # it needs a judge: a clear error, before any work
    assert "--record-quality stores the linear edits' scores" in capsys.readouterr().err

"""facevae.inference.directions: conditional edits (keep), on planted vectors and a planted
decoder whose attribute functions are known, including one the decoder bends."""

from __future__ import annotations

import pytest
import torch

from facevae.errors import UserError
from facevae.inference import directions
from facevae.inference.pipeline import FacePipeline, UnknownAttributeError
from support.models import make_tiny_model

LATENT = 16


@pytest.fixture
def pipe() -> FacePipeline:
    model = make_tiny_model()
    generator = torch.Generator().manual_seed(3)
    model.attributes = {name: torch.randn(LATENT, generator=generator)
                        for name in ("Smiling", "Male", "Young", "Eyeglasses", "Bangs")}
    return FacePipeline(model, precision="fp32")


@pytest.mark.parametrize("mode", ["orthogonal", "group"])
def test_keep_makes_the_offset_exactly_orthogonal_to_the_kept_vectors(pipe: FacePipeline, mode: str):
    vectors = pipe.model.attributes
    offset = pipe.resolve_attributes({"Smiling": 2.5, "Eyeglasses": -1.0}, keep=["Male", "Young"], keep_mode=mode)
    for name in ("Male", "Young"):
        assert abs(float(offset @ vectors[name])) < 1e-5 * float(offset.norm() * vectors[name].norm())
    plain = pipe.resolve_attributes({"Smiling": 2.5, "Eyeglasses": -1.0})
    assert not torch.allclose(offset, plain)  # the kept vectors were not orthogonal to begin with
    # Each edited vector keeps its length, so strength 1 stays a step as long as the plain vector's.
    single = pipe.resolve_attributes({"Smiling": 1.0}, keep=["Male"], keep_mode=mode)
    assert float(single.norm()) == pytest.approx(float(vectors["Smiling"].norm()), rel=1e-5)


def test_keep_is_deterministic_and_keeping_nothing_is_the_plain_sum(pipe: FacePipeline):
    first = pipe.resolve_attributes({"Smiling": 1.5}, keep=["Male"], keep_mode="decoded")
    second = pipe.resolve_attributes({"Smiling": 1.5}, keep=["Male"], keep_mode="decoded")
    assert torch.equal(first, second)
    plain = 1.5 * pipe.model.attributes["Smiling"]
    assert torch.allclose(pipe.resolve_attributes({"Smiling": 1.5}, keep=[]), plain)


def test_keep_errors_name_the_problem(pipe: FacePipeline):
    with pytest.raises(UnknownAttributeError, match="Unknown attribute 'Mael'.*Did you mean 'Male'"):
        pipe.resolve_attributes({"Smiling": 1.0}, keep=["Mael"])
    with pytest.raises(UserError, match="Smiling is both edited and kept"):
        pipe.resolve_attributes({"Smiling": 1.0}, keep=["Smiling"])
    with pytest.raises(UserError, match="keep mode must be one of auto, orthogonal, group, decoded"):
        pipe.resolve_attributes({"Smiling": 1.0}, keep=["Male"], keep_mode="exact")
    with pytest.raises(UserError, match="both edited and kept"):  # the walked attribute of a grid too
        pipe.arithmetic("Male", n=1, keep=["Male"])


def test_every_synthesis_method_honours_keep(pipe: FacePipeline):
    edit, keep = {"Smiling": 2.0}, ["Male"]
    offset = pipe.resolve_attributes(edit, keep)
    base = pipe.sample_latents(2, seed=4)
    generated = pipe.generate(2, seed=4, attributes=edit, keep=keep)
    assert torch.allclose(torch.from_numpy(generated.latents), base + offset, atol=1e-6)
    decoded = pipe.decode(base, attributes=edit, keep=keep)
    assert torch.allclose(torch.from_numpy(decoded.latents), base + offset, atol=1e-6)
    morph = pipe.morph(n_pairs=1, steps=2, start=base[:1], end=base[1:], attributes=edit, keep=keep)
    assert torch.allclose(torch.from_numpy(morph.latents), base + offset, atol=1e-6)
    grid = pipe.arithmetic("Smiling", latents=base[:1], strengths=(0, 2), keep=keep)
    assert torch.allclose(torch.from_numpy(grid.latents[1]), base[0] + offset, atol=1e-6)
    assert abs(float(torch.from_numpy(grid.latents[1] - grid.latents[0]) @ pipe.model.attributes["Male"])) < 1e-4


def test_group_also_removes_the_kept_attributes_correlated_group():
    basis = torch.eye(6)
    vectors = {
        "Edit": basis[1] + 0.6 * basis[0] + 0.2 * basis[3],  # cosine 0.85 with Kept
        "Kept": basis[1],
        "KeptTwin": 0.9 * basis[1] - 0.3 * basis[3],  # cosine 0.95 with Kept, 0.75 with Edit: in the group
        "EditTwin": basis[1] + 0.5 * basis[0],  # cosine 0.89 with Kept but 0.98 with Edit: left out
        "Unrelated": basis[4],
    }
    assert directions.group_of(vectors, ["Kept"], ["Edit"]) == ["Kept", "KeptTwin"]
    offset = directions.conditional_offset(vectors, {"Edit": 1.0}, ["Kept"], "group")
    assert abs(float(offset @ vectors["KeptTwin"])) < 1e-6
    plain_keep = directions.conditional_offset(vectors, {"Edit": 1.0}, ["Kept"], "orthogonal")
    assert abs(float(plain_keep @ vectors["KeptTwin"])) > 0.1
    assert abs(float(offset @ vectors["Edit"])) > 0.5 * float(vectors["Edit"].norm() ** 2)  # the edit survives


def test_keeping_a_span_that_contains_the_edit_is_an_error():
    vectors = {"A": torch.tensor([1.0, 0, 0]), "B": torch.tensor([0, 1.0, 0]), "C": torch.tensor([1.0, 1.0, 0])}
    with pytest.raises(UserError, match="C lies in the span of A, B: nothing is left"):
        directions.conditional_offset(vectors, {"C": 1.0}, ["A", "B"])


class PlantedDecoder:
    """A decoder whose attributes are known functions of the code z (D = 6):

        smiling(z) = z0 + BEND * z1^2      (the decoder bends it: moving along z1 adds smiles)
        male(z)    = z1

    The image is the feature vector [smiling, male, z2, z3, z4, z5] mapped into 3 x 4 x 4 pixels by
    a fixed matrix with orthonormal columns. The mean-difference vectors are entangled as in
    CelebA: Male = e1 + 0.5 e0, Smiling = e0.
    """

    BEND = 0.15

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.mixing, _ = torch.linalg.qr(torch.randn(48, 6, generator=generator, dtype=torch.float64))  # 48 x 6
        self.vectors = {"Male": torch.tensor([0.5, 1.0, 0, 0, 0, 0]), "Smiling": torch.tensor([1.0, 0, 0, 0, 0, 0])}

    def features(self, codes: torch.Tensor) -> torch.Tensor:
        z = codes.double()
        return torch.cat([(z[:, 0] + self.BEND * z[:, 1] ** 2)[:, None], z[:, 1:]], 1)  # N x 6

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        return (self.features(codes) @ self.mixing.T).reshape(-1, 3, 4, 4).float()

    def mean_change(self, offset: torch.Tensor, attribute: int) -> float:
        """The true mean change of one attribute over faces from the prior."""
        codes = torch.randn(4000, 6, generator=torch.Generator().manual_seed(9))
        return float((self.features(codes + offset)[:, attribute] - self.features(codes)[:, attribute]).mean())


@pytest.mark.parametrize("strength", [-3.0, 3.0])
def test_plain_projection_leaks_through_a_bent_decoder_and_the_decoded_mode_does_not(strength: float):
    decoder = PlantedDecoder()
    vectors, edit = decoder.vectors, {"Male": strength}
    plain = directions.conditional_offset(vectors, edit, [])
    projected = directions.conditional_offset(vectors, edit, ["Smiling"], "orthogonal")
    corrected = directions.conditional_offset(vectors, edit, ["Smiling"], "decoded", decode=decoder)
    smiling, male = 0, 1
    # the entangled vector adds 0.5 s smiles, and the bend BEND s^2
    assert decoder.mean_change(plain, smiling) == pytest.approx(0.5 * strength + 0.15 * strength**2, abs=0.05)
    # Orthogonal in latent space, but the bend adds BEND * (|Male| * s)^2 = 1.69 units of smiling at |s| = 3
    leak = decoder.mean_change(projected, smiling)
    assert leak == pytest.approx(PlantedDecoder.BEND * (1.25 * strength**2), rel=0.05)
    assert abs(decoder.mean_change(corrected, smiling)) < 0.05 * abs(leak)
    # ... while the edit itself is as strong as the projected one's
    assert decoder.mean_change(corrected, male) == pytest.approx(decoder.mean_change(projected, male), rel=1e-6)
    assert abs(decoder.mean_change(corrected, male)) > 3.0


def test_cli_keep_and_the_strength_warning(tiny_bundle, tmp_path, capsys):
    from facevae.cli.main import main

    out = tmp_path / "faces.npy"
    args = ["generate", "--model", str(tiny_bundle), "-n", "2", "--out", str(tmp_path / "f.png"), "--latents", str(out)]
    assert main([*args, "--attr", "Smiling=12", "--keep", "Eyeglasses"]) == 0
    assert "Smiling=12 is beyond +-10" in capsys.readouterr().err
    pipe = FacePipeline.load(str(tiny_bundle))
    import numpy as np

    expected = pipe.sample_latents(2, 0) + pipe.resolve_attributes({"Smiling": 12}, keep=["Eyeglasses"])
    assert np.allclose(np.load(out), expected.numpy(), atol=1e-6)
    assert main([*args, "--attr", "Smiling=1", "--keep", "Eyeglases"]) == 2
    assert "Unknown attribute 'Eyeglases'. Did you mean 'Eyeglasses'?" in capsys.readouterr().err


def test_group_refuses_an_edit_its_group_nearly_swallows():
    basis = torch.eye(4)
    vectors = {"Edit": basis[0] + 0.2 * basis[2], "Kept": basis[1], "KeptTwin": 0.9 * basis[1] + 0.35 * basis[0]}
    # KeptTwin is in Kept's group (cosine 0.93) and removes the Edit's main component: 20% of it is left
    with pytest.raises(UserError, match="leaves 20% of Edit's direction.*keep mode 'orthogonal'"):
        directions.conditional_offset(vectors, {"Edit": 1.0}, ["Kept"], "group")
    assert directions.conditional_offset(vectors, {"Edit": 1.0}, ["Kept"], "orthogonal").norm() > 0


def test_auto_keeps_the_group_where_the_edit_survives_it_and_plain_projection_elsewhere(pipe: FacePipeline):
    basis = torch.eye(6)
    roomy = {"Edit": basis[1] + 0.6 * basis[0] + 0.2 * basis[3], "Kept": basis[1],
             "KeptTwin": 0.9 * basis[1] - 0.3 * basis[3], "Unrelated": basis[4]}
    auto = directions.conditional_offset(roomy, {"Edit": 1.0}, ["Kept"], "auto")
    assert torch.equal(auto, directions.conditional_offset(roomy, {"Edit": 1.0}, ["Kept"], "group"))
    tight = {"Edit": basis[0] + 0.2 * basis[2], "Kept": basis[1], "KeptTwin": 0.9 * basis[1] + 0.35 * basis[0]}
    auto = directions.conditional_offset(tight, {"Edit": 1.0}, ["Kept"], "auto")  # the group would swallow it
    assert torch.equal(auto, directions.conditional_offset(tight, {"Edit": 1.0}, ["Kept"], "orthogonal"))



def test_the_pipelines_default_keep_mode_is_auto(pipe: FacePipeline):
    # a planted correlated group: Young within cosine 0.95 of Male, where auto ("group") and
    # orthogonal differ, so a different default would change the offset
    male = pipe.model.attributes["Male"]
    pipe.model.attributes["Young"] = 0.95 * male / male.norm() * pipe.model.attributes["Young"].norm() + \
        0.3 * pipe.model.attributes["Bangs"]
    default = pipe.resolve_attributes({"Smiling": 1.0}, keep=["Male"])
    orthogonal = pipe.resolve_attributes({"Smiling": 1.0}, keep=["Male"], keep_mode="orthogonal")
    assert not torch.allclose(default, orthogonal, atol=1e-4)
    assert torch.equal(default, pipe.resolve_attributes({"Smiling": 1.0}, keep=["Male"], keep_mode="auto"))

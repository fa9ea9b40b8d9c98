"""Guided edits on a planted decoder whose smile leaks into the eye bar (tests/support/guided.py):
the guided keep holds what the linear projection lets leak, the path has the linear edit's
length, and the walk is deterministic, batched and cancellable."""

from __future__ import annotations

import pytest
import torch

from facevae.errors import UserError
from facevae.inference.directions import conditional_offset
from facevae.inference.guided import (
    KEEP_CLIP,
    KEEP_EVERYTHING,
    Guide,
    GuidedSettings,
    _damped_without,
    _logits_and_gradients,
    _without,
    guided_edit,
)
from facevae.model.classifier import AttributeClassifier, ClassifierConfig
from support.guided import MASKS, VECTORS, LeakyPlantedDecoder, PlantedDetector


@pytest.fixture
def guide() -> Guide:
    return Guide(LeakyPlantedDecoder(), PlantedDetector())


@pytest.fixture
def codes() -> torch.Tensor:
    return torch.randn(12, 4, generator=torch.Generator().manual_seed(0)) * 0.5  # 12 faces


def _probabilities(guide: Guide, codes: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.sigmoid(guide.logits(codes))  # N x 3: Smiling, Eyeglasses, Blond_Hair


def test_guided_keep_removes_the_leak_that_linear_projection_leaves(guide: Guide, codes: torch.Tensor) -> None:
    before = _probabilities(guide, codes)
    linear = _probabilities(guide, codes + conditional_offset(VECTORS, {"Smiling": 2.0}, ["Eyeglasses"], "orthogonal"))
    guided = _probabilities(guide, guided_edit(guide, codes, {"Smiling": 2.0}, VECTORS, keep=["Eyeglasses"]))
    linear_leak = (linear[:, 1] - before[:, 1]).abs().mean()
    guided_leak = (guided[:, 1] - before[:, 1]).abs().mean()
    assert linear_leak > 0.25, linear_leak  # the planted leak is there, and projection does not touch it
    assert guided_leak < 0.08, guided_leak
    assert guided_leak < linear_leak / 4
    # ...while the smile still switches on about as well as the linear edit's.
    assert (guided[:, 0] - before[:, 0]).mean() > 0.9 * (linear[:, 0] - before[:, 0]).mean()
    # The same with the gradient alone, unanchored by the attribute vector.
    unanchored = guided_edit(guide, codes, {"Smiling": 2.0}, VECTORS, keep=["Eyeglasses"],
                             settings=GuidedSettings(anchor=0.0))
    assert (_probabilities(guide, unanchored)[:, 1] - before[:, 1]).abs().mean() < 0.08
    # Without keep the guided edit leaks like the linear one: holding is what removes it.
    free = _probabilities(guide, guided_edit(guide, codes, {"Smiling": 2.0}, VECTORS))
    assert (free[:, 1] - before[:, 1]).abs().mean() > 0.2


def test_keep_everything_holds_every_other_attribute(guide: Guide, codes: torch.Tensor) -> None:
    before = _probabilities(guide, codes)
    after = _probabilities(guide, guided_edit(guide, codes, {"Smiling": 2.0}, VECTORS, keep=[KEEP_EVERYTHING]))
    assert (after[:, 0] - before[:, 0]).mean() > 0.2
    assert (after[:, 1:] - before[:, 1:]).abs().max() < 0.1


def test_strength_is_a_path_length_in_the_linear_unit(guide: Guide, codes: torch.Tensor) -> None:
    # Smiling's gradient and vector point along its own axis here, so the walk is straight: |s| x |v| long.
    for strength in (2.0, -1.5):
        moved = guided_edit(guide, codes, {"Smiling": strength}, {"Smiling": 0.7 * VECTORS["Smiling"]})
        torch.testing.assert_close((moved - codes).norm(dim=1), torch.full((12,), abs(strength) * 0.7))
        assert torch.sign(moved[:, 0] - codes[:, 0]).eq(1.0 if strength > 0 else -1.0).all()


class _SureOfGlassesOnBlondFaces(torch.nn.Module):
    """The planted detector, certain of Eyeglasses (logit + 20) whenever the blond band is drawn:
    a kept output beyond KEEP_CLIP on some faces only. The offset has no gradient."""

    attribute_names, image_size = PlantedDetector.attribute_names, PlantedDetector.image_size

    def __init__(self) -> None:
        super().__init__()
        self.exact = PlantedDetector()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.exact(images)
        sure = 20.0 * (logits[:, 2] > 0).float()  # N
        return torch.stack([logits[:, 0], logits[:, 1] + sure, logits[:, 2]], 1)


def test_a_kept_output_the_guide_is_sure_of_is_not_held(guide: Guide, codes: torch.Tensor) -> None:
    blond = codes.clone()
    blond[:6, 2], blond[6:, 2] = 3.0, -3.0  # the first six faces blond: their Eyeglasses reading is sure
    sure_guide = Guide(LeakyPlantedDecoder(), _SureOfGlassesOnBlondFaces())
    glasses = sure_guide.logits(blond)[:, 1]
    assert (glasses[:6] > KEEP_CLIP).all() and (glasses[6:].abs() < KEEP_CLIP).all()
    kept = guided_edit(sure_guide, blond, {"Smiling": 2.0}, VECTORS, keep=["Eyeglasses"])
    free = guided_edit(sure_guide, blond, {"Smiling": 2.0}, VECTORS)
    # The sure faces walk as if nothing were kept (holding would only shorten their smile)...
    torch.testing.assert_close(kept[:6], free[:6])
    # ...while the other faces in the same batch are held exactly as the plain detector holds them.
    torch.testing.assert_close(kept[6:], guided_edit(guide, blond[6:], {"Smiling": 2.0}, VECTORS, keep=["Eyeglasses"]),
                               atol=1e-5, rtol=1e-5)
    assert (kept[6:] - free[6:]).abs().max() > 0.05


def test_gradients_of_sure_kept_outputs_are_zero_and_the_rest_exact(codes: torch.Tensor) -> None:
    blond = codes.clone()
    blond[:6, 2], blond[6:, 2] = 3.0, -3.0  # Eyeglasses is sure on the first six faces only
    sure_guide = Guide(LeakyPlantedDecoder(), _SureOfGlassesOnBlondFaces())
    smile, glasses = sure_guide.index("Smiling"), sure_guide.index("Eyeglasses")
    for faces in (blond[:6], blond):  # every face sure of the kept output, then a mixed batch
        logits, gradients = _logits_and_gradients(sure_guide, faces, [smile], [glasses], hold_members=True)
        variable = faces.clone().requires_grad_(True)
        reference = sure_guide.logits(variable)  # N x A
        for row, column in enumerate((smile, glasses)):
            (expected,) = torch.autograd.grad(reference[:, column].sum(), variable, retain_graph=True)
            torch.testing.assert_close(logits[:, row], reference[:, column].detach())
            if row == 1:  # the kept output: zero where the guide is sure (the first six faces), exact elsewhere
                assert not gradients[:6, row].any()
                torch.testing.assert_close(gradients[6:, row], expected[6:])
            else:
                torch.testing.assert_close(gradients[:, row], expected)
    assert gradients[6:, 1].abs().amax() > 0  # the unsure faces' kept gradients are really taken


@pytest.mark.parametrize("hold_members", [True, False])
def test_member_by_member_gradients_equal_the_whole_ensembles(codes: torch.Tensor, hold_members: bool) -> None:
    # A real two-member classifier (random weights, eval mode): each member's rows are taken
    # through that member alone, then back through the decoder; they must equal the gradients
    # of the stacked readings taken row by row.
    config = ClassifierConfig(image_size=32, attribute_names=PlantedDetector.attribute_names, channels=(4, 8, 8),
                              members=2)
    torch.manual_seed(0)
    ensemble = AttributeClassifier(config).eval()
    guide = Guide(LeakyPlantedDecoder(), ensemble)
    logits, gradients = _logits_and_gradients(guide, codes, [0], [1, 2], hold_members=hold_members)
    variable = codes.clone().requires_grad_(True)
    readings = guide.readings(variable)  # 2 x N x 3
    kept = readings[:, :, [1, 2]]
    kept = kept.permute(1, 0, 2).flatten(1) if hold_members else kept.mean(0)  # N x 4 or N x 2
    reference = torch.cat([readings[:, :, [0]].mean(0), kept], 1)  # N x R
    assert logits.shape == reference.shape == (12, 5 if hold_members else 3)
    torch.testing.assert_close(logits, reference.detach())
    unsure = reference.detach().abs() <= KEEP_CLIP  # N x R
    for row in range(reference.shape[1]):
        (expected,) = torch.autograd.grad(reference[:, row].sum(), variable, retain_graph=True)
        expected = expected if row == 0 else expected * unsure[:, row, None]
        torch.testing.assert_close(gradients[:, row], expected, atol=1e-6, rtol=1e-4)
    assert gradients.abs().amax() > 0


def test_deterministic_and_batched(guide: Guide, codes: torch.Tensor) -> None:
    run = [guided_edit(guide, codes, {"Smiling": 2.0, "Blond_Hair": -1.0}, VECTORS, keep=["Eyeglasses"])
           for _ in range(2)]
    assert torch.equal(run[0], run[1])
    one_by_one = torch.cat([guided_edit(guide, code[None], {"Smiling": 2.0, "Blond_Hair": -1.0}, VECTORS,
                                        keep=["Eyeglasses"]) for code in codes])
    torch.testing.assert_close(one_by_one, run[0], atol=1e-5, rtol=1e-5)


def test_one_strength_per_face_equals_separate_walks(guide: Guide, codes: torch.Tensor) -> None:
    per_face = torch.tensor([2.0, -1.0, 0.0] * 4)  # the arithmetic grid's columns, batched
    together = guided_edit(guide, codes, {"Smiling": per_face}, VECTORS, keep=["Eyeglasses"])
    for strength in (2.0, -1.0):
        rows = per_face == strength
        alone = guided_edit(guide, codes[rows], {"Smiling": strength}, VECTORS, keep=["Eyeglasses"])
        torch.testing.assert_close(together[rows], alone, atol=1e-5, rtol=1e-5)
    assert torch.equal(together[per_face == 0], codes[per_face == 0])  # strength 0: the face is not moved


def test_cancel_is_called_before_every_step_and_stops_the_walk(guide: Guide, codes: torch.Tensor) -> None:
    calls = []

    def cancel() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise TimeoutError("deadline passed")

    with pytest.raises(TimeoutError):
        guided_edit(guide, codes, {"Smiling": 2.0}, VECTORS, settings=GuidedSettings(steps=10), cancel=cancel)
    assert len(calls) == 3


def test_clear_errors(guide: Guide, codes: torch.Tensor) -> None:
    with pytest.raises(UserError, match="does not know 'Bald'"):
        guided_edit(guide, codes, {"Bald": 1.0}, {"Bald": VECTORS["Smiling"]})
    with pytest.raises(UserError, match="both edited and kept"):
        guided_edit(guide, codes, {"Smiling": 1.0}, VECTORS, keep=["Smiling"])
    with pytest.raises(UserError, match="between 1 and"):
        GuidedSettings(steps=0)
    with pytest.raises(UserError, match="anchor >= 0"):
        GuidedSettings(anchor=-1)
    assert torch.equal(guided_edit(guide, codes, {"Smiling": 0.0}, VECTORS), codes)


class _TwoGlassesReadings(torch.nn.Module):
    """Two members that read Eyeglasses differently: the planted detector (the eye bar), and one
    whose Eyeglasses logit also moves with its Smiling and Blond_Hair logits (by `smile` and
    `blond` times them)."""

    attribute_names, image_size = PlantedDetector.attribute_names, PlantedDetector.image_size

    def __init__(self, smile: float = 0.0, blond: float = 0.0) -> None:
        super().__init__()
        self.exact, self.smile, self.blond = PlantedDetector(), smile, blond

    def member_logits(self, images: torch.Tensor) -> torch.Tensor:
        first = self.exact(images)  # N x 3
        second = first.clone()
        second[:, 1] = first[:, 1] + self.smile * first[:, 0] + self.blond * first[:, 2]
        return torch.stack([first, second])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.member_logits(images).mean(0)


def test_an_ensemble_guide_holds_each_members_reading_of_a_kept_attribute(codes: torch.Tensor) -> None:
    # The second member counts a blond band as less glasses, so the members' mean can be held
    # by changing the band instead of the bar.
    guide = Guide(LeakyPlantedDecoder(), _TwoGlassesReadings(blond=-2.0))
    with torch.no_grad():
        before = guide.readings(codes)  # 2 x N x 3
    drift = {}
    for hold in (True, False):
        edited = guided_edit(guide, codes, {"Smiling": 2.0}, VECTORS, keep=["Eyeglasses"],
                             settings=GuidedSettings(hold_members=hold))
        with torch.no_grad():
            after = guide.readings(edited)
        assert (after[:, :, 0] - before[:, :, 0]).mean() > 1.0  # the smile switches on either way
        drift[hold] = (after[:, :, 1] - before[:, :, 1]).abs().mean(1)  # per member
        torch.testing.assert_close(guide.logits(edited), after.mean(0))
    assert drift[False].max() > 3 * drift[True].max(), drift  # the mean alone lets the members drift apart


def test_a_damped_keep_lets_the_edit_through_where_members_differ_slightly(codes: torch.Tensor) -> None:
    # The two readings of Eyeglasses differ only in the smile's direction, so projecting both
    # out exactly (keep_ridge 0) leaves no smile at all; the damped projection (the default)
    # lets the smile through and holds both readings near where they were.
    guide = Guide(LeakyPlantedDecoder(), _TwoGlassesReadings(smile=0.1))
    with torch.no_grad():
        before = guide.readings(codes)  # 2 x N x 3

    def changes(**keep: object) -> tuple[float, torch.Tensor]:
        edited = guided_edit(guide, codes, {"Smiling": 2.0}, VECTORS, **keep)  # type: ignore[arg-type]
        with torch.no_grad():
            after = guide.readings(edited)
        return float((after[0, :, 0] - before[0, :, 0]).mean()), (after[:, :, 1] - before[:, :, 1]).abs().mean(1)

    free_smile, free_drift = changes()
    exact_smile, _ = changes(keep=["Eyeglasses"], settings=GuidedSettings(keep_ridge=0.0))
    damped_smile, damped_drift = changes(keep=["Eyeglasses"])
    assert abs(exact_smile) < 0.01, exact_smile
    assert damped_smile > 0.4 * free_smile > 0, (damped_smile, free_smile)
    assert (damped_drift < free_drift / 5).all(), (damped_drift, free_drift)


# The eye bar's top row: the part of it a guide that misses the rest sees. (Not its left half: the
# guide averages each face with its mirror image, which would show it the right half too.)
_TOP_BAR = MASKS["Eyeglasses"] * (torch.arange(32) < 15).float()[:, None]


class _LowerBarDecoder(torch.nn.Module):
    """Planted faces without the smile's leak: dimension 0 draws the mouth arc, 1 the whole eye
    bar, and 3 darkens the bar below its top row only (glasses a guide that reads the top row misses)."""

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        def drawn(dimension: int) -> torch.Tensor:
            return torch.sigmoid(2 * codes[:, dimension])[:, None, None, None]

        image = torch.full((len(codes), 3, 32, 32), 0.5) + 0.45 * drawn(0) * MASKS["Smiling"]
        return image - 0.25 * drawn(1) * MASKS["Eyeglasses"] - 0.25 * drawn(3) * (MASKS["Eyeglasses"] - _TOP_BAR)


class _TopBarDetector(PlantedDetector):
    """The planted detector, but reading Eyeglasses from the eye bar's top row only: what it holds
    of Eyeglasses is that row (a guide that misses some of what a person sees)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = super().forward(images)
        top = (images.mean(1) * _TOP_BAR).sum((1, 2)) / _TOP_BAR.sum()
        return torch.stack([logits[:, 0], 20 * (0.35 - top), logits[:, 2]], 1)


def test_the_kept_vectors_hold_what_the_guide_does_not_see(codes: torch.Tensor) -> None:
    # The data's smile direction also darkens the bar below its top row (dimension 3), which the
    # guide cannot see; the glasses vector says dimension 3 draws glasses. An exact judge sees it.
    vectors = {"Smiling": torch.tensor([1.0, 0.0, 0.0, 1.0]), "Eyeglasses": torch.tensor([0.0, 0.5, 0.0, 1.0])}
    guide, judge = Guide(_LowerBarDecoder(), _TopBarDetector()), Guide(_LowerBarDecoder(), PlantedDetector())
    before = _probabilities(judge, codes)
    change = {}
    for project in (False, True):
        edited = guided_edit(guide, codes, {"Smiling": 2.0}, vectors, keep=["Eyeglasses"],
                             settings=GuidedSettings(project_vectors=project))
        change[project] = _probabilities(judge, edited) - before  # N x 3
        assert change[project][:, 0].mean() > 0.3  # the smile switches on either way
        guide_drift = (_probabilities(guide, edited)[:, 1] - _probabilities(guide, codes)[:, 1]).abs().mean()
        assert guide_drift < 0.05  # ...and the guide's own reading of Eyeglasses is held either way
    leak = {project: change[project][:, 1].abs().mean() for project in (False, True)}
    assert leak[False] > 0.05, leak  # the guide alone lets the judge's Eyeglasses drift
    assert leak[True] < 0.5 * leak[False], leak


def test_keep_everything_projects_damped_and_one_kept_attribute_exactly() -> None:
    directions = torch.tensor([[[1.0, 1.0, 0.0]]])  # N=1 x T=1 x D=3
    row = torch.tensor([[[2.0, 0.0, 0.0]]])  # one kept gradient along the first axis
    # A ridge of 1 x |row|^2 removes half of the component along the row; no ridge removes it all.
    torch.testing.assert_close(_damped_without(directions, row, 1.0), torch.tensor([[[0.5, 1.0, 0.0]]]))
    torch.testing.assert_close(_without(directions, row), torch.tensor([[[0.0, 1.0, 0.0]]]))
    # Rows spanning the whole space leave an exact projection nothing; the damped one keeps room.
    rows = torch.randn(1, 5, 3, generator=torch.Generator().manual_seed(0))
    assert _without(directions, rows).norm() < 1e-5
    assert _damped_without(directions, rows, 1.0).norm() > 0.1


class _WithAnOpenMouth(PlantedDetector):
    """The planted detector plus a fourth reading made of the others (the smile plus half the
    blond band): with it kept, the kept gradients span the smile's, as dozens of CelebA
    readings do on a real decoder."""

    attribute_names = [*PlantedDetector.attribute_names, "Mouth_Slightly_Open"]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = super().forward(images)
        return torch.cat([logits, logits[:, :1] + 0.5 * logits[:, 2:]], 1)


def test_keep_everything_leaves_the_edit_room_the_exact_projection_takes(codes: torch.Tensor) -> None:
    guide = Guide(LeakyPlantedDecoder(), _WithAnOpenMouth())
    before = _probabilities(guide, codes)  # N x 4

    def change(**settings: float) -> torch.Tensor:
        keep = [KEEP_EVERYTHING] if settings else []
        edited = guided_edit(guide, codes, {"Smiling": 2.0}, VECTORS, keep=keep, settings=GuidedSettings(**settings))
        return _probabilities(guide, edited) - before  # N x 4

    exact, damped, free = change(everything_ridge=0.0), change(everything_ridge=1.0), change()
    assert exact[:, 0].mean() < 0.01  # the kept readings span the smile: an exact projection leaves nothing
    assert damped[:, 0].mean() > 0.05  # damped, some smile is drawn...
    drift = {name: change[:, 1].abs().mean() for name, change in (("damped", damped), ("free", free))}
    assert drift["damped"] < 0.25 * drift["free"], drift  # ...with a fraction of the free edit's leak into glasses

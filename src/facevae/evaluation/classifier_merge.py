"""Merging trained classifier folders into one ensemble: `facevae classifier merge`.

    merge_classifiers(["runs/light", "runs/heavier"], "runs/both", cache)

Every member of every folder becomes a member of the new classifier (logits averaged, as in
`--members N`), so networks trained with different recipes (augmentation, epochs, seeds) can
form one ensemble, which one `classifier train` run cannot: its members share a recipe. Why
that matters for guided edits (a guided keep holds each member's reading of a kept attribute,
and readings from differently trained networks agree with other classifiers more often):
docs/evaluation.md. The folders must share the architecture (image size, attribute names,
channels, convolutions per stage) and the data's framing. The merged folder is validated on
the cache's valid split (metrics.json, as after training), records its sources in config.json
and is built in a temporary sibling and renamed into place complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..atomic import staged_dir
from ..data.cache import ImageCache
from ..errors import UserError
from ..limits import MAX_CLASSIFIER_MEMBERS
from ..model import classifier as clf
from .classifier_training import is_classifier_folder, score_split, split_metrics, write_classifier_files
from .output import check_replaceable, check_writable, writing

SHARED_FIELDS = ("image_size", "attribute_names", "channels", "convs_per_stage")
DATA_FRAMING = ("crop", "crop_size")


def merge_classifiers(folders: Sequence[str | Path], out: str | Path, cache: ImageCache,
                      progress: bool = False) -> Path:
    """One ensemble with every member of `folders` (two or more); returns OUT."""
    folders = [Path(folder).expanduser() for folder in folders]
    if len(folders) < 2:
        raise UserError("merging needs at least two classifier folders")
    out = Path(out).expanduser()
    if out.resolve() in {folder.resolve() for folder in folders}:
        raise UserError(f"{out} is one of the folders being merged; write the ensemble to a new folder")
    if len(cache.split_indices("valid")) == 0:
        raise UserError(f"the valid split of {cache.path} is empty, so the ensemble cannot be validated; prepare "
                        f"the cache with a validation fraction (`facevae prepare --val-fraction 0.1`)")
    configs = [clf.read_config(folder) for folder in folders]
    _check_compatible(folders, configs)
    members = sum(config.members for config, _ in configs)
    if members > MAX_CLASSIFIER_MEMBERS:
        raise UserError(f"the folders hold {members} networks in all; an ensemble takes at most "
                        f"{MAX_CLASSIFIER_MEMBERS}: merge fewer folders")
    check_replaceable(out, is_classifier_folder, "the classifier", "facevae classifier merge")
    check_writable(out)
    merged = clf.AttributeClassifier(replace(configs[0][0], members=members))
    networks = [network for folder in folders for network in clf.load(folder).members]  # folder 1's, then 2's, ...
    merged.load_state_dict({f"members.{index}.{name}": value for index, network in enumerate(networks)
                            for name, value in network.state_dict().items()})
    merged.eval()
    valid = split_metrics(score_split(merged, cache, "valid", progress=progress), merged.attribute_names)
    sources = [{"folder": str(folder), "members": config.members, "train": meta.get("train", {}),
                "data": meta.get("data", {})} for folder, (config, meta) in zip(folders, configs)]
    first_data = sources[0]["data"]
    data = {**{key: first_data[key] for key in DATA_FRAMING if key in first_data}, "cache": str(cache.path)}
    counts = {source["data"].get("train_images") for source in sources}
    if len(counts) == 1:  # the same training faces' count everywhere (each source's own is in merged_from)
        data["train_images"] = counts.pop()
    train = {"merged_from": sources}
    with writing(out), staged_dir(out) as folder:
        write_classifier_files(folder, merged, train, data, valid)
    return out


def _check_compatible(folders: list[Path], configs: list[tuple[clf.ClassifierConfig, dict[str, Any]]]) -> None:
    """The same architecture and framing in every folder, or an error naming the first difference."""
    first, first_meta = configs[0]
    for folder, (config, meta) in zip(folders[1:], configs[1:]):
        for field in SHARED_FIELDS:
            if getattr(config, field) != getattr(first, field):
                raise UserError(f"{folder} and {folders[0]} differ in {field} ({getattr(config, field)} against "
                                f"{getattr(first, field)}); only classifiers of the same architecture can be merged "
                                f"(train them with the same --channels, --convs-per-stage and attributes)")
        for key in DATA_FRAMING:
            theirs, ours = meta.get("data", {}).get(key), first_meta.get("data", {}).get(key)
            if theirs != ours:
                raise UserError(f"{folder} and {folders[0]} were trained on differently framed faces ({key} "
                                f"{theirs} against {ours}); merge classifiers trained on the same framing")

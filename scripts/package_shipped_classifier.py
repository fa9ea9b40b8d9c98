"""Copy a trained classifier folder into the package as the shipped classifier (the last step
of scripts/train_shipped_classifier.sh): weights, config (with provenance and CelebA's terms in
its "data" section), validation and test metrics, and a README. No CelebA pixels are copied.

    python scripts/package_shipped_classifier.py TRAINED_DIR src/facevae/model/weights/celeba64-attributes
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

PROVENANCE = {
    "trained_on": "the 8,000-face CelebA sample (../shared/celeba-sample: aligned faces 000001-008000, all from "
                  "CelebA's official train partition, half resolution, squashed to 64 x 64) with its 40 labels",
    "split": "seeded split of the sample (facevae prepare --val-fraction 0.075 --test-fraction 0.125 --split-seed 0): "
             "6,400 train, 600 validation (early stopping), 1,000 test (never seen in training)",
    "terms": "CelebA is for non-commercial research purposes only (see its agreement: "
             "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html); these weights were trained on it, so the same "
             "terms apply to them",
    "recipe": "scripts/train_shipped_classifier.sh",
}


def main(trained: Path, target: Path) -> None:
    config = json.loads((trained / "config.json").read_text())
    config["data"] = {**{k: v for k, v in config["data"].items() if k != "cache"}, **PROVENANCE}
    for source in config["train"].get("merged_from", []):  # `classifier merge`: the recipe's folder names, no paths
        source["folder"] = Path(source["folder"]).name
        source["data"].pop("cache", None)
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name in ("classifier.safetensors", "metrics.json", "evaluation_test.json"):
        shutil.copyfile(trained / name, target / name)
    test = json.loads((trained / "evaluation_test.json").read_text())
    test.pop("data", None)  # a local cache path
    (target / "evaluation_test.json").write_text(json.dumps(test, indent=2) + "\n")
    auc = {k: v for k, v in test["auc"].items() if v is not None}
    mean = sum(auc.values()) / len(auc)
    architecture = ", ".join(f"{k} {v}" for k, v in config["model"].items() if k != "attribute_names")
    (target / "README.md").write_text(
        "# celeba64-attributes: facevae's shipped CelebA attribute classifier\n\n"
        f"- trained on: {PROVENANCE['trained_on']}\n- split: {PROVENANCE['split']}\n"
        f"- terms: {PROVENANCE['terms']}\n- recipe: `{PROVENANCE['recipe']}`\n"
        f"- architecture: {architecture}, {len(config['model']['attribute_names'])} attributes\n"
        f"- held-out test ({test['images']} faces): mean ROC AUC {mean:.3f}, Smiling {auc['Smiling']:.3f}, "
        f"Male {auc['Male']:.3f} (every attribute in evaluation_test.json)\n")
    print(f"packaged {trained} into {target}: test mean AUC {mean:.3f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))

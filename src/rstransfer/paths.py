"""The results layout, in one place: the Snakemake rules, the CLI defaults (used by the
jobs/ sbatch scripts) and the report all derive their paths from here.

Arguments may be concrete values or Snakemake wildcards such as ``"{policy}"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Layout:
    results: str
    source: str
    target: str
    model: str
    pretrain_seed: int
    leaderboard_root: str = ""  # shared by the teams of a competition; "" = results

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layout:
        hsi = config["hsi"]
        board = config.get("leaderboard", {}).get("dir", "")
        return cls(config["results"], hsi["source"], hsi["target"], hsi["model"], hsi["pretrain_seed"], board)

    @property
    def pair(self) -> str:
        return f"{self.source}-to-{self.target}"

    def prepared(self, dataset: str) -> str:
        return f"{self.results}/prepare/{dataset}.h5"

    def pretrain_dir(
        self, dataset: str | None = None, model: str | None = None, seed: Any = None, file: str = ""
    ) -> str:
        seed = self.pretrain_seed if seed is None else seed
        return _join(f"{self.results}/pretrain/{dataset or self.source}/{model or self.model}/seed{seed}", file)

    def finetune_dir(self, policy: str, seed: Any, model: str | None = None, file: str = "") -> str:
        return _join(f"{self.results}/finetune/{self.pair}/{model or self.model}/{policy}/seed{seed}", file)

    def evaluate_dir(self, policy: str, seed: Any, model: str | None = None, file: str = "") -> str:
        return _join(f"{self.results}/evaluate/{self.pair}/{model or self.model}/{policy}/seed{seed}", file)

    def report_dir(self, file: str = "") -> str:
        return _join(f"{self.results}/report", file)

    # segmentation branch (ISPRS Vaihingen, ResNet50-FCN)
    def seg_synthetic_dir(self, file: str = "") -> str:
        return _join(f"{self.results}/segmentation/synthetic", file)

    def seg_prepared(self, split: str) -> str:
        return f"{self.results}/segmentation/prepare/vaihingen_{split}.hdf5"

    def seg_train_dir(self, experiment: str, file: str = "") -> str:
        return _join(f"{self.results}/segmentation/train/{experiment}", file)

    def seg_evaluate_dir(self, experiment: str, tile: Any, file: str = "") -> str:
        return _join(f"{self.results}/segmentation/evaluate/{experiment}/area{tile}", file)

    def seg_report_dir(self, file: str = "") -> str:
        return _join(f"{self.results}/report/segmentation", file)

    # leaderboard (rstransfer.leaderboard): a team's receipt in its results; the shared submissions and boards
    def submit_receipt(self, task: str) -> str:
        return f"{self.results}/submit/{task}.json"

    def submissions_dir(self, team: str = "", task: str = "") -> str:
        return _join(_join(f"{self.leaderboard_root or self.results}/submissions", team), task)

    def leaderboard_file(self, ext: str) -> str:
        return f"{self.leaderboard_root or self.results}/leaderboard.{ext}"

    def log(self, rule: str, name: str) -> str:
        return f"{self.results}/logs/{rule}/{name}.log"

    def benchmark(self, rule: str, name: str) -> str:
        return f"{self.results}/benchmarks/{rule}/{name}.tsv"


def _join(folder: str, file: str) -> str:
    return f"{folder}/{file}" if file else folder

"""The results layout, in one place: the Snakemake rules, the CLI defaults (used by the
jobs/ sbatch scripts), the studies and the report all derive their paths from here.

``<results>/<study>/<step>/<run>/`` holds one run of one step (``run`` follows the step's
pattern, e.g. ``Network_2/seed0``); ``<results>/report/index.html`` links every enabled
study's report; logs and benchmarks mirror the run folders. Arguments may be concrete values
or Snakemake wildcards such as ``"{policy}"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Layout:
    results: str
    leaderboard_root: str = ""  # shared by the teams of a competition; "" = results
    ground_truth: str = ""  # the organiser's hidden labels; "" = <results>/organiser/ground_truth

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layout:
        lb = config.get("leaderboard", {})
        return cls(config["results"], lb.get("dir", ""), lb.get("ground_truth", ""))

    def run_dir(self, study: str, step: str, run_path: str = "", file: str = "") -> str:
        """``<results>/<study>/<step>/<run_path>[/file]``: the folder of one run of a step."""
        return _join(_join(f"{self.results}/{study}/{step}", run_path), file)

    def report_index(self) -> str:
        return f"{self.results}/report/index.html"

    def effective_config(self) -> str:
        return f"{self.results}/config/effective.yaml"

    # leaderboard (rstransfer.leaderboard): a team's receipt in its results; the shared submissions and boards
    def submit_receipt(self, task: str) -> str:
        return f"{self.results}/submit/{task}.json"

    def submissions_dir(self, team: str = "", task: str = "") -> str:
        return _join(_join(f"{self.leaderboard_root or self.results}/submissions", team), task)

    def ground_truth_dir(self) -> str:
        return self.ground_truth or f"{self.results}/organiser/ground_truth"

    def board_dir(self) -> str:
        """The three boards, published together as one folder."""
        return f"{self.leaderboard_root or self.results}/board"

    def leaderboard_file(self, ext: str) -> str:
        return f"{self.board_dir()}/leaderboard.{ext}"

    def log(self, rule: str, name: str) -> str:
        return f"{self.results}/logs/{rule}/{name}.log"

    def benchmark(self, rule: str, name: str) -> str:
        return f"{self.results}/benchmarks/{rule}/{name}.tsv"


def _join(folder: str, file: str) -> str:
    return f"{folder}/{file}" if file else folder

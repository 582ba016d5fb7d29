# Config validation, global wildcard constraints, input functions and resources.
# Logic beyond a few lines lives in src/rstransfer (the CLI every rule calls).
from snakemake.utils import validate

from rstransfer.config import check_references, write_effective_config
from rstransfer.policies import policies_for


validate(config, schema="../schemas/config.schema.yaml", set_default=True)
check_references(config, origin="config")

RESULTS = config["results"]
HSI = config["hsi"]
PAIR = f"{HSI['source']}-to-{HSI['target']}"
# the CLI reads the merged config (config.yaml + --configfile + --config) from here
EFFECTIVE_CONFIG = str(write_effective_config(config, f"{RESULTS}/config/effective.yaml"))


wildcard_constraints:
    dataset="|".join(config["datasets"]),
    model="|".join([HSI["model"]]),
    policy="|".join(p.name for p in policies_for(HSI["model"])),
    seed=r"\d+",


def from_scratch(policy):
    return {p.name: p for p in policies_for(HSI["model"])}[policy].from_scratch


def get_pretrained(wildcards):
    """Pretrained weights are an input only for policies that use them."""
    if from_scratch(wildcards.policy):
        return []
    return f"{RESULTS}/pretrain/{HSI['source']}/{wildcards.model}/seed{HSI['pretrain_seed']}/model.keras"


def pretrained_arg(wildcards, input):
    return f"--pretrained {input.pretrained}" if input.pretrained else ""


def get_evaluated_runs():
    return expand(
        f"{RESULTS}/evaluate/{PAIR}/{HSI['model']}/{{policy}}/seed{{seed}}",
        policy=HSI["policies"],
        seed=HSI["seeds"],
    )


def get_final_output():
    return [f"{RESULTS}/report/index.html"]

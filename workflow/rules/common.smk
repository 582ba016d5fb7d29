# Config validation, global wildcard constraints, input functions and resources.
# Logic beyond a few lines lives in src/rstransfer (the CLI every rule calls).
from snakemake.utils import validate

from rstransfer.config import check_references, write_effective_config
from rstransfer.leaderboard import active_tasks as leaderboard_tasks
from rstransfer.leaderboard import final_outputs as leaderboard_outputs
from rstransfer.leaderboard import submit_inputs
from rstransfer.paths import Layout
from rstransfer.policies import policies_for
from rstransfer.segmentation import final_outputs as segmentation_outputs
from rstransfer.slurm import slurm_resources


validate(config, schema="../schemas/config.schema.yaml", set_default=True)
check_references(config, origin="config")

RESULTS = config["results"]
HSI = config["hsi"]
L = Layout.from_config(config)  # the results layout, shared with the CLI
# the CLI reads the merged config (config.yaml + --configfile + --config) from here
EFFECTIVE_CONFIG = str(write_effective_config(config, f"{RESULTS}/config/effective.yaml"))

# SLURM resources from the validated `slurm:` section (used by `snakemake --profile slurm`)
GPU_RESOURCES = slurm_resources(config, "gpu")  # inference: one task
GPU_TRAIN_RESOURCES = slurm_resources(config, "gpu", training=True)  # one Horovod rank per GPU
CPU_RESOURCES = slurm_resources(config, "cpu")

if config["slurm"]["cpu"]["local"]:

    localrules:
        prepare,
        report,
        submit,
        leaderboard,


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
    return L.pretrain_dir(model=wildcards.model, file="model.keras")


def pretrained_arg(wildcards, input):
    return f"--pretrained {input.pretrained}" if input.pretrained else ""


def get_evaluated_runs():
    return [L.evaluate_dir(p, s) for p in HSI["policies"] for s in HSI["seeds"]]


def get_final_output():
    return [L.report_dir(file="index.html"), *segmentation_outputs(config), *leaderboard_outputs(config, L)]

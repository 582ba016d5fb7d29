# Config validation (core schema + one section per study), the registry's enabled studies,
# input/params/command helpers for workflow/rules/steps.smk, and the final targets.
# Logic beyond a few lines lives in src/rstransfer (the CLI every rule calls).
from rstransfer.core.config import validate, write_effective_config
from rstransfer.core.paths import Layout
from rstransfer.core.slurm import slurm_resources
from rstransfer.core.workflow import step_cli, step_inputs, step_params
from rstransfer.leaderboard.tasks import active_tasks as leaderboard_tasks
from rstransfer.leaderboard.tasks import final_outputs as leaderboard_outputs
from rstransfer.leaderboard.tasks import submit_inputs, truth_inputs
from rstransfer.studies import enabled_studies


config.update(validate(config, origin="config"))  # defaults filled in, cross-key checks done
RESULTS = config["results"]
L = Layout.from_config(config)  # the results layout, shared with the CLI
STUDIES = enabled_studies(config)
# the CLI reads the merged config (config.yaml + --configfile + --config) from here
EFFECTIVE_CONFIG = str(write_effective_config(config, L.effective_config()))
CPU_RESOURCES = slurm_resources(config, "cpu")

if config["slurm"]["cpu"]["local"]:

    localrules:
        submit,
        leaderboard,


def get_final_output():
    reports = [L.run_dir(s.name, "report") for s in STUDIES if s.runs(config, "report")]
    index = [L.report_index()] if reports else []
    return [*reports, *index, *leaderboard_outputs(config, L)]

# rstransfer: every enabled study's prepare -> pretrain -> finetune x policies -> evaluate -> report,
# then the top-level report index and the leaderboard.
#
# Results layout (under config["results"], default results/; rstransfer.core.paths):
#   <study>/<step>/<run>/      one run of one step (e.g. hsi/finetune/Network_2/seed0/)
#   report/index.html          links every enabled study's report (<study>/report/index.html)
#   logs/, benchmarks/         one log and one benchmark per job
#   submit/, leaderboard.*     the competition
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/steps.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/leaderboard.smk"


rule all:
    input:
        get_final_output(),
    default_target: True

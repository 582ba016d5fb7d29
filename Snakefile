# rstransfer: prepare -> pretrain -> finetune x policies x seeds -> evaluate -> report
#
# Results layout (under config["results"], default results/):
#   prepare/{dataset}.h5                                         reduced cube, split, PCA/scaler
#   pretrain/{dataset}/{model}/seed{seed}/                       model.keras history.csv train.json
#   finetune/{source}-to-{target}/{model}/{policy}/seed{seed}/   model.keras history.csv train.json
#   evaluate/{source}-to-{target}/{model}/{policy}/seed{seed}/   metrics.json confusion.csv per_class.csv map.png
#   report/                                                      index.html + tables (CSV, Markdown) + figures
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/segmentation.smk"
include: "workflow/rules/leaderboard.smk"


rule all:
    input:
        get_final_output(),
    default_target: True

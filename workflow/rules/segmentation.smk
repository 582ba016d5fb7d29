# Segmentation branch (ISPRS Vaihingen, ResNet50-FCN), on when `segmentation.enabled`:
# make_vaihingen_demo (synthetic tiles only) -> prepare_vaihingen -> train_fcn per experiment
# -> evaluate_fcn per experiment x test tile -> report_segmentation. Input helpers live in
# rstransfer.segmentation (no TensorFlow import while the DAG is built).
import rstransfer.segmentation as seg


rule make_vaihingen_demo:
    output:
        **seg.synthetic_outputs(config),
    params:
        config=EFFECTIVE_CONFIG,
        settings=lambda wc: {"synthetic": config["segmentation"]["synthetic"]},
        out=lambda wc, output: str(Path(output.image[0]).parents[1]),
    log:
        L.log("make_vaihingen_demo", "tiles"),
    benchmark:
        L.benchmark("make_vaihingen_demo", "tiles")
    conda:
        "../../envs/train.yaml"
    localrule: config["slurm"]["cpu"]["local"]
    threads: 1
    resources:
        **CPU_RESOURCES,
    shell:
        "rstransfer make-vaihingen-demo --config {params.config} --out {params.out} > {log} 2>&1"


rule prepare_vaihingen:
    input:
        unpack(lambda wc: seg.split_inputs(config, "train", "val")),
    output:
        train=L.seg_prepared("train"),
        val=L.seg_prepared("val"),
    params:
        config=EFFECTIVE_CONFIG,
        settings=lambda wc: {
            k: config["segmentation"][k] for k in ("tiles", "patch_size", "overlap", "dsm")
        },
    log:
        L.log("prepare_vaihingen", "vaihingen"),
    benchmark:
        L.benchmark("prepare_vaihingen", "vaihingen")
    conda:
        "../../envs/train.yaml"
    localrule: config["slurm"]["cpu"]["local"]
    threads: 1
    resources:
        **CPU_RESOURCES,
    shell:
        "rstransfer prepare-vaihingen --config {params.config} --train-out {output.train}"
        " --val-out {output.val} > {log} 2>&1"


rule train_fcn:
    input:
        train=L.seg_prepared("train"),
        val=L.seg_prepared("val"),
        pretrained=lambda wc: seg.pretrained_inputs(config, wc.experiment),
    output:
        weights=L.seg_train_dir("{experiment}", file="weights.h5"),
        history=L.seg_train_dir("{experiment}", file="history.csv"),
        info=L.seg_train_dir("{experiment}", file="train.json"),
    wildcard_constraints:
        experiment="|".join(config["segmentation"]["experiments"]),
    params:
        config=EFFECTIVE_CONFIG,
        settings=lambda wc: {
            "train": config["segmentation"]["train"],
            "experiment": config["segmentation"]["experiments"][wc.experiment],
        },
        data=lambda wc, input: str(Path(input.train).parent),
        out=lambda wc, output: str(Path(output.weights).parent),
    log:
        L.log("train_fcn", "{experiment}"),
    benchmark:
        L.benchmark("train_fcn", "{experiment}")
    conda:
        "../../envs/train.yaml"
    threads: config["slurm"]["gpu"]["cpus_per_task"]
    resources:
        **GPU_TRAIN_RESOURCES,
    shell:
        "rstransfer launch --config {params.config} -- train-fcn --config {params.config} --experiment {wildcards.experiment}"
        " --data {params.data} --out {params.out} --threads {threads} > {log} 2>&1"


rule evaluate_fcn:
    input:
        unpack(lambda wc: seg.tile_inputs(config, wc.tile)),
        weights=L.seg_train_dir("{experiment}", file="weights.h5"),
        info=L.seg_train_dir("{experiment}", file="train.json"),
    output:
        metrics=L.seg_evaluate_dir("{experiment}", "{tile}", file="metrics.json"),
        confusion=L.seg_evaluate_dir("{experiment}", "{tile}", file="confusion.csv"),
        per_class=L.seg_evaluate_dir("{experiment}", "{tile}", file="per_class.csv"),
        prediction=L.seg_evaluate_dir("{experiment}", "{tile}", file="prediction.png"),
        comparison=L.seg_evaluate_dir("{experiment}", "{tile}", file="comparison.png"),
    wildcard_constraints:
        experiment="|".join(config["segmentation"]["experiments"]),
        tile=r"\d+",
    params:
        config=EFFECTIVE_CONFIG,
        settings=lambda wc: config["segmentation"]["evaluate"],
        out=lambda wc, output: str(Path(output.metrics).parent),
    log:
        L.log("evaluate_fcn", "{experiment}/area{tile}"),
    benchmark:
        L.benchmark("evaluate_fcn", "{experiment}/area{tile}")
    conda:
        "../../envs/train.yaml"
    threads: config["slurm"]["gpu"]["cpus_per_task"]
    resources:
        **GPU_RESOURCES,
    shell:
        "rstransfer evaluate-fcn --config {params.config} --experiment {wildcards.experiment}"
        " --tile {wildcards.tile} --weights {input.weights} --out {params.out}"
        " --threads {threads} > {log} 2>&1"


rule report_segmentation:
    input:
        metrics=expand("{run}/metrics.json", run=seg.evaluated_runs(config)),
    output:
        html=L.seg_report_dir(file="segmentation.html"),
        tile_oa=L.seg_report_dir(file="tile_oa.csv"),
        per_class=L.seg_report_dir(file="per_class.csv"),
        timing=L.seg_report_dir(file="timing.csv"),
    params:
        config=EFFECTIVE_CONFIG,
        runs=lambda wc, input: [str(Path(m).parent) for m in input.metrics],
        out=lambda wc, output: str(Path(output.html).parent),
    log:
        L.log("report_segmentation", "report"),
    benchmark:
        L.benchmark("report_segmentation", "report")
    conda:
        "../../envs/train.yaml"
    localrule: config["slurm"]["cpu"]["local"]
    threads: 1
    resources:
        **CPU_RESOURCES,
    shell:
        "rstransfer report-segmentation --config {params.config} --runs {params.runs}"
        " --out {params.out} > {log} 2>&1"

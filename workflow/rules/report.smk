rule report:
    input:
        metrics=expand("{run}/metrics.json", run=get_evaluated_runs()),
        pretrain=L.pretrain_dir(file="train.json"),
    output:
        index=L.report_dir(file="index.html"),
        table4=L.report_dir(file="table4_accuracy.csv"),
        table5=L.report_dir(file="table5_parameters.csv"),
        timing=L.report_dir(file="timing.csv"),
        summary=L.report_dir(file="summary.tsv"),
    params:
        config=EFFECTIVE_CONFIG,
        runs=lambda wc, input: [str(Path(m).parent) for m in input.metrics],
        pretrain=lambda wc, input: str(Path(input.pretrain).parent),
        out=lambda wc, output: str(Path(output.index).parent),
    log:
        L.log("report", "report"),
    benchmark:
        L.benchmark("report", "report")
    conda:
        "../../envs/train.yaml"
    threads: config["slurm"]["cpu"]["cpus_per_task"]
    resources:
        **CPU_RESOURCES,
    shell:
        "rstransfer report --config {params.config} --runs {params.runs} --pretrain {params.pretrain}"
        " --out {params.out} > {log} 2>&1"

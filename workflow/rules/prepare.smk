rule prepare:
    output:
        L.prepared("{dataset}"),
    params:
        config=EFFECTIVE_CONFIG,
        settings=lambda wc: {"prepare": config["prepare"], "dataset": config["datasets"][wc.dataset]},
    log:
        L.log("prepare", "{dataset}"),
    benchmark:
        L.benchmark("prepare", "{dataset}")
    conda:
        "../../envs/train.yaml"
    threads: config["slurm"]["cpu"]["cpus_per_task"]
    resources:
        **CPU_RESOURCES,
    shell:
        "rstransfer prepare --config {params.config} --dataset {wildcards.dataset} --out {output} > {log} 2>&1"

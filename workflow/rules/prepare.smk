rule prepare:
    output:
        f"{RESULTS}/prepare/{{dataset}}.h5",
    params:
        config=EFFECTIVE_CONFIG,
        settings=lambda wc: {"prepare": config["prepare"], "dataset": config["datasets"][wc.dataset]},
    log:
        f"{RESULTS}/logs/prepare/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare/{{dataset}}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    shell:
        "rstransfer prepare --config {params.config} --dataset {wildcards.dataset} --out {output} > {log} 2>&1"

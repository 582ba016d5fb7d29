rule pretrain:
    input:
        data=L.prepared("{dataset}"),
    output:
        model=L.pretrain_dir("{dataset}", "{model}", "{seed}", file="model.keras"),
        history=L.pretrain_dir("{dataset}", "{model}", "{seed}", file="history.csv"),
        info=L.pretrain_dir("{dataset}", "{model}", "{seed}", file="train.json"),
    params:
        config=EFFECTIVE_CONFIG,
        settings=lambda wc: config["train"]["pretrain"],
        out=lambda wc, output: str(Path(output.model).parent),
    log:
        L.log("pretrain", "{dataset}/{model}/seed{seed}"),
    benchmark:
        L.benchmark("pretrain", "{dataset}/{model}/seed{seed}")
    conda:
        "../../envs/train.yaml"
    threads: config["slurm"]["gpu"]["cpus_per_task"]
    resources:
        **GPU_TRAIN_RESOURCES,
    shell:
        "rstransfer launch --config {params.config} -- pretrain --config {params.config} --data {input.data} --out {params.out}"
        " --threads {threads} > {log} 2>&1"

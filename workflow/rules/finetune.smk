rule finetune:
    input:
        data=L.prepared(HSI["target"]),
        pretrained=get_pretrained,
    output:
        model=L.finetune_dir("{policy}", "{seed}", "{model}", file="model.keras"),
        history=L.finetune_dir("{policy}", "{seed}", "{model}", file="history.csv"),
        info=L.finetune_dir("{policy}", "{seed}", "{model}", file="train.json"),
    params:
        config=EFFECTIVE_CONFIG,
        settings=lambda wc: config["train"]["finetune"],
        pretrained=pretrained_arg,
        out=lambda wc, output: str(Path(output.model).parent),
    log:
        L.log("finetune", f"{L.pair}/{{model}}/{{policy}}/seed{{seed}}"),
    benchmark:
        L.benchmark("finetune", f"{L.pair}/{{model}}/{{policy}}/seed{{seed}}")
    conda:
        "../../envs/train.yaml"
    threads: config["slurm"]["gpu"]["cpus_per_task"]
    resources:
        **GPU_TRAIN_RESOURCES,
    shell:
        "rstransfer launch --config {params.config} -- finetune --config {params.config} --data {input.data} {params.pretrained}"
        " --policy {wildcards.policy} --seed {wildcards.seed} --out {params.out}"
        " --threads {threads} > {log} 2>&1"

rule evaluate:
    input:
        data=L.prepared(HSI["target"]),
        model=L.finetune_dir("{policy}", "{seed}", "{model}", file="model.keras"),
        info=L.finetune_dir("{policy}", "{seed}", "{model}", file="train.json"),
    output:
        metrics=L.evaluate_dir("{policy}", "{seed}", "{model}", file="metrics.json"),
        confusion=L.evaluate_dir("{policy}", "{seed}", "{model}", file="confusion.csv"),
        per_class=L.evaluate_dir("{policy}", "{seed}", "{model}", file="per_class.csv"),
        map=L.evaluate_dir("{policy}", "{seed}", "{model}", file="map.png"),
    params:
        config=EFFECTIVE_CONFIG,
        run=lambda wc, input: str(Path(input.model).parent),
        out=lambda wc, output: str(Path(output.metrics).parent),
    log:
        L.log("evaluate", f"{L.pair}/{{model}}/{{policy}}/seed{{seed}}"),
    benchmark:
        L.benchmark("evaluate", f"{L.pair}/{{model}}/{{policy}}/seed{{seed}}")
    conda:
        "../../envs/train.yaml"
    threads: config["slurm"]["gpu"]["cpus_per_task"]
    resources:
        **GPU_RESOURCES,
    shell:
        "rstransfer evaluate --config {params.config} --data {input.data} --run {params.run}"
        " --out {params.out} --threads {threads} > {log} 2>&1"

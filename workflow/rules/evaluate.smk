rule evaluate:
    input:
        data=f"{RESULTS}/prepare/{HSI['target']}.h5",
        model=f"{RESULTS}/finetune/{PAIR}/{{model}}/{{policy}}/seed{{seed}}/model.keras",
        info=f"{RESULTS}/finetune/{PAIR}/{{model}}/{{policy}}/seed{{seed}}/train.json",
    output:
        metrics=f"{RESULTS}/evaluate/{PAIR}/{{model}}/{{policy}}/seed{{seed}}/metrics.json",
        confusion=f"{RESULTS}/evaluate/{PAIR}/{{model}}/{{policy}}/seed{{seed}}/confusion.csv",
        per_class=f"{RESULTS}/evaluate/{PAIR}/{{model}}/{{policy}}/seed{{seed}}/per_class.csv",
        map=f"{RESULTS}/evaluate/{PAIR}/{{model}}/{{policy}}/seed{{seed}}/map.png",
    params:
        config=EFFECTIVE_CONFIG,
        run=lambda wc, input: str(Path(input.model).parent),
        out=lambda wc, output: str(Path(output.metrics).parent),
    log:
        f"{RESULTS}/logs/evaluate/{PAIR}/{{model}}/{{policy}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{PAIR}/{{model}}/{{policy}}/seed{{seed}}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 2
    shell:
        "rstransfer evaluate --config {params.config} --data {input.data} --run {params.run}"
        " --out {params.out} --threads {threads} > {log} 2>&1"

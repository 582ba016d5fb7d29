rule pretrain:
    input:
        data=f"{RESULTS}/prepare/{{dataset}}.h5",
    output:
        model=f"{RESULTS}/pretrain/{{dataset}}/{{model}}/seed{{seed}}/model.keras",
        history=f"{RESULTS}/pretrain/{{dataset}}/{{model}}/seed{{seed}}/history.csv",
        info=f"{RESULTS}/pretrain/{{dataset}}/{{model}}/seed{{seed}}/train.json",
    params:
        config=EFFECTIVE_CONFIG,
        settings=lambda wc: config["train"]["pretrain"],
        out=lambda wc, output: str(Path(output.model).parent),
    log:
        f"{RESULTS}/logs/pretrain/{{dataset}}/{{model}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pretrain/{{dataset}}/{{model}}/seed{{seed}}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 2
    shell:
        "rstransfer pretrain --config {params.config} --data {input.data} --out {params.out}"
        " --threads {threads} > {log} 2>&1"

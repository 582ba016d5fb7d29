rule finetune:
    input:
        data=f"{RESULTS}/prepare/{HSI['target']}.h5",
        pretrained=get_pretrained,
    output:
        model=f"{RESULTS}/finetune/{PAIR}/{{model}}/{{policy}}/seed{{seed}}/model.keras",
        history=f"{RESULTS}/finetune/{PAIR}/{{model}}/{{policy}}/seed{{seed}}/history.csv",
        info=f"{RESULTS}/finetune/{PAIR}/{{model}}/{{policy}}/seed{{seed}}/train.json",
    params:
        config=EFFECTIVE_CONFIG,
        settings=lambda wc: config["train"]["finetune"],
        pretrained=pretrained_arg,
        out=lambda wc, output: str(Path(output.model).parent),
    log:
        f"{RESULTS}/logs/finetune/{PAIR}/{{model}}/{{policy}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/finetune/{PAIR}/{{model}}/{{policy}}/seed{{seed}}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 2
    shell:
        "rstransfer finetune --config {params.config} --data {input.data} {params.pretrained}"
        " --policy {wildcards.policy} --seed {wildcards.seed} --out {params.out}"
        " --threads {threads} > {log} 2>&1"

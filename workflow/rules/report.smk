rule report:
    input:
        metrics=expand("{run}/metrics.json", run=get_evaluated_runs()),
        pretrain=f"{RESULTS}/pretrain/{HSI['source']}/{HSI['model']}/seed{HSI['pretrain_seed']}/train.json",
    output:
        index=f"{RESULTS}/report/index.html",
        table4=f"{RESULTS}/report/table4_accuracy.csv",
        table5=f"{RESULTS}/report/table5_parameters.csv",
        timing=f"{RESULTS}/report/timing.csv",
        summary=f"{RESULTS}/report/summary.tsv",
    params:
        config=EFFECTIVE_CONFIG,
        runs=lambda wc, input: [str(Path(m).parent) for m in input.metrics],
        pretrain=lambda wc, input: str(Path(input.pretrain).parent),
        out=lambda wc, output: str(Path(output.index).parent),
    log:
        f"{RESULTS}/logs/report/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/report.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    shell:
        "rstransfer report --config {params.config} --runs {params.runs} --pretrain {params.pretrain}"
        " --out {params.out} > {log} 2>&1"

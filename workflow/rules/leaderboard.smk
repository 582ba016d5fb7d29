# Competition: submit the team's evaluated runs (immutable files under
# <leaderboard.dir>/submissions/<team>/<task>/, named by content hash; the receipt is the
# declared output), then rank every team's submissions on the boards.
rule submit:
    input:
        lambda wc: submit_inputs(config, L, wc.task),
    output:
        receipt=L.submit_receipt("{task}"),
    params:
        config=EFFECTIVE_CONFIG,
        team=config["team"],
        submissions=lambda wc: L.submissions_dir(config["team"], wc.task),
    log:
        L.log("submit", "{task}"),
    benchmark:
        L.benchmark("submit", "{task}")
    wildcard_constraints:
        task="|".join(leaderboard_tasks(config)) or "none",
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        **CPU_RESOURCES,
    shell:
        "rstransfer submit --config {params.config} --task {wildcards.task} --out {output.receipt} > {log} 2>&1"


rule leaderboard:
    input:
        receipts=[L.submit_receipt(t) for t in leaderboard_tasks(config)]
        if config["leaderboard"]["submit"]
        else [],
    output:
        csv=L.leaderboard_file("csv"),
        md=L.leaderboard_file("md"),
        html=L.leaderboard_file("html"),
    params:
        config=EFFECTIVE_CONFIG,
        root=lambda wc, output: str(Path(output.html).parent),
    log:
        L.log("leaderboard", "leaderboard"),
    benchmark:
        L.benchmark("leaderboard", "leaderboard")
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        **CPU_RESOURCES,
    shell:
        "rstransfer leaderboard --config {params.config} --dir {params.root} > {log} 2>&1"

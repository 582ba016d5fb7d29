# Competition. Participant: rule submit writes the team's predictions (files named by content
# hash under <leaderboard.dir>/submissions/<team>/; the receipt is the declared output).
# Organiser (leaderboard.board): rule ground_truth exports the hidden test labels, rule
# leaderboard scores every team's predictions against them and publishes the boards.
rule submit:
    input:
        lambda wc: submit_inputs(config, L, wc.task),
    output:
        receipt=L.submit_receipt("{task}"),
    params:
        config=EFFECTIVE_CONFIG,
    log:
        L.log("submit", "{task}"),
    benchmark:
        L.benchmark("submit", "{task}")
    wildcard_constraints:
        task="|".join(leaderboard_tasks(config)) or "none",
    threads: 1
    resources:
        **CPU_RESOURCES,
    shell:
        "rstransfer submit --config {params.config} --task {wildcards.task} --out {output.receipt} > {log} 2>&1"


rule ground_truth:
    input:
        truth_inputs(config, L),
    output:
        directory(L.ground_truth_dir()),
    params:
        config=EFFECTIVE_CONFIG,
    log:
        L.log("leaderboard", "ground_truth"),
    benchmark:
        L.benchmark("leaderboard", "ground_truth")
    threads: 1
    resources:
        **CPU_RESOURCES,
    shell:
        "rstransfer ground-truth --config {params.config} --out {output} > {log} 2>&1"


rule leaderboard:
    input:
        receipts=[L.submit_receipt(t) for t in leaderboard_tasks(config)]
        if config["leaderboard"]["submit"]
        else [],
        ground_truth=L.ground_truth_dir(),
    output:
        directory(L.board_dir()),
    params:
        config=EFFECTIVE_CONFIG,
    log:
        L.log("leaderboard", "leaderboard"),
    benchmark:
        L.benchmark("leaderboard", "leaderboard")
    threads: 1
    resources:
        **CPU_RESOURCES,
    shell:
        "rstransfer leaderboard --config {params.config} > {log} 2>&1"

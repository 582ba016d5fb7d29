# The top-level report page: one link per enabled study's report.
rule report_index:
    input:
        reports=[L.run_dir(s.name, "report") for s in STUDIES if "report" in s.steps],
    output:
        index=L.report_index(),
    params:
        config=EFFECTIVE_CONFIG,
    log:
        L.log("report_index", "index"),
    benchmark:
        L.benchmark("report_index", "index")
    localrule: True
    threads: 1
    shell:
        "rstransfer index --config {params.config} --out {output.index} > {log} 2>&1"

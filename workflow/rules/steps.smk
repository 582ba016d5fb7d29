# The five steps of every registered, enabled study, as one rule per (study, step):
# <study>_prepare, <study>_pretrain, <study>_finetune, <study>_evaluate, <study>_report.
# Everything study-specific (runs, inputs, settings, GPU or CPU) comes from the registry
# (rstransfer.studies); a new study needs no change here. Each run's output is its folder
# <results>/<study>/<step>/<run>/, published by the CLI in one rename.
for _study in STUDIES:
    for _step_name, _step in _study.steps.items():
        if not _study.runs(config, _step_name):
            continue

        rule:
            name:
                f"{_study.name}_{_step_name}"
            input:
                unpack(step_inputs(config, _study, _step_name)),
            output:
                run=directory(L.run_dir(_study.name, _step_name, _step.pattern)),
            params:
                config=EFFECTIVE_CONFIG,
                settings=step_params(config, _study, _step_name),
                cli=step_cli(config, _study, _step_name),
            log:
                L.log(f"{_study.name}_{_step_name}", _step.pattern or "run"),
            benchmark:
                L.benchmark(f"{_study.name}_{_step_name}", _step.pattern or "run")
            wildcard_constraints:
                **{w: "[^/]+" for w in _step.wildcards()},
            localrule: _step.kind == "cpu" and config["slurm"]["cpu"]["local"]
            threads: config["slurm"][_step.kind]["cpus_per_task"]
            resources:
                **slurm_resources(config, _step.kind, training=_step.training),
            shell:
                "{params.cli} --config {params.config} --out {output.run} --threads {threads} > {log} 2>&1"

"""Snakemake resources for SLURM, derived from the validated ``slurm:`` config section.

The rules ask for ``slurm_resources(config, "gpu")`` or ``(config, "cpu")``; the profile holds
only executor settings, so a site edits one section of config.yaml and nothing else.
"""

from __future__ import annotations

from typing import Any


def ranks(config: dict[str, Any]) -> int:
    """Processes per training job: one Horovod rank per GPU, else one process."""
    gpu = config["slurm"]["gpu"]
    if config["distribution"]["mode"] == "horovod":
        return gpu["nodes"] * gpu["gpus_per_node"]
    return 1


def slurm_resources(config: dict[str, Any], kind: str, training: bool = False) -> dict[str, Any]:
    """Resource keywords understood by snakemake-executor-plugin-slurm.

    ``training``: a rule run through ``rstransfer launch`` with one Horovod rank per GPU.
    With more than one rank, ``mpi="srun"`` tells the plugin's jobstep to run the rule's
    shell in the batch step (not inside ``srun -n1``), so the launcher's own srun step
    can start the ranks. Inference rules keep one task.
    """
    section = config["slurm"][kind]
    res: dict[str, Any] = {
        "slurm_partition": section["partition"],
        "runtime": section["runtime"],
        "mem_mb": section["mem_mb"],
        "cpus_per_task": section["cpus_per_task"],
    }
    if section.get("account"):
        res["slurm_account"] = section["account"]
    extra = []
    if kind == "gpu":
        res["gres"] = section["gres"]
        res["nodes"] = section["nodes"]
        # the plugin sets --ntasks-per-gpu from this: one rank per GPU
        n = ranks(config) if training else 1
        res["tasks"] = n
        res["tasks_per_gpu"] = 1  # the plugin's --ntasks-per-gpu: one rank per GPU
        if n > 1:
            res["mpi"] = "srun"
        if section["qos"]:
            res["qos"] = section["qos"]
        if section["reservation"]:
            extra.append(f"--reservation={section['reservation']}")
        if section["mail_type"]:
            extra.append(f"--mail-type={section['mail_type']}")
        if section["mail_user"]:
            extra.append(f"--mail-user={section['mail_user']}")
    if extra:
        res["slurm_extra"] = " ".join(extra)
    return res


def sbatch_options(config: dict[str, Any], kind: str, training: bool = False) -> list[str]:
    """The same settings as sbatch command-line options."""
    res = slurm_resources(config, kind, training)
    opts = [f"--partition={res['slurm_partition']}", f"--time={res['runtime']}", f"--mem={res['mem_mb']}"]
    opts.append(f"--cpus-per-task={res['cpus_per_task']}")
    if kind == "gpu":
        opts += [f"--nodes={res['nodes']}", f"--gres={res['gres']}", f"--ntasks={res['tasks']}"]
    if "slurm_account" in res:
        opts.append(f"--account={res['slurm_account']}")
    if "qos" in res:
        opts.append(f"--qos={res['qos']}")
    opts += res.get("slurm_extra", "").split()
    return opts

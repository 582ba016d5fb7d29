"""rstransfer: transfer learning for remote-sensing images, run as a Snakemake/SLURM workflow."""

__version__ = "0.1.0"

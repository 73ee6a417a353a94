"""Glue for the Snakemake workflow: config checks and the cluster profile installer."""

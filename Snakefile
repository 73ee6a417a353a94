# affectflow: the Khorrami et al. (ICIP 2016) pipeline as a Snakemake workflow.
#
#   snakemake --cores 2                          # the embedded demo (config/config.yaml)
#   snakemake --cores 8 --configfile config/recola.yaml
#   snakemake --profile profiles/slurm --configfile config/recola.yaml
#   snakemake annotate --cores 4 --config 'annotate={videos: DIR, models: [M.safetensors]}'
#
# Rules are thin: each calls one `affectflow` command (see `affectflow --help`).
# All grids (variants, seeds, RNN ablations) live in the config, not here.

import os

from snakemake.utils import min_version

# The release the workflow is tested with (requirements.txt pins it; 9 for the SLURM plugin 2.x,
# the `--profile` loading and `workflow.overwrite_configfiles`).
min_version("9.27")

# The demo config, unless the command line names its own (--configfile): each config
# file is complete, so a RECOLA run never inherits the demo's synthetic corpus.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/corpus.smk"
include: "workflow/rules/align.smk"
include: "workflow/rules/cnn.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/rnn.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/annotate.smk"


rule all:
    default_target: True
    input:
        table_files(),
        figure_files(),


onstart:
    # New videos' batch assignments are recorded when a run starts (not on a dry run), so that every
    # process of the run, each cluster job included, forms the same batches.
    if ANNOTATE_PLAN:
        ANNOTATE_PLAN.save()


onerror:
    # A crashed batch stops `annotate_summary`: the counts are printed, and the summary table (the
    # target) is not written, so that the next run redoes what is pending (affectflow.annotation.batches).
    if ANNOTATE_VIDEOS and os.path.isdir(annotations_dir()):
        shell(annotate_summary_command() + " || true")

# affectflow: the Khorrami et al. (ICIP 2016) pipeline as a Snakemake workflow.
#
#   snakemake --cores 2                          # the embedded demo (config/config.yaml)
#   snakemake --cores 8 --configfile config/recola.yaml
#   snakemake --profile profiles/slurm --configfile config/recola.yaml
#   snakemake annotate --cores 4 --config 'annotate={videos: DIR, models: [M.pt]}'
#
# Rules are thin: each calls one `affectflow` command (see `affectflow --help`).
# All grids (variants, seeds, RNN ablations) live in the config, not here.

import os

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


onerror:
    # A failed video stops `annotate_summary`; the folder's summary is still written, listing it.
    if ANNOTATE_VIDEOS and os.path.isdir(
        os.path.dirname(annotations_summary_path())
    ):
        shell(annotate_summary_command(annotations_summary_path()) + " || true")

# `snakemake annotate`: a per-frame valence/arousal table for every video of a folder or sheet,
# in batches of annotate.batch videos (affectflow.annotation.batches): per batch one alignment job (CPU) and
# one annotation job (the models load once; a GPU job on a cluster), then the folder's summary.
# A video that cannot be aligned or annotated (no face, undecodable, missing) is recorded as a
# failure in its outcome ({id}.json) and its batch goes on; a crash fails the batch's job (and
# the cluster retries it: it skips the members already done). Only the batches that hold a video
# not yet done are in the DAG, each under its round ({batch}-{state}: what it has left to do), so
# a rerun after a crash, a replaced video or a deleted outcome runs that batch again, and a rerun
# after adding videos aligns and annotates only those. The state lives in the outcomes: no target
# file stands for work that was not done.


wildcard_constraints:
    batch=r"b\d{5}\d*",
    state=r"[0-9a-f]{12}",


localrules:
    annotate,
    annotate_summary,


rule annotate:
    input:
        annotate_targets,


rule annotate_align:
    input:
        videos=annotate_batch_videos,
        model=lambda wc: annotate_models()[0],
    output:
        # temporary: the chips are large, the tables are what stays
        work=temp(directory(annotation_work_dir("{batch}-{state}"))),
    log:
        "logs/annotate/align/{batch}-{state}.log",
    benchmark:
        "benchmarks/annotate/align/{batch}-{state}.tsv"
    conda:
        "../../envs/affectflow.yaml"
    threads: config["align"]["threads"]
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        source=lambda wc: ANNOTATE["videos"],
        plan=annotation_plan_path(),
        models=lambda wc: shlex.join(
            word for model in annotate_models() for word in ("--model", model)
        ),
        annotations=lambda wc: annotations_dir(),
        retry=ANNOTATE_RETRY,
    shell:
        "affectflow align-batch --videos {params.source:q} --batch {wildcards.batch} --plan {params.plan}"
        " --like {input.model:q} {params.models} --annotations {params.annotations}"
        " -o {output.work} --threads {threads} {params.retry} > {log} 2>&1"


rule annotate_batch:
    input:
        work=annotation_work_dir("{batch}-{state}"),
        models=annotate_models,
    output:
        marker=annotation_batch_marker("{batch}-{state}"),
    log:
        "logs/annotate/batch/{batch}-{state}.log",
    benchmark:
        "benchmarks/annotate/batch/{batch}-{state}.tsv"
    conda:
        "../../envs/affectflow.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        source=lambda wc: ANNOTATE["videos"],
        plan=annotation_plan_path(),
        models=lambda wc, input: shlex.join(
            word for model in input.models for word in ("--model", model)
        ),
        annotations=lambda wc: annotations_dir(),
        retry=ANNOTATE_RETRY,
        plots=("" if config_flag(ANNOTATE, "plots") else "--no-plots"),
        device=config["device"],
    shell:
        "affectflow annotate-batch --videos {params.source:q} --batch {wildcards.batch} --plan {params.plan}"
        " --work {input.work} {params.models} --annotations {params.annotations}"
        " --marker {output.marker} {params.plots} {params.retry} --device {params.device} > {log} 2>&1"


rule annotate_summary:
    input:
        [
            annotation_batch_marker(batch_round)
            for batch_round in ANNOTATE_ROUNDS.values()
        ],
    output:
        annotations_summary_path(),
    log:
        "logs/annotate/summary.log",
    conda:
        "../../envs/affectflow.yaml"
    params:
        command=lambda wc, output: annotate_summary_command(output[0]),
    shell:
        "{params.command} > {log} 2>&1"

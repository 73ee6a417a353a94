# `snakemake annotate`: a per-frame valence/arousal table for every video of a folder.
# One alignment job per video (CPU), then its annotation (the models; a GPU job on a cluster),
# then the folder's summary. The annotations are not grouped into one GPU job: Snakemake submits
# a group only once every member's input exists, so one faceless video would hold back all the
# others of its group. A video that fails (no face,
# undecodable) fails alone (keep-going, profiles/default); `onerror` still writes the summary
# with each failure's reason.


wildcard_constraints:
    video="|".join(re.escape(v) for v in ANNOTATE_VIDEOS) or "(?!)",


rule annotate:
    input:
        annotate_targets,


rule annotate_align:
    input:
        video=lambda wc: ANNOTATE_VIDEOS[wc.video],
        model=lambda wc: annotate_models()[0],
    output:
        # temporary: a long video's chips are large, and its table is what stays
        faces=temp(annotation_faces_path("{video}")),
    log:
        "logs/annotate/align/{video}.log",
    benchmark:
        "benchmarks/annotate/align/{video}.tsv"
    conda:
        "../../envs/affectflow.yaml"
    threads: config["align"]["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "affectflow align {input.video:q} -o {output.faces:q} --like {input.model:q}"
        " --threads {threads} > {log} 2>&1"


rule annotate_video:
    input:
        faces=annotation_faces_path("{video}"),
        models=annotate_models,
    output:
        table=annotation_path("{video}", "csv"),
        summary=annotation_path("{video}", "json"),
        plot=report(
            annotation_path("{video}", "png"),
            caption="../report/annotation.rst",
            category="Annotations",
            labels={"video": "{video}"},
        ),
    log:
        "logs/annotate/predict/{video}.log",
    benchmark:
        "benchmarks/annotate/predict/{video}.tsv"
    conda:
        "../../envs/affectflow.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        models=lambda wc, input: shlex.join(
            word for model in input.models for word in ("--model", model)
        ),
        device=config["device"],
    shell:
        "affectflow annotate --faces {input.faces} {params.models} --id {wildcards.video}"
        " -o {output.table} --summary {output.summary} --plot {output.plot}"
        " --device {params.device} > {log} 2>&1"


rule annotate_summary:
    input:
        [annotation_path(video, "json") for video in ANNOTATE_VIDEOS],
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

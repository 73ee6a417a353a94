# Face detection, landmarks, similarity alignment and contrast normalization: one job per subject.
# With align.source: release (the Aff-Wild2 layout), the face files come from the release's own crops instead.


if FACE_SOURCE == "release":

    rule faces_from_release:
        input:
            video=subject_video,
            crops=subject_crops,
        output:
            faces=faces_path("{subject}"),
        log:
            "logs/align/{subject}.log",
        benchmark:
            "benchmarks/align/{subject}.tsv"
        conda:
            "../../envs/affectflow.yaml"
        resources:
            mem_mb=2000,
            runtime=60,
        params:
            corpus=CORPUS,
            chip_size=config["align"]["chip_size"],
            normalization=config["align"]["normalization"],
        shell:
            "affectflow faces-from-release {params.corpus} {wildcards.subject} --crops {input.crops}"
            " -o {output.faces} --chip-size {params.chip_size} --normalization {params.normalization}"
            " > {log} 2>&1"


rule align:
    input:
        video=subject_video,
    output:
        faces=faces_path("{subject}"),
    log:
        "logs/align/{subject}.log",
    benchmark:
        "benchmarks/align/{subject}.tsv"
    conda:
        "../../envs/affectflow.yaml"
    threads: config["align"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        landmarks=config["align"]["landmarks"],
        chip_size=config["align"]["chip_size"],
        normalization=config["align"]["normalization"],
        detect_every=config["align"]["detect_every"],
        tracking="" if config["align"]["tracking"] else "--no-tracking",
        # which person: Aff-Wild2's NAME_left / NAME_right are the left / right face of video NAME
        face=lambda wc: RECORDINGS[wc.subject]["face"],
    shell:
        "affectflow align {input.video} -o {output.faces} --threads {threads}"
        " --landmarks {params.landmarks} --chip-size {params.chip_size}"
        " --normalization {params.normalization}"
        " --detect-every {params.detect_every} {params.tracking} --face {params.face}"
        " > {log} 2>&1"

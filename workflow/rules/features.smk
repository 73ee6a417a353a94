# Frozen-CNN features (300-d) and the CNN's own predictions, per variant x seed x subject.
# On a cluster the subjects of one CNN run are packed into one GPU job (`group`).


rule extract:
    input:
        model=model_file("cnn", "{variant}", "{run}"),
        faces=faces_path("{subject}"),
    output:
        features=features_path("{variant}", "{run}", "{subject}"),
    log:
        "logs/extract/{variant}_{run}_{subject}.log",
    benchmark:
        "benchmarks/extract/{variant}_{run}_{subject}.tsv"
    group:
        "extract_{variant}_{run}"
    conda:
        "../../envs/affectflow.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        device=config["device"],
    shell:
        "affectflow extract --model {input.model} --faces {input.faces}"
        " -o {output.features} --device {params.device} > {log} 2>&1"

# Frozen-CNN features (300-d) and the CNN's own predictions, per variant x seed x subject.
# On a cluster the subjects of one CNN run are packed into one GPU job (`group`).


rule extract:
    input:
        model=f"{RESULTS}/cnn/{{variant}}/{{run}}/model.pt",
        faces=f"{RESULTS}/faces/{{subject}}.h5",
    output:
        features=f"{RESULTS}/features/{{variant}}/{{run}}/{{subject}}.h5",
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
        run_dir=lambda wc, input: os.path.dirname(input.model),
        device=config["device"],
    shell:
        "affectflow extract --model {params.run_dir} --faces {input.faces}"
        " -o {output.features} --device {params.device} > {log} 2>&1"

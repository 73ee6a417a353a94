# The single-frame CNN, one run per variant (plain, D, A, AD) and seed. GPU on a cluster.


rule train_cnn:
    input:
        faces=[faces_path(s) for s in TRAINING_SUBJECTS],
        labels=label_files(TRAINING_SUBJECTS),
    output:
        model=model_file("cnn", "{variant}", "{run}"),
        history=f"{cnn_dir('{variant}', '{run}')}/{HISTORY_FILE}",
        run=f"{cnn_dir('{variant}', '{run}')}/{RUN_FILE}",
    log:
        "logs/train_cnn/{variant}_{run}.log",
    benchmark:
        "benchmarks/train_cnn/{variant}_{run}.tsv"
    conda:
        "../../envs/affectflow.yaml"
    threads: config["cnn"].get("threads", 2)
    resources:
        mem_mb=8000,
        runtime=lambda wc, attempt: 240 * attempt,
        attempt=lambda wc, attempt: attempt,
    params:
        corpus=lambda wc: CORPUS,
        out=lambda wc: cnn_dir(wc.variant, wc.run),
        epochs=lambda wc: cnn_epochs(wc.variant),
        dimension=run_dimension_of,
        seed=lambda wc: run_seed(wc.run),
        selection=lambda wc: run_selection(wc.run, HEADLINE_SELECTION),
        normalization=config["cnn"]["normalization"],
        device=config["device"],
        options=cli_options(config["cnn"].get("options")),
        # A retried job (SLURM time limit, preemption) continues from its last epoch.
        resume=lambda wc, resources: "--resume" if resources.attempt > 1 else "",
    shell:
        "affectflow train-cnn --corpus {params.corpus} --faces {input.faces}"
        " --variant {wildcards.variant} --seed {params.seed} --out {params.out}"
        " --epochs {params.epochs} --dimension {params.dimension}"
        " --selection {params.selection} --normalization {params.normalization}"
        " --device {params.device}"
        " {params.options} {params.resume} > {log} 2>&1"

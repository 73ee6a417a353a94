# CNN+RNN: an Elman RNN over windows of frozen-CNN features, one run per ablation config x seed.
# The configs come from the config's rnn.tables sweeps (deduplicated by name).


rule train_rnn:
    input:
        # the CNN whose features the RNN reads: its model file goes into the RNN's
        cnn=lambda wc: model_file("cnn", RNN_FEATURES, wc.run),
        features=lambda wc: [
            features_path(RNN_FEATURES, wc.run, s) for s in TRAINING_SUBJECTS
        ],
        labels=label_files(TRAINING_SUBJECTS),
    output:
        model=model_file("rnn", "{name}", "{run}"),
        history=f"{rnn_dir('{name}', '{run}')}/{HISTORY_FILE}",
        run=f"{rnn_dir('{name}', '{run}')}/{RUN_FILE}",
    log:
        "logs/train_rnn/{name}_{run}.log",
    benchmark:
        "benchmarks/train_rnn/{name}_{run}.tsv"
    conda:
        "../../envs/affectflow.yaml"
    threads: config["rnn"].get("threads", 2)
    resources:
        mem_mb=8000,
        runtime=lambda wc, attempt: 120 * attempt,
        attempt=lambda wc, attempt: attempt,
    params:
        corpus=lambda wc: CORPUS,
        out=lambda wc: rnn_dir(wc.name, wc.run),
        settings=lambda wc: rnn_flags(RNN_CONFIGS[wc.name]),
        epochs=config["rnn"]["epochs"],
        loss=config["rnn"]["loss"],
        dimension=run_dimension_of,
        seed=lambda wc: run_seed(wc.run),
        selection=lambda wc: run_selection(wc.run, HEADLINE_SELECTION),
        feature_norm=RNN_FEATURE_NORM,
        device=config["device"],
        options=cli_options(config["rnn"].get("options")),
        resume=lambda wc, resources: "--resume" if resources.attempt > 1 else "",
    shell:
        "affectflow train-rnn --corpus {params.corpus} --cnn {input.cnn}"
        " --features {input.features}"
        " --seed {params.seed} --out {params.out}"
        " {params.settings} --epochs {params.epochs} --loss {params.loss}"
        " --dimension {params.dimension} --selection {params.selection}"
        " --feature-norm {params.feature_norm}"
        " --device {params.device} {params.options} {params.resume} > {log} 2>&1"

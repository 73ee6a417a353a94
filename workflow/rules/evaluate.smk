# Scores (RMSE, CC, CCC) of every model on the evaluation partition, and its per-subject traces.


rule evaluate_cnn:
    input:
        model=f"{RESULTS}/cnn/{{variant}}/{{run}}/model.pt",
        features=lambda wc: [
            f"{features_dir(wc.variant, wc.run)}/{s}.h5"
            for s in subjects(EVAL_PARTITION)
        ],
        labels=label_files(subjects(EVAL_PARTITION)),
    output:
        metrics=f"{RESULTS}/metrics/cnn/{{variant}}/{{run}}.json",
        predictions=[
            f"{RESULTS}/predictions/cnn/{{variant}}/{{run}}/{s}.csv"
            for s in subjects(EVAL_PARTITION)
        ],
    log:
        "logs/evaluate_cnn/{variant}_{run}.log",
    benchmark:
        "benchmarks/evaluate_cnn/{variant}_{run}.tsv"
    conda:
        "../../envs/affectflow.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        corpus=lambda wc: CORPUS,
        run_dir=lambda wc, input: os.path.dirname(input.model),
        features_dir=lambda wc, input: os.path.dirname(input.features[0]),
        predictions_dir=lambda wc, output: os.path.dirname(output.predictions[0]),
        partition=EVAL_PARTITION,
    shell:
        "affectflow evaluate --corpus {params.corpus} --model {params.run_dir}"
        " --features-dir {params.features_dir} --partition {params.partition}"
        " --predictions-dir {params.predictions_dir} -o {output.metrics} > {log} 2>&1"


rule evaluate_rnn:
    input:
        model=f"{RESULTS}/rnn/{{name}}/{{run}}/model.pt",
        features=lambda wc: [
            f"{features_dir(RNN_FEATURES, wc.run)}/{s}.h5"
            for s in subjects(EVAL_PARTITION)
        ],
        labels=label_files(subjects(EVAL_PARTITION)),
    output:
        metrics=f"{RESULTS}/metrics/rnn/{{name}}/{{run}}.json",
        predictions=[
            f"{RESULTS}/predictions/rnn/{{name}}/{{run}}/{s}.csv"
            for s in subjects(EVAL_PARTITION)
        ],
    log:
        "logs/evaluate_rnn/{name}_{run}.log",
    benchmark:
        "benchmarks/evaluate_rnn/{name}_{run}.tsv"
    conda:
        "../../envs/affectflow.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=15,
    params:
        corpus=lambda wc: CORPUS,
        run_dir=lambda wc, input: os.path.dirname(input.model),
        features_dir=lambda wc, input: os.path.dirname(input.features[0]),
        predictions_dir=lambda wc, output: os.path.dirname(output.predictions[0]),
        partition=EVAL_PARTITION,
    shell:
        "affectflow evaluate --corpus {params.corpus} --model {params.run_dir}"
        " --features-dir {params.features_dir} --partition {params.partition}"
        " --predictions-dir {params.predictions_dir} -o {output.metrics} > {log} 2>&1"

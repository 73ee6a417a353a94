# Scores (RMSE, CC, CCC) of every model on the evaluation partition, and its per-subject traces.
# One rule for both kinds: a CNN reads its own features, an RNN those of the rnn.features CNN.


rule evaluate:
    input:
        model=lambda wc: model_file(wc.kind, wc.model, wc.run),
        features=evaluation_features,
        labels=label_files(subjects(EVAL_PARTITION)),
    output:
        metrics=metrics_path("{kind}", "{model}", "{run}"),
        predictions=[
            predictions_path("{kind}", "{model}", "{run}", s)
            for s in subjects(EVAL_PARTITION)
        ],
    log:
        "logs/evaluate/{kind}_{model}_{run}.log",
    benchmark:
        "benchmarks/evaluate/{kind}_{model}_{run}.tsv"
    wildcard_constraints:
        kind="|".join(MODEL_KINDS),
        model="|".join(re.escape(m) for m in [*VARIANTS, *RNN_CONFIGS]),
    conda:
        "../../envs/affectflow.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: 4000 if wc.kind == "rnn" else 2000,
        runtime=15,
    params:
        corpus=lambda wc: CORPUS,
        predictions_dir=lambda wc: predictions_dir(wc.kind, wc.model, wc.run),
        partition=EVAL_PARTITION,
    shell:
        "affectflow evaluate --corpus {params.corpus} --model {input.model}"
        " --features {input.features} --partition {params.partition}"
        " --predictions-dir {params.predictions_dir} -o {output.metrics} > {log} 2>&1"

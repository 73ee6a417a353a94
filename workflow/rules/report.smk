# The paper's Tables 1-5 and Figure 3, plus training curves; `snakemake --report` collects them.


# The config keys the tables read, as a file for `affectflow tables --config` (which derives
# the rows and their metrics files from it); rendered again when one of them changes.
rule tables_config:
    input:
        os.path.join(workflow.basedir, "workflow", "templates", "tables_config.yaml"),
    output:
        tables_layout.tables_config_path(),
    log:
        "logs/tables_config.log",
    params:
        config=tables_layout.tables_config(config),
    template_engine:
        "yte"


rule tables:
    input:
        config=tables_layout.tables_config_path(),
        metrics=all_metrics_files(),
    output:
        md=[
            report(
                table_path(n, "md"),
                caption=f"../report/table{n}.rst",
                category="Tables",
                labels={"table": f"Table {n}"},
            )
            for n in TABLES
        ],
        tsv=[table_path(n, "tsv") for n in TABLES],
    log:
        "logs/tables.log",
    benchmark:
        "benchmarks/tables.tsv"
    conda:
        "../../envs/affectflow.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        out_dir=lambda wc, output: os.path.dirname(output.md[0]),
    shell:
        "affectflow tables --config {input.config} --out-dir {params.out_dir} > {log} 2>&1"


rule figures:
    input:
        cnn_trace=predictions_path("cnn", FIGURE_CNN, FIGURE_RUN, FIGURE_SUBJECT),
        rnn_trace=predictions_path("rnn", FIGURE_RNN, FIGURE_RUN, FIGURE_SUBJECT),
        histories=all_histories(),
    output:
        figure3=report(
            figure_path(FIGURE3),
            caption="../report/figure3.rst",
            category="Figures",
            labels={"figure": "Figure 3"},
        ),
        smoothness=figure_path(FIGURE3_SMOOTHNESS),
        curves=report(
            figure_path(TRAINING_CURVES),
            caption="../report/training_curves.rst",
            category="Figures",
            labels={"figure": "Training curves"},
        ),
    log:
        "logs/figures.log",
    benchmark:
        "benchmarks/figures.tsv"
    conda:
        "../../envs/affectflow.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        cnn_label=cnn_label(FIGURE_CNN),
        rnn_label=f"CNN+RNN ({FIGURE_RNN})",
    shell:
        "affectflow figures --trace {params.cnn_label:q} {input.cnn_trace}"
        " --trace {params.rnn_label:q} {input.rnn_trace}"
        " --histories {input.histories}"
        " --figure3 {output.figure3} --smoothness {output.smoothness}"
        " --curves {output.curves} > {log} 2>&1"
